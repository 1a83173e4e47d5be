/// <reference path="./webassembly.d.ts" />
// The WebAssembly CPU engine: one linear memory shared with helper threads, a stack allocator over it, and
// the routines of cpu.wat.ts run on several threads (this one and workers) that split each call's range.
import * as platform from '#platform';
import { KernelError } from '../errors.js';
import { cpuWasmBytes } from './cpu.wasm.gen.js';
import { MR, NR } from './cpu.wat.js';

const PAGE = 65536;
/**
 * 2 GiB of address space at most (the memory grows on demand; only what is used is committed). The module's
 * memory import declares the same maximum (scripts/gen-wasm.ts; test/wasm-gen.test.ts checks that).
 */
const MAX_PAGES = 32768;
/** The most memory the engine may use (bytes). */
export const MAX_MEMORY_BYTES = MAX_PAGES * PAGE;
/**
 * Control block at the bottom of memory (i32): [0] generation, [1] chunks done, [2] routine, [3] argument
 * count, [4] the claim word (the generation's low 15 bits << 16 | the next unclaimed chunk), [5] the range's
 * end, [6] the chunk, [7] the number of chunks, [8] the threads taking part (those with a lower index),
 * [9..30] the arguments, [31] a float that stays 0 (ZERO). Then one 64-byte line of throw-away floats per
 * thread (SINK), so that the threads' writes there do not bounce a line between cores.
 */
const CONTROL_INTS = 32;
/** Threads at most (one throw-away line each). */
export const MAX_THREADS = 16;
const C_GENERATION = 0;
const C_DONE = 1;
const C_ROUTINE = 2;
const C_ARGC = 3;
const C_CLAIM = 4;
const C_TOTAL = 5;
const C_CHUNK = 6;
const C_CHUNKS = 7;
const C_ACTIVE = 8;
const C_ARGS = 9;
const MAX_ARGS = 31 - C_ARGS;
/** Bytes at the bottom of memory that the engine keeps for itself (control block and throw-away lines). */
export const RESERVED_BYTES = CONTROL_INTS * 4 + 64 * MAX_THREADS;
/** Byte address of thread 0's throw-away float; thread t's is 64 * t bytes further (the module adds it). */
export const SINK_ADDRESS = CONTROL_INTS * 4;
/** Byte address of a float that is always 0, read for elements outside the input. */
export const ZERO_ADDRESS = 31 * 4;

/** The exported routines; the last two arguments of each are the [from, to) range that threads split. */
export const ROUTINES = [
  'gemm',
  'gather',
  'gather8',
  'col2im8',
  'scatter',
  'maxpool',
  'maxpool2',
  'maxpool_backward',
  'pad_planes',
  'conv_gemm',
  'pack_a4',
  'sum_rows',
  'winograd_conv',
  'winograd4_conv',
  'winograd4_weights',
  'sgd',
  'step_project',
  'conv_rows',
  'lstm_gates',
  'lstm_gates_backward',
  'maxpool2_backward',
  'store_rows',
  'pairwise_terms',
] as const;
export type Routine = (typeof ROUTINES)[number];

/** Chunks per taking-part thread: enough to even out, few enough that claiming one costs nothing. */
const CHUNKS_PER_THREAD = 8;
/** The longest a thread polls before it sleeps (ms): a worker for the next call, the caller for chunks. */
const SPIN_MS = 2;
/**
 * Measured in windows of at least this many ms (and 8 calls) of threaded calls: the CPU time that the
 * process got during the calls, in cores (process.cpuUsage over wall time). Threads keep their number while
 * that is within FIT_SLACK of it; after two windows short of it in a row, as many take part as the cores got
 * (at least 1), and one more is tried BACKOFF_MS later for a shorter window (PROBE_MS, 4 calls), then after
 * twice as long each time it fails again (at most MAX_BACKOFF_MS). Measured on the 2-core development VM
 * with other programs' load kept low: 1.4-2.0 cores in windows of 2 threads on an idle machine, 0.7-1.2 with
 * one other busy process.
 */
const WINDOW_MS = 50;
/** Threaded calls per timed call (the windows count timed calls and their time only). */
const SAMPLE_EVERY = 4;
const PROBE_MS = 10;
const FIT_SLACK = 0.7;
const BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 3200;

