/**
 * The GPU (WebGPU) backend of HammingIndex. `enableGpuHamming()` registers it; nothing here runs, and
 * dawn.node is not loaded, until an index asks for the GPU. See gpu.wgsl.ts for the kernels and README.md
 * for how backend 'auto' decides.
 *
 * Per call: the queries are uploaded once; the database (uploaded once per index generation, in pages of
 * at most one storage binding) is cut into blocks; pass 1 writes a histogram per (query, block), pass 2
 * prefixes it over blocks and totals it per query; the host reads the per-query histograms (nq x (bits+1)
 * integers), picks the threshold per query, and pass 3 writes every survivor straight to its sorted slot.
 */
import { createGpu, type Gpu, grid } from '../gpu/context.ts';
import type { Tensor } from '../gpu/tensor.ts';
import {
  type BackendOp,
  type HammingBackend,
  type HammingDatabase,
  type RangeSearchResult,
  type RankResult,
  registerGpuBackend,
  type SearchResult,
} from './backend.ts';
import { type Codes, wordsPerCode } from './codes.ts';
import { HammingError } from './errors.ts';
import {
  HAMMING_WORKGROUP,
  hammingHistShader,
  hammingPlaceShader,
  hammingScanShader,
  histQueriesPerInvocation,
} from './gpu.wgsl.ts';

export interface GpuHammingOptions {
  /** The context to run on; default: one opened on first use (createGpu()) and shared by all indexes. */
  gpu?: Gpu;
  /**
   * Codes per database page (one storage binding each). Default: as many as the device's
   * maxStorageBufferBindingSize allows. Smaller values are for tests of the paging.
   */
  pageCodes?: number;
  /**
   * Bytes of device memory the per-(query, block) histograms and the outputs of one dispatch may use;
   * queries are processed in batches that fit. Default 64 MiB (capped by the storage binding limit).
   */
  memoryBudget?: number;
}

/**
 * The software driver (llvmpipe, Mesa 25.0.7, 2-core EPYC VM shared with other jobs), measured:
 * `benchHamming({ backend: 'gpu', n: 2^20, bits: 64, queries: 100, k: 1000 })` took 0.22 to 0.43 s by load
 * (median of runs about 0.29 s: both distance passes, 2 x 2^20 x 100 x 2 words, i.e. about 1.2e9 word
 * comparisons/s with the CPU path 3.4-4x faster in the same runs), and a 1-query search of 1000 codes 2 ms
 * (the fixed cost of a call: submits, two read-backs).
 */
const SOFTWARE_WORDS_PER_SECOND = 1.2e9;
const SOFTWARE_CALL_SECONDS = 2e-3;
/**
 * Not measured (no hardware GPU on the development machine): a deliberately modest figure for a discrete
 * GPU, about 1/100 of an H100's integer throughput, and a fixed cost of a call (submit, read-back, the
 * host's selection between passes).
 */
const HARDWARE_WORDS_PER_SECOND = 100e9;
const HARDWARE_CALL_SECONDS = 1e-3;

/** Blocks per page that the default block size aims at: enough (query, block) pairs to fill a device. */
const TARGET_BLOCKS = 512;
const MIN_CODES_PER_BLOCK = 32;
const DEFAULT_BUDGET = 64 << 20;

interface Page {
  start: number;
  count: number;
  tensor: Tensor;
}

interface Layout {
  n: number;
  bits: number;
  words: number;
  L: number;
  pageCodes: number;
  codesPerBlock: number;
  blocksPerPage: number;
  nBlocks: number;
}

/** Per-query selection: threshold, codes kept at the threshold, kept in all. */
interface Selection {
  t: number;
  take: number;
  kept: number;
}

export class GpuHammingBackend implements HammingBackend {
  readonly kind = 'gpu' as const;
  readonly device: string;
  readonly gpu: Gpu;
  private readonly pageOption: number | undefined;
  private readonly budget: number;
  private cache: { generation: number; words: Uint32Array; pages: Page[] } | null = null;
  private disposed = false;

