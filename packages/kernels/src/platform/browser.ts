// The browser side of the platform seam (see types.ts): navigator.gpu instead of dawn.node, Web Workers
// instead of worker_threads. Imports nothing of Node's, so the package bundles for a browser.
import type { DawnModule, HelperThread, HelperThreadData, Runtime } from './types.js';

export type { DawnModule, HelperThread, HelperThreadData } from './types.js';

export const runtime: Runtime = 'browser';

/** The few Web APIs used here, typed locally (the package compiles against Node's types). */
interface WebWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: { message?: string }) => void) | null;
  onmessageerror: ((event: unknown) => void) | null;
}
interface WebGlobals {
  navigator?: { hardwareConcurrency?: number };
  Worker?: new (url: string, options?: { name?: string }) => WebWorker;
  Blob?: new (parts: string[], options?: { type?: string }) => unknown;
  URL: { createObjectURL(blob: unknown): string; revokeObjectURL(url: string): void };
  WorkerGlobalScope?: unknown;
  crossOriginIsolated?: boolean;
}
const web = globalThis as unknown as WebGlobals;

/** There is no dawn.node in a browser: `navigator.gpu` is the entry point (gpu/webgpu.ts). */
export async function loadDawn(): Promise<DawnModule> {
  throw new Error('dawn.node is a Node addon; in a browser WebGPU is navigator.gpu');
}

/** Browsers have no environment variables. */
export function envVar(_name: string): string | undefined {
  return undefined;
}

/** navigator.hardwareConcurrency (1 where the browser does not say). */
export function hardwareThreads(): number {
  return web.navigator?.hardwareConcurrency ?? 1;
}

/** A page cannot set V8 flags: WebAssembly is compiled as the browser decides. */
export function setEngineFlags(_flags: string): void {}

/** A page cannot read its CPU time: the engine keeps its thread count (no fit to the cores it gets). */
export function processCpuMs(): number | null {
  return null;
}

/**
 * Whether the calling thread may block in Atomics.wait: in a worker yes; on a page's main thread the browser
 * forbids it, so the caller polls until the helpers are done.
 */
export function callerMayBlock(): boolean {
  return web.WorkerGlobalScope !== undefined;
}

/**
 * Starts a Web Worker that runs `body` (JavaScript) with `module`, `memory`, `names` and `tid` in scope and a
 * `ready()` to call once it is set up. Sharing the memory needs a cross-origin isolated page (COOP/COEP).
 */
export function startHelperThread(body: string, data: HelperThreadData): HelperThread {
  if (!web.Worker || !web.Blob) throw new Error('this host has no Web Workers');
  if (web.crossOriginIsolated === false) {
    throw new Error(
      'the page is not cross-origin isolated, so it cannot share WebAssembly memory with workers: serve it with ' +
        'Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp',
    );
  }
  const source = `self.onmessage = (event) => {
  self.onmessage = null;
  const { module, memory, names, tid } = event.data;
  const ready = () => self.postMessage('ready');
${body}
};`;
  const url = web.URL.createObjectURL(new web.Blob([source], { type: 'text/javascript' }));
  const worker = new web.Worker(url, { name: `dhta-wasm-${data.tid}` });
  const ready = new Promise<void>((ok, fail) => {
    worker.onerror = (event) => fail(new Error(event.message ?? 'worker error'));
    worker.onmessageerror = () => fail(new Error('the worker could not receive the module and memory'));
    worker.onmessage = () => {
      worker.onerror = null;
      worker.onmessageerror = null;
      worker.onmessage = null;
      web.URL.revokeObjectURL(url);
      ok();
    };
  });
  worker.postMessage(data);
  return { ready, unref: () => {}, terminate: () => worker.terminate() };
}
