/**
 * Backends: what runs a search. `HammingIndex` validates arguments, then hands the work to a backend.
 * The CPU backend is here; a GPU backend (WebGPU) plugs in through `registerGpuBackend` without this
 * module importing any GPU code.
 */
import type { Codes } from './codes.ts';
import { wordsPerCode } from './codes.ts';
import { HammingError } from './errors.ts';
import { createHammingKernels, type HammingKernels, type KernelVariant } from './kernels.ts';
import { concatInt32, concatKnn, concatRange, concatRank, mergeKnn, mergeRange, sumInt32 } from './merge.ts';
import { hammingPlatform } from './platform.ts';
import { type KernelOp, type KernelTask, WorkerPool } from './pool.ts';
import { buildHammingWasm } from './wasm.ts';

/** k nearest neighbours: nq rows of `k` columns (k = min(requested k, database size)). */
export interface SearchResult {
  /** Columns per row: min(requested k, database size). */
  k: number;
  /** nq x k, row-major; each row ascending. */
  distances: Int32Array;
  /** nq x k database indices; within equal distances ascending. */
  ids: Int32Array;
}

/** FAISS-style RangeSearchResult: query i's results are entries lims[i] .. lims[i+1]-1. */
export interface RangeSearchResult {
  lims: Int32Array;
  /** Sorted by distance, then id, within each query. */
  distances: Int32Array;
  ids: Int32Array;
}

/** The whole database ordered for each query: nq x n ids and distances, by (distance, id). */
export interface RankResult {
  n: number;
  distances: Int32Array;
  ids: Int32Array;
}

/** The database as a backend sees it. */
export interface HammingDatabase {
  /** The live codes: read them, never write them. */
  readonly codes: Codes;
  /** Changes whenever codes are added, so that a backend may cache an upload of `codes`. */
  readonly generation: number;
}

export type BackendKind = 'cpu' | 'gpu';
export type BackendOp = 'search' | 'rangeSearch' | 'rank' | 'countsByDistance';

/**
 * What a backend implements. Arguments arrive validated: queries have the database's bit length, the
 * database is not empty, k is an integer >= 1, radius an integer >= 0. Results must be identical to the
 * CPU backend's (exact distances; ties by id ascending).
 */
export interface HammingBackend {
  readonly kind: BackendKind;
  /** Human-readable: what runs the work, e.g. 'cpu: wasm x 2 threads' or 'gpu: llvmpipe'. */
  readonly device: string;
  search(db: HammingDatabase, queries: Codes, k: number): Promise<SearchResult>;
  rangeSearch(db: HammingDatabase, queries: Codes, radius: number): Promise<RangeSearchResult>;
  rank(db: HammingDatabase, queries: Codes): Promise<RankResult>;
  /** nq x (bits+1): how many database codes lie at each distance from each query. */
  countsByDistance(db: HammingDatabase, queries: Codes): Promise<Int32Array>;
  /** Estimated seconds for an operation; backend 'auto' picks the lowest estimate. */
  estimateSeconds?(op: BackendOp, n: number, nq: number, bits: number, k: number): number;
  /** Releases what the backend holds for this index (device buffers...). */
  dispose(): Promise<void>;
}

/** Creates the GPU backend; may throw a HammingError when no adapter is available. */
export type GpuBackendFactory = () => Promise<HammingBackend>;

let gpuFactory: GpuBackendFactory | null = null;

/**
 * Plugs in the GPU backend (called by the GPU module once it exists); null unplugs it. Until one is
 * registered, backend 'gpu' throws NO_GPU_BACKEND and 'auto' runs on the CPU.
 */
export function registerGpuBackend(factory: GpuBackendFactory | null): void {
  gpuFactory = factory;
}

export function getGpuBackendFactory(): GpuBackendFactory | null {
  return gpuFactory;
}

// ---------------------------------------------------------------------------------------------------
// CPU backend

export interface CpuOptions {
  /**
   * Worker threads: 'auto' (default) uses one per core when the work is large enough to pay for the
   * hand-off (see MIN_PARALLEL_WORK); a number forces that many (1 keeps everything on the calling thread).
   * Worker threads exist in Node only (node.ts installs them); elsewhere every call runs on the calling
   * thread.
   */
  threads?: number | 'auto';
  /** Kernel implementation: 'auto' (default) = 'wasm' where WebAssembly is available, else 'js'. */
  kernel?: 'auto' | KernelVariant;
}

/**
 * With threads 'auto', a call goes to worker threads only when it has at least 2 queries and this many
 * word comparisons (queries x codes x words per code), about 10 ms of work on one thread. Measured on
 * the 2-core development machine: below that, the hand-off and wake-up jitter of the workers (0.1 to
 * 2 ms at the median) eats the gain; and a single query is bound by memory bandwidth (2^22 to 2^24
 * 64-bit codes: two threads that split the database were no faster than one), so it stays on the
 * calling thread.
 */
export const MIN_PARALLEL_WORK = 1 << 25;

