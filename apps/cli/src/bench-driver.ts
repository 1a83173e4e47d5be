// `dhta bench driver`: what limits compute kernels on this WebGPU implementation (multiply-adds, per-lane
// and uniform loads, workgroup memory, barriers, dispatches), from the probe kernels of @dhta/kernels.
import { loadavg } from 'node:os';
import { DRIVER_PROBES, type DriverProbeResult, type DriverProbeRow, probeDriver } from '@dhta/kernels';
import type { Command } from 'commander';
import { positiveInt } from './attack.js';
import { outFileReady, writeAtomic } from './bench.js';
import { CliError } from './errors.js';
import { backendOption, type GpuFlags, withGpu } from './gpu.js';
import { formatNumber, formatTable, printJson } from './output.js';

export interface DriverBenchResult extends DriverProbeResult {
  device: string;
  software: boolean;
  date: string;
  quick: boolean;
  reps: number;
  /** DHTA_DAWN_FLAGS at the time (e.g. enable-dawn-features=disable_robustness), or null. */
  dawnFlags: string | null;
  /** os.loadavg() when the run started: the machine is shared, so the figures move with it. */
  loadavg: number[];
}

const PROBE_HELP = `
Probes (each a tiny WGSL kernel over 2^18 invocations, workgroups of 64 unless said; its loop count is
calibrated so one dispatch takes about 40 ms; the median of --reps timed dispatches after a warm-up, GPU
time by timestamp queries where the device has them; rates are for the whole device, all of llvmpipe's
threads together):
  fma             8, 16, 32 or 128 independent f32 accumulators per invocation, a = fma(a, m, c), 64 (128)
                  multiply-adds per loop iteration -> GFLOP/s: the ceiling of the driver's code, and what
                  register pressure costs (llvmpipe holds 8 invocations per AVX2 register; x86 has 16).
  load-f32        each invocation sums a[(base + i) & mask] over a 128 KiB array (in cache), base from the
                  invocation id, lanes 1, 7 (the conv kernels' pixel runs) or 4099 elements apart ->
                  G loads/s, one load = one value for one invocation. Also 32 loads in straight-line code
                  (no loop; timed over several dispatches).
  load-vec4       the same with vec4<f32> loads (detail: floats per second).
  load-uniform    the address depends only on the workgroup id and the loop counter (the same in all
                  lanes, as the conv kernels' weight loads) -> G loads/s, counted per invocation; and in
                  straight-line code, from the workgroup id or a compile-time constant.
  load-workgroup  per-lane loads from a 16 KiB var<workgroup> array -> G loads/s.
  barrier         one workgroup-memory load and one workgroupBarrier() per iteration, workgroups of 8, 64
                  and 256 -> ns per barrier per workgroup (detail: the same loop without the barrier, the
                  difference, and that difference per 8 lanes).
  dispatch        1000 one-workgroup dispatches of a trivial kernel in one command encoder and one submit
                  -> us per dispatch, wall time (detail: the CPU time to encode one).
  workgroup-launch one dispatch of 65535 workgroups of 64 or 256 lanes, one store per lane -> ns per
                  workgroup (what an elementwise kernel pays per workgroup).
  fma-per-load    4, 8, 16 or 64 multiply-adds per per-lane f32 load (lanes 7 apart), each into its own
                  accumulator -> GFLOP/s: how many multiply-adds a load-fed kernel needs per load to
                  approach the fma peak.
  subgroup-broadcast  (devices with subgroups) subgroupBroadcast of per-lane values, as the conv kernels
                  share weight loads -> G broadcasts/s, counted per lane.
Each row's detail has warmupMs: the first run, which compiles the pipeline unless Mesa's shader cache has it.
Also: what a read past the end of a storage binding returns ("clamped": Dawn clamps the index to the last
element; "zero": no clamp, the driver's own bounds check returns 0; on Vulkan Dawn leaves storage buffers to
the driver and clamps only fixed-size arrays). Run once with
DHTA_DAWN_FLAGS="enable-dawn-features=disable_robustness" to see what Dawn's clamping costs.
The summary divides the fma peak (as multiply-adds per second) by the per-lane load rate: the multiply-adds
a kernel needs per per-lane load before loads stop bounding it.`;

function detailText(r: DriverProbeRow): string {
  if (!r.detail) return '';
  return Object.entries(r.detail)
    .map(([k, v]) => `${k} ${formatNumber(v)}`)
    .join(', ');
}