  constructor(gpu: Gpu, options: Omit<GpuHammingOptions, 'gpu'> = {}) {
    checkOptions(options);
    const { pageCodes, memoryBudget } = options;
    this.gpu = gpu;
    this.device = `gpu: ${gpu.adapter.description}`;
    this.pageOption = pageCodes;
    this.budget = Math.min(memoryBudget ?? DEFAULT_BUDGET, this.maxBinding);
  }

  private get maxBinding(): number {
    return Math.min(
      this.gpu.limits['maxStorageBufferBindingSize'] ?? 134217728,
      this.gpu.limits['maxBufferSize'] ?? 268435456,
    );
  }

  /**
   * Seconds for a call: a fixed cost plus two distance passes over the database. On a software adapter
   * (llvmpipe) the figure is measured and always above the CPU backend's estimate, so 'auto' stays on the
   * CPU there (per comparison it is 4x the CPU's single-thread estimate, plus the fixed cost); on a hardware
   * adapter it is an unmeasured, conservative guess that wins from a few million comparisons (queries x
   * codes) on.
   */
  estimateSeconds(op: BackendOp, n: number, nq: number, bits: number): number {
    const software = this.gpu.adapter.isSoftware;
    const rate = software ? SOFTWARE_WORDS_PER_SECOND : HARDWARE_WORDS_PER_SECOND;
    const fixed = software ? SOFTWARE_CALL_SECONDS : HARDWARE_CALL_SECONDS;
    const passes = op === 'countsByDistance' ? 1 : 2;
    return fixed + (passes * n * nq * wordsPerCode(bits)) / rate;
  }

  async search(db: HammingDatabase, queries: Codes, k: number): Promise<SearchResult> {
    const kk = Math.min(k, db.codes.count);
    const r = await this.select(db, queries, (hist, L) => selectK(hist, L, kk), 'search');
    return { k: kk, distances: r.distances, ids: r.ids };
  }

  async rank(db: HammingDatabase, queries: Codes): Promise<RankResult> {
    const n = db.codes.count;
    this.checkRowFits(n, 'rank');
    const r = await this.select(db, queries, (hist, L) => selectK(hist, L, n), 'rank');
    return { n, distances: r.distances, ids: r.ids };
  }

  async rangeSearch(db: HammingDatabase, queries: Codes, radius: number): Promise<RangeSearchResult> {
    const r = Math.min(radius, db.codes.bits);
    const out = await this.select(db, queries, (hist, L) => selectRadius(hist, L, r), 'rangeSearch');
    const lims = new Int32Array(queries.count + 1);
    for (let q = 0; q < queries.count; q++) lims[q + 1] = lims[q] + out.kept[q];
    return { lims, distances: out.distances, ids: out.ids };
  }

  async countsByDistance(db: HammingDatabase, queries: Codes): Promise<Int32Array> {
    const layout = this.layout(db.codes);
    const pages = this.upload(db);
    const L = layout.L;
    const out = new Int32Array(queries.count * L);
    const qt = this.queryTensor(queries);
    try {
      for (const [q0, q1] of this.batches(layout, queries.count)) {
        const { bh, hist } = this.histogram(layout, pages, qt, q0, q1 - q0);
        const h = await this.gpu.readU32(hist);
        bh.release();
        hist.release();
        out.set(h, q0 * L);
      }
    } finally {
      qt.release();
    }
    return out;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.releasePages();
  }

  // ---- internals

  private checkRowFits(perQuery: number, op: string): void {
    if (perQuery * 4 > this.maxBinding) {
      throw new HammingError(
        'TOO_LARGE',
        `${op} on the GPU: one query's result (${perQuery} entries) exceeds this device's largest storage ` +
          `binding (${this.maxBinding} bytes); use backend 'cpu' for this call.`,
      );
    }
  }

