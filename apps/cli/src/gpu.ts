import { createGpu, type Gpu, type GpuBackend, KernelError, type WebGpuEngine } from '@dhta/kernels';
import { CpuImageNetwork, type HashingNetwork, loadBundle, loadNetwork, loadSpec } from '@dhta/models';
import { CliError } from './errors.js';

export interface GpuFlags {
  backend?: string;
  adapter?: string;
}

const BACKENDS = ['vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'null', 'webgpu'];

export function backendOption(value: string): GpuBackend {
  if (!BACKENDS.includes(value))
    throw new Error(`unknown backend "${value}"; expected one of ${BACKENDS.join(', ')}`);
  return value as GpuBackend;
}

/** Opens the GPU for a command and guarantees it is released (so the process exits) whatever happens. */
export async function withGpu<T>(flags: GpuFlags, fn: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await createGpu({ backend: flags.backend as GpuBackend | undefined, adapter: flags.adapter });
  try {
    return await fn(gpu);
  } finally {
    gpu.destroy();
  }
}

/** Where the attack loop runs: WebGPU kernels, or the WebAssembly SIMD engine on the CPU (image models). */
export const ENGINES = ['auto', 'webgpu', 'wasm'] as const;
export type Engine = (typeof ENGINES)[number];

export function engineOption(value: string): Engine {
  if (!(ENGINES as readonly string[]).includes(value))
    throw new Error(`unknown engine "${value}"; expected one of ${ENGINES.join(', ')}`);
  return value as Engine;
}

export const ENGINE_HELP =
  'where the attack loop runs: webgpu (the WGSL kernels), wasm (WebAssembly SIMD on the CPU cores; image ' +
  'models), or auto (default): wasm for image models when the WebGPU adapter is a software one (llvmpipe), ' +
  'where it is several times faster, webgpu otherwise';

/** The engine of a run: auto picks wasm for image models on a software adapter or without a GPU. */
export function resolveEngine(
  engine: Engine | undefined,
  gpu: Gpu | null,
  task: 'image' | 'video',
): 'webgpu' | 'wasm' {
  const e = engine ?? 'auto';
  if (e === 'wasm' && task !== 'image') {
    throw new CliError(
      '--engine wasm runs image models only (the WebAssembly engine has no LSTM)',
      'use --engine webgpu (or auto) for video models',
    );
  }
  if (!gpu) {
    if (task !== 'image') {
      throw new CliError(
        'video models need a WebGPU adapter, and none is open',
        'install a WebGPU driver (dhta doctor says which), or run image models',
      );
    }
    return 'wasm';
  }
  if (e === 'auto') return task === 'image' && gpu.adapter.isSoftware ? 'wasm' : 'webgpu';
  return e;
}

/**
 * Opens the GPU for a command that can also run on the WebAssembly engine, and releases it at the end. With
 * --engine wasm no GPU is opened at all (hosts without any WebGPU driver); with --engine auto, when no
 * adapter is found (and none was named with --adapter or --backend), the command goes on without one and
 * runs image models on the WebAssembly engine (a line on stderr says so).
 */
export async function withOptionalGpu<T>(
  flags: GpuFlags & { engine?: Engine },
  fn: (gpu: Gpu | null) => Promise<T>,
): Promise<T> {
  if (flags.engine === 'wasm') return fn(null);
  let gpu: Gpu;
  try {
    gpu = await createGpu({ backend: flags.backend as GpuBackend | undefined, adapter: flags.adapter });
  } catch (e) {
    const auto = (flags.engine ?? 'auto') === 'auto' && !flags.adapter && !flags.backend;
    if (auto && e instanceof KernelError && (e.code === 'NO_ADAPTER' || e.code === 'NO_WEBGPU')) {
      process.stderr.write(
        `dhta: no WebGPU adapter (${e.message.split('. ')[0]}); image models run on the WebAssembly engine\n`,
      );
      return fn(null);
    }
    throw e;
  }
  try {
    return await fn(gpu);
  } finally {
    gpu.destroy();
  }
}

/** A model bundle opened on the engine of a run: the WebGPU network, or the image network on the CPU engine. */
export async function openNetwork(
  gpu: Gpu | null,
  dir: string,
  engine: Engine | undefined,
  cpuThreads?: number,
): Promise<HashingNetwork | CpuImageNetwork> {
  const spec = await loadSpec(dir);
  if (resolveEngine(engine, gpu, spec.task) === 'webgpu' && gpu) return loadNetwork(gpu, dir);
  const bundle = await loadBundle(dir);
  return CpuImageNetwork.create(bundle.spec, bundle.weights, { threads: cpuThreads });
}

/** Where a network runs, for summaries: the adapter, or the WebAssembly engine and its threads. */
export function deviceOf(net: HashingNetwork | CpuImageNetwork): string {
  return net instanceof CpuImageNetwork
    ? `WebAssembly SIMD, ${net.cpu.threads} CPU thread${net.cpu.threads > 1 ? 's' : ''}`
    : net.engine.kind === 'webgpu'
      ? (net.engine as WebGpuEngine).gpu.adapter.description
      : net.engine.description;
}
