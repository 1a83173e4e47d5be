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
export { type BackendChoice, HammingIndex, type HammingIndexOptions } from './hamming-index.ts';
export type { KernelVariant } from './kernels.ts';
