import { listAdapters } from '@dhta/kernels';
import { defaultThreads, WasmCpu } from '@dhta/kernels/wasm';
import type { Command } from 'commander';
import { backendOption, type GpuFlags, withGpu } from './gpu.js';
import { formatTable, printJson } from './output.js';

const KEY_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
];

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('Show the WebGPU adapter this machine offers: backend, limits, features, software or not')
    .option(
      '--backend <name>',
      'Dawn backend to use (vulkan, metal, d3d12, ...); default: the platform default',
      backendOption,
    )
    .option('--adapter <name>', 'adapter name as listed by Dawn; default: the first high-performance one')
    .option('--json', 'print one JSON object instead of text')
    .action(async (o: GpuFlags & { json?: boolean }) => {
      const seen = await listAdapters();
      // The WebAssembly engine: assembled and started once to prove it works here.
      let cpuEngine: { available: boolean; threads: number; error?: string };
      try {
        const cpu = await WasmCpu.create({ threads: 1 });
        cpu.destroy();
        cpuEngine = { available: true, threads: defaultThreads() };
      } catch (e) {
        cpuEngine = { available: false, threads: 0, error: (e as Error).message };
      }
      await withGpu(o, async (gpu) => {
        const report = {
          cpuEngine: {
            ...cpuEngine,
            autoEngine: gpu.adapter.isSoftware && cpuEngine.available ? 'wasm' : 'webgpu',
          },
          adapter: gpu.adapter,
          adaptersSeen: seen,
          node: process.version,
          platform: `${process.platform}-${process.arch}`,
          timestampQuery: gpu.hasTimestamps,
          limits: gpu.limits,
          features: gpu.features,
        };
        if (o.json) return printJson(report);
        const a = gpu.adapter;
        console.log(`adapter      ${a.description}`);
        console.log(
          `vendor       ${a.vendor || '-'}  architecture ${a.architecture || '-'}  device ${a.device || '-'}`,
        );
        console.log(`backend      ${a.backend} (${a.runtime})`);
        console.log(`software     ${a.isSoftware ? 'yes: a CPU implementation, expect CPU speeds' : 'no'}`);
        console.log(
          `timestamps   ${gpu.hasTimestamps ? 'yes (GPU timing by timestamp queries)' : 'no (wall-clock timing)'}`,
        );
        console.log(
          `adapters     ${seen.map((s) => `${s.backend}: ${s.description}`).join('; ') || 'none listed'}`,
        );
        console.log('');
        console.log(
          formatTable(
            ['limit', 'value'],
            KEY_LIMITS.map((k) => [k, gpu.limits[k] ?? '-']),
          ),
        );
        console.log('');
        console.log(`features     ${gpu.features.join(', ')}`);
        console.log(
          `cpu engine   ${
            cpuEngine.available
              ? `WebAssembly SIMD, ${cpuEngine.threads} thread${cpuEngine.threads > 1 ? 's' : ''}; --engine auto runs models on ${report.cpuEngine.autoEngine}`
              : `not available (${cpuEngine.error})`
          }`,
        );
      });
    });
}
