import { type Engine, WebGpuEngine } from '@dhta/kernels';
import { SeededRandom } from '@dhta/kernels/reference';
import { WasmEngine } from '@dhta/kernels/wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { pairwiseLoss, pairwiseLossOnEngine, softplus } from '../src/loss.js';
import { relativeError, useGpu } from './helpers.js';

describe('pairwise loss', () => {
  it('softplus is log(1 + exp(x)) without overflow', () => {
    expect(softplus(0)).toBeCloseTo(Math.log(2), 15);
    expect(softplus(2)).toBeCloseTo(Math.log(1 + Math.exp(2)), 14);
    expect(softplus(-3)).toBeCloseTo(Math.log(1 + Math.exp(-3)), 15);
    expect(softplus(1000)).toBe(1000);
    expect(softplus(-1000)).toBe(0);
  });

  it('matches a hand computation on two objects', () => {
    // u_0 = (1, 0), u_1 = (0, 1); bank = the batch; labels: both class 0 (similar).
    // theta = [[1/2, 0], [0, 1/2]]; likelihood = sum(s theta - softplus(theta)) = 2 * (1/2 - sp(1/2)) + 2 * (0 - ln 2)
    // quantisation (eta = 1): sign(0) = +1, so each row has one (1 - 0)^2 = 1 -> 2; normaliser B N = 4.
    const u = [1, 0, 0, 1];
    const labels = Uint8Array.of(1, 1);
    const out = pairwiseLoss({ u, labels, bank: u, bankLabels: labels, bits: 2, classes: 1, eta: 1 });
    const likelihood = 2 * (0.5 - softplus(0.5)) + 2 * (0 - Math.log(2));
    expect(out.likelihood).toBeCloseTo(-likelihood / 4, 14);
    expect(out.quantization).toBeCloseTo(2 / 4, 14);
    expect(out.loss).toBeCloseTo(-likelihood / 4 + 0.5, 14);
  });

  it('has the analytic gradient of its value (finite differences, bank held fixed)', () => {
    const rng = new SeededRandom(3);
    const B = 3;
    const N = 7;
    const K = 5;
    const C = 4;
    const u = rng.uniformArray(B * K, -0.9, 0.9);
    const bank = rng.uniformArray(N * K, -1, 1);
    const labels = Uint8Array.from({ length: B * C }, () => (rng.next() < 0.4 ? 1 : 0));
    const bankLabels = Uint8Array.from({ length: N * C }, () => (rng.next() < 0.4 ? 1 : 0));
    const eta = 0.3;
    const loss = (v: Float64Array) =>
      pairwiseLoss({ u: v, labels, bank, bankLabels, bits: K, classes: C, eta }).loss;
    const { grad } = pairwiseLoss({ u, labels, bank, bankLabels, bits: K, classes: C, eta });
    const h = 1e-6;
    for (let i = 0; i < u.length; i++) {
      const up = u.slice();
      const dn = u.slice();
      up[i] += h;
      dn[i] -= h;
      expect(grad[i]).toBeCloseTo((loss(up) - loss(dn)) / (2 * h), 8);
    }
  });

  it('pulls similar codes together and pushes dissimilar ones apart', () => {
    // One batch row against two bank rows: one similar (same label), one not.
    const u = [0.1, 0.1];
    const bank = [1, 1, 1, 1];
    const out = pairwiseLoss({
      u,
      labels: Uint8Array.of(1, 0),
      bank,
      bankLabels: Uint8Array.of(1, 0, 0, 1),
      bits: 2,
      classes: 2,
      eta: 0,
    });
    // Gradient descent moves u towards the similar row's direction: the likelihood gradient is
    // -(s - sigmoid(theta)) bank_j / 2 summed; with theta = 0.1: (-(1 - 0.525) + 0.525) / 2 * 1 / 2 > 0
    // for the identical bank rows, i.e. here the dissimilar pull wins by 0.05 / 4 per bit.
    const sig = 1 / (1 + Math.exp(-0.1));
    expect(out.grad[0]).toBeCloseTo((-(1 - sig) + sig) / (2 * 2), 14);
    expect(() =>
      pairwiseLoss({
        u: [1, 2, 3],
        labels: Uint8Array.of(1),
        bank,
        bankLabels: Uint8Array.of(1, 1),
        bits: 2,
        classes: 1,
        eta: 0,
      }),
    ).toThrow(/shapes disagree/);
  });
  it('gives the same loss with label masks (up to 32 classes) as with label rows (more classes)', () => {
    // 32 classes take the bit-mask path; the same labels with an empty 33rd class take the row-by-row one.
    const rng = new SeededRandom(9);
    const B = 4;
    const N = 11;
    const K = 6;
    const u = rng.uniformArray(B * K, -0.9, 0.9);
    const bank = rng.uniformArray(N * K, -1, 1);
    const rows = (n: number) => Uint8Array.from({ length: n * 32 }, () => (rng.next() < 0.08 ? 1 : 0));
    const labels32 = rows(B);
    const bankLabels32 = rows(N);
    const widen = (l: Uint8Array, n: number) => {
      const out = new Uint8Array(n * 33);
      for (let i = 0; i < n; i++) out.set(l.subarray(i * 32, (i + 1) * 32), i * 33);
      return out;
    };
    for (const balance of [false, true]) {
      const a = pairwiseLoss({
        u,
        labels: labels32,
        bank,
        bankLabels: bankLabels32,
        bits: K,
        classes: 32,
        eta: 0.2,
        balance,
      });
      const b = pairwiseLoss({
        u,
        labels: widen(labels32, B),
        bank,
        bankLabels: widen(bankLabels32, N),
        bits: K,
        classes: 33,
        eta: 0.2,
        balance,
      });
      expect(a.loss).toBe(b.loss);
      expect(Array.from(a.grad)).toEqual(Array.from(b.grad));
    }
  });
});

