// Driver probes: tiny WGSL kernels that each stress one thing (multiply-adds, per-lane or uniform storage
// loads, workgroup memory, barriers, dispatches) so the figures say what bounds compute kernels on a given
// WebGPU implementation, llvmpipe in particular. `dhta bench driver` prints them.
import { median } from './bench.js';
import { type Gpu, grid } from './gpu/context.js';
import type { Tensor } from './gpu/tensor.js';
import { declareBindings } from './gpu/wgsl.js';

export type DriverProbeName =
  | 'fma'
  | 'load-f32'
  | 'load-vec4'
  | 'load-uniform'
  | 'load-workgroup'
  | 'barrier'
  | 'dispatch'
  | 'workgroup-launch'
  | 'fma-per-load'
  | 'subgroup-broadcast';

/** Every probe `probeDriver` runs, in order ('subgroup-broadcast' too where the device has subgroups). */
export const DRIVER_PROBES: readonly DriverProbeName[] = [
  'fma',
  'load-f32',
  'load-vec4',
  'load-uniform',
  'load-workgroup',
  'barrier',
  'dispatch',
  'workgroup-launch',
  'fma-per-load',
];

export interface DriverProbeRow {
  probe: DriverProbeName;
  variant: string;
  /** Unit of `rate`: 'GFLOP/s', 'G loads/s', 'G bcasts/s', 'ns/barrier', 'us/dispatch' or 'ns/workgroup'. */
  unit: string;
  /** The figure: a throughput (G per second, all of the driver's threads together) or a time per event. */
  rate: number;
  /** Median time of one timed dispatch (for 'dispatch': of the whole batch of dispatches). */
  ms: number;
  invocations: number;
  workgroupSize: number;
  /**
   * Loop iterations per invocation, calibrated so a dispatch takes about the target time (straight-line
   * probes: dispatches per timed measurement).
   */
  iters: number;
  /** Units of work per timed dispatch: flops, loads, workgroup-barriers, dispatches or workgroups. */
  work: number;
  timing: 'timestamp' | 'wall';
  /** Further figures of the probe (floats per second of vec4 loads, barrier time net of its loop...). */
  detail?: Record<string, number>;
}

export interface DriverProbeOptions {
  /** Tiny sizes (2^14 invocations, ~2 ms per dispatch, 20 dispatches): a smoke test, not a measurement. */
  quick?: boolean;
  /** Timed repetitions per probe; the median is reported (default 5, quick 3). */
  reps?: number;
  /** Calibrate loop counts so one dispatch takes about this long (default 40 ms, quick 2 ms). */
  targetMs?: number;
  /** Invocations per throughput probe (default 2^18, quick 2^14). */
  invocations?: number;
  onRow?: (row: DriverProbeRow) => void;
}

export interface DriverProbeResult {
  rows: DriverProbeRow[];
  /**
   * What an out-of-bounds storage read returned: 'clamped' = the last element (Dawn's robustness transform
   * clamps the index), 'zero' = 0 (no clamp: the driver's own bounds check; on Vulkan Dawn leaves storage
   * buffers to the driver even with robustness on), else 'other'.
   */
  robustness: { oobRead: number; lastElement: number; behaviour: 'clamped' | 'zero' | 'other' };
  /** Subgroup sizes the adapter reports (null without the 'subgroups' feature). */
  subgroups: { minSize: number | null; maxSize: number | null } | null;
  summary: {
    /** Best of the fma rows. */
    fmaPeakGflops: number;
    /** Per-lane f32 loads, lanes 7 apart (the conv kernels' runs of 7 pixels). */
    perLaneLoadsG: number;
    perLaneVec4LoadsG: number;
    uniformLoadsG: number;
    workgroupLoadsG: number;
    /** Multiply-adds per per-lane f32 load at which loads take as long as the multiply-adds at peak. */
    fmasPerLaneLoadAtBalance: number;
  };
}

// Storage arrays for the load probes: 2^15 floats (128 KiB), resident in L2, so the figures are the cost of
// the load instructions the driver emits, not of DRAM.
const LOAD_ELEMENTS = 1 << 15;
const WG = 64;
/** Multiply-adds per loop iteration of the fma probe: 64, or one per accumulator beyond 64. */
const fmaPerIter = (acc: number) => Math.max(64, acc);
/** Loads per loop iteration of the load probes. */
const LOADS_PER_ITER = 8;
/** Loads per loop iteration of the fma-per-load probe. */
const MIX_LOADS = 4;

