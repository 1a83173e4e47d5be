/**
 * @dhta/kernels/hamming: exact Hamming k-NN, radius search and ranking over bit-packed binary codes.
 * See README.md in this folder. The same search without the GPU path and the benchmarks is the
 * `@dhta/hamming` package (packages/hamming): lib.ts is its portable entry point, node.ts its Node one.
 */
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
  disableGpuHamming,
  enableGpuHamming,
  GpuHammingBackend,
  type GpuHammingOptions,
  selectK,
  selectRadius,
} from './gpu.ts';
// The portable API and the Node file functions (node.ts installs Node's threads and file system on import).
export * from './node.ts';
