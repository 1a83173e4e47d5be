import type { Gpu } from './gpu/context.js';
import type { Tensor } from './gpu/tensor.js';
import {
  type Conv2dGeometry,
  conv2d,
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dFlops,
  conv2dGeometry,
} from './ops/conv2d.js';
import { lstmBackward, lstmFlops, lstmForward } from './ops/lstm.js';
import { matmul } from './ops/matmul.js';
import { SeededRandom } from './reference/random.js';

export interface KernelBenchRow {
  group: string;
  op: string;
  direction: 'forward' | 'backward-input' | 'backward-weight' | 'backward';
  shape: string;
  flops: number;
  ms: number;
  gflops: number;
  timing: 'timestamp' | 'wall';
}

export interface KernelBenchOptions {
  /** Which groups to run (default all): 'small-cnn', 'vgg11', 'fc', 'lstm'. */
  groups?: string[];
  /** Timed repetitions per case (the median is reported). */
  reps?: number;
  onRow?: (row: KernelBenchRow) => void;
}

interface Case {
  group: string;
  op: string;
  direction: KernelBenchRow['direction'];
  shape: string;
  flops: number;
  setup: (gpu: Gpu) => { run: () => void; dispose: () => void };
}

function randomTensor(gpu: Gpu, shape: number[], rng: SeededRandom): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.next() * 2 - 1;
  return gpu.tensor(shape, data);
}

function convCases(group: string, name: string, x: number[], w: number[], pad: number): Case[] {
  const g: Conv2dGeometry = conv2dGeometry('bench', x, w, { padding: pad });
  const flops = conv2dFlops(g);
  const shape = `x[${x.join(',')}] w[${w.join(',')}] p${pad}`;
  const rng = new SeededRandom(1);
  const mk =
    (direction: KernelBenchRow['direction']) =>
    (gpu: Gpu): { run: () => void; dispose: () => void } => {
      const tx = randomTensor(gpu, x, rng);
      const tw = randomTensor(gpu, w, rng);
      const tb = randomTensor(gpu, [w[0]], rng);
      const tdy = randomTensor(gpu, [g.N, g.O, g.OH, g.OW], rng);
      const out =
        direction === 'forward'
          ? gpu.empty([g.N, g.O, g.OH, g.OW])
          : direction === 'backward-input'
            ? gpu.empty(x)
            : gpu.empty(w);
      const run =
        direction === 'forward'
          ? () => conv2d(gpu, tx, tw, tb, { padding: pad, relu: true, out })
          : direction === 'backward-input'
            ? () => conv2dBackwardInput(gpu, tdy, tw, x, { padding: pad, out })
            : () => conv2dBackwardWeight(gpu, tx, tdy, w, { padding: pad, out });
      return {
        run: () => void run(),
        dispose: () => {
          for (const t of [tx, tw, tb, tdy, out]) t.release();
        },
      };
    };
  return (['forward', 'backward-input', 'backward-weight'] as const).map((direction) => ({
    group,
    op: `conv2d ${name}`,
    direction,
    shape,
    flops,
    setup: mk(direction),
  }));
}

/**
 * Linear layers; weights larger than one storage binding (fc6: 411 MB against llvmpipe's 128 MiB) run as
 * `chunks` row blocks of the weight, each writing its columns of the output through the GEMM's ldc/offset.
 */
function linearCases(group: string, name: string, N: number, In: number, Out: number, chunks = 1): Case[] {
  const flops = 2 * N * In * Out;
  const shape = `x[${N},${In}] w[${Out},${In}]${chunks > 1 ? ` in ${chunks} row blocks` : ''}`;
  const rows = Out / chunks;
  const rng = new SeededRandom(2);
  const mk =
    (direction: KernelBenchRow['direction']) =>
    (gpu: Gpu): { run: () => void; dispose: () => void } => {
      const tx = randomTensor(gpu, [N, In], rng);
      const tws = Array.from({ length: chunks }, () => randomTensor(gpu, [rows, In], rng));
      const tb = randomTensor(gpu, [rows], rng);
      const tdy = randomTensor(gpu, [N, Out], rng);
      const outs = Array.from({ length: chunks }, () =>
        direction === 'forward'
          ? gpu.empty([N, Out])
          : direction === 'backward-input'
            ? gpu.empty([N, In])
            : gpu.empty([rows, In]),
      );
      const run = () => {
        tws.forEach((tw, c) => {
          const out = outs[c];
          if (direction === 'forward') {
            matmul(gpu, tx, tw, N, In, rows, {
              transB: true,
              bias: tb,
              relu: true,
              out,
              cOffset: c * rows,
              ldc: Out,
            });
          } else if (direction === 'backward-input') {
            // dx = sum over row blocks of dy[:, block] W_block (accumulated into one output).
            matmul(gpu, tdy, tw, N, rows, In, {
              aOffset: c * rows,
              lda: Out,
              out: outs[0],
              accumulate: c > 0,
            });
          } else {
            matmul(gpu, tdy, tx, rows, N, In, { transA: true, aOffset: c * rows, lda: Out, out });
          }
        });
      };
      return {
        run,
        dispose: () => {
          for (const t of [tx, ...tws, tb, tdy, ...outs]) t.release();
        },
      };
    };
  return (['forward', 'backward-input', 'backward-weight'] as const).map((direction) => ({
    group,
    op: `linear ${name}`,
    direction,
    shape,
    flops,
    setup: mk(direction),
  }));
}