// The helper thread's body (platform.startHelperThread puts module, memory, names, tid and ready() in scope:
// from workerData in Node, from a Web Worker's first message in a browser): waits for a new generation, then
// claims chunks of the range until none is left.
// Claims go through a compare-exchange on a word that holds the generation's tag with the chunk index, so a
// thread that comes late for a generation claims nothing (and reads the routine and its arguments only after
// a claim, so what it runs is always the current call's). The same claim as claimChunk below.
const WORKER_SOURCE = `
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
exports.set_thread(tid);
ready();
const fns = names.map((n) => exports[n]);
const ctl = new Int32Array(memory.buffer, 0, ${CONTROL_INTS});
function claim(tag) {
  for (;;) {
    const w = Atomics.load(ctl, ${C_CLAIM});
    if ((w & 0x7fff0000) !== tag) return -1;
    const c = w & 0xffff;
    if (c >= Atomics.load(ctl, ${C_CHUNKS})) return -1;
    if (Atomics.compareExchange(ctl, ${C_CLAIM}, w, w + 1) === w) return c;
  }
}
let seen = 0;
// How long the gaps between calls lasted lately (ms, each counted up to SPIN_MS).
let gap = ${SPIN_MS / 3};
for (;;) {
  // Not among the threads taking part: sleep until that changes (no wake-up per call).
  for (let a; tid >= (a = Atomics.load(ctl, ${C_ACTIVE})); ) Atomics.wait(ctl, ${C_ACTIVE}, a);
  // Poll for the next call about three times as long as the gaps lasted lately (at most SPIN_MS), then
  // sleep: waking a sleeping thread (a halted virtual CPU) took up to ~0.6 ms on the development VM, and an
  // attack calls the engine every few hundred microseconds; but a poll that finds nothing burns a core that
  // another program may want.
  const start = performance.now();
  const limit = Math.min(${SPIN_MS}, Math.max(0.1, 3 * gap));
  let polls = 0;
  while (Atomics.load(ctl, ${C_GENERATION}) === seen) {
    if ((++polls & 255) === 0 && performance.now() - start > limit) {
      Atomics.wait(ctl, ${C_GENERATION}, seen);
      break;
    }
  }
  gap += (Math.min(${SPIN_MS}, performance.now() - start) - gap) / 8;
  seen = Atomics.load(ctl, ${C_GENERATION});
  if (seen < 0) break;
  if (tid >= Atomics.load(ctl, ${C_ACTIVE})) continue;
  const tag = (seen & 0x7fff) << 16;
  let f = null;
  let args;
  let total = 0;
  let chunk = 0;
  let chunks = 0;
  for (let c; (c = claim(tag)) >= 0; ) {
    if (f === null) {
      f = fns[ctl[${C_ROUTINE}]];
      args = Array.from(ctl.subarray(${C_ARGS}, ${C_ARGS} + ctl[${C_ARGC}]));
      total = ctl[${C_TOTAL}];
      chunk = ctl[${C_CHUNK}];
      chunks = ctl[${C_CHUNKS}];
    }
    const from = c * chunk;
    f(...args, from, Math.min(from + chunk, total));
    if (Atomics.add(ctl, ${C_DONE}, 1) === chunks - 1) Atomics.notify(ctl, ${C_DONE});
  }
}
`;

/**
 * Claims the next chunk of the generation whose tag is `tag`: its index, or -1 when none is left or the
 * generation is over (the worker's claim, for the calling thread).
 */
function claimChunk(ctl: Int32Array, tag: number): number {
  for (;;) {
    const w = Atomics.load(ctl, C_CLAIM);
    if ((w & 0x7fff0000) !== tag) return -1;
    const c = w & 0xffff;
    if (c >= Atomics.load(ctl, C_CHUNKS)) return -1;
    if (Atomics.compareExchange(ctl, C_CLAIM, w, w + 1) === w) return c;
  }
}

export interface WasmCpuOptions {
  /** Threads, 1 to 16 (default: the host's logical CPUs, at most 16). */
  threads?: number;
}

/** The default thread count: the host's logical CPUs, at most MAX_THREADS. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(MAX_THREADS, platform.hardwareThreads()));
}

let compiled: Promise<WebAssembly.Module> | undefined;

/** Compiles the module (assembled at build time from cpu.wat.ts: cpu.wasm.gen.ts), once per process. */
async function compileModule(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    // Compile with the optimising tier only: V8 starts wasm functions in its baseline compiler (Liftoff) and
    // swaps in optimised code later, but a call that is already running stays in the baseline code, and our
    // routines are few, long calls. Measured: the GEMM core ran at 13-14 GFLOP/s in baseline code, 50-52
    // optimised. The flag only changes how later WebAssembly modules are compiled.
    try {
      platform.setEngineFlags('--no-liftoff');
    } catch {
      // An embedder that refuses V8 flags: the engine still works, its first calls are slower.
    }
    return WebAssembly.compile(cpuWasmBytes());
  })();
  return compiled;
}

