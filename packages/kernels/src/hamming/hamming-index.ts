import {
  type BackendOp,
  CpuBackend,
  type CpuOptions,
  getGpuBackendFactory,
  type HammingBackend,
  type HammingDatabase,
  type RangeSearchResult,
  type RankResult,
  type SearchResult,
} from './backend.ts';
import { type Codes, type CodesInput, checkBits, toCodes, wordsPerCode } from './codes.ts';
import { HammingError } from './errors.ts';
import { decodeIndexFile, encodeIndexFile, readIndexFile, writeFileAtomic } from './file.ts';

export type BackendChoice = 'auto' | 'cpu' | 'gpu';

export interface HammingIndexOptions extends CpuOptions {
  /**
   * What runs the async methods: 'cpu'; 'gpu' (throws NO_GPU_BACKEND until a GPU backend is registered);
   * 'auto' (default): the backend with the lowest estimated time for the call at hand; with no GPU
   * backend registered, always the CPU.
   */
  backend?: BackendChoice;
}

/** Largest typed-array result we allocate (elements). */
const MAX_RESULT = 2 ** 31 - 1;

/**
 * Exact Hamming k-NN, radius search and ranking over binary codes of 8 to 4096 bits.
 *
 * Results are exact and deterministic: each row is sorted by distance, then by database index. Async
 * methods run on the chosen backend (worker threads for large CPU work); `*Sync` methods always run the
 * CPU kernels on the calling thread and return the same results.
 */
export class HammingIndex {
  readonly bits: number;
  readonly backendChoice: BackendChoice;
  /** Words per code: ceil(bits / 32). */
  readonly wordsPerCode: number;
  private storage: Uint32Array;
  private size = 0;
  private generationCounter = 0;
  private readonly cpu: CpuBackend;
  private gpu: Promise<HammingBackend> | null = null;
  private gpuFailed = false;
  /** What ran the latest async call, e.g. 'cpu: wasm x 2 threads' (threads actually used). */
  lastDevice: string | null = null;

  constructor(bits: number, options: HammingIndexOptions = {}) {
    checkBits(bits);
    const backend = options.backend ?? 'auto';
    if (backend !== 'auto' && backend !== 'cpu' && backend !== 'gpu') {
      throw new HammingError(
        'BAD_OPTION',
        `backend: expected 'auto', 'cpu' or 'gpu', found ${String(backend)}.`,
      );
    }
    this.bits = bits;
    this.backendChoice = backend;
    this.wordsPerCode = wordsPerCode(bits);
    this.cpu = new CpuBackend(options);
    this.storage = new Uint32Array(sharedBuffer(0));
    if (backend === 'gpu' && !getGpuBackendFactory()) throw noGpu();
  }

  static fromCodes(codes: Codes, options?: HammingIndexOptions): HammingIndex {
    return new HammingIndex(codes.bits, options).add(codes);
  }

  /** From ±1 values, count x bits, row-major (value >= 0 is a 1 bit; NaN is an error). */
  static fromPm1(
    bits: number,
    values: Float32Array | Float64Array,
    options?: HammingIndexOptions,
  ): HammingIndex {
    return new HammingIndex(bits, options).add(values);
  }

  /** From FAISS-layout packed bytes, count x ceil(bits/8). */
  static fromFaissBytes(bits: number, bytes: Uint8Array, options?: HammingIndexOptions): HammingIndex {
    return new HammingIndex(bits, options).add(bytes);
  }

  /** From packed u32 words, count x ceil(bits/32). */
  static fromWords(bits: number, words: Uint32Array, options?: HammingIndexOptions): HammingIndex {
    return new HammingIndex(bits, options).add(words);
  }

  /** Number of codes in the index. */
  get count(): number {
    return this.size;
  }

  /** Changes whenever codes are added. */
  get generation(): number {
    return this.generationCounter;
  }

  /** The database codes, as a view of the index's storage: do not modify. */
  get codes(): Codes {
    return {
      bits: this.bits,
      count: this.size,
      words: this.storage.subarray(0, this.size * this.wordsPerCode),
    };
  }

  /** Appends codes (ids continue from `count`). Accepts any `CodesInput` of this index's bit length. */
  add(input: CodesInput): this {
    const codes = toCodes(this.bits, input, 'add');
    if (codes.count === 0) return this;
    const W = this.wordsPerCode;
    const newSize = this.size + codes.count;
    if (newSize > MAX_RESULT) {
      throw new HammingError(
        'TOO_LARGE',
        `add: an index holds at most ${MAX_RESULT} codes (ids are int32), found ${newSize}; split the database.`,
      );
    }
    if (newSize * W > this.storage.length) {
      // Shared memory so that worker threads read the codes without a copy; capacity doubles.
      const capacity = Math.max(newSize * W, Math.min(2 * this.storage.length, newSize * W + (64 << 20)));
      const next = new Uint32Array(sharedBuffer(capacity * 4));
      next.set(this.storage.subarray(0, this.size * W));
      this.storage = next;
    }
    this.storage.set(codes.words, this.size * W);
    this.size = newSize;
    this.generationCounter++;
    return this;
  }