const GID = '@builtin(global_invocation_id) gid: vec3<u32>';

/**
 * `acc` independent accumulators, each `a = fma(a, m, c)`, fmaPerIter(acc) multiply-adds per iteration.
 * Beyond 16 accumulators x86 runs out of vector registers and they live in memory, as in the conv kernels'
 * register blocks (8x7x4 = 224 accumulators).
 */
export function fmaProbeShader(acc: number): string {
  const rounds = fmaPerIter(acc) / acc;
  const init = Array.from(
    { length: acc },
    (_, k) => `  var a${k} = f32(gid.x & 1023u) * 0.0001 + ${k + 1}.0 * 0.001;`,
  );
  const body: string[] = [];
  for (let r = 0; r < rounds; r++) for (let k = 0; k < acc; k++) body.push(`    a${k} = fma(a${k}, m, c);`);
  const sum = Array.from({ length: acc }, (_, k) => `a${k}`).join(' + ');
  return `
${declareBindings(
  [{ name: 'out_', access: 'read_write', type: 'f32' }],
  [
    { name: 'iters', type: 'u32' },
    { name: 'm', type: 'f32' },
    { name: 'c', type: 'f32' },
  ],
)}
@compute @workgroup_size(${WG})
fn main(${GID}) {
  let m = u.m;
  let c = u.c;
${init.join('\n')}
  for (var i = 0u; i < u.iters; i++) {
${body.join('\n')}
  }
  out_[gid.x] = ${sum};
}`;
}

/**
 * Sums LOADS_PER_ITER storage loads per iteration into as many accumulators. `per-lane`: the index starts
 * at gid * laneStride (a different address in every lane); `uniform`: at wid * 64, the same in all lanes
 * of a workgroup (and the loop counter is uniform too), so the driver may load once per workgroup.
 */
export function loadProbeShader(kind: 'per-lane' | 'uniform', vec4: boolean): string {
  const t = vec4 ? 'vec4<f32>' : 'f32';
  const zero = vec4 ? 'vec4<f32>(0.0)' : '0.0';
  const lines: string[] = [];
  for (let k = 0; k < LOADS_PER_ITER; k++) lines.push(`    s${k} = s${k} + a[(idx + ${k}u) & msk];`);
  const sum = Array.from({ length: LOADS_PER_ITER }, (_, k) => `s${k}`).join(' + ');
  return `
${declareBindings(
  [
    { name: 'a', access: 'read', type: t },
    { name: 'out_', access: 'read_write', type: t },
  ],
  [
    { name: 'iters', type: 'u32' },
    { name: 'mask', type: 'u32' },
    { name: 'laneStride', type: 'u32' },
  ],
)}
@compute @workgroup_size(${WG})
fn main(${GID}, @builtin(workgroup_id) wid: vec3<u32>) {
  let msk = u.mask;
  var idx = (${kind === 'uniform' ? 'wid.x * 64u' : 'gid.x * u.laneStride'}) & msk;
${Array.from({ length: LOADS_PER_ITER }, (_, k) => `  var s${k} = ${zero};`).join('\n')}
  for (var i = 0u; i < u.iters; i++) {
${lines.join('\n')}
    idx = (idx + ${LOADS_PER_ITER}u) & msk;
  }
  out_[gid.x] = ${sum};
}`;
}

const SHARED = 4096;

/** Per-lane loads from a var<workgroup> array (16 KiB), filled once per workgroup. */
export function workgroupLoadProbeShader(): string {
  const lines: string[] = [];
  for (let k = 0; k < LOADS_PER_ITER; k++)
    lines.push(`    s${k} = s${k} + sh[(idx + ${k}u) & ${SHARED - 1}u];`);
  const sum = Array.from({ length: LOADS_PER_ITER }, (_, k) => `s${k}`).join(' + ');
  return `
${declareBindings(
  [{ name: 'out_', access: 'read_write', type: 'f32' }],
  [
    { name: 'iters', type: 'u32' },
    { name: 'laneStride', type: 'u32' },
  ],
)}
var<workgroup> sh: array<f32, ${SHARED}>;
@compute @workgroup_size(${WG})
fn main(${GID}, @builtin(local_invocation_index) lid: u32) {
  for (var j = lid; j < ${SHARED}u; j += ${WG}u) { sh[j] = f32(j & 255u) * 0.001; }
  workgroupBarrier();
  var idx = (lid * u.laneStride) & ${SHARED - 1}u;
${Array.from({ length: LOADS_PER_ITER }, (_, k) => `  var s${k} = 0.0;`).join('\n')}
  for (var i = 0u; i < u.iters; i++) {
${lines.join('\n')}
    idx = (idx + ${LOADS_PER_ITER}u) & ${SHARED - 1}u;
  }
  out_[gid.x] = ${sum};
}`;
}

