// Retrieval metrics over a ranking (PROTOCOL.md, "Retrieval metrics"). Each metric is computed per query
// first (so rankings can be produced in chunks of queries), then reduced over queries.
import { EvaluationError } from './errors.ts';

/**
 * A ranking of the database for each query: row q holds the first `k` database ids in the order
 * (Hamming distance ascending, database index ascending) and their distances. `k = databaseSize` for a
 * full ranking.
 */
export interface Ranking {
  /** Number of queries (rows). */
  readonly queries: number;
  /** Entries per row. */
  readonly k: number;
  /** Code length in bits (distances lie in 0..bits). */
  readonly bits: number;
  /** Number of database codes. */
  readonly databaseSize: number;
  /** queries x k database ids. */
  readonly ids: Int32Array;
  /** queries x k Hamming distances. */
  readonly distances: Int32Array;
}

/** How queries with no relevant object in the top R enter MAP@R. */
export type ZeroHitConvention = 'skip' | 'count';

export interface MapOptions {
  /** Cut-off R; default (and any R above it) the whole database. */
  R?: number;
  /**
   * 'skip' (default, the DHTA authors' code): queries with no relevant object in the top R are left out of
   * the mean and get `null`; 'count' (DeepHash-pytorch, ProS-GAN): they count as AP 0.
   */
  zeroHits?: ZeroHitConvention;
}

export interface MapResult {
  /** The mean AP@R over the counted queries; null when no query was counted. */
  map: number | null;
  /** Per-query AP@R: null where skipped ('skip' convention and no relevant object in the top R). */
  ap: (number | null)[];
  /** Number of queries in the mean. */
  counted: number;
  /** Number of queries with no relevant object in the top R (skipped or counted as 0). */
  zeroHitQueries: number;
  /** The R used (the option, capped at the database size). */
  R: number;
  zeroHits: ZeroHitConvention;
}

/** What precision is for a query with nothing within the radius (an empty retrieved set). */
export type EmptyPrecision = 'skip' | 'zero';

export interface PrecisionRecallOptions {
  /**
   * 'skip' (default): at a radius where a query retrieves nothing, its precision (0/0) is undefined and the
   * query is left out of that radius's mean precision (see `precisionCounted`); 'zero': it counts as 0.
   */
  emptyPrecision?: EmptyPrecision;
}

export interface PrecisionRecallResult {
  /** Radii 0..bits. */
  radii: number[];
  /**
   * precision[r]: mean over queries of |relevant within r| / |within r| (within r: d_H <= r); NaN where no
   * query was counted at that radius.
   */
  precision: Float64Array;
  /**
   * recall[r]: mean over queries of |relevant within r| / |relevant in the database|; queries with no
   * relevant object in the database are left out (recall undefined); NaN when none is counted.
   */
  recall: Float64Array;
  /** Per radius, the number of queries in the precision mean. */
  precisionCounted: Int32Array;
  /** The number of queries in the recall mean (the same at every radius). */
  recallCounted: number;
  emptyPrecision: EmptyPrecision;
}

export interface PrecisionAtNOptions {
  /** The list of N; default 100, 200, ..., 1000 (those up to the database size; [size] if it is below 100). */
  ns?: number[];
}

export interface PrecisionAtNResult {
  /** The N asked for. */
  ns: number[];
  /**
   * precision[i]: mean over all queries of |relevant in the top N_i| / N_i; an N above the database size
   * uses the whole database (|relevant| / size).
   */
  precision: Float64Array;
  /** queries x ns.length per-query values. */
  perQuery: Float64Array;
}

/** Default N list for precision@N. */
export function defaultNs(databaseSize: number): number[] {
  const ns: number[] = [];
  for (let N = 100; N <= Math.min(1000, databaseSize); N += 100) ns.push(N);
  return ns.length > 0 ? ns : [databaseSize];
}

export function checkR(R: number | undefined, databaseSize: number): number {
  if (R === undefined) return databaseSize;
  if (!Number.isInteger(R) || R < 1) {
    throw new EvaluationError(
      'BAD_OPTION',
      `R: expected a positive integer cut-off (or none for the whole database), found ${String(R)}.`,
    );
  }
  return Math.min(R, databaseSize);
}