  private layout(codes: Codes): Layout {
    const n = codes.count;
    const words = wordsPerCode(codes.bits);
    const L = codes.bits + 1;
    const fit = Math.max(1, Math.floor(this.maxBinding / (words * 4)));
    const pageCodes = Math.min(this.pageOption ?? fit, fit, n);
    const pages = Math.ceil(n / pageCodes);
    // Blocks: about TARGET_BLOCKS over the whole database, never spanning pages, and few enough that
    // one query's histograms (nBlocks x L) fit the budget.
    let codesPerBlock = Math.max(MIN_CODES_PER_BLOCK, Math.ceil(n / TARGET_BLOCKS));
    const maxBlocks = Math.max(1, Math.floor(this.budget / (L * 4)));
    codesPerBlock = Math.max(codesPerBlock, Math.ceil(n / Math.max(1, maxBlocks - pages)));
    codesPerBlock = Math.min(codesPerBlock, pageCodes);
    const blocksPerPage = Math.ceil(pageCodes / codesPerBlock);
    return {
      n,
      bits: codes.bits,
      words,
      L,
      pageCodes,
      codesPerBlock,
      blocksPerPage,
      nBlocks: pages * blocksPerPage,
    };
  }

  /** Query ranges whose per-(query, block) histograms fit the budget. */
  private batches(layout: Layout, nq: number): [number, number][] {
    const perQuery = layout.nBlocks * layout.L * 4;
    // One workgroup row per query (dispatch y), so at most maxComputeWorkgroupsPerDimension per batch.
    const maxY = this.gpu.limits['maxComputeWorkgroupsPerDimension'] ?? 65535;
    const size = Math.max(1, Math.min(nq, maxY, Math.floor(this.budget / perQuery)));
    const out: [number, number][] = [];
    for (let q = 0; q < nq; q += size) out.push([q, Math.min(nq, q + size)]);
    return out;
  }

  private releasePages(): void {
    for (const p of this.cache?.pages ?? []) p.tensor.release();
    this.cache = null;
  }

  /** The database on the device, in pages; uploaded again only when the index's generation changes. */
  private upload(db: HammingDatabase): Page[] {
    if (this.disposed) {
      throw new HammingError(
        'DISPOSED',
        'GPU Hamming backend: expected a live backend, found one already disposed; create a new index.',
      );
    }
    const words = db.codes.words;
    if (this.cache && this.cache.generation === db.generation && this.cache.words === words) {
      return this.cache.pages;
    }
    this.releasePages();
    const layout = this.layout(db.codes);
    const W = layout.words;
    const pages: Page[] = [];
    for (let start = 0; start < layout.n; start += layout.pageCodes) {
      const count = Math.min(layout.pageCodes, layout.n - start);
      const slice = words.subarray(start * W, (start + count) * W);
      // A copy: the index's storage is a SharedArrayBuffer, which writeBuffer does not take everywhere.
      pages.push({ start, count, tensor: this.gpu.tensor([count * W], new Uint32Array(slice), 'u32') });
    }
    this.cache = { generation: db.generation, words, pages };
    return pages;
  }

  /** The queries on the device, with Q - 1 codes of zero padding for pass 1's query groups. */
  private queryTensor(queries: Codes): Tensor {
    const W = wordsPerCode(queries.bits);
    const padded = new Uint32Array(queries.words.length + (histQueriesPerInvocation(W) - 1) * W + 1);
    padded.set(queries.words);
    return this.gpu.tensor([padded.length], padded, 'u32');
  }

  private pageUniforms(layout: Layout, page: Page, pageIndex: number, nq: number, q0: number, qb0: number) {
    return [
      nq,
      q0,
      qb0,
      page.count,
      layout.codesPerBlock,
      layout.blocksPerPage,
      pageIndex * layout.blocksPerPage,
      layout.nBlocks,
      page.start,
    ];
  }

