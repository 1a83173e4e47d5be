/**
 * The portable Hamming search: everything that runs in any JavaScript host (browsers included), with no
 * import of a Node module. It is the entry point of the `@dhta/hamming` package in browsers; node.ts adds
 * Node's worker threads and the file functions on top, and index.ts (`@dhta/kernels/hamming`) adds the
 * WebGPU path and the benchmarks for the workspace.
 */
export {
  type BackendKind,
  type BackendOp,
  CpuBackend,
  type CpuOptions,
  disposeHammingWorkers,
  type GpuBackendFactory,
  type HammingBackend,
  type HammingDatabase,
  MIN_PARALLEL_WORK,
  type RangeSearchResult,
  type RankResult,
  registerGpuBackend,
  type SearchResult,
} from './backend.ts';
export {
  bytesPerCode,
  type Codes,
  type CodesInput,
  fromFaissBytes,
  fromPm1,
  fromWords,
  MAX_BITS,
  MIN_BITS,
  toCodes,
  toFaissBytes,
  wordsPerCode,
} from './codes.ts';
export { HammingError, type HammingErrorCode } from './errors.ts';
export {
  crc32,
  type DecodeOptions,
  decodeIndexFile,
  encodeIndexFile,
  INDEX_HEADER_BYTES,
  INDEX_MAGIC,
  INDEX_VERSION,
} from './file.ts';
export { type BackendChoice, HammingIndex, type HammingIndexOptions } from './hamming-index.ts';
export type { KernelVariant } from './kernels.ts';
export {
  firstNonFinite,
  NPY_MAX_DIMS,
  NPY_MAX_HEADER_CHARS,
  type NpyArray,
  type NpyData,
  type NpyDtype,
  readNpy,
  writeNpy,
} from './npy.ts';
export { createRng, type Rng, randomWords } from './random.ts';