  addPm1(values: Float32Array | Float64Array): this {
    return this.add(values);
  }

  addFaissBytes(bytes: Uint8Array): this {
    return this.add(bytes);
  }

  addWords(words: Uint32Array): this {
    return this.add(words);
  }

  // ---- k nearest neighbours

  /**
   * The k nearest codes of each query: nq x min(k, count) distances and ids, each row sorted by
   * distance, then id. k > count returns count columns (see `result.k`).
   */
  async search(queries: CodesInput, k: number): Promise<SearchResult> {
    const q = this.prepare(queries, 'search');
    this.checkK(k, q.count);
    const backend = await this.pick('search', q.count, k);
    return this.done(backend, await backend.search(this.database(), q, k));
  }

  searchSync(queries: CodesInput, k: number): SearchResult {
    const q = this.prepare(queries, 'searchSync');
    this.checkK(k, q.count);
    return this.cpu.searchSync(this.codes, q, k);
  }

  // ---- radius search

  /**
   * All codes within `radius` (distance <= radius, inclusive; FAISS's binary range_search is strict) of
   * each query, as CSR lists sorted by distance, then id.
   */
  async rangeSearch(queries: CodesInput, radius: number): Promise<RangeSearchResult> {
    const q = this.prepare(queries, 'rangeSearch');
    const r = this.checkRadius(radius, 'rangeSearch');
    const backend = await this.pick('rangeSearch', q.count, 0);
    return this.done(backend, await backend.rangeSearch(this.database(), q, r));
  }

  rangeSearchSync(queries: CodesInput, radius: number): RangeSearchResult {
    const q = this.prepare(queries, 'rangeSearchSync');
    return this.cpu.rangeSearchSync(this.codes, q, this.checkRadius(radius, 'rangeSearchSync'));
  }

  // ---- full ranking

  /** The whole database ordered for each query: nq x count ids and distances, by (distance, id). */
  async rank(queries: CodesInput): Promise<RankResult> {
    const q = this.prepare(queries, 'rank');
    this.checkResultSize(q.count, this.size, 'rank');
    const backend = await this.pick('rank', q.count, this.size);
    return this.done(backend, await backend.rank(this.database(), q));
  }

  rankSync(queries: CodesInput): RankResult {
    const q = this.prepare(queries, 'rankSync');
    this.checkResultSize(q.count, this.size, 'rankSync');
    return this.cpu.rankSync(this.codes, q);
  }

  // ---- counts

  /** nq x (bits+1): how many database codes lie at each distance 0..bits from each query. */
  async countsByDistance(queries: CodesInput): Promise<Int32Array> {
    const q = this.prepare(queries, 'countsByDistance');
    const backend = await this.pick('countsByDistance', q.count, 0);
    return this.done(backend, await backend.countsByDistance(this.database(), q));
  }

  countsByDistanceSync(queries: CodesInput): Int32Array {
    const q = this.prepare(queries, 'countsByDistanceSync');
    return this.cpu.countsByDistanceSync(this.codes, q);
  }

  /** For each query, how many database codes lie within `radius` (distance <= radius). */
  async countWithin(queries: CodesInput, radius: number): Promise<Int32Array> {
    const r = this.checkRadius(radius, 'countWithin');
    return this.cumulate(await this.countsByDistance(queries), r);
  }

  countWithinSync(queries: CodesInput, radius: number): Int32Array {
    const r = this.checkRadius(radius, 'countWithinSync');
    return this.cumulate(this.countsByDistanceSync(queries), r);
  }

  // ---- files

  /** The index in its file format (see README.md): header, FAISS-layout codes, CRC-32. */
  toBytes(): Uint8Array {
    return encodeIndexFile(this.codes);
  }

  /** Writes the index file atomically: a temporary name in the same folder, then a rename (Node only). */
  async save(path: string): Promise<void> {
    await writeFileAtomic(path, this.toBytes());
  }

  /**
   * Reads an index file, checking magic, version, size (TRUNCATED), checksum (CHECKSUM) and, when given,
   * `expectedBits` (BITS_MISMATCH). Node only; elsewhere read the bytes yourself and use `fromBytes`.
   */
  static async load(
    path: string,
    options: HammingIndexOptions & { expectedBits?: number } = {},
  ): Promise<HammingIndex> {
    const codes = await readIndexFile(path, { expectedBits: options.expectedBits });
    return HammingIndex.fromCodes(codes, options);
  }

