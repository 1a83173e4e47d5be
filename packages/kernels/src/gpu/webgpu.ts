import * as platform from '#platform';
import { KernelError } from '../errors.js';

/** Dawn backends that dawn.node can be asked for. */
export type GpuBackend = 'vulkan' | 'metal' | 'd3d12' | 'd3d11' | 'opengl' | 'opengles' | 'null' | 'webgpu';

/** What `navigator.gpu` is, in Node (dawn.node) or in a browser. */
export interface GpuEntry {
  gpu: GPU;
  runtime: 'node' | 'browser';
}

type DawnModule = platform.DawnModule;

let dawn: DawnModule | null | undefined;
/**
 * One dawn instance per set of flags, kept for the life of the process: creating (and later collecting)
 * an instance for every context or adapter listing made dawn.node crash or hang at process exit.
 */
const instances = new Map<string, GPU>();

async function loadDawn(): Promise<DawnModule | null> {
  if (dawn !== undefined) return dawn;
  try {
    const mod = await platform.loadDawn();
    // dawn.node's classes (GPUBufferUsage, GPUMapMode, ...) must be globals for the WebGPU constants.
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    dawn = mod;
  } catch (err) {
    dawn = null;
    if (platform.envVar('DHTA_DEBUG')) console.error(err);
  }
  return dawn;
}

/** The backends worth trying on this platform, in order of preference. */
export function platformBackends(): GpuBackend[] {
  const os = platform.runtime === 'node' ? process.platform : 'browser';
  if (os === 'darwin') return ['metal'];
  if (os === 'win32') return ['d3d12', 'vulkan', 'd3d11'];
  return ['vulkan', 'opengles', 'opengl'];
}

/** Obtains a GPU entry point: `navigator.gpu` in browsers, dawn.node in Node. */
export async function gpuEntry(backend?: GpuBackend, adapterName?: string): Promise<GpuEntry> {
  if (platform.runtime === 'browser') {
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (nav?.gpu) return { gpu: nav.gpu, runtime: 'browser' };
    throw new KernelError(
      'NO_WEBGPU',
      'WebGPU is not available: this browser has no navigator.gpu. Use a browser with WebGPU enabled, on a ' +
        'page served over https or from localhost (WebGPU needs a secure context), or the WebAssembly engine.',
    );
  }
  const mod = await loadDawn();
  if (!mod) {
    throw new KernelError(
      'NO_WEBGPU',
      'WebGPU is not available: the npm package "webgpu" (dawn.node) could not be loaded. ' +
        'Install the workspace dependencies (pnpm install) or run in a browser with WebGPU.',
    );
  }
  const flags: string[] = [];
  if (backend) flags.push(`backend=${backend}`);
  if (adapterName) flags.push(`adapter=${adapterName}`);
  const extra = platform.envVar('DHTA_DAWN_FLAGS');
  if (extra) flags.push(...extra.split(' '));
  const key = flags.join('|');
  let gpu = instances.get(key);
  if (!gpu) {
    gpu = mod.create(flags);
    instances.set(key, gpu);
  }
  return { gpu, runtime: 'node' };
}

export interface SeenAdapter {
  backend: GpuBackend;
  description: string;
}

/** Lists the adapters each backend of this platform offers, for error messages and `dhta doctor`. */
export async function listAdapters(): Promise<SeenAdapter[]> {
  const seen: SeenAdapter[] = [];
  for (const backend of platformBackends()) {
    try {
      const { gpu } = await gpuEntry(backend);
      const adapter = await gpu.requestAdapter();
      if (adapter) seen.push({ backend, description: describeAdapter(adapter.info) });
    } catch {
      // A backend that cannot start simply offers no adapter.
    }
  }
  return seen;
}

export function describeAdapter(info: GPUAdapterInfo): string {
  return (
    info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ') || 'unknown'
  );
}

/** A software rasteriser/compute implementation (llvmpipe, lavapipe, SwiftShader, WARP) rather than a GPU. */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return fallback || /llvmpipe|lavapipe|swiftshader|warp|software|microsoft basic render/.test(text);
}

export const NO_ADAPTER_REMEDY =
  'On Debian 12 without a GPU, install Mesa 25 software Vulkan from bookworm-backports: ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` (see README: `bash scripts/setup.sh` does it), ' +
  'or on a GPU host install the vendor Vulkan driver and libvulkan1.';
