/**
 * Combining partial results of kernels that ran on parts of the work: by query ranges (rows are
 * concatenated) or by database ranges (rows are merged by (distance, id)).
 */
import type { KnnPart, RangePart, RankPart } from './kernels.ts';

/** Rows of parts that cover consecutive query ranges, all with the same k. */
export function concatKnn(parts: KnnPart[]): KnnPart {
  const k = parts[0].k;
  let size = 0;
  for (const p of parts) size += p.ids.length;
  const distances = new Int32Array(size);
  const ids = new Int32Array(size);
  let o = 0;
  for (const p of parts) {
    distances.set(p.distances, o);
    ids.set(p.ids, o);
    o += p.ids.length;
  }
  return { k, distances, ids };
}

/** Parts that cover the same queries against disjoint database ranges: keep the k best per row. */
export function mergeKnn(parts: KnnPart[], nq: number, k: number): KnnPart {
  let acc = parts[0];
  for (let i = 1; i < parts.length; i++) acc = mergeKnnPair(acc, parts[i], nq, k);
  return acc;
}

function mergeKnnPair(a: KnnPart, b: KnnPart, nq: number, k: number): KnnPart {
  const kk = Math.min(k, a.k + b.k);
  const distances = new Int32Array(nq * kk);
  const ids = new Int32Array(nq * kk);
  for (let r = 0; r < nq; r++) {
    let i = r * a.k;
    const ie = i + a.k;
    let j = r * b.k;
    const je = j + b.k;
    const o = r * kk;
    for (let t = 0; t < kk; t++) {
      let takeA: boolean;
      if (i === ie) takeA = false;
      else if (j === je) takeA = true;
      else {
        const da = a.distances[i];
        const dbv = b.distances[j];
        takeA = da < dbv || (da === dbv && a.ids[i] < b.ids[j]);
      }
      if (takeA) {
        distances[o + t] = a.distances[i];
        ids[o + t] = a.ids[i++];
      } else {
        distances[o + t] = b.distances[j];
        ids[o + t] = b.ids[j++];
      }
    }
  }
  return { k: kk, distances, ids };
}

/** CSR lists of parts that cover consecutive query ranges. */
export function concatRange(parts: RangePart[]): RangePart {
  let nq = 0;
  let size = 0;
  for (const p of parts) {
    nq += p.lims.length - 1;
    size += p.ids.length;
  }
  const lims = new Int32Array(nq + 1);
  const distances = new Int32Array(size);
  const ids = new Int32Array(size);
  let r = 0;
  let o = 0;
  for (const p of parts) {
    const rows = p.lims.length - 1;
    for (let i = 1; i <= rows; i++) lims[r + i] = o + p.lims[i];
    distances.set(p.distances, o);
    ids.set(p.ids, o);
    r += rows;
    o += p.ids.length;
  }
  return { lims, distances, ids };
}

/** CSR lists of parts that cover the same queries against disjoint database ranges. */
export function mergeRange(parts: RangePart[], nq: number): RangePart {
  let acc = parts[0];
  for (let i = 1; i < parts.length; i++) acc = mergeRangePair(acc, parts[i], nq);
  return acc;
}

function mergeRangePair(a: RangePart, b: RangePart, nq: number): RangePart {
  const lims = new Int32Array(nq + 1);
  const distances = new Int32Array(a.ids.length + b.ids.length);
  const ids = new Int32Array(a.ids.length + b.ids.length);
  let o = 0;
  for (let r = 0; r < nq; r++) {
    let i = a.lims[r];
    const ie = a.lims[r + 1];
    let j = b.lims[r];
    const je = b.lims[r + 1];
    while (i < ie || j < je) {
      let takeA: boolean;
      if (i === ie) takeA = false;
      else if (j === je) takeA = true;
      else {
        const da = a.distances[i];
        const dbv = b.distances[j];
        takeA = da < dbv || (da === dbv && a.ids[i] < b.ids[j]);
      }
      if (takeA) {
        distances[o] = a.distances[i];
        ids[o++] = a.ids[i++];
      } else {
        distances[o] = b.distances[j];
        ids[o++] = b.ids[j++];
      }
    }
    lims[r + 1] = o;
  }
  return { lims, distances, ids };
}

export function concatRank(parts: RankPart[]): RankPart {
  let size = 0;
  for (const p of parts) size += p.ids.length;
  const distances = new Int32Array(size);
  const ids = new Int32Array(size);
  let o = 0;
  for (const p of parts) {
    distances.set(p.distances, o);
    ids.set(p.ids, o);
    o += p.ids.length;
  }
  return { distances, ids };
}

export function concatInt32(parts: Int32Array[]): Int32Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Int32Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function sumInt32(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts[0]);
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i];
    for (let t = 0; t < out.length; t++) out[t] += p[t];
  }
  return out;
}