export function checkZeroHits(zeroHits: string | undefined): ZeroHitConvention {
  const z = zeroHits ?? 'skip';
  if (z !== 'skip' && z !== 'count') {
    throw new EvaluationError(
      'BAD_OPTION',
      `zeroHits: expected 'skip' or 'count', found ${String(zeroHits)}.`,
    );
  }
  return z;
}

export function checkEmptyPrecision(emptyPrecision: string | undefined): EmptyPrecision {
  const e = emptyPrecision ?? 'skip';
  if (e !== 'skip' && e !== 'zero') {
    throw new EvaluationError(
      'BAD_OPTION',
      `emptyPrecision: expected 'skip' or 'zero', found ${String(emptyPrecision)}.`,
    );
  }
  return e;
}

export function checkNs(ns: number[] | undefined, databaseSize: number): number[] {
  if (ns === undefined) return defaultNs(databaseSize);
  if (!Array.isArray(ns) || ns.length === 0 || ns.some((N) => !Number.isInteger(N) || N < 1)) {
    throw new EvaluationError(
      'BAD_OPTION',
      `ns: expected a non-empty list of positive integers (e.g. [100, 200, 300]), found ${String(ns)}.`,
    );
  }
  return ns.slice();
}

/**
 * Relevance of database objects to reference label rows: "shares at least one positive label". Database
 * labels are held as lists of their positive classes (CSR), so one query costs O(positives in the
 * database), not O(size x classes).
 */
export class Relevance {
  readonly classes: number;
  readonly size: number;
  private readonly starts: Int32Array;
  private readonly positives: Int32Array;
  private readonly refSet: Uint8Array;

  constructor(databaseLabels: Uint8Array, classes: number) {
    this.classes = classes;
    this.size = databaseLabels.length / classes;
    this.starts = new Int32Array(this.size + 1);
    let total = 0;
    for (let i = 0; i < databaseLabels.length; i++) if (databaseLabels[i]) total++;
    this.positives = new Int32Array(total);
    let p = 0;
    for (let i = 0; i < this.size; i++) {
      this.starts[i] = p;
      for (let c = 0; c < classes; c++) if (databaseLabels[i * classes + c]) this.positives[p++] = c;
    }
    this.starts[this.size] = p;
    this.refSet = new Uint8Array(classes);
  }

  /** Writes rel[i] = 1 where database object i shares a positive label with `referenceLabels` row `row`. */
  mask(referenceLabels: Uint8Array, row: number, rel: Uint8Array): number {
    const C = this.classes;
    this.refSet.set(referenceLabels.subarray(row * C, row * C + C));
    let count = 0;
    for (let i = 0; i < this.size; i++) {
      let r = 0;
      for (let p = this.starts[i]; p < this.starts[i + 1]; p++) {
        if (this.refSet[this.positives[p]]) {
          r = 1;
          break;
        }
      }
      rel[i] = r;
      count += r;
    }
    return count;
  }
}

/**
 * AP@R of one ranked row: (1 / relevant in the top R) * sum over i <= R of P@i * rel_i, or null when the top R
 * holds no relevant object. `relevantRanked(i)` says whether the i-th ranked object (0-based) is relevant.
 */
export function averagePrecisionAtR(relevantRanked: (i: number) => boolean, R: number): number | null {
  let hits = 0;
  let sum = 0;
  for (let i = 0; i < R; i++) {
    if (relevantRanked(i)) {
      hits++;
      sum += hits / (i + 1);
    }
  }
  return hits === 0 ? null : sum / hits;
}

function checkRanking(
  ranking: Ranking,
  referenceLabels: Uint8Array,
  relevance: Relevance,
  need: number,
  op: string,
) {
  if (ranking.databaseSize !== relevance.size) {
    throw new EvaluationError(
      'SHAPE_MISMATCH',
      `${op}: expected database labels for ${ranking.databaseSize} objects (the ranking's database), found ` +
        `${relevance.size} rows; pass the labels of the ranked database.`,
    );
  }
  if (referenceLabels.length !== ranking.queries * relevance.classes) {
    throw new EvaluationError(
      'SHAPE_MISMATCH',
      `${op}: expected ${ranking.queries} reference label rows x ${relevance.classes} classes = ` +
        `${ranking.queries * relevance.classes} values, found ${referenceLabels.length}; pass one label row ` +
        'per query (its own label for MAP, its target label for t-MAP).',
    );
  }
  if (ranking.k < need) {
    throw new EvaluationError(
      'SHAPE_MISMATCH',
      `${op}: expected rankings of at least ${need} entries per query, found ${ranking.k}; rank deeper ` +
        '(the whole database for precision-recall).',
    );
  }
}

