/// <reference path="../wasm/webassembly.d.ts" />
// What the kernels need from their host that differs between Node and a browser. One implementation per
// host (node.ts, browser.ts), chosen by the package's "#platform" import (package.json "imports": the
// "browser" condition, which bundlers set for browser builds, else Node's).

/** The data a helper thread of the WebAssembly engine starts with. */
export interface HelperThreadData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  names: string[];
  tid: number;
}

/** A started helper thread. */
export interface HelperThread {
  /** Resolves when the thread has instantiated the module; rejects if it fails or exits first. */
  ready: Promise<void>;
  /** Lets the host exit while the thread idles (Node); nothing in a browser. */
  unref(): void;
  terminate(): void;
}

/** dawn.node's module: an entry point per set of flags, and the WebGPU classes to install as globals. */
export interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

/** Which host the package was built for. */
export type Runtime = 'node' | 'browser';
