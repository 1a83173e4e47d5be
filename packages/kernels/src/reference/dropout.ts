// Float64 references of the dropout and per-channel affine kernels.
import { uniformAt } from './random.js';

/** Inverted dropout: x_i / (1 - p) where uniformAt(seed, offset + i) >= p, else 0 (the backward is the same map of dy). */
export function dropout(x: Float64Array, p: number, seed: number, offset = 0): Float64Array {
  const out = new Float64Array(x.length);
  const scale = Math.fround(1 / (1 - p));
  for (let i = 0; i < x.length; i++)
    out[i] = uniformAt(seed, (offset + i) >>> 0) >= Math.fround(p) ? x[i] * scale : 0;
  return out;
}

/** y = x * scale[c] + shift[c], c = floor(i / planeSize) mod channels. */
export function channelAffine(
  x: Float64Array,
  channels: number,
  planeSize: number,
  scale: readonly number[],
  shift: readonly number[],
): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / planeSize) % channels;
    out[i] = x[i] * scale[c] + shift[c];
  }
  return out;
}
