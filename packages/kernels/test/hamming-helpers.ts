/** Plain brute-force references for the Hamming tests: written for clarity, not speed. */
import type { Codes } from '../src/hamming/codes.ts';

export function popcount32(x: number): number {
  let c = 0;
  let v = x >>> 0;
  while (v !== 0) {
    v &= v - 1;
    c++;
  }
  return c;
}

export function distance(db: Codes, j: number, q: Codes, i: number): number {
  const W = (db.bits + 31) >>> 5;
  let d = 0;
  for (let w = 0; w < W; w++) d += popcount32(db.words[j * W + w] ^ q.words[i * W + w]);
  return d;
}

/** For each query: all (distance, id), sorted by distance then id. */
export function bruteRank(db: Codes, q: Codes): { d: number; id: number }[][] {
  const out: { d: number; id: number }[][] = [];
  for (let i = 0; i < q.count; i++) {
    const row: { d: number; id: number }[] = [];
    for (let j = 0; j < db.count; j++) row.push({ d: distance(db, j, q, i), id: j });
    row.sort((a, b) => a.d - b.d || a.id - b.id);
    out.push(row);
  }
  return out;
}

/** ±1 floats for packed codes (bit 1 -> +1, bit 0 -> -1). */
export function toPm1(codes: Codes): Float32Array {
  const W = (codes.bits + 31) >>> 5;
  const out = new Float32Array(codes.count * codes.bits);
  for (let i = 0; i < codes.count; i++) {
    for (let j = 0; j < codes.bits; j++) {
      out[i * codes.bits + j] = (codes.words[i * W + (j >> 5)] >>> (j & 31)) & 1 ? 1 : -1;
    }
  }
  return out;
}
