// A plain float64 reference of the retrieval metrics, written for clarity, not speed: all distances by
// dot products of ±1 codes, a stable sort by (distance, index), and each metric straight from its formula.
// The tests check the fast path (HammingIndex + metrics.ts) against it.
import type { EmptyPrecision, ZeroHitConvention } from './metrics.ts';

export interface ReferenceRanking {
  queries: number;
  databaseSize: number;
  bits: number;
  /** queries rows of databaseSize ids, ordered by (distance, index) ascending. */
  ids: number[][];
  /** queries rows of databaseSize distances, by database index (not ranked). */
  distanceByIndex: number[][];
}

/** Ranks ±1 codes: d_H(a, b) = (K - a·b) / 2 in float64, then a stable sort by (distance, index). */
export function referenceRank(bits: number, database: Int8Array, queries: Int8Array): ReferenceRanking {
  const n = database.length / bits;
  const nq = queries.length / bits;
  const ids: number[][] = [];
  const distanceByIndex: number[][] = [];
  for (let q = 0; q < nq; q++) {
    const d: number[] = [];
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let j = 0; j < bits; j++) dot += queries[q * bits + j] * database[i * bits + j];
      d.push((bits - dot) / 2);
    }
    const order = d.map((_, i) => i);
    order.sort((a, b) => d[a] - d[b] || a - b);
    ids.push(order);
    distanceByIndex.push(d);
  }
  return { queries: nq, databaseSize: n, bits, ids, distanceByIndex };
}

function referenceRelevant(
  dbLabels: Uint8Array,
  i: number,
  refLabels: Uint8Array,
  q: number,
  C: number,
): boolean {
  for (let c = 0; c < C; c++) if (dbLabels[i * C + c] === 1 && refLabels[q * C + c] === 1) return true;
  return false;
}

/** MAP@R straight from AP@R = (1 / relevant in the top R) * sum_{i <= R} P@i * rel_i. */
export function referenceMap(
  ranking: ReferenceRanking,
  databaseLabels: Uint8Array,
  referenceLabels: Uint8Array,
  R: number,
  zeroHits: ZeroHitConvention,
): { map: number | null; ap: (number | null)[]; counted: number } {
  const C = databaseLabels.length / ranking.databaseSize;
  const top = Math.min(R, ranking.databaseSize);
  const ap: (number | null)[] = [];
  for (let q = 0; q < ranking.queries; q++) {
    const rel = ranking.ids[q]
      .slice(0, top)
      .map((i) => (referenceRelevant(databaseLabels, i, referenceLabels, q, C) ? 1 : 0));
    const relevantInTop = rel.reduce((s: number, r) => s + r, 0);
    if (relevantInTop === 0) {
      ap.push(zeroHits === 'skip' ? null : 0);
      continue;
    }
    let sum = 0;
    for (let i = 1; i <= top; i++) {
      const precisionAtI = rel.slice(0, i).reduce((s: number, r) => s + r, 0) / i;
      sum += precisionAtI * rel[i - 1];
    }
    ap.push(sum / relevantInTop);
  }
  const counted = ap.filter((a) => a !== null) as number[];
  return {
    map: counted.length === 0 ? null : counted.reduce((s, a) => s + a, 0) / counted.length,
    ap,
    counted: counted.length,
  };
}

/** Precision and recall of the set {i : d_H(q, i) <= r} for r = 0..bits, averaged over queries. */
export function referencePrecisionRecall(
  ranking: ReferenceRanking,
  databaseLabels: Uint8Array,
  referenceLabels: Uint8Array,
  emptyPrecision: EmptyPrecision,
): { precision: number[]; recall: number[]; precisionCounted: number[]; recallCounted: number } {
  const C = databaseLabels.length / ranking.databaseSize;
  const precision: number[] = [];
  const recall: number[] = [];
  const precisionCounted: number[] = [];
  let recallCounted = 0;
  for (let r = 0; r <= ranking.bits; r++) {
    let pSum = 0;
    let pCount = 0;
    let rSum = 0;
    let rCount = 0;
    for (let q = 0; q < ranking.queries; q++) {
      const all = ranking.distanceByIndex[q].map((_, i) => i);
      const relevant = all.filter((i) => referenceRelevant(databaseLabels, i, referenceLabels, q, C));
      const within = all.filter((i) => ranking.distanceByIndex[q][i] <= r);
      const hits = within.filter((i) => referenceRelevant(databaseLabels, i, referenceLabels, q, C)).length;
      if (within.length > 0) {
        pSum += hits / within.length;
        pCount++;
      } else if (emptyPrecision === 'zero') {
        pCount++;
      }
      if (relevant.length > 0) {
        rSum += hits / relevant.length;
        rCount++;
      }
    }
    precision.push(pCount === 0 ? Number.NaN : pSum / pCount);
    recall.push(rCount === 0 ? Number.NaN : rSum / rCount);
    precisionCounted.push(pCount);
    recallCounted = rCount;
  }
  return { precision, recall, precisionCounted, recallCounted };
}

/** Precision of the top min(N, size) ranked objects, averaged over queries. */
export function referencePrecisionAtN(
  ranking: ReferenceRanking,
  databaseLabels: Uint8Array,
  referenceLabels: Uint8Array,
  ns: number[],
): number[] {
  const C = databaseLabels.length / ranking.databaseSize;
  return ns.map((N) => {
    const top = Math.min(N, ranking.databaseSize);
    let sum = 0;
    for (let q = 0; q < ranking.queries; q++) {
      const hits = ranking.ids[q]
        .slice(0, top)
        .filter((i) => referenceRelevant(databaseLabels, i, referenceLabels, q, C)).length;
      sum += hits / top;
    }
    return sum / ranking.queries;
  });
}

/** sqrt(mean (x' - x)^2) per object, and their mean. */
export function referencePerceptibility(
  adversarial: ArrayLike<number>,
  original: ArrayLike<number>,
  count: number,
): { perObject: number[]; mean: number } {
  const size = adversarial.length / count;
  const perObject: number[] = [];
  for (let o = 0; o < count; o++) {
    let sum = 0;
    for (let i = 0; i < size; i++) sum += (adversarial[o * size + i] - original[o * size + i]) ** 2;
    perObject.push(Math.sqrt(sum / size));
  }
  return { perObject, mean: perObject.reduce((s, p) => s + p, 0) / count };
}
