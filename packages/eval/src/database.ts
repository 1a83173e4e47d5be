import { HammingIndex, type HammingIndexOptions } from '@dhta/kernels/hamming';
import { type CodeArray, checkBits, codeCount, labelClasses, packCodes } from './codes.ts';
import { EvaluationError } from './errors.ts';
import {
  averagePrecisions,
  checkEmptyPrecision,
  checkNs,
  checkR,
  checkZeroHits,
  type MapOptions,
  type MapResult,
  type PrecisionAtNOptions,
  type PrecisionAtNResult,
  type PrecisionRecallOptions,
  type PrecisionRecallResult,
  precisionAtNPerQuery,
  precisionRecallPerQuery,
  type Ranking,
  Relevance,
  summariseAps,
  summarisePrecisionAtN,
  summarisePrecisionRecall,
} from './metrics.ts';

export interface RetrievalDatabaseOptions {
  /** Passed to HammingIndex; default { backend: 'auto' } (the CPU unless a GPU backend is registered and faster). */
  index?: HammingIndexOptions;
  /**
   * Most ranking entries (queries x k) held at once; queries are ranked in chunks that fit. Default 2^24
   * (128 MiB of ids and distances).
   */
  maxEntries?: number;
}

/**
 * A database of binary codes with multi-hot labels, ranked through `HammingIndex` (Hamming distance
 * ascending, ties by database index ascending), and the retrieval metrics of PROTOCOL.md against it.
 */
export class RetrievalDatabase {
  readonly bits: number;
  readonly count: number;
  readonly classes: number;
  readonly labels: Uint8Array;
  readonly index: HammingIndex;
  private readonly relevance: Relevance;
  private readonly maxEntries: number;

