import { join } from 'node:path';
import { SeededRandom } from '@dhta/kernels/reference';
import { describe, expect, it } from 'vitest';
import {
  createNetwork,
  initWeights,
  loadNetwork,
  ModelError,
  type ModelSpec,
  smallCnn,
  videoNet,
} from '../src/index.js';
import { FIXTURES, readCaseData, relativeError, useGpu } from './helpers.js';

function dropoutNet(): ModelSpec {
  return {
    format: 'dhta-model/1',
    task: 'image',
    bits: 6,
    input: { channels: 2, height: 5, width: 5, mean: [0.5, 0.4], std: [0.3, 0.2] },
    layers: [
      { type: 'conv2d', out: 3, kernel: 3, padding: 1 },
      { type: 'dropout', p: 0.4 },
      { type: 'flatten' },
      { type: 'linear', out: 10 },
      { type: 'dropout', p: 0.5 },
      { type: 'linear', out: 6 },
    ],
  };
}

describe('network', () => {
  const gpu = useGpu();

  it('dropout: off in evaluation mode, seeded in training mode, and the backward follows the same masks', async () => {
    const g = gpu();
    const spec = dropoutNet();
    const net = createNetwork(g, spec, initWeights(spec, 7));
    const n = 3;
    const rng = new SeededRandom(1);
    const xs = Float32Array.from(rng.uniformArray(n * net.inputSize, -1, 1));
    const x = g.tensor([n, net.inputSize], xs);
    const run = async (o: { train?: boolean; seed?: number }, input = x) => {
      const { output } = net.forward(input, n, o);
      const v = await net.engine.read(output);
      output.release();
      return v;
    };
    const evalA = await run({});
    expect(await run({})).toEqual(evalA);
    const t1 = await run({ train: true, seed: 1 });
    expect(await run({ train: true, seed: 1 })).toEqual(t1);
    expect(relativeError(t1, evalA)).toBeGreaterThan(1e-2);
    expect(relativeError(await run({ train: true, seed: 2 }), t1)).toBeGreaterThan(1e-2);
    expect(() => net.forward(x, n, { train: true })).toThrow(/needs a seed/);

    // Directional finite difference of L = sum(f * r) in training mode (the function is linear between
    // dropout masks, so a central difference is exact up to f32 rounding).
    const r = Float32Array.from(rng.uniformArray(n * 6, -1, 1));
    const v = Float32Array.from(rng.uniformArray(xs.length, -1, 1));
    const { output, tape } = net.forward(x, n, { train: true, seed: 5, tape: true });
    output.release();
    const dx = await net.engine.read(net.backward(tape!, g.tensor([n, 6], r))!);
    tape!.release();
    const loss = async (h: number) => {
      const xh = g.tensor(
        [n, net.inputSize],
        xs.map((a, i) => a + h * v[i]),
      );
      const f = await run({ train: true, seed: 5 }, xh);
      xh.release();
      let s = 0;
      for (let i = 0; i < f.length; i++) s += f[i] * r[i];
      return s;
    };
    const h = 1e-2;
    const fd = ((await loss(h)) - (await loss(-h))) / (2 * h);
    let an = 0;
    for (let i = 0; i < v.length; i++) an += dx[i] * v[i];
    expect(Math.abs(fd - an) / Math.abs(an)).toBeLessThan(1e-3);
    net.destroy();
  });

  it('encode: any batch size gives the same features; codes are sign(f) with sign(0) = +1; progress', async () => {
    const g = gpu();
    const net = await loadNetwork(g, join(FIXTURES, 'layers'));
    const d = readCaseData('layers');
    const x = d.get('x');
    const n = x.shape[0];
    const progress: number[] = [];
    const a = await net.encode(x.data, n, { batch: 2, onProgress: (done) => progress.push(done) });
    const b = await net.encode(x.data, n, { batch: 64 });
    expect(progress).toEqual([2, 3]);
    expect(relativeError(a.features, b.features)).toBeLessThan(1e-6);
    expect(relativeError(a.features, d.get('f').data)).toBeLessThan(1e-4);
    for (let i = 0; i < a.codes.length; i++) expect(a.codes[i]).toBe(a.features[i] < 0 ? -1 : 1);
    await expect(net.encode(x.data.subarray(1), n)).rejects.toThrow(ModelError);
    await expect(net.encode(x.data, n, { batch: 0 })).rejects.toThrow(/batch must be an integer >= 1/);
    const empty = await net.encode(new Float32Array(0), 0);
    expect(empty.codes.length).toBe(0);
    net.destroy();
  });

  it('checks sizes and tapes, and a destroyed network refuses work', async () => {
    const g = gpu();
    const spec = dropoutNet();
    const net = createNetwork(g, spec, initWeights(spec, 1));
    const x = g.zeros([2, net.inputSize]);
    expect(() => net.forward(x, 3)).toThrow(/expected 3 objects of 50 floats/);
    const { output, tape } = net.forward(x, 2, { tape: true });
    tape!.release();
    expect(() => net.backward(tape!, output)).toThrow(/tape was released/);
    expect(() => net.backward({ release() {} }, output)).toThrow(/must come from forward/);
    const w = await net.readWeights();
    expect([...w.keys()]).toEqual([
      'layers.0.weight',
      'layers.0.bias',
      'layers.3.weight',
      'layers.3.bias',
      'layers.5.weight',
      'layers.5.bias',
    ]);
    expect(w.get('layers.3.weight')!.data).toEqual(initWeights(spec, 1).get('layers.3.weight')!.data);
    net.destroy();
    expect(() => net.forward(x, 2)).toThrow(/destroyed/);
  });

  it('the small-cnn and video presets run forward and backward at their real sizes', async () => {
    const g = gpu();
    for (const spec of [smallCnn(16), videoNet(32)]) {
      const net = createNetwork(g, spec, initWeights(spec, 3));
      const n = 2;
      const rng = new SeededRandom(4);
      const px = g.tensor([n, net.inputSize], Float32Array.from(rng.uniformArray(n * net.inputSize, 0, 1)));
      const xn = net.normalize(px, n);
      const { output, tape } = net.forward(xn, n, { tape: true, train: true, seed: 1 });
      expect(output.shape).toEqual([n, spec.bits]);
      const dx = net.backward(tape!, g.tensor([n, spec.bits], new Float32Array(n * spec.bits).fill(1)), {
        weights: true,
      });
      const grad = await net.engine.read(dx!);
      expect(grad.every(Number.isFinite)).toBe(true);
      expect(grad.some((v) => v !== 0)).toBe(true);
      for (const [name, t] of net.gradients()) {
        const v = await net.engine.read(t);
        expect(v.every(Number.isFinite), name).toBe(true);
      }
      tape!.release();
      net.destroy();
    }
  });
});
