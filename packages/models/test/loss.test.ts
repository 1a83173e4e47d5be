import { SeededRandom } from '@dhta/kernels/reference';
import { describe, expect, it } from 'vitest';
import { pairwiseLoss, softplus } from '../src/loss.js';

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