let wasmBytes: Uint8Array | null | undefined;
function getWasmBytes(): Uint8Array | null {
  if (wasmBytes === undefined) {
    try {
      const wa = (globalThis as { WebAssembly?: { validate(b: Uint8Array): boolean } }).WebAssembly;
      const bytes = buildHammingWasm();
      wasmBytes = wa?.validate(bytes) ? bytes : null;
    } catch {
      wasmBytes = null;
    }
  }
  return wasmBytes;
}

function resolveVariant(kernel: 'auto' | KernelVariant): KernelVariant {
  if (kernel === 'js') return 'js';
  const bytes = getWasmBytes();
  if (bytes) return 'wasm';
  if (kernel === 'wasm') {
    throw new HammingError(
      'BAD_OPTION',
      "kernel: 'wasm' was asked for, but this JavaScript engine has no usable WebAssembly; use kernel 'auto' or 'js'.",
    );
  }
  return 'js';
}

const mainKernels = new Map<KernelVariant, HammingKernels>();
/** Kernels that run on the calling thread (one instance per variant and process). */
export function getKernels(variant: KernelVariant): HammingKernels {
  let k = mainKernels.get(variant);
  if (!k) {
    k = createHammingKernels(variant === 'wasm' ? getWasmBytes() : null);
    mainKernels.set(variant, k);
  }
  return k;
}

const pools = new Map<string, WorkerPool>();
const brokenPools = new Set<string>();
function getPool(threads: number, variant: KernelVariant): WorkerPool | null {
  const key = `${variant}:${threads}`;
  if (brokenPools.has(key)) return null;
  let pool = pools.get(key);
  if (pool && !pool.healthy) {
    void pool.dispose();
    pool = undefined;
  }
  if (!pool) {
    // No worker threads on this host (a browser, or Node without node.ts imported): the calling thread.
    const startWorker = hammingPlatform().startWorker;
    if (!startWorker) return null;
    pool = new WorkerPool(threads, variant === 'wasm' ? getWasmBytes() : null, startWorker);
    pools.set(key, pool);
  }
  return pool;
}

/** Terminates the shared worker threads (they are unref'd, so this is only needed for a tidy exit). */
export async function disposeHammingWorkers(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.dispose()));
}

function split(total: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < parts; i++) {
    const a = Math.floor((total * i) / parts);
    const b = Math.floor((total * (i + 1)) / parts);
    if (b > a) out.push([a, b]);
  }
  return out;
}

export class CpuBackend implements HammingBackend {
  readonly kind = 'cpu' as const;
  readonly variant: KernelVariant;
  readonly maxThreads: number;
  private readonly threadsOption: number | 'auto';
  /** Threads the latest call actually ran on (1: the calling thread). */
  lastThreads = 1;

  constructor(options: CpuOptions = {}) {
    const threads = options.threads ?? 'auto';
    if (threads !== 'auto' && (!Number.isInteger(threads) || threads < 1 || threads > 256)) {
      throw new HammingError(
        'BAD_OPTION',
        `threads: expected 'auto' or an integer from 1 to 256, found ${String(threads)}.`,
      );
    }
    const kernel = options.kernel ?? 'auto';
    if (kernel !== 'auto' && kernel !== 'wasm' && kernel !== 'js') {
      throw new HammingError(
        'BAD_OPTION',
        `kernel: expected 'auto', 'wasm' or 'js', found ${String(kernel)}.`,
      );
    }
    this.variant = resolveVariant(kernel);
    this.threadsOption = threads;
    const platform = hammingPlatform();
    // 'auto' where there are no worker threads (a browser): the calling thread only.
    this.maxThreads =
      threads !== 'auto' ? threads : platform.startWorker ? Math.max(1, platform.availableParallelism()) : 1;
  }

  /** What ran the latest call, e.g. 'cpu: wasm x 2 threads'. */
  get device(): string {
    return `cpu: ${this.variant} x ${this.lastThreads} thread${this.lastThreads > 1 ? 's' : ''}`;
  }

  /**
   * How many threads a call of this size uses. 'auto': 1 below MIN_PARALLEL_WORK or for one query,
   * else one per core (at most one per query). A number: that many, splitting the database when there
   * are fewer queries than threads.
   */
  threadsFor(n: number, nq: number, bits: number): number {
    if (this.maxThreads <= 1) return 1;
    if (this.threadsOption !== 'auto') return this.maxThreads;
    if (nq < 2 || n * nq * wordsPerCode(bits) < MIN_PARALLEL_WORK) return 1;
    return Math.min(this.maxThreads, nq);
  }

  estimateSeconds(_op: BackendOp, n: number, nq: number, bits: number): number {
    // Measured on a 2-core EPYC: about 1.2e9 comparisons/s per thread for codes up to 64 bits with wasm.
    const perThread = (this.variant === 'wasm' ? 1.2e9 : 0.25e9) / Math.max(1, wordsPerCode(bits) / 2);
    return (n * nq) / (perThread * this.threadsFor(n, nq, bits));
  }

  // Synchronous, calling-thread versions.

  searchSync(db: Codes, queries: Codes, k: number): SearchResult {
    this.lastThreads = 1;
    const r = getKernels(this.variant).knn(
      db.words,
      db.bits,
      queries.words,
      0,
      queries.count,
      0,
      db.count,
      k,
    );
    return { k: r.k, distances: r.distances, ids: r.ids };
  }

