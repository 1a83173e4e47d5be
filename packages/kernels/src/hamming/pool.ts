/**
 * Worker threads for the CPU kernels. Each worker rebuilds the kernels from the source text of
 * `createHammingKernels` (self-contained by design) and the WebAssembly bytes, so no separate worker file
 * has to be shipped or built. The database travels as a SharedArrayBuffer view: no copy per task.
 *
 * Workers are unref'd while idle, so an idle pool never keeps a process alive. They are started through
 * the platform (platform.ts: Node's worker_threads, installed by node.ts), so this module imports nothing
 * from Node itself.
 */
import { HammingError } from './errors.ts';
import { createHammingKernels } from './kernels.ts';
import type { HammingPlatform, HammingWorker } from './platform.ts';

export type KernelOp = 'knn' | 'range' | 'histogram' | 'rank';

export interface KernelTask {
  op: KernelOp;
  db: Uint32Array;
  bits: number;
  q: Uint32Array;
  q0: number;
  q1: number;
  j0: number;
  j1: number;
  /** k for knn, radius for range; unused otherwise. */
  param: number;
}

function workerSource(): string {
  // `__name` is the helper that esbuild-based loaders (tsx, keepNames) may call inside the function text.
  return `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
var __name = (f) => f;
const createHammingKernels = ${createHammingKernels.toString()};
let kernels;
try {
  kernels = createHammingKernels(workerData.wasm);
  parentPort.postMessage({ ready: true, variant: kernels.variant });
} catch (e) {
  parentPort.postMessage({ ready: false, error: String((e && e.stack) || e) });
}
parentPort.on('message', (m) => {
  try {
    let result;
    let transfer = [];
    if (m.op === 'knn') {
      result = kernels.knn(m.db, m.bits, m.q, m.q0, m.q1, m.j0, m.j1, m.param);
      transfer = [result.distances.buffer, result.ids.buffer];
    } else if (m.op === 'range') {
      result = kernels.range(m.db, m.bits, m.q, m.q0, m.q1, m.j0, m.j1, m.param);
      transfer = [result.lims.buffer, result.distances.buffer, result.ids.buffer];
    } else if (m.op === 'histogram') {
      result = kernels.histogram(m.db, m.bits, m.q, m.q0, m.q1, m.j0, m.j1);
      transfer = [result.buffer];
    } else if (m.op === 'rank') {
      result = kernels.rank(m.db, m.bits, m.q, m.q0, m.q1, m.j0, m.j1);
      transfer = [result.distances.buffer, result.ids.buffer];
    } else {
      throw new Error('unknown op ' + m.op);
    }
    parentPort.postMessage({ id: m.id, result }, transfer);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.stack) || e) });
  }
});
`;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

interface Slot {
  worker: HammingWorker;
  ready: Promise<void>;
  pending: Map<number, Pending>;
  dead: boolean;
}

export class WorkerPool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private disposed = false;

  /** `startWorker`: the platform's (see platform.ts); a pool is only made where there is one. */
  constructor(
    size: number,
    wasm: Uint8Array | null,
    startWorker: NonNullable<HammingPlatform['startWorker']>,
  ) {
    this.size = size;
    const source = workerSource();
    for (let i = 0; i < size; i++) {
      const worker = startWorker(source, { wasm });
      worker.unref();
      const pending = new Map<number, Pending>();
      const ready = new Promise<void>((resolve, reject) => {
        const onFirst = (m: { ready?: boolean; error?: string }) => {
          if (m.ready) resolve();
          else
            reject(
              new HammingError('WORKER_FAILED', `a worker thread could not build the kernels: ${m.error}`),
            );
        };
        worker.once('message', onFirst);
        worker.once('error', reject);
      });
      // A failed start must not surface as an unhandled rejection: callers see it through `run`.
      ready.catch(() => {});
      worker.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
        if (m.id === undefined) return;
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (pending.size === 0) worker.unref();
        if (m.error !== undefined) {
          p.reject(new HammingError('WORKER_FAILED', `a worker thread failed: ${m.error}`));
        } else p.resolve(m.result);
      });
      const slot: Slot = { worker, ready, pending, dead: false };
      const fail = (why: string) => {
        slot.dead = true;
        for (const p of pending.values())
          p.reject(new HammingError('WORKER_FAILED', `a worker thread ${why}`));
        pending.clear();
      };
      worker.on('error', (e) => fail(`died: ${e}`));
      worker.on('exit', (code) => fail(`exited with code ${code}`));
      this.slots.push(slot);
    }
  }

  /** Resolves when every worker has built its kernels; rejects if one could not. */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  /** False once a worker has died (out of memory, say): the pool should then be replaced. */
  get healthy(): boolean {
    return !this.disposed && this.slots.every((s) => !s.dead);
  }

  /** Runs tasks[i] on worker i % size. */
  run<T>(tasks: KernelTask[]): Promise<T[]> {
    if (this.disposed) {
      return Promise.reject(new HammingError('DISPOSED', 'the worker pool was disposed; create a new index'));
    }
    if (!this.healthy) {
      return Promise.reject(new HammingError('WORKER_FAILED', 'a worker thread of this pool has died'));
    }
    return Promise.all(
      tasks.map(async (task, i) => {
        const slot = this.slots[i % this.size];
        await slot.ready;
        const id = this.nextId++;
        return new Promise<T>((resolve, reject) => {
          slot.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
          slot.worker.ref();
          slot.worker.postMessage({ id, ...task });
        });
      }),
    );
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
