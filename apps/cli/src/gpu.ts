import {
  createGpu,
  type Gpu,
  type GpuBackend,
  type Engine as KernelEngine,
  KernelError,
  WebGpuEngine,
} from '@dhta/kernels';
import { WasmEngine } from '@dhta/kernels/wasm';
import { createNetwork, type HashingNetwork, loadBundle, type Network } from '@dhta/models';
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

/** Where the model runs: WebGPU kernels, or the WebAssembly SIMD engine on the CPU. */
export const ENGINES = ['auto', 'webgpu', 'wasm'] as const;
export type Engine = (typeof ENGINES)[number];

export function engineOption(value: string): Engine {
  if (!(ENGINES as readonly string[]).includes(value))
    throw new Error(`unknown engine "${value}"; expected one of ${ENGINES.join(', ')}`);
  return value as Engine;
}

export const ENGINE_HELP =
  'where the model runs: webgpu (the WGSL kernels), wasm (WebAssembly SIMD on the CPU cores), or auto ' +
  '(default): wasm when the WebGPU adapter is a software one (llvmpipe) or there is none, where it is ' +
  'several times faster, webgpu otherwise';

/**
 * The engine of a run: auto picks wasm on a software adapter or without a GPU. Both engines run every model
 * (`_task` is accepted for older callers and does not matter).
 */
export function resolveEngine(
  engine: Engine | undefined,
  gpu: Gpu | null,
  _task?: 'image' | 'video',
): 'webgpu' | 'wasm' {
  const e = engine ?? 'auto';
  if (!gpu) {
    if (e === 'webgpu') {
      throw new CliError(
        '--engine webgpu needs a WebGPU adapter, and none is open',
        'use --engine wasm or auto',
      );
    }
    return 'wasm';
  }
  if (e === 'auto') return gpu.adapter.isSoftware ? 'wasm' : 'webgpu';
  return e;
}

/**
 * The kernel engine of a run (see resolveEngine). A WebAssembly engine made here belongs to the caller
 * (destroy it; a network made with `ownEngine` does it when destroyed).
 */
export async function openEngine(
  gpu: Gpu | null,
  engine: Engine | undefined,
  cpuThreads?: number,
): Promise<KernelEngine> {
  if (resolveEngine(engine, gpu) === 'webgpu' && gpu) return new WebGpuEngine(gpu);
  return WasmEngine.create({ threads: cpuThreads });
}

/**
 * Opens the GPU for a command that can also run on the WebAssembly engine, and releases it at the end. With
 * --engine wasm no GPU is opened at all (hosts without any WebGPU driver); with --engine auto, when no
 * adapter is found (and none was named with --adapter or --backend), the command goes on without one and
 * runs on the WebAssembly engine (a line on stderr says so).
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
        `dhta: no WebGPU adapter (${e.message.split('. ')[0]}); models run on the WebAssembly engine\n`,
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

/** A model bundle opened on the engine of a run (the network owns a WebAssembly engine it runs on). */
export async function openNetwork(
  gpu: Gpu | null,
  dir: string,
  engine: Engine | undefined,
  cpuThreads?: number,
): Promise<Network> {
  const { spec, weights } = await loadBundle(dir);
  const e = await openEngine(gpu, engine, cpuThreads);
  try {
    return createNetwork(e, spec, weights, { ownEngine: true });
  } catch (err) {
    e.destroy();
    throw err;
  }
}

/** Where a network runs, for summaries: the adapter, or the WebAssembly engine and its threads. */
export function deviceOf(net: Pick<HashingNetwork, 'engine'>): string {
  const e = net.engine;
  return e instanceof WebGpuEngine ? e.gpu.adapter.description : e.description;
}
