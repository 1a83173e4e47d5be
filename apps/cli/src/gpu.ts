import { createGpu, type Gpu, type GpuBackend } from '@dhta/kernels';
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

/** The engine of a run: auto picks wasm for image models on a software adapter. */
export function resolveEngine(
  engine: Engine | undefined,
  gpu: Gpu,
  task: 'image' | 'video',
): 'webgpu' | 'wasm' {
  const e = engine ?? 'auto';
  if (e === 'wasm' && task !== 'image') {
    throw new CliError(
      '--engine wasm runs image models only (the WebAssembly engine has no LSTM)',
      'use --engine webgpu (or auto) for video models',
    );
  }
  if (e === 'auto') return task === 'image' && gpu.adapter.isSoftware ? 'wasm' : 'webgpu';
  return e;
}
