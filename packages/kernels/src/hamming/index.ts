/**
 * @dhta/kernels/hamming: exact Hamming k-NN, radius search and ranking over bit-packed binary codes.
 * See README.md in this folder.
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
  type BenchOptions,
  type BenchResult,
  benchData,
  benchHamming,
  benchHammingWithPeer,
  type PeerOptions,
  type PeerResult,
} from './bench.ts';
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
  readIndexFile,
  writeFileAtomic,
} from './file.ts';
export {
  disableGpuHamming,
  enableGpuHamming,
  GpuHammingBackend,
  type GpuHammingOptions,
  selectK,
  selectRadius,
} from './gpu.ts';
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
  readNpyFile,
  writeNpy,
  writeNpyFile,
} from './npy.ts';
export { createRng, type Rng, randomWords } from './random.ts';
