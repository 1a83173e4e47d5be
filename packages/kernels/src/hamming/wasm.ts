import { hammingWasmBytes } from './hamming.wasm.gen.ts';

/**
 * The WebAssembly module of the Hamming kernels: its text is hamming.wat.ts (exports, semantics and why the
 * loops are scalar are described there); scripts/gen-wasm.ts assembles it at build time into
 * hamming.wasm.gen.ts, whose base64 bytes are decoded here (no toolchain and no file reads at run time, so
 * it works in a browser too). A new array each call.
 *
 * Self-contained (references nothing outside the Hamming folder), like `createHammingKernels`.
 */
export function buildHammingWasm(): Uint8Array {
  return hammingWasmBytes();
}
