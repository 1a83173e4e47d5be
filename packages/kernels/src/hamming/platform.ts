/**
 * What the Hamming search needs from its host beyond JavaScript itself: worker threads, a file system, the
 * number of cores, a native CRC-32. Nothing here imports a Node module, so every module of the search
 * bundles for a browser; node.ts (the one Node-only module) installs Node's versions with
 * `setHammingPlatform` when it is imported. Without it, as in a browser, the search runs on the calling
 * thread and the file functions throw NO_FILE_SYSTEM.
 */

/** The part of a Node `Worker` (node:worker_threads) that pool.ts uses. */
export interface HammingWorker {
  /** 'message' passes the message, 'error' an Error, 'exit' the exit code. */
  // biome-ignore lint/suspicious/noExplicitAny: the argument's type depends on the event, as in Node's Worker.
  on(event: 'message' | 'error' | 'exit', listener: (value: any) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: as for `on`.
  once(event: 'message' | 'error', listener: (value: any) => void): unknown;
  postMessage(message: unknown, transfer?: readonly ArrayBuffer[]): void;
  /** Lets the process exit while the worker is idle (ref: keeps it alive while work is pending). */
  ref(): void;
  unref(): void;
  terminate(): Promise<unknown>;
}

export interface HammingPlatform {
  /** Where this runs, for messages: 'node' or 'web' (any other JavaScript host). */
  readonly name: string;
  /** Cores that worker threads may use. */
  availableParallelism(): number;
  /**
   * Starts a worker thread running `source`, a CommonJS script that reads `workerData` and talks through
   * `parentPort` of node:worker_threads (see pool.ts); null where there are no worker threads.
   */
  startWorker: ((source: string, workerData: unknown) => HammingWorker) | null;
  /** Reads a whole file; null where there is no file system. */
  readFile: ((path: string) => Promise<Uint8Array>) | null;
  /** Writes a file under a temporary name in the same folder, then renames it; null without a file system. */
  writeFileAtomic: ((path: string, bytes: Uint8Array) => Promise<void>) | null;
  /** A native CRC-32 (IEEE, as zlib's), when the host has one; else file.ts computes it with a table. */
  crc32: ((bytes: Uint8Array) => number) | null;
}

/** Any JavaScript host (a browser, a Web Worker, Deno...): no threads of ours, no files. */
export const WEB_PLATFORM: HammingPlatform = {
  name: 'web',
  availableParallelism: () => 1,
  startWorker: null,
  readFile: null,
  writeFileAtomic: null,
  crc32: null,
};

let current: HammingPlatform = WEB_PLATFORM;

/** The host's capabilities as installed (WEB_PLATFORM until node.ts installs Node's). */
export function hammingPlatform(): HammingPlatform {
  return current;
}

/** Installs a host's capabilities; indexes created afterwards use them. */
export function setHammingPlatform(platform: HammingPlatform): void {
  current = platform;
}
