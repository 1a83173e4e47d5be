import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { voteAnchors } from '@dhta/attack';
import { readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import { SeededRandom } from '@dhta/kernels/reference';
import { initWeights, saveBundle, smallCnn } from '@dhta/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cliRunner, lastJson } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-attack-'));
const dhta = cliRunner(join(root, 'cache'));
const model = join(root, 'model');
const bits = 16;

describe('dhta attack', () => {
  beforeAll(async () => {
    await buildCli();
    const spec = smallCnn(bits);
    await saveBundle(model, { spec, weights: initWeights(spec, 3) });
    writeIdx(join(root, 'idx'), new SeededRandom(5));
  });

  it('attacks queries from files: anchors voted from (n, n_t, bits) targets, outputs in the box and the eps ball', async () => {
    const rng = new SeededRandom(1);
    const n = 3;
    const x = Float32Array.from(rng.uniformArray(n * 784, 0, 1));
    const targets = Int8Array.from({ length: n * 3 * bits }, () => (rng.next() < 0.5 ? -1 : 1));
    await writeNpyFile(join(root, 'x.npy'), x, [n, 1, 28, 28]);
    await writeNpyFile(join(root, 't.npy'), targets, [n, 3, bits]);
    const out = join(root, 'out-files');
    const r = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x.npy'),
      '--targets',
      join(root, 't.npy'),
      '--iters',
      '20',
      '--out-dir',
      out,
      '--json',
    );
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const summary = lastJson(r);
    expect(summary).toMatchObject({ method: 'dhta', queries: n, bits, iterations: 20 });
    const adv = await readNpyFile(join(out, 'adversarial.npy'));
    const codes = await readNpyFile(join(out, 'codes.npy'));
    const anchors = await readNpyFile(join(out, 'anchors.npy'));
    expect(adv.shape).toEqual([n, 1, 28, 28]);
    expect(codes.shape).toEqual([n, bits]);
    expect(codes.dtype).toBe('int8');
    expect(Array.from(anchors.data as Int8Array)).toEqual(Array.from(voteAnchors(targets, 3, bits)));
    const eps = 0.032 * 0.3081; // normalised eps in pixel units (MNIST std)
    let moved = 0;
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs((adv.data as Float32Array)[i] - x[i]);
      expect(d).toBeLessThanOrEqual(eps * (1 + 1e-4));
      moved = Math.max(moved, d);
    }
    expect(moved).toBeGreaterThan(eps / 2);
    // On the software adapter, auto runs the loop on the WebAssembly engine; --engine webgpu on the WGSL
    // kernels gives the same attack (float32 either way, up to summation order).
    expect(summary.engine).toBe('wasm');
    const outGpu = join(root, 'out-files-webgpu');
    const g = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x.npy'),
      '--targets',
      join(root, 't.npy'),
      '--iters',
      '20',
      '--engine',
      'webgpu',
      '--out-dir',
      outGpu,
      '--json',
    );
    expect(g.code).toBe(0);
    expect(lastJson(g).engine).toBe('webgpu');
    const advGpu = (await readNpyFile(join(outGpu, 'adversarial.npy'))).data as Float32Array;
    let diff = 0;
    for (let i = 0; i < advGpu.length; i++)
      diff = Math.max(diff, Math.abs(advGpu[i] - (adv.data as Float32Array)[i]));
    expect(diff).toBeLessThan(1e-4);
    expect(Array.from((await readNpyFile(join(outGpu, 'codes.npy'))).data as Int8Array)).toEqual(
      Array.from(codes.data as Int8Array),
    );
    // --engine wasm opens no GPU at all: an adapter that does not exist does not matter; with --engine
    // webgpu it does.
    const noGpu = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x.npy'),
      '--targets',
      join(root, 't.npy'),
      '--iters',
      '20',
      '--engine',
      'wasm',
      '--adapter',
      'no-such-adapter',
      '--out-dir',
      join(root, 'out-no-gpu'),
      '--json',
    );
    expect(noGpu.code).toBe(0);
    expect(lastJson(noGpu).engine).toBe('wasm');
    expect(Array.from((await readNpyFile(join(root, 'out-no-gpu', 'codes.npy'))).data as Int8Array)).toEqual(
      Array.from(codes.data as Int8Array),
    );
    const gpuMissing = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x.npy'),
      '--targets',
      join(root, 't.npy'),
      '--engine',
      'webgpu',
      '--adapter',
      'no-such-adapter',
      '--out-dir',
      join(root, 'out-missing'),
    );
    expect(gpuMissing.code).not.toBe(0);
    expect(gpuMissing.stderr).toMatch(/no WebGPU adapter found/);
    const badEngine = dhta('attack', '--model', model, '--input', join(root, 'x.npy'), '--engine', 'cuda');
    expect(badEngine.code).not.toBe(0);
    expect(badEngine.stderr).toMatch(/unknown engine "cuda"; expected one of auto, webgpu, wasm/);
  });

  it('runs the protocol on a data set and writes results, metrics, curves and retrieval grids', async () => {
    const out = join(root, 'out-protocol');
    const protocol = [
      'attack',
      '--model',
      model,
      '--data',
      `idx:${join(root, 'idx')}`,
      '--queries',
      '4',
      '--n-t',
      '3',
      '--iters',
      '10',
      '--methods',
      'original,noise,p2p,dhta,hag',
      '--json',
    ];
    const r = dhta(...protocol, '--out-dir', out);

    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const result = lastJson(r);
    expect(result.metrics.map((m: { method: string }) => m.method)).toEqual([
      'original',
      'noise',
      'p2p',
      'dhta',
      'hag',
    ]);
    expect(result).toMatchObject({
      queries: 4,
      nT: 3,
      bits,
      databaseSize: 60,
      R: 60,
      zeroHits: 'skip',
      iterations: 10,
    });
    for (const m of result.metrics) {
      if (m.tMap !== null) expect(m.tMap).toBeGreaterThanOrEqual(0);
      if (m.tMap !== null) expect(m.tMap).toBeLessThanOrEqual(1);
    }
    expect(result.metrics[0].perceptibility).toBeNull();
    expect(result.metrics[3].perceptibility).toBeGreaterThan(0);
    const [head, ...lines] = readFileSync(join(out, 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(head.header).toMatchObject({ format: 'dhta-results/1', queries: 4, nT: 3, bits });
    expect(lines).toHaveLength(4 * 5);
    for (const l of lines) {
      expect(l.target).toHaveLength(1);
      expect(l.label).toHaveLength(1);
      expect(l.target[0]).not.toBe(l.label[0]);
    }
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.metrics).toHaveLength(5);
    const curves = JSON.parse(readFileSync(join(out, 'curves.json'), 'utf8'));
    expect(curves.curves.dhta.radii).toHaveLength(bits + 1);
    const grid = JSON.parse(readFileSync(join(out, 'retrieval.json'), 'utf8'));
    expect(grid.top.benign).toHaveLength(4);
    expect(grid.top.dhta[0]).toHaveLength(10);
    const ex = await readNpyFile(join(out, 'examples', 'dhta.npy'));
    expect(ex.shape).toEqual([4, 1, 28, 28]);
    // A second run finds the database codes in the cache and gives the same numbers.
    const again = dhta(...protocol, '--out-dir', `${out}2`);

    const second = JSON.parse(again.stdout.trim().split('\n').at(-1) ?? '');
    expect(result.databaseCached).toBe(false);
    expect(second.databaseCached).toBe(true);
    expect(second.metrics.map((m: { tMap: number }) => m.tMap)).toEqual(
      result.metrics.map((m: { tMap: number }) => m.tMap),
    );
  });

  it('resumes an interrupted run and merges shards into the unsharded result', () => {
    const data = `idx:${join(root, 'idx')}`;
    const common = [
      '--model',
      model,
      '--data',
      data,
      '--queries',
      '6',
      '--n-t',
      '3',
      '--iters',
      '5',
      '--methods',
      'original,noise,dhta',
      '--batch',
      '1',
      '--json',
    ];
    const whole = join(root, 'whole');
    const a = dhta('attack', ...common, '--out-dir', whole);
    expect(a.code).toBe(0);
    const full = JSON.parse(a.stdout.trim().split('\n').at(-1) ?? '');
    const figures = (r: {
      metrics: {
        method: string;
        tMap: number;
        map: number;
        perceptibility: number;
        anchorDistance: number;
      }[];
    }) => r.metrics.map((m) => [m.method, m.tMap, m.map, m.perceptibility, m.anchorDistance]);
    // Again into the same folder without --resume: refused.
    const again = dhta('attack', ...common, '--out-dir', whole);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/holds results of this run already.*\n.*--resume/);
    // An interrupted run: the header, 7 complete lines and half of the 8th.
    const text = readFileSync(join(whole, 'results.jsonl'), 'utf8').split('\n');
    const cut = join(root, 'cut');
    mkdirSync(cut, { recursive: true });
    writeFileSync(join(cut, 'results.jsonl'), `${text.slice(0, 8).join('\n')}\n${text[8].slice(0, 40)}`);
    const resumed = dhta('attack', ...common, '--out-dir', cut, '--resume');
    expect(resumed.code).toBe(0);
    expect(figures(JSON.parse(resumed.stdout.trim().split('\n').at(-1) ?? ''))).toEqual(figures(full));
    const lines = readFileSync(join(cut, 'results.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1 + 6 * 3);
    // A resumed run with other settings is refused.
    const other = dhta('attack', ...common.map((v) => (v === '5' ? '6' : v)), '--out-dir', cut, '--resume');
    expect(other.stderr).toMatch(/from another run: the attack settings differ/);
    // Shards 0/2 and 1/2, merged.
    for (const i of [0, 1])
      expect(dhta('attack', ...common, '--shard', `${i}/2`, '--out-dir', join(root, `shard${i}`)).code).toBe(
        0,
      );
    const partial = dhta('merge', join(root, 'shard0'), '--out-dir', join(root, 'merged'));
    expect(partial.stderr).toMatch(/incomplete.*shards not given: 1/);
    const merged = dhta(
      'merge',
      join(root, 'shard0'),
      join(root, 'shard1'),
      '--out-dir',
      join(root, 'merged'),
      '--json',
    );
    expect(merged.code).toBe(0);
    expect(figures(JSON.parse(merged.stdout.trim().split('\n').at(-1) ?? ''))).toEqual(figures(full));
    const strip = (f: string) =>
      readFileSync(f, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => ({ ...JSON.parse(l), seconds: 0 }));
    expect(strip(join(root, 'merged', 'results.jsonl'))).toEqual(strip(join(whole, 'results.jsonl')));
    expect(dhta('attack', ...common, '--shard', '2/2', '--out-dir', join(root, 'bad')).stderr).toMatch(
      /--shard must be i\/n/,
    );
  });

  it('refuses bad input with one clear line', async () => {
    const rng = new SeededRandom(2);
    await writeNpyFile(join(root, 'x1.npy'), Float32Array.from(rng.uniformArray(784, 0, 1)), [1, 1, 28, 28]);
    await writeNpyFile(join(root, 't32.npy'), new Int8Array(32).fill(1), [1, 32]);
    const wrongBits = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x1.npy'),
      '--targets',
      join(root, 't32.npy'),
      '--out-dir',
      join(root, 'bad'),
    );
    expect(wrongBits.code).not.toBe(0);
    expect(wrongBits.stderr).toMatch(/codes of 32 bits, but the model's codes have 16/);
    const big = Float32Array.from(rng.uniformArray(784, 0, 1));
    big[5] = 2;
    await writeNpyFile(join(root, 'x2.npy'), big, [1, 1, 28, 28]);
    await writeNpyFile(join(root, 't16.npy'), new Int8Array(16).fill(1), [1, 16]);
    const outside = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x2.npy'),
      '--targets',
      join(root, 't16.npy'),
      '--out-dir',
      join(root, 'bad'),
    );
    expect(outside.stderr).toMatch(/pixels in \[0, 1\]/);
    await writeNpyFile(
      join(root, 'x3.npy'),
      Float32Array.from(rng.uniformArray(2 * 784, 0, 1)),
      [2, 1, 28, 28],
    );
    const shape = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x3.npy'),
      '--targets',
      join(root, 't16.npy'),
      '--out-dir',
      join(root, 'bad'),
    );
    expect(shape.stderr).toMatch(/expected shape \(2, n_t, 16\) or \(2, 16\)/);
    const eps = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'x1.npy'),
      '--targets',
      join(root, 't16.npy'),
      '--eps',
      '0',
      '--out-dir',
      join(root, 'bad'),
    );
    expect(eps.stderr).toMatch(/--eps must be a number > 0/);
    const nt = dhta(
      'attack',
      '--model',
      model,
      '--data',
      `idx:${join(root, 'idx')}`,
      '--queries',
      '2',
      '--n-t',
      '20',
      '--out-dir',
      join(root, 'bad'),
    );
    expect(nt.code).not.toBe(0);
    expect(nt.stderr).toMatch(/NO_TARGET|more than 20/);
    for (const r of [wrongBits, outside, shape, eps, nt]) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