/** The shapes that matter for the paper's models (see the issue and DESIGN.md). */
export function kernelBenchCases(): Case[] {
  const cases: Case[] = [];
  // Small CNN on 28x28 inputs, batch 100: conv 32-64-128 with 2x2 pooling between.
  cases.push(...convCases('small-cnn', 'conv1', [100, 1, 28, 28], [32, 1, 3, 3], 1));
  cases.push(...convCases('small-cnn', 'conv2', [100, 32, 14, 14], [64, 32, 3, 3], 1));
  cases.push(...convCases('small-cnn', 'conv3', [100, 64, 7, 7], [128, 64, 3, 3], 1));
  // VGG-11 at 224x224, batch 1.
  const vgg: Array<[number, number, number]> = [
    [3, 64, 224],
    [64, 128, 112],
    [128, 256, 56],
    [256, 256, 56],
    [256, 512, 28],
    [512, 512, 28],
    [512, 512, 14],
  ];
  vgg.forEach(([c, o, s], i) => {
    cases.push(...convCases('vgg11', `conv${i + 1}${i === 6 ? '/8' : ''}`, [1, c, s, s], [o, c, 3, 3], 1));
  });
  // fc6 / fc7 of VGG-11 at the attack batch of 4.
  cases.push(...linearCases('fc', 'fc6', 4, 25088, 4096, 4));
  cases.push(...linearCases('fc', 'fc7', 4, 4096, 4096));
  cases.push(...lstmCases(16, 40, 4096, 256));
  return cases;
}

/** LSTM over T steps (AlexNet fc7 features of 4096 per frame, hidden 256), forward and BPTT. */
function lstmCases(N: number, T: number, I: number, H: number): Case[] {
  const flops = lstmFlops(N, T, I, H);
  const shape = `N${N} T${T} I${I} H${H}`;
  const rng = new SeededRandom(3);
  const mk =
    (direction: 'forward' | 'backward') =>
    (gpu: Gpu): { run: () => void; dispose: () => void } => {
      const x = randomTensor(gpu, [N, T, I], rng);
      const weights = {
        wIh: randomTensor(gpu, [4 * H, I], rng),
        wHh: randomTensor(gpu, [4 * H, H], rng),
        bIh: randomTensor(gpu, [4 * H], rng),
        bHh: randomTensor(gpu, [4 * H], rng),
      };
      const dh = randomTensor(gpu, [N, T, H], rng);
      const fwd = lstmForward(gpu, x, weights);
      const live: Tensor[] = [];
      const run = () => {
        for (const t of live.splice(0)) t.release();
        const r =
          direction === 'forward'
            ? lstmForward(gpu, x, weights)
            : lstmBackward(gpu, x, weights, null, null, fwd, dh);
        live.push(...Object.values(r));
      };
      const dispose = () => {
        for (const t of [x, dh, ...Object.values(weights), ...Object.values(fwd), ...live]) t.release();
      };
      return { run, dispose };
    };
  return (['forward', 'backward'] as const).map((direction) => ({
    group: 'lstm',
    op: 'lstm',
    direction,
    shape,
    flops: flops[direction],
    setup: mk(direction),
  }));
}

/** The middle value (the upper one of an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Times each case: one warm-up (pipeline compile), then `reps` profiled runs; reports the median. */
export async function benchKernels(
  gpu: Gpu,
  o: KernelBenchOptions & { extraCases?: Case[] } = {},
): Promise<KernelBenchRow[]> {
  const reps = o.reps ?? 3;
  const all = [...kernelBenchCases(), ...(o.extraCases ?? [])];
  const cases = o.groups ? all.filter((c) => o.groups?.includes(c.group)) : all;
  const rows: KernelBenchRow[] = [];
  for (const c of cases) {
    const { run, dispose } = c.setup(gpu);
    run();
    await gpu.sync();
    const times: number[] = [];
    let timing: KernelBenchRow['timing'] = 'wall';
    for (let r = 0; r < reps; r++) {
      const p = await gpu.profile(run);
      times.push(p.ms);
      timing = p.source;
    }
    dispose();
    const ms = median(times);
    const row: KernelBenchRow = {
      group: c.group,
      op: c.op,
      direction: c.direction,
      shape: c.shape,
      flops: c.flops,
      ms,
      gflops: c.flops / (ms * 1e6),
      timing,
    };
    rows.push(row);
    o.onRow?.(row);
  }
  gpu.pool.trim();
  return rows;
}

export type { Case as KernelBenchCase };
