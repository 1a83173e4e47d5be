// A plain float64 CPU reference of the attack loop, written for clarity: the GPU attack is tested against it.
// The model is any function with an analytic input gradient (tests use small networks whose float64
// forward/backward are built from @dhta/kernels/reference).

import { attackProject, attackStep, tanhScaledBackward, uniformAt } from '@dhta/kernels/reference';
import { querySeed, type ResolvedAttackSettings } from './attack.js';
import { alphaAt } from './schedule.js';

export interface ReferenceModel {
  inputSize: number;
  bits: number;
  channels: number;
  planeSize: number;
  mean: number[];
  std: number[];
  /** f(xn) for n normalised inputs, and the map from dL/df to dL/dxn. */
  forward(xn: Float64Array, n: number): { f: Float64Array; backward(dLdf: Float64Array): Float64Array };
}

export interface ReferenceAttackResult {
  adversarial: Float64Array;
  features: Float64Array;
  codes: Int8Array;
}

/** The attack of PROTOCOL.md in float64, one query after another (queries are independent). */
export function referenceAttack(
  model: ReferenceModel,
  pixels: ArrayLike<number>,
  n: number,
  anchors: Int8Array | undefined,
  s: ResolvedAttackSettings,
  queryIds: readonly number[] = Array.from({ length: n }, (_, i) => i),
): ReferenceAttackResult {
  const { inputSize: size, bits, channels, planeSize, mean, std } = model;
  const channelOf = (j: number): number => Math.floor(j / planeSize) % channels;
  // Video objects are [T, C, H, W]: T rows of [C, H*W] for the projection.
  const frames = size / (channels * planeSize);
  const lo = Float64Array.from(mean, (m, c) => -m / std[c]);
  const hi = Float64Array.from(mean, (m, c) => (1 - m) / std[c]);
  const eps = std.map((sd) => (s.epsSpace === 'pixel' ? s.eps / sd : s.eps));
  const adversarial = new Float64Array(n * size);
  const features = new Float64Array(n * bits);
  for (let q = 0; q < n; q++) {
    const xn = new Float64Array(size);
    for (let j = 0; j < size; j++) xn[j] = (pixels[q * size + j] - mean[channelOf(j)]) / std[channelOf(j)];
    let delta = new Float64Array(size);
    if (s.method === 'noise' || s.randomStart) {
      const seed = querySeed(s.seed, queryIds[q]);
      for (let j = 0; j < size; j++) delta[j] = eps[channelOf(j)] * (2 * uniformAt(seed, j) - 1);
    }
    delta = attackProject(delta, xn, frames, channels, planeSize, lo, hi, eps) as Float64Array<ArrayBuffer>;
    let target: Float64Array | null = null;
    let coef = 0;
    if (s.method === 'dhta' || s.method === 'p2p') {
      target = Float64Array.from(anchors!.subarray(q * bits, (q + 1) * bits));
      coef = -1 / bits;
    } else if (s.method === 'hag') {
      const { f } = model.forward(xn, 1);
      target = Float64Array.from(f, (v) => (v >= 0 ? 1 : -1));
      coef = 1 / bits;
    }
    if (target) {
      const dTanh = target.map((a) => coef * a);
      for (let it = 0; it < s.iterations; it++) {
        const x = xn.map((v, j) => v + delta[j]);
        const { f, backward } = model.forward(x, 1);
        const dF = tanhScaledBackward(dTanh, f, alphaAt(it, s.iterations, s.alpha));
        const g = backward(dF);
        delta = attackStep(delta, g, 1, size, { mode: s.step, lr: s.lr }) as Float64Array<ArrayBuffer>;
        delta = attackProject(
          delta,
          xn,
          frames,
          channels,
          planeSize,
          lo,
          hi,
          eps,
        ) as Float64Array<ArrayBuffer>;
      }
    }
    const { f } = model.forward(
      xn.map((v, j) => v + delta[j]),
      1,
    );
    features.set(f, q * bits);
    for (let j = 0; j < size; j++) {
      const v = pixels[q * size + j] + delta[j] * std[channelOf(j)];
      adversarial[q * size + j] = Math.min(1, Math.max(0, v));
    }
  }
  return { adversarial, features, codes: Int8Array.from(features, (v) => (v >= 0 ? 1 : -1)) };
}