/** A region of the engine's memory: a byte offset and a length in 4-byte elements (f32 or i32). */
export interface Region {
  readonly byteOffset: number;
  readonly floats: number;
}

export class WasmCpu {
  readonly memory: WebAssembly.Memory;
  readonly threads: number;
  private readonly fns: Record<Routine, (...args: number[]) => void>;
  private readonly workers: platform.HelperThread[] = [];
  /** Whether this thread may sleep in Atomics.wait (not on a browser page's main thread: it polls). */
  private readonly mayBlock = platform.callerMayBlock();
  private generation = 0;
  /** Threads taking part now (this one included); see WINDOW_MS. */
  private active: number;
  /** How long the caller polls for the workers' last chunks before it sleeps (ms). */
  private callerSpin = SPIN_MS;
  private windowCpuMs = 0;
  private windowMs = 0;
  private windowCalls = 0;
  private sampleCounter = 0;
  /** Whether the current window tries one thread more. */
  private probing = false;
  /** Windows in a row whose threads got fewer cores than they are. */
  private shortWindows = 0;
  private probeAt = 0;
  private backoff = BACKOFF_MS;
  private top = RESERVED_BYTES;
  private f32View: Float32Array;
  private i32View: Int32Array;
  private destroyed = false;

  private constructor(module: WebAssembly.Module, threads: number) {
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    const exports = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports;
    (exports.set_thread as (tid: number) => void)(0);
    this.fns = Object.fromEntries(ROUTINES.map((n) => [n, exports[n]])) as Record<
      Routine,
      (...a: number[]) => void
    >;
    this.f32View = new Float32Array(this.memory.buffer);
    this.i32View = new Int32Array(this.memory.buffer);
    this.threads = threads;
    this.active = threads;
    Atomics.store(this.i32View, C_ACTIVE, threads);
    for (let tid = 1; tid < threads; tid++) {
      this.workers.push(
        platform.startHelperThread(WORKER_SOURCE, { module, memory: this.memory, names: [...ROUTINES], tid }),
      );
    }
  }