/** One workgroup-memory load per iteration, with or without a workgroupBarrier() after it. */
export function barrierProbeShader(wg: number, barrier: boolean): string {
  return `
${declareBindings([{ name: 'out_', access: 'read_write', type: 'f32' }], [{ name: 'iters', type: 'u32' }])}
var<workgroup> sh: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(${GID}, @builtin(local_invocation_index) lid: u32) {
  sh[lid] = f32(lid) * 0.001;
  workgroupBarrier();
  var s = 0.0;
  var idx = lid;
  for (var i = 0u; i < u.iters; i++) {
    s = s + sh[idx];
    idx = (idx + 1u) & ${wg - 1}u;${barrier ? '\n    workgroupBarrier();' : ''}
  }
  out_[gid.x] = s;
}`;
}

/** One store per lane: the cheapest kernel that does something observable. */
export function trivialProbeShader(wg: number): string {
  return `
${declareBindings([{ name: 'out_', access: 'read_write', type: 'f32' }])}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  out_[(wid.x + wid.y * nwg.x) * ${wg}u + lid] = f32(lid);
}`;
}

/**
 * `fmas` multiply-adds per per-lane f32 load (MIX_LOADS loads per iteration, lanes 7 apart as in the conv
 * kernels' pixel runs): an outer product of each loaded value with 8 per-lane weights held in registers
 * into `fmas` accumulators, each accumulator taking one multiply-add per load with a different weight per
 * load, so no two multiply-adds share both operands and nothing can be factored.
 */
export function fmaPerLoadProbeShader(fmas: number): string {
  const body: string[] = [];
  for (let l = 0; l < MIX_LOADS; l++) {
    body.push(`    let x${l} = a[(idx + ${l}u) & msk];`);
    for (let k = 0; k < fmas; k++) body.push(`    c${k} = fma(x${l}, w${(k + l) % 8}, c${k});`);
  }
  const weights = Array.from(
    { length: 8 },
    (_, k) => `  let w${k} = f32(gid.x & 15u) * 0.0001 + ${k + 1}.0 * 0.001;`,
  );
  const accs = Array.from({ length: fmas }, (_, k) => `  var c${k} = 0.0;`);
  const sum = Array.from({ length: fmas }, (_, k) => `c${k}`).join(' + ');
  return `
${declareBindings(
  [
    { name: 'a', access: 'read', type: 'f32' },
    { name: 'out_', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'iters', type: 'u32' },
    { name: 'mask', type: 'u32' },
  ],
)}
@compute @workgroup_size(${WG})
fn main(${GID}) {
  let msk = u.mask;
  var idx = (gid.x * 7u) & msk;
${weights.join('\n')}
${accs.join('\n')}
  for (var i = 0u; i < u.iters; i++) {
${body.join('\n')}
    idx = (idx + ${MIX_LOADS}u) & msk;
  }
  out_[gid.x] = ${sum};
}`;
}

/** Loads per invocation of the straight-line load probe. */
const STRAIGHT_LOADS = 32;

/**
 * STRAIGHT_LOADS loads in straight-line code (no loop: no loop-carried index for the driver to analyse),
 * at `constant` indices (compile-time constants: the same in every lane, provably), at indices from the
 * workgroup id (the same in every lane of a workgroup), or `per-lane` (lanes 7 apart).
 */
