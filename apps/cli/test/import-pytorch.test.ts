// tools/import_pytorch.py against real PyTorch checkpoints (Debian's python3-torch, run with /usr/bin/python3):
// state dicts mapped onto --layers, the check that the written bundle encodes like PyTorch, and weights-only
// loading. The checkpoints are made here, in a temporary folder, by a small seeded nn.Sequential for 1x28x28.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpyFile } from '@dhta/kernels/hamming';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cliRunner } from './cli-helper.js';

const here = dirname(fileURLToPath(import.meta.url));
const TOOL = join(here, '../../../tools/import_pytorch.py');
const PYTHON = '/usr/bin/python3';
const root = mkdtempSync(join(tmpdir(), 'dhta-import-pytorch-'));
const ck = join(root, 'ck');
const dhta = cliRunner(join(root, 'cache'));
const NORM = ['--input', '1,28,28', '--mean', '0.1307', '--std', '0.3081'];

// The model, its checkpoints in several forms, seeded pixels x and PyTorch's f(x) in float64.
const MAKE = `
import json, os, sys
import numpy as np
import torch, torch.nn as nn
d = sys.argv[1]
sys.path.insert(0, d)
from custom_layers import DoubledLinear

def net(last=nn.Linear):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 32), nn.ReLU(), nn.Dropout(0.5), last(32, 16))

torch.manual_seed(0)
m = net()
layers = [{'type': 'conv2d', 'out': 4, 'kernel': 3, 'padding': 1}, {'type': 'relu'}, {'type': 'maxpool2d', 'kernel': 2},
          {'type': 'conv2d', 'out': 8, 'kernel': 3}, {'type': 'relu'}, {'type': 'maxpool2d', 'kernel': 2},
          {'type': 'flatten'}, {'type': 'linear', 'out': 32}, {'type': 'relu'}, {'type': 'dropout', 'p': 0.5},
          {'type': 'linear', 'out': 16}]
json.dump(layers, open(os.path.join(d, 'layers.json'), 'w'))
json.dump([l for l in layers if l['type'] != 'dropout'], open(os.path.join(d, 'layers-no-dropout.json'), 'w'))
sd = m.state_dict()
torch.save(sd, os.path.join(d, 'state.pt'))  # 0.weight, 0.bias, 3.weight, ..., 10.bias

class Hashing(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = m

# features.0.weight, ..., inside a training checkpoint with numbers beside the weights
torch.save({'state_dict': Hashing().state_dict(), 'epoch': 7, 'lr': 0.01, 'loss': [0.5, 0.25]},
           os.path.join(d, 'nested.pt'))
torch.save(m, os.path.join(d, 'model.pt'))  # a pickled module
doubled = net(DoubledLinear)
doubled.load_state_dict(sd)
torch.save(doubled, os.path.join(d, 'doubled.pt'))

class Payload:
    def __reduce__(self):
        return (open, (os.path.join(d, 'MARKER'), 'w'))

torch.save({'state_dict': Payload()}, os.path.join(d, 'crafted.pt'))

x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
np.save(os.path.join(d, 'x.npy'), x.numpy())
with torch.no_grad():
    f = m.double().eval()((x.double() - 0.1307) / 0.3081)
np.save(os.path.join(d, 'f.npy'), f.numpy())
`;

// A Linear whose forward is not what its class and weights say: only running the model can tell.
const CUSTOM = `import torch.nn as nn


class DoubledLinear(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tool(...args: string[]): Run {
  const r = spawnSync(PYTHON, [TOOL, ...args], {
    encoding: 'utf8',
    timeout: 300_000,
    env: {
      ...process.env,
      PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`,
      PYTHONPATH: ck,
      DHTA_CACHE: join(root, 'cache'),
    },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