  rangeSearchSync(db: Codes, queries: Codes, radius: number): RangeSearchResult {
    this.lastThreads = 1;
    return getKernels(this.variant).range(
      db.words,
      db.bits,
      queries.words,
      0,
      queries.count,
      0,
      db.count,
      radius,
    );
  }

  rankSync(db: Codes, queries: Codes): RankResult {
    this.lastThreads = 1;
    const r = getKernels(this.variant).rank(db.words, db.bits, queries.words, 0, queries.count, 0, db.count);
    return { n: db.count, distances: r.distances, ids: r.ids };
  }

  countsByDistanceSync(db: Codes, queries: Codes): Int32Array {
    this.lastThreads = 1;
    return getKernels(this.variant).histogram(
      db.words,
      db.bits,
      queries.words,
      0,
      queries.count,
      0,
      db.count,
    );
  }

  // Asynchronous versions: worker threads when they pay.

  async search(db: HammingDatabase, queries: Codes, k: number): Promise<SearchResult> {
    const c = db.codes;
    const plan = this.plan(c, queries, 'knn', k, true);
    if (!plan) return this.searchSync(c, queries, k);
    const parts = await this.runPlan<SearchResult>(plan);
    if (!parts) return this.searchSync(c, queries, k);
    return plan.byQueries ? concatKnn(parts) : mergeKnn(parts, queries.count, k);
  }

  async rangeSearch(db: HammingDatabase, queries: Codes, radius: number): Promise<RangeSearchResult> {
    const c = db.codes;
    const plan = this.plan(c, queries, 'range', radius, true);
    if (!plan) return this.rangeSearchSync(c, queries, radius);
    const parts = await this.runPlan<RangeSearchResult>(plan);
    if (!parts) return this.rangeSearchSync(c, queries, radius);
    return plan.byQueries ? concatRange(parts) : mergeRange(parts, queries.count);
  }

  async rank(db: HammingDatabase, queries: Codes): Promise<RankResult> {
    const c = db.codes;
    // A full ranking is split by queries only: merging whole orderings would cost as much as ranking.
    const plan = this.plan(c, queries, 'rank', 0, false);
    if (!plan) return this.rankSync(c, queries);
    const parts = await this.runPlan<RankResult>(plan);
    if (!parts) return this.rankSync(c, queries);
    const r = concatRank(parts);
    return { n: c.count, distances: r.distances, ids: r.ids };
  }

  async countsByDistance(db: HammingDatabase, queries: Codes): Promise<Int32Array> {
    const c = db.codes;
    const plan = this.plan(c, queries, 'histogram', 0, true);
    if (!plan) return this.countsByDistanceSync(c, queries);
    const parts = await this.runPlan<Int32Array>(plan);
    if (!parts) return this.countsByDistanceSync(c, queries);
    return plan.byQueries ? concatInt32(parts) : sumInt32(parts);
  }

  async dispose(): Promise<void> {
    // Worker threads are shared between indexes and unref'd; see disposeHammingWorkers.
  }

  private plan(
    db: Codes,
    queries: Codes,
    op: KernelOp,
    param: number,
    mayCutDatabase: boolean,
  ): { pool: WorkerPool; tasks: KernelTask[]; byQueries: boolean; key: string } | null {
    const threads = this.threadsFor(db.count, queries.count, db.bits);
    if (threads <= 1) return null;
    const byQueries = queries.count >= threads || !mayCutDatabase;
    if (byQueries && queries.count < 2) return null;
    const pool = getPool(threads, this.variant);
    if (!pool) return null;
    const base = { op, db: db.words, bits: db.bits, q: queries.words, param };
    const tasks: KernelTask[] = byQueries
      ? split(queries.count, threads).map(([q0, q1]) => ({ ...base, q0, q1, j0: 0, j1: db.count }))
      : split(db.count, threads).map(([j0, j1]) => ({ ...base, q0: 0, q1: queries.count, j0, j1 }));
    return { pool, tasks, byQueries, key: `${this.variant}:${threads}` };
  }

  /** Runs the tasks on the pool; null when the pool cannot start (then the caller runs on this thread). */
  private async runPlan<T>(plan: {
    pool: WorkerPool;
    tasks: KernelTask[];
    key: string;
  }): Promise<T[] | null> {
    try {
      await plan.pool.ready();
    } catch {
      // Workers cannot run here (e.g. a sandbox without worker_threads): remember, stay on this thread.
      brokenPools.add(plan.key);
      pools.delete(plan.key);
      void plan.pool.dispose();
      return null;
    }
    try {
      const parts = await plan.pool.run<T>(plan.tasks);
      this.lastThreads = plan.tasks.length;
      return parts;
    } catch (e) {
      // A worker died (out of memory, killed): the pool is replaced next time; this call runs on the
      // calling thread, where a genuine error in the kernels surfaces with its own message.
      if (e instanceof HammingError && e.code === 'WORKER_FAILED') return null;
      throw e;
    }
  }
}
