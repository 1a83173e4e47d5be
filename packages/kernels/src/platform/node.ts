// The Node side of the platform seam (see types.ts): dawn.node, worker_threads, os and v8.
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { DawnModule, HelperThread, HelperThreadData, Runtime } from './types.js';

export type { DawnModule, HelperThread, HelperThreadData } from './types.js';

export const runtime: Runtime = 'node';

/** dawn.node (npm `webgpu`), loaded on first use only: hosts without a GPU never load the addon. */
export async function loadDawn(): Promise<DawnModule> {
  return (await import('webgpu')) as unknown as DawnModule;
}

/** An environment variable (undefined where there are none). */
export function envVar(name: string): string | undefined {
  return process.env[name];
}

/** The host's logical CPUs. */
export function hardwareThreads(): number {
  return availableParallelism();
}

/** Sets V8 flags for code compiled later (here: WebAssembly without the baseline tier); throws if refused. */
export function setEngineFlags(flags: string): void {
  setFlagsFromString(flags);
}

/** CPU time the process has had (ms, all threads), or null where the host cannot tell. */
export function processCpuMs(): number | null {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Whether the thread that calls the engine may block in Atomics.wait (always, in Node). */
export function callerMayBlock(): boolean {
  return true;
}

/**
 * Starts a helper thread that runs `body` (JavaScript) with `module`, `memory`, `names` and `tid` in scope and
 * a `ready()` to call once it is set up.
 */
export function startHelperThread(body: string, data: HelperThreadData): HelperThread {
  const source = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory, names, tid } = workerData;
const ready = () => parentPort.postMessage('ready');
${body}`;
  const worker = new Worker(source, { eval: true, workerData: data });
  const ready = new Promise<void>((ok, fail) => {
    const onError = (err: Error) => fail(err);
    const onExit = (code: number) => fail(new Error(`exited with code ${code}`));
    worker.once('error', onError);
    worker.once('exit', onExit);
    worker.once('message', () => {
      worker.off('error', onError);
      worker.off('exit', onExit);
      ok();
    });
  });
  return {
    ready,
    unref: () => worker.unref(),
    terminate: () => void worker.terminate(),
  };
}