  /** Passes 1 and 2 for queries q0 .. q0+nq-1: per-block prefixes (bh) and per-query histograms. */
  private histogram(
    layout: Layout,
    pages: Page[],
    qt: Tensor,
    q0: number,
    nq: number,
  ): { bh: Tensor; hist: Tensor } {
    const { words, bits, L } = layout;
    // Pass 1 handles Q queries per invocation: bh has rows for nq rounded up to Q (the queries tensor
    // has Q - 1 codes of padding, see queryTensor).
    const Q = histQueriesPerInvocation(words);
    const groups = Math.ceil(nq / Q);
    const bh = this.gpu.empty([groups * Q * layout.nBlocks * L], 'u32');
    const hist = this.gpu.empty([nq * L], 'u32');
    pages.forEach((page, i) => {
      this.gpu.run({
        op: 'hammingHist',
        key: `${words}:${bits}`,
        code: () => hammingHistShader(words, bits),
        buffers: [page.tensor, qt, bh],
        uniforms: this.pageUniforms(layout, page, i, nq, q0, 0),
        workgroups: [Math.ceil(layout.blocksPerPage / HAMMING_WORKGROUP), groups],
      });
    });
    this.gpu.run({
      op: 'hammingScan',
      key: `${bits}`,
      code: () => hammingScanShader(bits),
      buffers: [bh, hist],
      uniforms: [nq, layout.nBlocks],
      workgroups: grid(Math.ceil((nq * L) / HAMMING_WORKGROUP)),
    });
    return { bh, hist };
  }

  /**
   * Runs the three passes and writes the survivors of every query, ordered by (distance, id), into
   * `distances` / `ids` (query after query, `kept` entries each, as `choose` decides from the histogram).
   */
  private async select(
    db: HammingDatabase,
    queries: Codes,
    choose: (hist: Uint32Array, L: number) => Selection[],
    op: BackendOp,
  ): Promise<{ distances: Int32Array; ids: Int32Array; kept: Int32Array }> {
    const layout = this.layout(db.codes);
    const pages = this.upload(db);
    const { words, bits, L } = layout;
    const S = L + 3;
    const maxOut = Math.floor(this.budget / 4);
    const qt = this.queryTensor(queries);
    const kept = new Int32Array(queries.count);
    const dParts: Int32Array[] = [];
    const iParts: Int32Array[] = [];
    try {
      for (const [q0, q1] of this.batches(layout, queries.count)) {
        const nq = q1 - q0;
        const { bh, hist } = this.histogram(layout, pages, qt, q0, nq);
        const h = await this.gpu.readU32(hist);
        hist.release();
        const sel = choose(h, L);
        for (let q = 0; q < nq; q++) {
          this.checkRowFits(sel[q].kept, op);
          kept[q0 + q] = sel[q].kept;
        }
        // Sub-batches of queries whose outputs fit one binding (a single query always does: checked).
        const subs: [number, number, number][] = [];
        for (let a = 0; a < nq; ) {
          let total = 0;
          let b = a;
          while (b < nq && (b === a || total + sel[b].kept <= maxOut)) total += sel[b++].kept;
          subs.push([a, b, total]);
          a = b;
        }
        const qp = new Uint32Array(nq * S);
        for (const [a, b] of subs) {
          let base = 0;
          for (let q = a; q < b; q++) {
            const o = q * S;
            qp[o] = sel[q].t;
            qp[o + 1] = sel[q].take;
            qp[o + 2] = base;
            let below = 0;
            for (let d = 0; d < L; d++) {
              qp[o + 3 + d] = below;
              below += h[q * L + d];
            }
            base += sel[q].kept;
          }
        }
        const qpt = this.gpu.tensor([qp.length], qp, 'u32');
        const Q = histQueriesPerInvocation(words);
        for (const [a, b, total] of subs) {
          if (total === 0) continue;
          const outD = this.gpu.empty([total], 'u32');
          const outI = this.gpu.empty([total], 'u32');
          pages.forEach((page, i) => {
            this.gpu.run({
              op: 'hammingPlace',
              key: `${words}:${bits}`,
              code: () => hammingPlaceShader(words, bits),
              buffers: [page.tensor, qt, bh, qpt, outD, outI],
              uniforms: this.pageUniforms(layout, page, i, b - a, q0, a),
              workgroups: [Math.ceil(layout.blocksPerPage / HAMMING_WORKGROUP), Math.ceil((b - a) / Q)],
            });
          });
          const d = await this.gpu.readU32(outD);
          const id = await this.gpu.readU32(outI);
          outD.release();
          outI.release();
          dParts.push(new Int32Array(d.buffer, d.byteOffset, d.length));
          iParts.push(new Int32Array(id.buffer, id.byteOffset, id.length));
        }
        qpt.release();
        bh.release();
      }
    } finally {
      qt.release();
    }
    return { distances: concat(dParts), ids: concat(iParts), kept };
  }
}