/** Per-query AP@R (null = no relevant object in the top R). Internal building block of mapFromRanking. */
export function averagePrecisions(
  ranking: Ranking,
  relevance: Relevance,
  referenceLabels: Uint8Array,
  R: number,
): (number | null)[] {
  checkRanking(ranking, referenceLabels, relevance, R, 'MAP@R');
  const rel = new Uint8Array(relevance.size);
  const out: (number | null)[] = [];
  for (let q = 0; q < ranking.queries; q++) {
    relevance.mask(referenceLabels, q, rel);
    const row = q * ranking.k;
    out.push(averagePrecisionAtR((i) => rel[ranking.ids[row + i]] === 1, R));
  }
  return out;
}

/** Reduces per-query AP@R (null = zero hits) under a zero-hit convention. */
export function summariseAps(aps: (number | null)[], R: number, zeroHits: ZeroHitConvention): MapResult {
  let sum = 0;
  let counted = 0;
  let zeroHitQueries = 0;
  const ap = aps.map((a) => {
    if (a === null) {
      zeroHitQueries++;
      if (zeroHits === 'skip') return null;
      counted++;
      return 0;
    }
    counted++;
    sum += a;
    return a;
  });
  return { map: counted === 0 ? null : sum / counted, ap, counted, zeroHitQueries, R, zeroHits };
}

/**
 * MAP@R from a ranking (t-MAP@R when `referenceLabels` are the target labels). The ranking needs at least
 * min(R, database size) entries per query.
 */
export function mapFromRanking(
  ranking: Ranking,
  databaseLabels: Uint8Array,
  referenceLabels: Uint8Array,
  options: MapOptions = {},
): MapResult {
  const R = checkR(options.R, ranking.databaseSize);
  const zeroHits = checkZeroHits(options.zeroHits);
  const relevance = new Relevance(databaseLabels, classesOf(databaseLabels, ranking.databaseSize));
  return summariseAps(averagePrecisions(ranking, relevance, referenceLabels, R), R, zeroHits);
}

function classesOf(labels: Uint8Array, rows: number): number {
  if (rows === 0 || labels.length % rows !== 0 || labels.length === 0) {
    throw new EvaluationError(
      'BAD_LABELS',
      `labels: expected ${rows} rows of multi-hot labels, found ${labels.length} values; pass one row per object.`,
    );
  }
  return labels.length / rows;
}

/** Per-query precision (NaN where the set within r is empty) and recall (NaN where nothing is relevant). */
export interface PerQueryPrecisionRecall {
  /** queries x (bits+1) */
  precision: Float64Array;
  /** queries x (bits+1) */
  recall: Float64Array;
}

export function precisionRecallPerQuery(
  ranking: Ranking,
  relevance: Relevance,
  referenceLabels: Uint8Array,
): PerQueryPrecisionRecall {
  checkRanking(ranking, referenceLabels, relevance, ranking.databaseSize, 'precision-recall');
  const K = ranking.bits;
  const precision = new Float64Array(ranking.queries * (K + 1));
  const recall = new Float64Array(ranking.queries * (K + 1));
  const rel = new Uint8Array(relevance.size);
  const within = new Float64Array(K + 1);
  const relWithin = new Float64Array(K + 1);
  for (let q = 0; q < ranking.queries; q++) {
    const totalRelevant = relevance.mask(referenceLabels, q, rel);
    within.fill(0);
    relWithin.fill(0);
    const row = q * ranking.k;
    for (let i = 0; i < ranking.k; i++) {
      const d = ranking.distances[row + i];
      within[d]++;
      relWithin[d] += rel[ranking.ids[row + i]];
    }
    for (let r = 1; r <= K; r++) {
      within[r] += within[r - 1];
      relWithin[r] += relWithin[r - 1];
    }
    for (let r = 0; r <= K; r++) {
      precision[q * (K + 1) + r] = within[r] === 0 ? Number.NaN : relWithin[r] / within[r];
      recall[q * (K + 1) + r] = totalRelevant === 0 ? Number.NaN : relWithin[r] / totalRelevant;
    }
  }
  return { precision, recall };
}