  /** Compiles the module (once per process) and starts the helper threads. */
  static async create(options: WasmCpuOptions = {}): Promise<WasmCpu> {
    const threads = options.threads ?? defaultThreads();
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `WasmCpu: threads must be an integer from 1 to ${MAX_THREADS}, found ${threads}`,
      );
    }
    if (typeof SharedArrayBuffer === 'undefined') {
      throw new KernelError(
        'NO_WEBGPU',
        platform.runtime === 'node'
          ? 'WasmCpu needs SharedArrayBuffer and WebAssembly threads (Node 20 or newer)'
          : 'WasmCpu needs SharedArrayBuffer and WebAssembly threads: serve the page cross-origin isolated ' +
              '(Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp)',
      );
    }
    const module = await compileModule();
    // Ready before the first call (a worker that is still starting would look like one that gets no core),
    // then unref'd: idle workers never keep a process alive.
    let cpu: WasmCpu | null = null;
    try {
      cpu = new WasmCpu(module, threads);
      await Promise.all(cpu.workers.map((w) => w.ready));
    } catch (err) {
      cpu?.destroy();
      // The same code as a host without SharedArrayBuffer: the threaded engine cannot run here.
      throw new KernelError(
        'NO_WEBGPU',
        `WasmCpu: expected ${threads - 1} helper thread(s) to start, one failed (${err instanceof Error ? err.message : String(err)}); use fewer threads (threads: 1 needs none)`,
        { cause: err },
      );
    }
    for (const w of cpu.workers) w.unref();
    return cpu;
  }

  /** The whole memory as f32 (take it again after an allocation: the memory may have grown). */
  get f32(): Float32Array {
    if (this.f32View.length * 4 !== this.memory.buffer.byteLength) this.refreshViews();
    return this.f32View;
  }

  get i32(): Int32Array {
    if (this.i32View.length * 4 !== this.memory.buffer.byteLength) this.refreshViews();
    return this.i32View;
  }

  private refreshViews(): void {
    this.f32View = new Float32Array(this.memory.buffer);
    this.i32View = new Int32Array(this.memory.buffer);
  }

  /** Bytes in use (the top of the stack). */
  get used(): number {
    return this.top;
  }

  /** Allocates on the stack (64-byte aligned); free with reset(mark) for a mark taken before. */
  alloc(floats: number): Region {
    this.assertLive();
    const byteOffset = this.top;
    const end = byteOffset + Math.ceil((floats * 4) / 64) * 64;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) {
        throw new KernelError(
          'OUT_OF_MEMORY',
          `WasmCpu: ${(end / 2 ** 20).toFixed(0)} MiB needed, more than the ${(MAX_PAGES * PAGE) / 2 ** 20} MiB a WebAssembly memory may hold; use a smaller batch`,
        );
      }
      this.memory.grow(pages);
    }
    this.top = end;
    return { byteOffset, floats };
  }

  /** Copies data into a new region. */
  upload(data: Float32Array | Int32Array): Region {
    const r = this.alloc(data.length);
    (data instanceof Int32Array ? this.i32 : this.f32).set(data, r.byteOffset / 4);
    return r;
  }

  /** A copy of a region's floats. */
  read(r: Region): Float32Array {
    return this.f32.slice(r.byteOffset / 4, r.byteOffset / 4 + r.floats);
  }

  /** A live view of a region (valid until the next allocation). */
  view(r: Region): Float32Array {
    return this.f32.subarray(r.byteOffset / 4, r.byteOffset / 4 + r.floats);
  }

  mark(): number {
    return this.top;
  }

  /** Frees everything allocated after `mark`. */
  reset(mark: number): void {
    if (mark < RESERVED_BYTES || mark > this.top) {
      throw new KernelError('BAD_ARGUMENT', `WasmCpu.reset: mark ${mark} is not below the top ${this.top}`);
    }
    this.top = mark;
  }

  /**
   * Runs a routine over [0, total), `args` before the range. With several threads all take chunks (multiples
   * of `align`) of the range until none is left, so that a thread slowed by other work on its core does less
   * (the machines we run on are shared), and a worker that comes late takes nothing. Each output element is
   * computed by one chunk, the same code whichever thread runs it: results do not depend on the thread count.
   *
   * A worker that is taken off its core while it holds a chunk makes this thread wait for it (for a whole
   * time slice of another program). So the threads take part only while they get their cores: the process's
   * CPU time during the calls is measured (see WINDOW_MS), and on a machine too busy for them fewer threads
   * (down to this one alone) run the calls until one more is tried again.
   */
  run(routine: Routine, args: readonly number[], total: number, align = 1): void {
    this.assertLive();
    const fn = this.fns[routine];
    if (args.length > MAX_ARGS) {
      throw new KernelError('BAD_ARGUMENT', `WasmCpu.run: ${routine} takes at most ${MAX_ARGS} arguments`);
    }
    if (this.active === 1 && this.threads > 1 && performance.now() >= this.probeAt) this.tryOneMore();
    if (this.active > 1) {
      const chunk = Math.max(1, Math.ceil(total / (CHUNKS_PER_THREAD * this.active) / align)) * align;
      if (chunk < total) {
        this.runThreaded(fn, routine, args, total, chunk);
        return;
      }
    }
    fn(...args, 0, total);
  }

  private runThreaded(
    fn: (...a: number[]) => void,
    routine: Routine,
    args: readonly number[],
    total: number,
    chunk: number,
  ): void {
    // One threaded call in SAMPLE_EVERY is timed for the fit of the thread count: process.cpuUsage costs
    // ~12 us here (it sums every thread of the process), as much as a small routine call.
    const sample = this.sampleCounter++ % SAMPLE_EVERY === 0;
    const t0 = sample ? performance.now() : 0;
    const cpu0 = sample ? platform.processCpuMs() : null;
    const chunks = Math.ceil(total / chunk);
    const ctl = this.i32;
    ctl[C_ROUTINE] = ROUTINES.indexOf(routine);
    ctl[C_ARGC] = args.length;
    ctl.set(args, C_ARGS);
    ctl[C_TOTAL] = total;
    ctl[C_CHUNK] = chunk;
    ctl[C_CHUNKS] = chunks;
    Atomics.store(ctl, C_DONE, 0);
    this.generation = (this.generation % 0x3fffffff) + 1;
    const tag = (this.generation & 0x7fff) << 16;
    // The claim word last: a worker that sees this generation's tag sees everything above.
    Atomics.store(ctl, C_CLAIM, tag);
    Atomics.store(ctl, C_GENERATION, this.generation);
    Atomics.notify(ctl, C_GENERATION);
    let mine = 0;
    for (;;) {
      const c = claimChunk(ctl, tag);
      if (c < 0) break;
      const from = c * chunk;
      fn(...args, from, Math.min(from + chunk, total));
      mine++;
    }
    let done = Atomics.add(ctl, C_DONE, mine) + mine;
    if (done < chunks) {
      // Chunks that workers claimed are still running: poll about as long as such waits last, then sleep
      // (a worker that is late may be off its core, and may get this one's). The poll shrinks while waits
      // end well within it and doubles when one ended soon after the sleep began, the wake-up cost more
      // than polling on would have; a long wait (a worker off its core) leaves it as it is.
      const t1 = performance.now();
      let polls = 0;
      let slept = false;
      while (done < chunks) {
        if (this.mayBlock && (++polls & 63) === 0 && performance.now() - t1 > this.callerSpin) {
          Atomics.wait(ctl, C_DONE, done, 1000);
          slept = true;
        }
        done = Atomics.load(ctl, C_DONE);
      }
      const wait = performance.now() - t1;
      if (!slept) {
        if (wait < this.callerSpin / 4) this.callerSpin = Math.max(0.05, this.callerSpin * 0.95);
      } else if (wait < 2 * this.callerSpin + 0.5) this.callerSpin = Math.min(SPIN_MS, this.callerSpin * 2);
    }
    // No CPU time on this host (a browser): the thread count stays as it is.
    if (cpu0 === null) return;
    this.windowCpuMs += (platform.processCpuMs() ?? cpu0) - cpu0;
    this.windowMs += performance.now() - t0;
    const [calls, ms] = this.probing ? [4, PROBE_MS] : [8, WINDOW_MS];
    if (++this.windowCalls >= calls && this.windowMs >= ms) this.endWindow();
  }

  /** Fits the number of threads taking part to the cores that the window's calls got. */
  private endWindow(): void {
    const cores = this.windowCpuMs / this.windowMs;
    const fit = Math.max(1, Math.min(this.active, Math.floor(cores + FIT_SLACK)));
    const now = performance.now();
    this.shortWindows = fit < this.active ? this.shortWindows + 1 : 0;
    if (fit < this.active && (this.probing || this.shortWindows >= 2)) {
      this.shortWindows = 0;
      this.setActive(fit);
      this.probeAt = now + this.backoff;
      this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
      this.probing = false;
    } else if (fit === this.active) {
      if (this.probing) {
        this.backoff = BACKOFF_MS;
        this.probeAt = now + BACKOFF_MS;
        this.probing = false;
      }
      if (this.active < this.threads && now >= this.probeAt) this.tryOneMore();
    }
    this.windowCpuMs = 0;
    this.windowMs = 0;
    this.windowCalls = 0;
  }

  /** One thread more takes part (kept if the next window finds that the threads get their cores). */
  private tryOneMore(): void {
    this.setActive(this.active + 1);
    this.probing = true;
  }

  private setActive(n: number): void {
    this.active = n;
    Atomics.store(this.i32, C_ACTIVE, n);
    Atomics.notify(this.i32, C_ACTIVE);
  }

  /**
   * C (padded, (mPanels*4) x (nPanels*8), ldc = nPanels*8) = packed A (mPanels panels of 4 rows x K) times packed
   * B (nPanels panels of K x 8), split over the threads by B panels.
   */
  gemm(a: Region, b: Region, c: Region, mPanels: number, nPanels: number, K: number): void {
    if (
      a.floats < mPanels * MR * K ||
      b.floats < nPanels * NR * K ||
      c.floats < mPanels * MR * nPanels * NR
    ) {
      throw new KernelError('BAD_ARGUMENT', 'WasmCpu.gemm: a region is smaller than the panels it must hold');
    }
    // Chunks of 2 panels: 16 columns, whole 64-byte lines of C per thread.
    this.run('gemm', [a.byteOffset, b.byteOffset, c.byteOffset, mPanels, K, nPanels * NR], nPanels, 2);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.workers.length) {
      Atomics.store(this.i32, C_GENERATION, -1);
      Atomics.notify(this.i32, C_GENERATION);
      Atomics.store(this.i32, C_ACTIVE, MAX_THREADS);
      Atomics.notify(this.i32, C_ACTIVE);
      for (const w of this.workers) w.terminate();
    }
  }

  private assertLive(): void {
    if (this.destroyed) throw new KernelError('DESTROYED', 'WasmCpu: used after destroy()');
  }
}
