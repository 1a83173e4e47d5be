export { benchKernels, type KernelBenchOptions, type KernelBenchRow, kernelBenchCases } from './bench.js';
export type {
  Engine,
  EngineAttackProjectOptions,
  EngineConvOptions,
  EngineDType,
  EngineKind,
  EngineLstmForward,
  EngineLstmGradients,
  EngineLstmWeights,
  EngineMatmulOptions,
  EngineTensor,
} from './engine.js';
export { PAIRWISE_CHUNK } from './engine.js';
export { KernelError, type KernelErrorCode } from './errors.js';
export {
  type AdapterDescription,
  createGpu,
  type Dispatch,
  Gpu,
  type GpuOptions,
  grid,
  type ProfileEntry,
  type UniformValue,
} from './gpu/context.js';
export { WebGpuEngine } from './gpu/engine.js';
export { BufferPool } from './gpu/pool.js';
export { type DType, shapeSize, Tensor } from './gpu/tensor.js';
export { type GpuBackend, isSoftwareAdapter, listAdapters, platformBackends } from './gpu/webgpu.js';
export * from './ops/index.js';
export {
  DRIVER_PROBES,
  type DriverProbeName,
  type DriverProbeOptions,
  type DriverProbeResult,
  type DriverProbeRow,
  probeDriver,
} from './probe.js';