/** k nearest: the smallest T whose cumulative count reaches k; all below T, the first ids at T. */
export function selectK(hist: Uint32Array, L: number, k: number): Selection[] {
  const nq = hist.length / L;
  const out: Selection[] = [];
  for (let q = 0; q < nq; q++) {
    let below = 0;
    let t = 0;
    while (t < L - 1 && below + hist[q * L + t] < k) below += hist[q * L + t++];
    const take = Math.min(k - below, hist[q * L + t]);
    out.push({ t, take, kept: below + take });
  }
  return out;
}

/** Everything within the radius (inclusive). */
export function selectRadius(hist: Uint32Array, L: number, radius: number): Selection[] {
  const nq = hist.length / L;
  const out: Selection[] = [];
  for (let q = 0; q < nq; q++) {
    let below = 0;
    for (let d = 0; d < radius; d++) below += hist[q * L + d];
    const take = hist[q * L + radius];
    out.push({ t: radius, take, kept: below + take });
  }
  return out;
}

function concat(parts: Int32Array[]): Int32Array {
  if (parts.length === 1) return parts[0];
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- registration

let ownedGpu: Promise<Gpu> | null = null;

/**
 * Makes backend 'gpu' (and 'auto') of HammingIndex available: registers a factory that creates a
 * GpuHammingBackend on `options.gpu`, or on one context opened on first use and shared by all indexes.
 * When no adapter can be opened, the factory throws NO_GPU_BACKEND (with the adapter error as cause);
 * backend 'auto' then stays on the CPU.
 */
export function enableGpuHamming(options: GpuHammingOptions = {}): void {
  const { gpu, ...rest } = options;
  checkOptions(rest); // now rather than on the first search
  registerGpuBackend(async () => {
    let context = gpu;
    if (!context) {
      ownedGpu ??= createGpu();
      try {
        context = await ownedGpu;
      } catch (err) {
        ownedGpu = null;
        throw new HammingError(
          'NO_GPU_BACKEND',
          `backend 'gpu': expected a WebGPU adapter, found none (${(err as Error).message}); ` +
            "use backend 'cpu' or 'auto'.",
          { cause: err },
        );
      }
    }
    return new GpuHammingBackend(context, rest);
  });
}

/** Unregisters the GPU backend and destroys the context it opened itself (if any). */
export async function disableGpuHamming(): Promise<void> {
  registerGpuBackend(null);
  const owned = ownedGpu;
  ownedGpu = null;
  if (owned) (await owned.catch(() => null))?.destroy();
}

function checkOptions(options: Omit<GpuHammingOptions, 'gpu'>): void {
  const { pageCodes, memoryBudget } = options;
  if (pageCodes !== undefined && (!Number.isInteger(pageCodes) || pageCodes < 1)) {
    throw new HammingError('BAD_OPTION', `pageCodes: expected an integer >= 1, found ${String(pageCodes)}.`);
  }
  if (memoryBudget !== undefined && (!Number.isInteger(memoryBudget) || memoryBudget < 1 << 16)) {
    throw new HammingError(
      'BAD_OPTION',
      `memoryBudget: expected an integer number of bytes >= 65536, found ${String(memoryBudget)}.`,
    );
  }
}
