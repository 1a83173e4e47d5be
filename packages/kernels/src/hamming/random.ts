/**
 * A small seeded generator (SplitMix32-style mixing of a Weyl sequence) for benchmarks and tests. The same
 * sequence is easy to reproduce in any language; the FAISS scripts in bench/ receive data as .npy instead.
 */
export interface Rng {
  /** Next uniform u32. */
  nextU32(): number;
  /** Uniform integer in [0, n), n <= 2^32. */
  below(n: number): number;
}

export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const nextU32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  return {
    nextU32,
    below: (n) => Math.floor((nextU32() / 4294967296) * n),
  };
}

/**
 * `count` random codes of `bits` bits as packed words. With `distinct` > 0, every code is a copy of one of
 * `distinct` random codes (many exact ties).
 */
export function randomWords(rng: Rng, bits: number, count: number, distinct = 0): Uint32Array {
  const W = (bits + 31) >>> 5;
  const rest = bits & 31;
  const mask = rest === 0 ? 0xffffffff : ((1 << rest) - 1) >>> 0;
  const fresh = (n: number): Uint32Array => {
    const w = new Uint32Array(n * W);
    for (let i = 0; i < w.length; i++) w[i] = rng.nextU32();
    for (let i = W - 1; i < w.length; i += W) w[i] = (w[i] & mask) >>> 0;
    return w;
  };
  if (distinct <= 0) return fresh(count);
  const pool = fresh(distinct);
  const out = new Uint32Array(count * W);
  for (let i = 0; i < count; i++) {
    const s = rng.below(distinct);
    out.set(pool.subarray(s * W, s * W + W), i * W);
  }
  return out;
}