describe('pairwise loss on an engine (what training runs)', () => {
  const gpu = useGpu();
  const engines: Engine[] = [];
  afterAll(() => {
    for (const e of engines) e.destroy();
  });
  const makers: [string, () => Promise<Engine>][] = [
    ['wasm, 1 thread', () => WasmEngine.create({ threads: 1 })],
    ['wasm, 2 threads', () => WasmEngine.create({ threads: 2 })],
    ['webgpu', async () => new WebGpuEngine(gpu())],
  ];
  // Odd sizes (B, N, K not multiples of 4), more than 32 classes (the label-by-label similarity) and both
  // pair weightings; theta spans the softplus/sigmoid branches (|u| up to 1, K up to 70: |theta| up to 35).
  const cases = [
    { B: 5, N: 37, K: 13, C: 4, balance: false },
    { B: 24, N: 301, K: 64, C: 10, balance: true },
    { B: 3, N: 50, K: 70, C: 40, balance: true },
    { B: 7, N: 9, K: 8, C: 1, balance: true }, // every pair similar: the balancing leaves weights at 1
  ];
  for (const [label, make] of makers) {
    it(`${label}: equals the float64 reference to float32 rounding`, async () => {
      const engine = await make();
      engines.push(engine);
      for (const { B, N, K, C, balance } of cases) {
        const rng = new SeededRandom(B * 1000 + N);
        const bank = Float32Array.from(rng.uniformArray(N * K, -1, 1), (v) => Math.tanh(3 * v));
        const u = Float64Array.from(bank.subarray(0, B * K)); // the batch is the bank's first rows, as in training
        const labels = Uint8Array.from({ length: N * C }, () => (rng.next() < 0.3 ? 1 : 0));
        if (C === 1) labels.fill(1);
        const input = {
          u,
          labels: labels.slice(0, B * C),
          bank,
          bankLabels: labels,
          bits: K,
          classes: C,
          eta: 0.1,
          balance,
        };
        const ref = pairwiseLoss(input);
        const before = engine.memoryBytesLeft;
        const engineBank = {
          codes: engine.tensor([N, K], bank),
          labels: engine.tensor([N, C], Float32Array.from(labels)),
        };
        const got = await pairwiseLossOnEngine(engine, input, engineBank);
        engineBank.codes.release();
        engineBank.labels.release();
        expect(engine.memoryBytesLeft, 'every intermediate tensor released').toBe(before);
        const what = `B ${B} N ${N} K ${K} C ${C} balance ${balance}`;
        expect(Math.abs(got.loss - ref.loss) / Math.abs(ref.loss), what).toBeLessThan(1e-6);
        expect(Math.abs(got.quantization - ref.quantization), what).toBeLessThan(1e-12);
        expect(relativeError(got.grad, ref.grad), what).toBeLessThan(1e-5);
      }
      const bad = { codes: engine.tensor([4, 2], new Float32Array(8)), labels: engine.zeros([3, 1]) };
      const small = {
        u: [0, 0],
        labels: Uint8Array.of(1),
        bank: new Float32Array(6),
        bankLabels: Uint8Array.of(1, 1, 1),
        bits: 2,
        classes: 1,
        eta: 0,
      };
      await expect(pairwiseLossOnEngine(engine, small, bad)).rejects.toThrow(
        /bank holds 8 code and 3 label values, not 3 x 2 and 3 x 1/,
      );
      bad.codes.release();
      bad.labels.release();
    });
  }
});