  /**
   * `codes`: `count` codes of `bits` bits (±1 Int8Array, packed u32 words or Codes); `labels`: count x classes
   * multi-hot 0/1 values (relevant = sharing at least one positive label).
   */
  constructor(bits: number, codes: CodeArray, labels: Uint8Array, options: RetrievalDatabaseOptions = {}) {
    checkBits(bits, 'database');
    const packed = packCodes(bits, codes, 'database codes');
    if (packed.count === 0) {
      throw new EvaluationError(
        'EMPTY_DATABASE',
        'database: expected at least one code, found none; encode the database first.',
      );
    }
    this.bits = bits;
    this.count = packed.count;
    this.classes = labelClasses(labels, packed.count, 'database labels');
    this.labels = labels;
    this.index = HammingIndex.fromCodes(packed, options.index ?? {});
    this.relevance = new Relevance(labels, this.classes);
    this.maxEntries = options.maxEntries ?? 2 ** 24;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new EvaluationError(
        'BAD_OPTION',
        `maxEntries: expected a positive integer, found ${String(options.maxEntries)}.`,
      );
    }
  }

  /**
   * Ranks the database for each query: the first `k` ids (default: all) by (distance, index) ascending.
   * Holds queries x k entries: for large databases prefer the metric methods, which rank in chunks.
   */
  async rank(queries: CodeArray, k: number = this.count): Promise<Ranking> {
    const packed = packCodes(this.bits, queries, 'queries');
    const depth = this.checkK(k);
    return this.rankPacked(packed.words, packed.count, depth);
  }

  /** MAP@R of `queries` against the database with `referenceLabels` (each query's own label). */
  map(queries: CodeArray, queryLabels: Uint8Array, options: MapOptions = {}): Promise<MapResult> {
    return this.mapAtR(queries, queryLabels, options);
  }

  /** t-MAP@R: MAP@R with each (adversarial) query's target label as the reference. */
  targetedMap(queries: CodeArray, targetLabels: Uint8Array, options: MapOptions = {}): Promise<MapResult> {
    return this.mapAtR(queries, targetLabels, options);
  }

  /** AP@R per query and their mean, with `referenceLabels` (nq x classes) deciding relevance. */
  async mapAtR(
    queries: CodeArray,
    referenceLabels: Uint8Array,
    options: MapOptions = {},
  ): Promise<MapResult> {
    const R = checkR(options.R, this.count);
    const zeroHits = checkZeroHits(options.zeroHits);
    const aps: (number | null)[] = [];
    await this.forChunks(queries, referenceLabels, R, (ranking, labels) => {
      aps.push(...averagePrecisions(ranking, this.relevance, labels, R));
    });
    return summariseAps(aps, R, zeroHits);
  }

  /** Precision and recall at every Hamming radius 0..bits, averaged over queries. */
  async precisionRecall(
    queries: CodeArray,
    referenceLabels: Uint8Array,
    options: PrecisionRecallOptions = {},
  ): Promise<PrecisionRecallResult> {
    const emptyPrecision = checkEmptyPrecision(options.emptyPrecision);
    const width = this.bits + 1;
    const nq = codeCount(this.bits, queries, 'queries');
    const precision = new Float64Array(nq * width);
    const recall = new Float64Array(nq * width);
    let offset = 0;
    await this.forChunks(queries, referenceLabels, this.count, (ranking, labels) => {
      const part = precisionRecallPerQuery(ranking, this.relevance, labels);
      precision.set(part.precision, offset);
      recall.set(part.recall, offset);
      offset += part.precision.length;
    });
    return summarisePrecisionRecall({ precision, recall }, this.bits, emptyPrecision);
  }

  /** Precision of the top N, for each N of `options.ns` (default 100, 200, ..., 1000), averaged over queries. */
  async precisionAtN(
    queries: CodeArray,
    referenceLabels: Uint8Array,
    options: PrecisionAtNOptions = {},
  ): Promise<PrecisionAtNResult> {
    const ns = checkNs(options.ns, this.count);
    const depth = Math.min(Math.max(...ns), this.count);
    const parts: Float64Array[] = [];
    await this.forChunks(queries, referenceLabels, depth, (ranking, labels) => {
      parts.push(precisionAtNPerQuery(ranking, this.relevance, labels, ns));
    });
    const perQuery = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      perQuery.set(p, offset);
      offset += p.length;
    }
    return summarisePrecisionAtN(perQuery, ns);
  }

  private checkK(k: number): number {
    if (!Number.isInteger(k) || k < 1) {
      throw new EvaluationError(
        'BAD_OPTION',
        `k: expected a positive integer ranking depth, found ${String(k)}.`,
      );
    }
    return Math.min(k, this.count);
  }

  private async rankPacked(words: Uint32Array, nq: number, k: number): Promise<Ranking> {
    const base = { queries: nq, k, bits: this.bits, databaseSize: this.count };
    if (nq === 0) return { ...base, ids: new Int32Array(0), distances: new Int32Array(0) };
    if (k === this.count) {
      const r = await this.index.rank(words);
      return { ...base, ids: r.ids, distances: r.distances };
    }
    const r = await this.index.search(words, k);
    return { ...base, ids: r.ids, distances: r.distances };
  }

  /** Ranks queries `depth` deep in chunks of at most maxEntries entries; calls `use` per chunk. */
  private async forChunks(
    queries: CodeArray,
    referenceLabels: Uint8Array,
    depth: number,
    use: (ranking: Ranking, labels: Uint8Array) => void,
  ): Promise<void> {
    const packed = packCodes(this.bits, queries, 'queries');
    const nq = packed.count;
    if (!(referenceLabels instanceof Uint8Array) || referenceLabels.length !== nq * this.classes) {
      throw new EvaluationError(
        'SHAPE_MISMATCH',
        `reference labels: expected a Uint8Array of ${nq} queries x ${this.classes} classes = ` +
          `${nq * this.classes} values, found ${referenceLabels?.length ?? String(referenceLabels)}; pass one ` +
          'multi-hot row per query (its own label for MAP, its target label for t-MAP).',
      );
    }
    if (nq > 0) labelClasses(referenceLabels, nq, 'reference labels');
    const W = packed.words.length / Math.max(nq, 1);
    const chunk = Math.max(1, Math.floor(this.maxEntries / depth));
    for (let q0 = 0; q0 < nq; q0 += chunk) {
      const q1 = Math.min(nq, q0 + chunk);
      const ranking = await this.rankPacked(packed.words.subarray(q0 * W, q1 * W), q1 - q0, depth);
      use(ranking, referenceLabels.subarray(q0 * this.classes, q1 * this.classes));
    }
  }
}