/** dhta encode of x.npy through a bundle: f(x), checked against PyTorch's. */
async function expectTorchFeatures(model: string, dir: string): Promise<void> {
  const r = dhta(
    'encode',
    '--model',
    model,
    '--input',
    join(ck, 'x.npy'),
    '--out',
    join(dir, 'codes.npy'),
    '--features',
    join(dir, 'f.npy'),
    '--engine',
    'wasm',
    '--quiet',
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const got = await readNpyFile(join(dir, 'f.npy'));
  const want = await readNpyFile(join(ck, 'f.npy'));
  expect(got.shape).toEqual([5, 16]);
  expect(relErr(got.data as Float32Array, want.data as Float64Array)).toBeLessThan(1e-4);
}

function fresh(name: string): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

describe('tools/import_pytorch.py', () => {
  beforeAll(async () => {
    const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      throw new Error(
        `${PYTHON} cannot import torch (${probe.stderr.trim().split('\n').at(-1)}): install it ` +
          '(apt-get install python3-torch libopenblas0-pthread, or DHTA_SETUP_TESTS=1 bash scripts/setup.sh)',
      );
    }
    await buildCli();
    mkdirSync(ck, { recursive: true });
    writeFileSync(join(ck, 'custom_layers.py'), CUSTOM);
    const r = spawnSync(PYTHON, ['-c', MAKE, ck], {
      encoding: 'utf8',
      env: { ...process.env, PYTHONPATH: ck },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 300_000);

  it("maps a plain state_dict (0.weight; features.0.weight in a training checkpoint) onto --layers, checks it, and dhta encode gives PyTorch's features", async () => {
    const dir = fresh('state-dict');
    for (const [name, prefix] of [
      ['state', ''],
      ['nested', 'features.'],
    ]) {
      const out = join(dir, name);
      const r = tool('sequential', join(ck, `${name}.pt`), out, '--layers', join(ck, 'layers.json'), ...NORM);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(readdirSync(out).sort()).toEqual(['model.json', 'weights.safetensors']);
      await expectTorchFeatures(out, dir);
      expect(r.stdout).toContain(`state dict matched by layer index (prefix "${prefix}" -> "layers.")`);
      expect(r.stdout).toMatch(
        /checked: dhta encode \(wasm\) matches PyTorch on 4 random inputs, normwise relative error \S+ \(tolerance 0\.0001\)/,
      );
      expect(r.stdout).toContain(`wrote ${out}: image model, 16 bits, 8 tensors`);
    }
    // Nothing left beside the bundles (the check's temporary folder is renamed into place).
    expect(readdirSync(dir).sort()).toEqual(['codes.npy', 'f.npy', 'nested', 'state']);
  });

  it('refuses state-dict names or shapes that do not match --layers, naming both sides, and writes nothing; --match-by-order pairs by order', async () => {
    const dir = fresh('mismatch');
    const out = join(dir, 'model');
    // The checkpoint's Dropout is missing from the layer list: its last Linear is 10.*, the list's layers.9.*.
    const r = tool(
      'sequential',
      join(ck, 'state.pt'),
      out,
      '--layers',
      join(ck, 'layers-no-dropout.json'),
      ...NORM,
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('does not match the layers of --layers by name');
    expect(r.stderr).toContain('in the state dict, matching no layer: 10.weight [16, 32], 10.bias [16]');
    expect(r.stderr).toContain(
      'needed by the layers, not in the state dict: layers.9.weight [16, 32] (layers[9] linear), layers.9.bias [16] (layers[9] linear)',
    );
    expect(r.stderr).toContain(
      '--match-by-order would pair 0 -> layers.0, 3 -> layers.3, 7 -> layers.7, 10 -> layers.9',
    );
    // The same names, but an input size the weights do not fit.
    const s = tool(
      'sequential',
      join(ck, 'state.pt'),
      out,
      '--layers',
      join(ck, 'layers.json'),
      '--input',
      '1,32,32',
      '--mean',
      '0.1307',
      '--std',
      '0.3081',
    );
    expect(s.code).toBe(1);
    expect(s.stderr).toContain('7.weight has shape [32, 288], but layers.7.weight (layers[7] linear)');
    expect(s.stderr).toContain('needs [32, 392]');
    expect(readdirSync(dir)).toEqual([]);

    const o = tool(
      'sequential',
      join(ck, 'state.pt'),
      out,
      '--layers',
      join(ck, 'layers-no-dropout.json'),
      '--match-by-order',
      ...NORM,
    );
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    expect(o.stdout).toContain(
      'state dict matched by order: 0 -> layers.0, 3 -> layers.3, 7 -> layers.7, 10 -> layers.9',
    );
    expect(o.stdout).toContain('checked: dhta encode (wasm) matches PyTorch');
    await expectTorchFeatures(out, dir);
  });

  it('loads weights only: a crafted checkpoint is refused without running it, a pickled module needs --trust-pickle', () => {
    const dir = fresh('pickle');
    const crafted = tool('sequential', join(ck, 'crafted.pt'), join(dir, 'crafted'), ...NORM);
    expect(existsSync(join(ck, 'MARKER'))).toBe(false);
    expect(crafted.code).toBe(1);
    expect(crafted.stderr).toMatch(/refused to unpickle the Python object \S*open: .*--trust-pickle/);

    const refused = tool('sequential', join(ck, 'model.pt'), join(dir, 'model'), ...NORM);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'refused to unpickle the Python object torch.nn.modules.container.Sequential',
    );
    expect(refused.stderr).toContain('pass --trust-pickle');
    expect(readdirSync(dir)).toEqual([]);

    const trusted = tool('sequential', join(ck, 'model.pt'), join(dir, 'model'), ...NORM, '--trust-pickle');
    expect(trusted.code).toBe(0);
    expect(trusted.stderr).toMatch(/warning: --trust-pickle: unpickling .* runs any code the file names/);
    expect(trusted.stdout).toContain('checked: dhta encode (wasm) matches PyTorch');
    expect(readdirSync(dir)).toEqual(['model']);
  });

  it('the check refuses a bundle that does not compute what the PyTorch module does and leaves OUT as it was; --no-verify skips it', () => {
    const dir = fresh('check');
    const out = join(dir, 'model');
    expect(
      tool('sequential', join(ck, 'state.pt'), out, '--layers', join(ck, 'layers.json'), ...NORM).code,
    ).toBe(0);
    const before = readFileSync(join(out, 'weights.safetensors'));

    // DoubledLinear is an nn.Linear to the importer, but its forward doubles the output.
    const r = tool('sequential', join(ck, 'doubled.pt'), out, ...NORM, '--trust-pickle');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /the bundle does not compute what the PyTorch model computes: on 4 random inputs dhta encode \(wasm\) differs from PyTorch by a normwise relative error of 0\.5 \(tolerance 0\.0001\)/,
    );
    expect(r.stderr).toContain('nothing was written');
    expect(readdirSync(dir)).toEqual(['model']);
    expect(readFileSync(join(out, 'weights.safetensors')).equals(before)).toBe(true);

    // Without Node the check cannot run: a clear error, unless --no-verify.
    const noNode = tool(
      'sequential',
      join(ck, 'state.pt'),
      join(dir, 'other'),
      '--layers',
      join(ck, 'layers.json'),
      ...NORM,
      '--node',
      join(root, 'no-such-node'),
    );
    expect(noNode.code).toBe(1);
    expect(noNode.stderr).toContain('needs Node.js 20 or newer');
    expect(noNode.stderr).toContain('--no-verify');
    expect(readdirSync(dir)).toEqual(['model']);

    const unchecked = tool(
      'sequential',
      join(ck, 'doubled.pt'),
      out,
      ...NORM,
      '--trust-pickle',
      '--no-verify',
    );
    expect(unchecked.code).toBe(0);
    expect(unchecked.stdout).toContain('not checked against PyTorch (--no-verify)');
    expect(readdirSync(dir)).toEqual(['model']);
  });
});
