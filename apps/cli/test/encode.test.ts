import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import { readSafetensors } from '@dhta/models';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerEncode, runEncode } from '../src/encode.js';
import { registerHamming } from '../src/hamming.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '../../../packages/models/test/fixtures/parity');

function caseData(name: string) {
  return readSafetensors(readFileSync(join(fixtures, name, 'data.safetensors'))).weights;
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

describe('dhta encode', () => {
  it('writes int8 +-1 codes and float32 features matching PyTorch, for images and videos', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-encode-'));
    // On this machine's software adapter, auto puts every model on the WebAssembly engine: both engines are
    // checked against PyTorch's features, for an image and a video model.
    for (const [name, engine, ran] of [
      ['layers', 'auto', 'wasm'],
      ['layers', 'webgpu', 'webgpu'],
      ['video-mean', 'auto', 'wasm'],
      ['video-mean', 'webgpu', 'webgpu'],
    ] as const) {
      const d = caseData(name);
      const x = d.get('x')!;
      const input = join(dir, `${name}-x.npy`);
      await writeNpyFile(input, x.data, x.shape);
      const out = join(dir, name, 'codes.npy');
      const features = join(dir, name, 'f.npy');
      const s = await runEncode({
        model: join(fixtures, name),
        input,
        out,
        features,
        batch: 2,
        engine,
        quiet: true,
      });
      expect(s.n).toBe(x.shape[0]);
      expect(s.engine).toBe(ran);
      const codes = await readNpyFile(out);
      const f = await readNpyFile(features);
      const want = d.get('f')!;
      expect(codes.dtype).toBe('int8');
      expect(codes.shape).toEqual(want.shape);
      expect(f.dtype).toBe('float32');
      expect(relErr(f.data as Float32Array, want.data)).toBeLessThan(1e-4);
      (codes.data as Int8Array).forEach((c, i) => {
        expect(c).toBe((f.data as Float32Array)[i] < 0 ? -1 : 1);
      });
      expect(readdirSync(join(dir, name)).sort()).toEqual(['codes.npy', 'f.npy']);
    }
  });

  it('refuses a wrong dtype, shape or range with one clear message and writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-encode-'));
    const model = join(fixtures, 'layers');
    const out = join(dir, 'codes.npy');
    const cases: [string, Float32Array | Float64Array, number[], RegExp][] = [
      [
        'f64',
        new Float64Array(3 * 11 * 13),
        [1, 3, 11, 13],
        /expected float32 pixels \(n, 3, 11, 13\) \(NCHW\), found float64/,
      ],
      [
        'shape',
        new Float32Array(3 * 13 * 11),
        [1, 3, 13, 11],
        /shape \(n, 3, 11, 13\), found \(1, 3, 13, 11\)/,
      ],
      [
        'range',
        new Float32Array(2 * 3 * 11 * 13).fill(0.5).fill(255, 500, 501),
        [2, 3, 11, 13],
        /\[0, 1\], found 255 at flat index 500 \(object 1\)/,
      ],
    ];
    for (const [name, data, shape, message] of cases) {
      const input = join(dir, `${name}.npy`);
      await writeNpyFile(input, data, shape);
      await expect(runEncode({ model, input, out, quiet: true })).rejects.toThrow(message);
      expect(existsSync(out)).toBe(false);
    }
    await expect(
      runEncode({ model: join(dir, 'nope'), input: join(dir, 'f64.npy'), out, quiet: true }),
    ).rejects.toThrow(/model.json: expected a model.json/);
  });

  it('--packed writes FAISS-layout bytes that dhta search reads as they are', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-encode-packed-'));
    // 40 random images through the 12-bit fixture model: 12 bits pack into 2 bytes, the last one half used.
    const model = join(fixtures, 'layers');
    const n = 40;
    const x = new Float32Array(n * 3 * 11 * 13);
    let state = 7;
    for (let i = 0; i < x.length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      x[i] = (state >>> 8) / 2 ** 24;
    }
    const input = join(dir, 'x.npy');
    await writeNpyFile(input, x, [n, 3, 11, 13]);
    const int8 = join(dir, 'codes.npy');
    const packed = join(dir, 'packed.npy');
    await runEncode({ model, input, out: int8, engine: 'wasm', quiet: true });
    const s = await runEncode({ model, input, out: packed, packed: true, engine: 'wasm', quiet: true });
    expect(s.codes).toBe('packed');
    const codes = (await readNpyFile(int8)).data as Int8Array;
    const p = await readNpyFile(packed);
    expect(p.dtype).toBe('uint8');
    expect(p.shape).toEqual([n, 2]);
    const bytes = p.data as Uint8Array;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < 12; j++)
        expect((bytes[i * 2 + (j >> 3)] >> (j & 7)) & 1, `object ${i} bit ${j}`).toBe(
          codes[i * 12 + j] > 0 ? 1 : 0,
        );
    expect(bytes.filter((b, i) => i % 2 === 1 && b >> 4 !== 0)).toHaveLength(0); // padding bits stay 0

    // The packed file goes straight into `dhta search`: the k-NN it finds are those of the +-1 codes.
    const program = new Command().exitOverride();
    registerHamming(program, program.command('bench'));
    const log = console.log;
    console.log = () => {};
    try {
      await program.parseAsync(
        [
          'search',
          '--bits',
          '12',
          '--db',
          packed,
          '--queries',
          packed,
          '--k',
          '5',
          '--out-dir',
          join(dir, 's'),
          '--backend',
          'cpu',
        ],
        { from: 'user' },
      );
    } finally {
      console.log = log;
    }
    const ids = (await readNpyFile(join(dir, 's', 'ids.npy'))).data as Int32Array;
    const distances = (await readNpyFile(join(dir, 's', 'distances.npy'))).data as Int32Array;
    for (let q = 0; q < n; q++) {
      const d = Array.from({ length: n }, (_, i) => {
        let h = 0;
        for (let j = 0; j < 12; j++) if (codes[q * 12 + j] !== codes[i * 12 + j]) h++;
        return [h, i];
      }).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      expect(Array.from(distances.subarray(q * 5, q * 5 + 5))).toEqual(d.slice(0, 5).map((e) => e[0]));
      expect(Array.from(ids.subarray(q * 5, q * 5 + 5))).toEqual(d.slice(0, 5).map((e) => e[1]));
    }
    // The int8 file is not what search takes, and says so.
    await expect(
      program.parseAsync(
        [
          'search',
          '--bits',
          '12',
          '--db',
          int8,
          '--queries',
          packed,
          '--k',
          '5',
          '--out-dir',
          join(dir, 't'),
        ],
        { from: 'user' },
      ),
    ).rejects.toThrow(/expected a uint8 array of shape \(n, 2\) for 12-bit codes, found int8/);
  });

  it('is registered as a command with its options', async () => {
    const program = new Command().exitOverride();
    registerEncode(program);
    const cmd = program.commands.find((c) => c.name() === 'encode');
    expect(cmd).toBeDefined();
    const help = cmd!.helpInformation();
    for (const flag of ['--model', '--input', '--out', '--features', '--batch', '--packed'])
      expect(help).toContain(flag);
  });
});