  static fromBytes(
    bytes: Uint8Array,
    options: HammingIndexOptions & { expectedBits?: number } = {},
  ): HammingIndex {
    return HammingIndex.fromCodes(decodeIndexFile(bytes, { expectedBits: options.expectedBits }), options);
  }

  /** Releases backend resources held for this index (GPU buffers). The index stays usable on the CPU. */
  async dispose(): Promise<void> {
    const gpu = this.gpu;
    this.gpu = null;
    if (gpu) await (await gpu.catch(() => null))?.dispose();
  }

  // ---- internals

  private done<T>(backend: HammingBackend, result: T): T {
    this.lastDevice = backend.device;
    return result;
  }

  private database(): HammingDatabase {
    return { codes: this.codes, generation: this.generationCounter };
  }

  private prepare(queries: CodesInput, op: string): Codes {
    if (this.size === 0) {
      throw new HammingError(
        'EMPTY_DATABASE',
        `${op}: expected a database with at least one code, found an empty index; add codes before searching.`,
      );
    }
    return toCodes(this.bits, queries, `${op} queries`);
  }

  private checkK(k: number, nq: number): void {
    if (!Number.isInteger(k) || k < 1) {
      throw new HammingError(
        'BAD_K',
        `k: expected an integer >= 1 (k > ${this.size} returns all ${this.size} codes), found ${String(k)}.`,
      );
    }
    this.checkResultSize(nq, Math.min(k, this.size), 'search');
  }

  private checkRadius(radius: number, op: string): number {
    if (!Number.isInteger(radius) || radius < 0) {
      throw new HammingError(
        'BAD_RADIUS',
        `${op}: expected an integer radius >= 0 (distance <= radius is within; ${this.bits} covers everything), ` +
          `found ${String(radius)}.`,
      );
    }
    return Math.min(radius, this.bits);
  }

  private checkResultSize(nq: number, perQuery: number, op: string): void {
    if (nq * perQuery > MAX_RESULT) {
      throw new HammingError(
        'TOO_LARGE',
        `${op}: the result would hold ${nq} x ${perQuery} entries, more than ${MAX_RESULT}; ` +
          'pass fewer queries per call.',
      );
    }
  }

  private cumulate(hist: Int32Array, radius: number): Int32Array {
    const L = this.bits + 1;
    const nq = hist.length / L;
    const out = new Int32Array(nq);
    for (let i = 0; i < nq; i++) {
      let c = 0;
      for (let d = 0; d <= radius; d++) c += hist[i * L + d];
      out[i] = c;
    }
    return out;
  }

  /**
   * The backend for one call. 'cpu' and 'gpu' are taken as asked. 'auto' runs on the CPU unless a GPU
   * backend is registered, starts, and estimates a shorter time for this call than the CPU does.
   */
  private async pick(op: BackendOp, nq: number, k: number): Promise<HammingBackend> {
    let backend: HammingBackend = this.cpu;
    if (this.backendChoice === 'gpu') {
      backend = await this.gpuBackend();
    } else if (this.backendChoice === 'auto' && !this.gpuFailed && getGpuBackendFactory()) {
      try {
        const gpu = await this.gpuBackend();
        const tg = gpu.estimateSeconds?.(op, this.size, nq, this.bits, k) ?? Number.POSITIVE_INFINITY;
        if (tg < this.cpu.estimateSeconds(op, this.size, nq, this.bits)) backend = gpu;
      } catch {
        // No adapter here: remember, and stay on the CPU.
        this.gpuFailed = true;
      }
    }
    return backend;
  }

  private gpuBackend(): Promise<HammingBackend> {
    const factory = getGpuBackendFactory();
    if (!factory) return Promise.reject(noGpu());
    if (!this.gpu) this.gpu = factory();
    return this.gpu;
  }
}

/**
 * A SharedArrayBuffer where there is one (Node; browser pages that are cross-origin isolated), else a plain
 * ArrayBuffer: pages without COOP/COEP headers have no SharedArrayBuffer, and there the search runs on the
 * calling thread anyway.
 */
function sharedBuffer(bytes: number): ArrayBufferLike {
  return typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
}

function noGpu(): HammingError {
  return new HammingError(
    'NO_GPU_BACKEND',
    "backend 'gpu': expected a registered GPU backend, found none; call enableGpuHamming() (from " +
      "'@dhta/kernels/hamming'; the '@dhta/hamming' package has no GPU path: registerGpuBackend() plugs in " +
      "one) before creating the index, or use backend 'cpu' or 'auto'.",
  );
}