export function straightLoadProbeShader(kind: 'constant' | 'workgroup' | 'per-lane'): string {
  const base = kind === 'constant' ? '' : kind === 'workgroup' ? 'wid.x * 64u + ' : 'gid.x * 7u + ';
  const lines: string[] = [];
  for (let k = 0; k < STRAIGHT_LOADS; k++)
    lines.push(`  s${k % 8} = s${k % 8} + a[(${base}${(k * 37) % 4096}u) & ${LOAD_ELEMENTS - 1}u];`);
  const accs = Array.from({ length: 8 }, (_, k) => `  var s${k} = 0.0;`);
  const sum = Array.from({ length: 8 }, (_, k) => `s${k}`).join(' + ');
  return `
${declareBindings([
  { name: 'a', access: 'read', type: 'f32' },
  { name: 'out_', access: 'read_write', type: 'f32' },
])}
@compute @workgroup_size(${WG})
fn main(${GID}, @builtin(workgroup_id) wid: vec3<u32>) {
${accs.join('\n')}
${lines.join('\n')}
  out_[gid.x] = ${sum};
}`;
}

/**
 * subgroupBroadcast of 8 loop-carried per-lane values per iteration (the conv kernels share weight loads
 * this way: each lane loads one weight, broadcasts hand them round). Counted per lane, like loads.
 */
export function broadcastProbeShader(): string {
  const lines = Array.from({ length: 8 }, (_, k) => `    s${k} = s${k} + subgroupBroadcast(s${k}, ${k}u);`);
  const init = Array.from(
    { length: 8 },
    (_, k) => `  var s${k} = f32(gid.x & 15u) * 0.001 + ${k + 1}.0 * 0.0001;`,
  );
  const sum = Array.from({ length: 8 }, (_, k) => `s${k}`).join(' + ');
  return `enable subgroups;
${declareBindings([{ name: 'out_', access: 'read_write', type: 'f32' }], [{ name: 'iters', type: 'u32' }])}
@compute @workgroup_size(${WG})
fn main(${GID}) {
${init.join('\n')}
  for (var i = 0u; i < u.iters; i++) {
${lines.join('\n')}
  }
  out_[gid.x] = ${sum};
}`;
}

/** Reads index `u.idx` (past the end) of a; see DriverProbeResult.robustness. */
function oobProbeShader(): string {
  return `
${declareBindings(
  [
    { name: 'a', access: 'read', type: 'f32' },
    { name: 'out_', access: 'read_write', type: 'f32' },
  ],
  [{ name: 'idx', type: 'u32' }],
)}
@compute @workgroup_size(1)
fn main() {
  out_[0] = a[u.idx];
}`;
}

