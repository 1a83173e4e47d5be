import { createGpu, type Gpu, type GpuBackend } from '@dhta/kernels';

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
