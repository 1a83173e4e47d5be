// Randomness for kernels and tests.
// - pcgHash / uniformAt: a counter-based generator (value = f(seed, index)) that a WGSL kernel reproduces
//   bit for bit with u32 arithmetic, so GPU-side noise can be checked exactly against the CPU.
// - SeededRandom: a small sequential PRNG for generating test data.

/**
 * PCG-style integer hash (the "pcg_hash" of Jarzynski & Olano, 2020), all arithmetic mod 2^32:
 *   state = v * 747796405 + 2891336453
 *   word  = ((state >> ((state >> 28) + 4)) ^ state) * 277803737
 *   return (word >> 22) ^ word
 * Math.imul gives the low 32 bits of the product, as WGSL's u32 multiply does; >>> 0 keeps values unsigned.
 */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

const TWO_POW_24 = 16777216;

/**
 * A uniform number in [0, 1) for (seed, index), both taken mod 2^32:
 *   (pcgHash(index ^ pcgHash(seed)) >> 8) / 2^24
 * The top 24 bits are kept so that the value is exact in f32 as well.
 */
export function uniformAt(seed: number, index: number): number {
  return (pcgHash((index ^ pcgHash(seed)) >>> 0) >>> 8) / TWO_POW_24;
}

/** n values lo + (hi - lo) * uniformAt(seed, i), i = 0..n-1. */
export function uniformArray(seed: number, n: number, lo: number, hi: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * uniformAt(seed, i);
  return out;
}

/** mulberry32: a small, fast, seeded 32-bit PRNG; good enough for test data, not for cryptography. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal, by Box-Muller (1 - u lies in (0, 1], so the log is finite). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** n uniform values in [lo, hi). */
  uniformArray(n: number, lo = -1, hi = 1): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** n standard normal values. */
  normalArray(n: number): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}