/** Adds `driver` to the `bench` command group. */
export function registerBenchDriver(bench: Command): void {
  bench
    .command('driver')
    .description(
      'What limits compute kernels on this WebGPU driver: FMA peak, per-lane / vec4 / uniform storage loads, ' +
        'workgroup memory, barriers, dispatch overhead, and multiply-adds per load, each as a rate from a ' +
        'tiny probe kernel.',
    )
    .option('--quick', 'tiny sizes (2^14 invocations, ~2 ms dispatches): a smoke test, not a measurement')
    .option(
      '--reps <n>',
      'timed repetitions per probe, 1 to 1000; the median is reported (default 5, quick 3)',
      positiveInt('--reps', 1000),
    )
    .option('--out <file>', 'also write the JSON to this file (atomically)')
    .option('--backend <name>', 'Dawn backend', backendOption)
    .option('--adapter <name>', 'adapter name')
    .option(
      '--json',
      'print one JSON line: {device, software, date, quick, reps, dawnFlags, loadavg, rows: [{probe, variant, ' +
        'unit, rate, ms, invocations, workgroupSize, iters, work, timing, detail?}], robustness, subgroups, summary}',
    )
    .addHelpText('after', PROBE_HELP)
    .action(async (o: GpuFlags & { quick?: boolean; reps?: number; out?: string; json?: boolean }) => {
      const quick = o.quick ?? false;
      const reps = o.reps ?? (quick ? 3 : 5);
      const load = loadavg();
      const failed = outFileReady(o.out);
      await withGpu(o, async (gpu) => {
        if (!o.json)
          console.log(`device: ${gpu.adapter.description}${gpu.adapter.isSoftware ? ' (software)' : ''}\n`);
        const probes = await probeDriver(gpu, {
          quick,
          reps,
          onRow: (r) => {
            if (!o.json)
              process.stderr.write(`  ${r.probe} ${r.variant}: ${formatNumber(r.rate)} ${r.unit}\n`);
          },
        });
        const result: DriverBenchResult = {
          device: gpu.adapter.description,
          software: gpu.adapter.isSoftware,
          date: new Date().toISOString(),
          quick,
          reps,
          dawnFlags: process.env.DHTA_DAWN_FLAGS ?? null,
          loadavg: load,
          ...probes,
        };
        const missing = DRIVER_PROBES.filter((p) => !probes.rows.some((r) => r.probe === p));
        if (missing.length > 0)
          throw new CliError(`bench driver: probes ${missing.join(', ')} gave no figure`);
        if (o.out) writeAtomic(o.out, `${JSON.stringify(result, null, 2)}\n`);
        if (o.json) return printJson(result);
        // Loads and multiply-adds relative to the fma peak in multiply-adds per second.
        const peakFma = probes.summary.fmaPeakGflops / 2;
        console.log(
          formatTable(
            ['probe', 'variant', 'rate', 'unit', 'x peak FMA/s', 'ms', 'detail'],
            probes.rows.map((r) => [
              r.probe,
              r.variant,
              r.rate,
              r.unit,
              r.unit === 'GFLOP/s' ? r.rate / 2 / peakFma : r.unit.startsWith('G ') ? r.rate / peakFma : '-',
              r.ms,
              detailText(r) || '-',
            ]),
          ),
        );
        const s = probes.summary;
        const rb = probes.robustness;
        console.log(
          `\nfma peak ${formatNumber(s.fmaPeakGflops)} GFLOP/s (${formatNumber(peakFma)} G FMA/s); per-lane f32 loads ` +
            `${formatNumber(s.perLaneLoadsG)} G/s, vec4 ${formatNumber(s.perLaneVec4LoadsG)} G/s, uniform ` +
            `${formatNumber(s.uniformLoadsG)} G/s, workgroup memory ${formatNumber(s.workgroupLoadsG)} G/s\n` +
            `multiply-adds per per-lane load for loads to take no longer than the multiply-adds at peak: ` +
            `${formatNumber(s.fmasPerLaneLoadAtBalance)}\n` +
            `read past the end of a binding: ${rb.oobRead} (${rb.behaviour}${rb.behaviour === 'clamped' ? ': Dawn clamps the index' : rb.behaviour === 'zero' ? ': no clamp, the driver returns 0' : ''}); ` +
            `DHTA_DAWN_FLAGS ${result.dawnFlags ?? '(unset)'}; subgroups ` +
            `${probes.subgroups ? `${probes.subgroups.minSize}-${probes.subgroups.maxSize}` : 'none'}\n` +
            `timing: ${probes.rows[0]?.timing ?? '-'} (dispatch: wall); median of ${reps} after warm-up; ` +
            `load average ${load.map((x) => x.toFixed(2)).join(' ')}`,
        );
      }).catch(failed);
    });
}