/** Runs the probes on `gpu`; rates are throughputs of the whole device (all llvmpipe threads together). */
export async function probeDriver(gpu: Gpu, o: DriverProbeOptions = {}): Promise<DriverProbeResult> {
  const quick = o.quick ?? false;
  const reps = o.reps ?? (quick ? 3 : 5);
  const targetMs = o.targetMs ?? (quick ? 2 : 40);
  const invocations = o.invocations ?? (quick ? 1 << 14 : 1 << 18);
  const dispatches = quick ? 20 : 1000;
  const launchGroups = quick ? 1024 : 65535;
  const rows: DriverProbeRow[] = [];
  const live: Tensor[] = [];
  const emit = (r: DriverProbeRow) => {
    rows.push(r);
    o.onRow?.(r);
  };

  const input = new Float32Array(LOAD_ELEMENTS);
  for (let i = 0; i < input.length; i++) input[i] = ((i * 2654435761) % 1000) * 0.001;
  const a = gpu.tensor([LOAD_ELEMENTS], input);
  const out = gpu.empty([Math.max(invocations, launchGroups * 256)]);
  live.push(a, out);

  /** Median time of `reps` profiled runs (timestamp queries where the device has them). */
  const time = async (run: () => void): Promise<{ ms: number; timing: 'timestamp' | 'wall' }> => {
    const times: number[] = [];
    let timing: 'timestamp' | 'wall' = 'wall';
    for (let r = 0; r < reps; r++) {
      const p = await gpu.profile(run);
      times.push(p.ms);
      timing = p.source;
    }
    return { ms: median(times), timing };
  };

  /**
   * Warm-up (compiles the pipeline), then scales the loop count so one timed run takes about targetMs,
   * then times it. `make(iters)` encodes the work.
   */
  const calibrated = async (make: (iters: number) => void, iters0: number, maxIters = 1 << 20) => {
    let iters = iters0;
    const t0 = performance.now();
    make(iters);
    await gpu.sync();
    // The first run compiles the pipeline (llvmpipe: NIR to LLVM to x86), unless Mesa's shader cache has it.
    const warmupMs = performance.now() - t0;
    for (let k = 0; k < 3; k++) {
      const p = await gpu.profile(() => make(iters));
      if (p.ms >= targetMs * 0.7) break;
      const next = Math.min(maxIters, Math.ceil((iters * targetMs) / Math.max(p.ms, 0.05)));
      if (next <= iters) break;
      iters = next;
    }
    const t = await time(() => make(iters));
    return { iters, warmupMs, ...t };
  };

  const wgs = (n: number, wg: number) => grid(Math.ceil(n / wg));

  try {
    // 1. FMA peak and register pressure.
    for (const acc of [8, 16, 32, 128]) {
      const make = (iters: number) =>
        gpu.run({
          op: 'probe-fma',
          key: `${acc}`,
          code: () => fmaProbeShader(acc),
          buffers: [out],
          uniforms: [iters, { f32: 0.999 }, { f32: 0.001 }],
          workgroups: wgs(invocations, WG),
        });
      const r = await calibrated(make, 16);
      const flops = 2 * fmaPerIter(acc) * invocations * r.iters;
      emit({
        probe: 'fma',
        variant: `${acc} accumulators`,
        unit: 'GFLOP/s',
        rate: flops / (r.ms * 1e6),
        ms: r.ms,
        invocations,
        workgroupSize: WG,
        iters: r.iters,
        work: flops,
        timing: r.timing,
        detail: { warmupMs: r.warmupMs },
      });
    }

    // 2-4. Storage loads in a loop: per-lane f32 (lanes 1, 7 and 4099 elements apart), per-lane vec4,
    // and an index from the workgroup id and the loop counter (the same in all lanes).
    const loadCases: Array<{
      probe: DriverProbeName;
      variant: string;
      kind: 'per-lane' | 'uniform';
      vec4: boolean;
      laneStride: number;
    }> = [
      { probe: 'load-f32', variant: 'lanes 1 apart', kind: 'per-lane', vec4: false, laneStride: 1 },
      { probe: 'load-f32', variant: 'lanes 7 apart', kind: 'per-lane', vec4: false, laneStride: 7 },
      { probe: 'load-f32', variant: 'lanes 4099 apart', kind: 'per-lane', vec4: false, laneStride: 4099 },
      { probe: 'load-vec4', variant: 'lanes 1 apart', kind: 'per-lane', vec4: true, laneStride: 1 },
      { probe: 'load-vec4', variant: 'lanes 2 apart', kind: 'per-lane', vec4: true, laneStride: 2 },
      {
        probe: 'load-uniform',
        variant: 'workgroup id + loop counter',
        kind: 'uniform',
        vec4: false,
        laneStride: 0,
      },
    ];
    for (const c of loadCases) {
      const elements = c.vec4 ? LOAD_ELEMENTS / 4 : LOAD_ELEMENTS;
      const make = (iters: number) =>
        gpu.run({
          op: 'probe-load',
          key: `${c.kind}:${c.vec4}`,
          code: () => loadProbeShader(c.kind, c.vec4),
          buffers: [a, out],
          uniforms: [iters, elements - 1, c.laneStride],
          workgroups: wgs(invocations, WG),
        });
      const r = await calibrated(make, 8);
      const loads = LOADS_PER_ITER * invocations * r.iters;
      const rate = loads / (r.ms * 1e6);
      emit({
        probe: c.probe,
        variant: c.variant,
        unit: 'G loads/s',
        rate,
        ms: r.ms,
        invocations,
        workgroupSize: WG,
        iters: r.iters,
        work: loads,
        timing: r.timing,
        detail: { ...(c.vec4 ? { gFloatsPerSecond: 4 * rate } : {}), warmupMs: r.warmupMs },
      });
    }

    // 2b/4b. Loads in straight-line code (no loop-carried index); timed over `iters` dispatches.
    const straight: Array<{
      probe: DriverProbeName;
      variant: string;
      kind: 'constant' | 'workgroup' | 'per-lane';
    }> = [
      { probe: 'load-f32', variant: 'lanes 7 apart, straight-line', kind: 'per-lane' },
      { probe: 'load-uniform', variant: 'workgroup id, straight-line', kind: 'workgroup' },
      { probe: 'load-uniform', variant: 'constant index, straight-line', kind: 'constant' },
    ];
    for (const c of straight) {
      const make = (count: number) => {
        for (let k = 0; k < count; k++)
          gpu.run({
            op: 'probe-load-straight',
            key: c.kind,
            code: () => straightLoadProbeShader(c.kind),
            buffers: [a, out],
            workgroups: wgs(invocations, WG),
          });
      };
      const r = await calibrated(make, 1, 64);
      const loads = STRAIGHT_LOADS * invocations * r.iters;
      emit({
        probe: c.probe,
        variant: c.variant,
        unit: 'G loads/s',
        rate: loads / (r.ms * 1e6),
        ms: r.ms,
        invocations,
        workgroupSize: WG,
        iters: r.iters,
        work: loads,
        timing: r.timing,
        detail: { dispatches: r.iters, warmupMs: r.warmupMs },
      });
    }

    // 5a. Workgroup memory, per-lane index (lanes 7 apart).
    {
      const make = (iters: number) =>
        gpu.run({
          op: 'probe-workgroup-load',
          key: '',
          code: workgroupLoadProbeShader,
          buffers: [out],
          uniforms: [iters, 7],
          workgroups: wgs(invocations, WG),
        });
      const r = await calibrated(make, 16);
      const loads = LOADS_PER_ITER * invocations * r.iters;
      emit({
        probe: 'load-workgroup',
        variant: 'f32, lanes 7 apart',
        unit: 'G loads/s',
        rate: loads / (r.ms * 1e6),
        ms: r.ms,
        invocations,
        workgroupSize: WG,
        iters: r.iters,
        work: loads,
        timing: r.timing,
        detail: { warmupMs: r.warmupMs },
      });
    }

    // 5b. workgroupBarrier(): the same loop with and without one barrier per iteration.
    for (const wg of [8, 64, 256]) {
      const make = (barrier: boolean) => (iters: number) =>
        gpu.run({
          op: 'probe-barrier',
          key: `${wg}:${barrier}`,
          code: () => barrierProbeShader(wg, barrier),
          buffers: [out],
          uniforms: [iters],
          workgroups: wgs(invocations, wg),
        });
      const r = await calibrated(make(true), 4);
      make(false)(r.iters);
      await gpu.sync();
      const base = await time(() => make(false)(r.iters));
      const barriers = Math.ceil(invocations / wg) * r.iters;
      const ns = (r.ms * 1e6) / barriers;
      const baseNs = (base.ms * 1e6) / barriers;
      emit({
        probe: 'barrier',
        variant: `workgroup of ${wg}`,
        unit: 'ns/barrier',
        rate: ns,
        ms: r.ms,
        invocations,
        workgroupSize: wg,
        iters: r.iters,
        work: barriers,
        timing: r.timing,
        detail: {
          loopWithoutBarrierNs: baseNs,
          netNs: ns - baseNs,
          netNsPer8Lanes: ((ns - baseNs) * 8) / Math.max(8, wg),
          warmupMs: r.warmupMs,
        },
      });
    }

    // 6. Dispatch overhead: many one-workgroup dispatches in one command encoder and one submit (wall time,
    // encoding included: what a sequence of small kernels costs).
    {
      const run = () =>
        gpu.run({
          op: 'probe-trivial',
          key: '64',
          code: () => trivialProbeShader(64),
          buffers: [out],
          workgroups: [1],
        });
      run();
      await gpu.sync();
      const total: number[] = [];
      const encode: number[] = [];
      for (let r = 0; r < reps; r++) {
        await gpu.sync();
        const t0 = performance.now();
        for (let i = 0; i < dispatches; i++) run();
        const t1 = performance.now();
        await gpu.sync();
        const t2 = performance.now();
        total.push(t2 - t0);
        encode.push(t1 - t0);
      }
      const ms = median(total);
      emit({
        probe: 'dispatch',
        variant: `${dispatches} one-workgroup dispatches, one submit`,
        unit: 'us/dispatch',
        rate: (ms * 1000) / dispatches,
        ms,
        invocations: 64,
        workgroupSize: 64,
        iters: 1,
        work: dispatches,
        timing: 'wall',
        detail: { encodeUs: (median(encode) * 1000) / dispatches },
      });
    }

    // 6b. Cost per workgroup of a trivial kernel (one store per lane), as an elementwise op pays it.
    for (const wg of [64, 256]) {
      const groups = launchGroups;
      const run = () =>
        gpu.run({
          op: 'probe-trivial',
          key: `${wg}`,
          code: () => trivialProbeShader(wg),
          buffers: [out],
          workgroups: [groups],
        });
      run();
      await gpu.sync();
      const r = await time(run);
      emit({
        probe: 'workgroup-launch',
        variant: `${groups} workgroups of ${wg}, one store per lane`,
        unit: 'ns/workgroup',
        rate: (r.ms * 1e6) / groups,
        ms: r.ms,
        invocations: groups * wg,
        workgroupSize: wg,
        iters: 1,
        work: groups,
        timing: r.timing,
        detail: { gInvocationsPerSecond: (groups * wg) / (r.ms * 1e6) },
      });
    }

    // 8. Multiply-adds per per-lane load: where does a load-fed kernel approach the FMA peak?
    for (const fmas of [4, 8, 16, 64]) {
      const make = (iters: number) =>
        gpu.run({
          op: 'probe-fma-per-load',
          key: `${fmas}`,
          code: () => fmaPerLoadProbeShader(fmas),
          buffers: [a, out],
          uniforms: [iters, LOAD_ELEMENTS - 1],
          workgroups: wgs(invocations, WG),
        });
      const r = await calibrated(make, 8);
      const loads = MIX_LOADS * invocations * r.iters;
      const flops = 2 * fmas * loads;
      emit({
        probe: 'fma-per-load',
        variant: `${fmas} FMAs per per-lane load`,
        unit: 'GFLOP/s',
        rate: flops / (r.ms * 1e6),
        ms: r.ms,
        invocations,
        workgroupSize: WG,
        iters: r.iters,
        work: flops,
        timing: r.timing,
        detail: { gLoadsPerSecond: loads / (r.ms * 1e6), warmupMs: r.warmupMs },
      });
    }

    // 9. subgroupBroadcast, where the device has subgroups.
    if (gpu.features.includes('subgroups')) {
      const make = (iters: number) =>
        gpu.run({
          op: 'probe-subgroup-broadcast',
          key: '',
          code: broadcastProbeShader,
          buffers: [out],
          uniforms: [iters],
          workgroups: wgs(invocations, WG),
        });
      const r = await calibrated(make, 16);
      const n = 8 * invocations * r.iters;
      emit({
        probe: 'subgroup-broadcast',
        variant: '8 per iteration, then an add',
        unit: 'G bcasts/s',
        rate: n / (r.ms * 1e6),
        ms: r.ms,
        invocations,
        workgroupSize: WG,
        iters: r.iters,
        work: n,
        timing: r.timing,
        detail: { warmupMs: r.warmupMs },
      });
    }

    // 7. Robustness: what does a read past the end of a binding return?
    const small = gpu.tensor([4], [1, 2, 3, 42]);
    live.push(small);
    gpu.run({
      op: 'probe-oob',
      key: '',
      code: oobProbeShader,
      buffers: [small, out],
      uniforms: [6],
      workgroups: [1],
    });
    const oobRead = (await gpu.readF32(out))[0];
    const behaviour = oobRead === 42 ? 'clamped' : oobRead === 0 ? 'zero' : 'other';

    const best = (p: DriverProbeName, variant?: string) =>
      Math.max(
        ...rows.filter((r) => r.probe === p && (!variant || r.variant === variant)).map((r) => r.rate),
      );
    const fmaPeakGflops = best('fma');
    const perLaneLoadsG = best('load-f32', 'lanes 7 apart');
    return {
      rows,
      robustness: { oobRead, lastElement: 42, behaviour },
      subgroups: gpu.features.includes('subgroups')
        ? {
            minSize:
              (gpu.device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo?.subgroupMinSize ??
              null,
            maxSize:
              (gpu.device as { adapterInfo?: { subgroupMaxSize?: number } }).adapterInfo?.subgroupMaxSize ??
              null,
          }
        : null,
      summary: {
        fmaPeakGflops,
        perLaneLoadsG,
        perLaneVec4LoadsG: best('load-vec4'),
        uniformLoadsG: best('load-uniform', 'workgroup id + loop counter'),
        workgroupLoadsG: best('load-workgroup'),
        fmasPerLaneLoadAtBalance: fmaPeakGflops / 2 / perLaneLoadsG,
      },
    };
  } finally {
    await gpu.sync().catch(() => {});
    for (const t of live) t.release();
    gpu.pool.trim();
  }
}