/** Averages per-query precision and recall over queries (rows of `bits+1`), under an empty-set convention. */
export function summarisePrecisionRecall(
  perQuery: PerQueryPrecisionRecall,
  bits: number,
  emptyPrecision: EmptyPrecision,
): PrecisionRecallResult {
  const width = bits + 1;
  const queries = perQuery.precision.length / width;
  const precision = new Float64Array(width);
  const recall = new Float64Array(width);
  const precisionCounted = new Int32Array(width);
  let recallCounted = 0;
  for (let q = 0; q < queries; q++) {
    if (!Number.isNaN(perQuery.recall[q * width])) recallCounted++;
    for (let r = 0; r < width; r++) {
      const p = perQuery.precision[q * width + r];
      if (!Number.isNaN(p)) {
        precision[r] += p;
        precisionCounted[r]++;
      } else if (emptyPrecision === 'zero') {
        precisionCounted[r]++;
      }
      const rc = perQuery.recall[q * width + r];
      if (!Number.isNaN(rc)) recall[r] += rc;
    }
  }
  for (let r = 0; r < width; r++) {
    precision[r] = precisionCounted[r] === 0 ? Number.NaN : precision[r] / precisionCounted[r];
    recall[r] = recallCounted === 0 ? Number.NaN : recall[r] / recallCounted;
  }
  const radii = Array.from({ length: width }, (_, r) => r);
  return { radii, precision, recall, precisionCounted, recallCounted, emptyPrecision };
}

/** Precision and recall at every Hamming radius 0..bits from a full ranking (k = database size). */
export function precisionRecallFromRanking(
  ranking: Ranking,
  databaseLabels: Uint8Array,
  referenceLabels: Uint8Array,
  options: PrecisionRecallOptions = {},
): PrecisionRecallResult {
  const emptyPrecision = checkEmptyPrecision(options.emptyPrecision);
  const relevance = new Relevance(databaseLabels, classesOf(databaseLabels, ranking.databaseSize));
  const perQuery = precisionRecallPerQuery(ranking, relevance, referenceLabels);
  return summarisePrecisionRecall(perQuery, ranking.bits, emptyPrecision);
}

/** Per-query precision@N, queries x ns.length. */
export function precisionAtNPerQuery(
  ranking: Ranking,
  relevance: Relevance,
  referenceLabels: Uint8Array,
  ns: number[],
): Float64Array {
  const maxN = Math.min(Math.max(...ns), ranking.databaseSize);
  checkRanking(ranking, referenceLabels, relevance, maxN, 'precision@N');
  const out = new Float64Array(ranking.queries * ns.length);
  const rel = new Uint8Array(relevance.size);
  const hitsAt = new Int32Array(maxN + 1);
  for (let q = 0; q < ranking.queries; q++) {
    relevance.mask(referenceLabels, q, rel);
    const row = q * ranking.k;
    for (let i = 0; i < maxN; i++) hitsAt[i + 1] = hitsAt[i] + rel[ranking.ids[row + i]];
    ns.forEach((N, j) => {
      const n = Math.min(N, ranking.databaseSize);
      out[q * ns.length + j] = hitsAt[n] / n;
    });
  }
  return out;
}

export function summarisePrecisionAtN(perQuery: Float64Array, ns: number[]): PrecisionAtNResult {
  const queries = perQuery.length / ns.length;
  const precision = new Float64Array(ns.length);
  for (let q = 0; q < queries; q++)
    for (let j = 0; j < ns.length; j++) precision[j] += perQuery[q * ns.length + j];
  for (let j = 0; j < ns.length; j++) precision[j] = queries === 0 ? Number.NaN : precision[j] / queries;
  return { ns: ns.slice(), precision, perQuery };
}

/** Precision@N from a ranking of at least min(max N, database size) entries per query. */
export function precisionAtNFromRanking(
  ranking: Ranking,
  databaseLabels: Uint8Array,
  referenceLabels: Uint8Array,
  options: PrecisionAtNOptions = {},
): PrecisionAtNResult {
  const ns = checkNs(options.ns, ranking.databaseSize);
  const relevance = new Relevance(databaseLabels, classesOf(databaseLabels, ranking.databaseSize));
  return summarisePrecisionAtN(precisionAtNPerQuery(ranking, relevance, referenceLabels, ns), ns);
}
