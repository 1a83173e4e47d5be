/// <reference path="./webassembly.d.ts" />
// The WebAssembly CPU engine: one linear memory shared with a helper thread, a stack allocator over it, and
// the routines of cpu.wat.ts run on two threads (this one and one worker) that split each call's range.
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import wabtFactory from 'wabt';
import { KernelError } from '../errors.js';
import { cpuModuleText, MR, NR } from './cpu.wat.js';

const PAGE = 65536;
/** 2 GiB of address space at most (the memory grows on demand; only what is used is committed). */
const MAX_PAGES = 32768;
/** The most memory the engine may use (bytes). */
export const MAX_MEMORY_BYTES = MAX_PAGES * PAGE;
/**
 * Control block at the bottom of memory (i32): [0] generation, [1] workers done with it, [2] routine,
 * [3] argument count, [4] the next unclaimed index of the range (claimed with Atomics.add), [5] the range's
 * end, [6] the chunk, [7..30] the workers' arguments, [31] a float that stays 0 (ZERO). Then one 64-byte line
 * of throw-away floats per thread (SINK), so that the threads' writes there do not bounce a line between cores.
 */
const CONTROL_INTS = 32;
/** Threads at most (one throw-away line each). */
export const MAX_THREADS = 16;
/** How long a thread polls for work before it sleeps (ms). */
const SPIN_MS = 2;
const C_ROUTINE = 2;
const C_ARGC = 3;
const C_NEXT = 4;
const C_TOTAL = 5;
const C_CHUNK = 6;
const C_ARGS = 7;
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
  'unpack_conv',
] as const;
export type Routine = (typeof ROUTINES)[number];

// The helper thread: waits for a new generation, then takes chunks of the range until none is left.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, names, tid } = workerData;
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
exports.set_thread(tid);
const fns = names.map((n) => exports[n]);
const ctl = new Int32Array(memory.buffer, 0, ${CONTROL_INTS});
let seen = 0;
for (;;) {
  // Poll for up to SPIN_MS before sleeping: waking a sleeping thread (a halted virtual CPU) took up to
  // ~0.6 ms per call on the development VM, and an attack calls the engine every few hundred microseconds.
  const start = performance.now();
  let polls = 0;
  while (Atomics.load(ctl, 0) === seen) {
    if ((++polls & 1023) === 0 && performance.now() - start > ${SPIN_MS}) {
      Atomics.wait(ctl, 0, seen);
      break;
    }
  }
  seen = Atomics.load(ctl, 0);
  if (seen < 0) break;
  const f = fns[ctl[${C_ROUTINE}]];
  const args = Array.from(ctl.subarray(${C_ARGS}, ${C_ARGS} + ctl[${C_ARGC}]));
  const total = ctl[${C_TOTAL}];
  const chunk = ctl[${C_CHUNK}];
  for (;;) {
    const from = Atomics.add(ctl, ${C_NEXT}, chunk);
    if (from >= total) break;
    f(...args, from, Math.min(from + chunk, total));
  }
  Atomics.add(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}
`;

export interface WasmCpuOptions {
  /** Threads, 1 to 16 (default: the host's logical CPUs, at most 16). */
  threads?: number;
}

/** The default thread count: the host's logical CPUs, at most MAX_THREADS. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(MAX_THREADS, availableParallelism()));
}

let compiled: Promise<WebAssembly.Module> | undefined;

async function compileModule(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const wabt = await wabtFactory();
    // Compile with the optimising tier only: V8 starts wasm functions in its baseline compiler (Liftoff) and
    // swaps in optimised code later, but a call that is already running stays in the baseline code, and our
    // routines are few, long calls. Measured: the GEMM core ran at 13-14 GFLOP/s in baseline code, 50-52
    // optimised. The flag only changes how later WebAssembly modules are compiled.
    try {
      setFlagsFromString('--no-liftoff');
    } catch {
      // An embedder that refuses V8 flags: the engine still works, its first calls are slower.
    }
    const parsed = wabt.parseWat('cpu.wat', cpuModuleText(true, MAX_PAGES), { simd: true, threads: true });
    try {
      const { buffer } = parsed.toBinary({});
      return WebAssembly.compile(buffer);
    } finally {
      parsed.destroy();
    }
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
  private readonly workers: Worker[] = [];
  private generation = 0;
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
    for (let tid = 1; tid < threads; tid++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, memory: this.memory, names: [...ROUTINES], tid },
      });
      worker.unref();
      this.workers.push(worker);
    }
  }

  /** Assembles the module (once per process) and starts the helper thread. */
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
        'WasmCpu needs SharedArrayBuffer and WebAssembly threads (Node 20 or newer)',
      );
    }
    return new WasmCpu(await compileModule(), threads);
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
   * (the machines we run on are shared).
   */
  run(routine: Routine, args: readonly number[], total: number, align = 1): void {
    this.assertLive();
    const fn = this.fns[routine];
    if (args.length > MAX_ARGS) {
      throw new KernelError('BAD_ARGUMENT', `WasmCpu.run: ${routine} takes at most ${MAX_ARGS} arguments`);
    }
    // About 8 chunks per thread: enough to even out, few enough that claiming one costs nothing.
    const chunk = Math.max(1, Math.ceil(total / (8 * this.threads) / align)) * align;
    const workers = this.workers.length;
    if (workers === 0 || chunk >= total) {
      fn(...args, 0, total);
      return;
    }
    const ctl = this.i32;
    ctl[C_ROUTINE] = ROUTINES.indexOf(routine);
    ctl[C_ARGC] = args.length;
    ctl.set(args, C_ARGS);
    ctl[C_TOTAL] = total;
    ctl[C_CHUNK] = chunk;
    Atomics.store(ctl, C_NEXT, 0);
    Atomics.store(ctl, 1, 0);
    this.generation = (this.generation % 0x3fffffff) + 1;
    Atomics.store(ctl, 0, this.generation);
    Atomics.notify(ctl, 0);
    for (;;) {
      const from = Atomics.add(ctl, C_NEXT, chunk);
      if (from >= total) break;
      fn(...args, from, Math.min(from + chunk, total));
    }
    // The workers are finishing their last chunks: poll, then sleep if it takes long.
    const start = performance.now();
    let polls = 0;
    for (;;) {
      const done = Atomics.load(ctl, 1);
      if (done === workers) break;
      if ((++polls & 1023) === 0 && performance.now() - start > SPIN_MS) Atomics.wait(ctl, 1, done, 1000);
    }
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
      Atomics.store(this.i32, 0, -1);
      Atomics.notify(this.i32, 0);
      for (const w of this.workers) void w.terminate();
    }
  }

  private assertLive(): void {
    if (this.destroyed) throw new KernelError('DESTROYED', 'WasmCpu: used after destroy()');
  }
}
