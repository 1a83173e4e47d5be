// `dhta bench train`: training samples per second of the project's training loop (trainHashingNetwork: the
// pairwise loss against the memory bank, SGD with momentum) on our engine, and with --peer torch the same
// steps in PyTorch on the CPU (bench/torch_train.py) from the same initial weights, data and batch order, in
// the same run, taking turns, after a check that the first steps' losses agree.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDataset } from '@dhta/data';
import type { Gpu, Engine as KernelEngine } from '@dhta/kernels';
import { writeNpyFile } from '@dhta/kernels/hamming';
import { SeededRandom } from '@dhta/kernels/reference';
import {
  createNetwork,
  initWeights,
  learningRateAt,
  type ModelSpec,
  resolveTrainOptions,
  saveBundle,
  smallCnn,
  type TrainingData,
  trainHashingNetwork,
  videoNet,
  type Weights,
} from '@dhta/models';
import type { Command } from 'commander';
import { decimal, nonNegativeInt, positiveInt } from './attack.js';
import { outFileReady, writeAtomic } from './bench.js';
import { CliError } from './errors.js';
import {
  backendOption,
  deviceOf,
  ENGINE_HELP,
  type Engine,
  engineOption,
  type GpuFlags,
  openEngine,
  resolveEngine,
  withOptionalGpu,
} from './gpu.js';
import { formatTable, printJson } from './output.js';
import { runTorchPeer } from './peers/torch.js';
import { presetFor } from './train.js';

export const TRAIN_BENCH_PRESETS = ['small-cnn', 'video'] as const;
export type TrainBenchPreset = (typeof TRAIN_BENCH_PRESETS)[number];

/** `dhta train`'s defaults for each preset (apps/cli/src/train.ts): batch and learning rate. */
const DEFAULT_BATCH: Record<TrainBenchPreset, number> = { 'small-cnn': 24, video: 20 };
const DEFAULT_LR: Record<TrainBenchPreset, number> = { 'small-cnn': 0.5, video: 0.5 };
/** Random training sets as large as the data sets' training splits (MNIST 500 per class, moving items 100). */
const DEFAULT_COUNT: Record<TrainBenchPreset, number> = { 'small-cnn': 5000, video: 1000 };
const RANDOM_CLASSES = 10;
/** The first step's losses must agree to this, relative to max(1, |loss|). */
export const LOSS_TOLERANCE = 1e-4;

const MAX_CPU_THREADS = 16;
function defaultThreads(): number {
  return Math.max(1, Math.min(MAX_CPU_THREADS, availableParallelism()));
}

export interface TrainBenchOptions {
  preset: TrainBenchPreset;
  /** Objects per step (default: dhta train's, 24 for small-cnn, 20 for video). */
  batch?: number;
  /** Timed steps of each run (default: one epoch, ceil(count / batch)). */
  steps?: number;
  /** Steps of the check run, also our warm-up (default 3). */
  checkSteps?: number;
  /** Training-set size: random objects, or the first of the data set's training split (default: all). */
  count?: number;
  /** A data set (`dhta data list`) whose training split is used; random pixels and labels otherwise. */
  data?: string;
  /** Code length (default 64). */
  bits?: number;
  /** Learning rate (default: dhta train's, 0.5). */
  lr?: number;
  /** Seed of the weights, the random data, the batch order and the dropout masks (default 1). */
  seed?: number;
  /** Timed runs of each side, taking turns with the peer; medians are reported (default 3). */
  repeat?: number;
  peer?: 'torch';
  engine?: Engine;
  /** Threads of our WebAssembly engine (default: the logical CPUs, at most 16). */
  cpuThreads?: number;
  /** PyTorch's threads (default: the same as our engine's). */
  threads?: number;
  /** Python with PyTorch (default /usr/bin/python3). */
  python?: string;
  log?: (line: string) => void;
}

export interface TrainBenchRun {
  seconds: number;
  samplesPerSecond: number;
  msPerStep: number;
}

export interface TrainBenchResult {
  preset: TrainBenchPreset;
  /** One object: [C, H, W] or, for video, [T, C, H, W]. */
  input: number[];
  bits: number;
  /** `random (seed S)` or the data set and its split. */
  data: string;
  /** Training-set size N (the memory bank's rows). */
  count: number;
  classes: number;
  batch: number;
  steps: number;
  /** Objects per timed run (steps x batch, less at the end of an epoch). */
  samples: number;
  /** steps / steps per epoch. */
  epochFraction: number;
  checkSteps: number;
  repeat: number;
  /** The training options both sides use (learning rate of the first epoch). */
  training: {
    lr: number;
    momentum: number;
    weightDecay: number;
    eta: number;
    balance: boolean;
    seed: number;
  };
  engine: 'webgpu' | 'wasm';
  device: string;
  software: boolean;
  date: string;
  loadavg: { start: number[]; end: number[] };
  ours: TrainBenchRun;
  /**
   * env: the variables that change PyTorch's times on a shared machine as the peer saw them (OMP_WAIT_POLICY,
   * MALLOC_MMAP_THRESHOLD_, ...; bench/README.md), only those set.
   */
  peer?: TrainBenchRun & { engine: string; version: string; threads: number; env: Record<string, string> };
  /** ours / peer (samples per second, medians). */
  ratio?: number;
  /** Every timed run's samples per second, in order, and (with a peer) each turn's ratio. */
  runs: { ours: number[]; peer?: number[]; ratios?: number[] };
  check: {
    steps: number;
    /** Each check step's loss on our side (and the peer's). */
    ours: number[];
    peer?: number[];
    /** |first-step loss difference| and the tolerance it is held to (LOSS_TOLERANCE x max(1, |loss|)). */
    firstStepDiff?: number;
    tolerance?: number;
    /** Max |difference| / max(1, |loss|) over the check steps (later steps drift with float rounding). */
    maxRelativeDiff?: number;
  };
}

/** Checks the options that need no file or device (so bad input fails before any work). */
export function validateTrainBench(o: TrainBenchOptions): void {
  if (!(TRAIN_BENCH_PRESETS as readonly string[]).includes(o.preset))
    throw new CliError(`--preset must be ${TRAIN_BENCH_PRESETS.join(' or ')}, found "${o.preset}"`);
  if (o.peer !== undefined && o.peer !== 'torch')
    throw new CliError(`--peer must be torch, found "${o.peer}"`);
  if (o.threads !== undefined && o.peer === undefined)
    throw new CliError("--threads sets the peer's threads: use it with --peer torch (ours: --cpu-threads)");
  if (o.python !== undefined && o.peer === undefined)
    throw new CliError('--python applies to --peer torch only');
  for (const [flag, v] of [
    ['--batch', o.batch],
    ['--steps', o.steps],
    ['--check-steps', o.checkSteps],
    ['--count', o.count],
    ['--bits', o.bits],
    ['--repeat', o.repeat],
    ['--cpu-threads', o.cpuThreads],
    ['--threads', o.threads],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      throw new CliError(`${flag} must be an integer >= 1, found ${v}`);
  }
  if (o.lr !== undefined && !(o.lr > 0 && Number.isFinite(o.lr)))
    throw new CliError(`--lr must be a number > 0, found ${o.lr}`);
}

interface TrainingSet {
  spec: ModelSpec;
  pixels: Float32Array;
  labels: Uint8Array;
  count: number;
  classes: number;
  itemShape: number[];
  data: string;
}

/** The model's spec and the training set: random pixels and one-hot labels, or a data set's training split. */
async function trainingSet(o: TrainBenchOptions, bits: number, seed: number): Promise<TrainingSet> {
  let spec: ModelSpec;
  let ds: Awaited<ReturnType<typeof openDataset>> | undefined;
  if (o.data !== undefined) {
    // Split seed 0: the splits every other command (attack, demo, data export) uses by default.
    ds = await openDataset(o.data, { seed: 0 });
    spec = presetFor(o.preset, bits, ds);
  } else spec = o.preset === 'small-cnn' ? smallCnn(bits) : videoNet(bits);
  const { channels: C, height: H, width: W } = spec.input;
  const itemShape = spec.task === 'video' ? [spec.frames, C, H, W] : [C, H, W];
  const itemSize = itemShape.reduce((a, b) => a * b, 1);
  const wanted = o.count ?? (ds ? ds.train.length : DEFAULT_COUNT[o.preset]);
  const count = ds ? Math.min(wanted, ds.train.length) : wanted;
  const bytes = 4 * count * itemSize;
  const limit = Math.min(2 ** 31, Math.floor(totalmem() / 4));
  if (bytes > limit)
    throw new CliError(
      `--count ${count} objects of ${itemShape.join('x')} take ${(bytes / 2 ** 30).toFixed(1)} GiB, more than a benchmark may hold here (${(limit / 2 ** 30).toFixed(1)} GiB)`,
      'choose a smaller --count',
    );
  const pixels = new Float32Array(count * itemSize);
  if (!ds) {
    const rng = new SeededRandom((seed * 7919 + 13) >>> 0);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rng.next();
    const labels = new Uint8Array(count * RANDOM_CLASSES);
    for (let i = 0; i < count; i++) labels[i * RANDOM_CLASSES + rng.int(RANDOM_CLASSES)] = 1;
    return {
      spec,
      pixels,
      labels,
      count,
      classes: RANDOM_CLASSES,
      itemShape,
      data: `random (seed ${seed}, ${RANDOM_CLASSES} classes)`,
    };
  }
  const split = ds.train;
  const shape = split.batchShape(1).slice(1);
  if (shape.join('x') !== itemShape.join('x'))
    throw new CliError(
      `--data ${o.data}: the model takes ${itemShape.join('x')} objects, the training split's are ${shape.join('x')}`,
    );
  if (count < 1) throw new CliError(`--data ${o.data}: the training split is empty`);
  const all = Array.from({ length: count }, (_, k) => k);
  await split.loadInto(all, pixels, 0);
  const labels = split.labels().slice(0, count * split.classes);
  return {
    spec,
    pixels,
    labels,
    count,
    classes: split.classes,
    itemShape,
    data: `${o.data} train[0..${count})`,
  };
}

/** The training set held in memory, as the training loop reads it; it records the batches in the order asked. */
class MemoryData implements TrainingData {
  readonly loads: number[][] = [];
  constructor(
    private readonly set: TrainingSet,
    private readonly itemSize: number,
  ) {}
  get length(): number {
    return this.set.count;
  }
  get classes(): number {
    return this.set.classes;
  }
  labels(): Uint8Array {
    return this.set.labels;
  }
  async load(indices: number[]): Promise<Float32Array> {
    this.loads.push([...indices]);
    const s = this.itemSize;
    const out = new Float32Array(indices.length * s);
    indices.forEach((i, k) => {
      out.set(this.set.pixels.subarray(i * s, (i + 1) * s), k * s);
    });
    return out;
  }
}

/** Thrown from the progress callback to end a run after the steps asked for (less than an epoch). */
class StopAfterSteps extends Error {}

interface OurRun {
  seconds: number;
  samples: number;
  losses: number[];
  /** The batches in the order the loop took them (the first `steps`). */
  batches: number[][];
}

/**
 * `steps` steps of trainHashingNetwork (one epoch's run, stopped early when steps is less than an epoch) on a
 * fresh network from `weights` (fresh momentum and memory bank), timed from the call to the last step's
 * parameters being computed.
 */
async function trainOurs(
  kernels: KernelEngine,
  set: TrainingSet,
  weights: Weights,
  o: { batch: number; lr: number; seed: number },
  steps: number,
): Promise<OurRun> {
  const itemSize = set.pixels.length / set.count;
  const net = createNetwork(kernels, set.spec, weights);
  const data = new MemoryData(set, itemSize);
  const losses: number[] = [];
  let sum = 0;
  let samples = 0;
  try {
    const t0 = performance.now();
    try {
      await trainHashingNetwork(net, data, {
        epochs: 1,
        batch: o.batch,
        lr: o.lr,
        seed: o.seed,
        onProgress: (p) => {
          // p.loss is the epoch's mean so far: this step's loss is the difference of the running sums.
          const total = p.loss * p.step;
          losses.push(total - sum);
          sum = total;
          samples += Math.min(o.batch, set.count - (p.step - 1) * o.batch);
          if (p.step >= steps && p.step < p.steps) throw new StopAfterSteps();
        },
      });
    } catch (e) {
      if (!(e instanceof StopAfterSteps)) throw e;
    }
    // The last step's updates may still be queued (WebGPU): reading a parameter waits for them.
    const [first] = net.parameters().values();
    await kernels.read(first);
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, samples, losses, batches: data.loads.slice(0, steps) };
  } finally {
    net.destroy();
  }
}

interface TorchOutput {
  version: string;
  threads: number;
  seconds: number;
  samples: number;
  samples_per_second: number;
  env?: Record<string, string>;
  check_losses?: number[];
}

/** The location of bench/torch_train.py, from the bundle (apps/cli/dist) or the sources (apps/cli/src). */
function torchScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '../../../bench/torch_train.py');
}

function runTorch(python: string, args: string[]): Promise<TorchOutput> {
  return runTorchPeer<TorchOutput>('bench train', python, args);
}

function runOf(samples: number, steps: number, seconds: number): TrainBenchRun {
  return { seconds, samplesPerSecond: samples / seconds, msPerStep: (seconds * 1000) / steps };
}

/** The upper middle of the values (the median of an odd count). */
function medianIndex(values: number[]): number {
  const order = values.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
  return order[Math.floor(order.length / 2)][1];
}

function sameBatches(a: number[][], b: number[][]): boolean {
  const n = Math.min(a.length, b.length);
  for (let s = 0; s < n; s++) {
    if (a[s].length !== b[s].length || a[s].some((v, k) => v !== b[s][k])) return false;
  }
  return true;
}

/** Runs the benchmark (`gpu`: the WebGPU device, or null for the WebAssembly engine). */
export async function benchTrain(gpu: Gpu | null, o: TrainBenchOptions): Promise<TrainBenchResult> {
  validateTrainBench(o);
  const log = o.log ?? (() => {});
  const bits = o.bits ?? 64;
  const seed = o.seed ?? 1;
  const batch = o.batch ?? DEFAULT_BATCH[o.preset];
  const repeat = o.repeat ?? 3;
  const startLoad = loadavg();
  const set = await trainingSet(o, bits, seed);
  const { spec, count } = set;
  const perEpoch = Math.ceil(count / batch);
  const steps = o.steps ?? perEpoch;
  const checkSteps = o.checkSteps ?? Math.min(3, perEpoch);
  if (steps > perEpoch)
    throw new CliError(
      `--steps ${steps} is more than one epoch (${perEpoch} steps of ${batch} objects for ${count} objects)`,
      'choose fewer --steps, a smaller --batch or a larger --count',
    );
  if (checkSteps > perEpoch)
    throw new CliError(`--check-steps ${checkSteps} is more than one epoch (${perEpoch} steps)`);
  const resolved = resolveTrainOptions(spec.task, {
    epochs: 1,
    batch,
    lr: o.lr ?? DEFAULT_LR[o.preset],
    seed,
  });
  const lr = learningRateAt(0, resolved);
  const weights = initWeights(spec, seed);
  const engine = resolveEngine(o.engine, gpu);
  const cpuThreads = o.cpuThreads ?? defaultThreads();
  const kernels = await openEngine(gpu, engine, cpuThreads);
  const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-train-'));
  try {
    const probe = createNetwork(kernels, spec, weights);
    const device = deviceOf(probe);
    probe.destroy();
    const train = { batch, lr, seed };
    const result: TrainBenchResult = {
      preset: o.preset,
      input: set.itemShape,
      bits,
      data: set.data,
      count,
      classes: set.classes,
      batch,
      steps,
      samples: Math.min(count, steps * batch),
      epochFraction: steps / perEpoch,
      checkSteps,
      repeat,
      training: {
        lr,
        momentum: resolved.momentum,
        weightDecay: resolved.weightDecay,
        eta: resolved.eta,
        balance: resolved.balance,
        seed,
      },
      engine,
      device,
      software: engine === 'wasm' || !gpu || gpu.adapter.isSoftware,
      date: new Date().toISOString(),
      loadavg: { start: startLoad, end: [] },
      ours: { seconds: 0, samplesPerSecond: 0, msPerStep: 0 },
      runs: { ours: [] },
      check: { steps: checkSteps, ours: [] },
    };

    // The check run doubles as the warm-up (compiles every shader, fills the engine's pools).
    log(`dhta (${engine}): check run, ${checkSteps} steps of ${batch} (${count} objects in the bank)`);
    const check = await trainOurs(kernels, set, weights, train, checkSteps);
    result.check.ours = check.losses;
    const oursRuns: OurRun[] = [];
    const timeOurs = async (r: number): Promise<void> => {
      log(`dhta (${engine}): timed run ${r + 1}/${repeat}, ${steps} steps`);
      const run = await trainOurs(kernels, set, weights, train, steps);
      if (
        !sameBatches(run.batches, check.batches) ||
        (oursRuns[0] && !sameBatches(run.batches, oursRuns[0].batches))
      )
        throw new CliError('bench train: the training loop took its batches in another order in another run');
      oursRuns.push(run);
    };
    const python = o.python ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
    const peerRuns: TorchOutput[] = [];
    for (let r = 0; r < repeat; r++) {
      await timeOurs(r);
      if (!o.peer) continue;
      if (r === 0) {
        // The peer takes the objects in the order our run took them.
        await saveBundle(join(dir, 'model'), { spec, weights });
        await writeNpyFile(join(dir, 'x.npy'), set.pixels, [count, ...set.itemShape]);
        await writeNpyFile(join(dir, 'labels.npy'), set.labels, [count, set.classes]);
        const longer = check.batches.length > steps ? check.batches : oursRuns[0].batches;
        const order = Int32Array.from(longer.flat());
        await writeNpyFile(join(dir, 'order.npy'), order, [order.length]);
      }
      log(
        `torch: ${r === 0 ? 'check run and ' : 'warm-up and '}timed run ${r + 1}/${repeat}, ${steps} steps`,
      );
      peerRuns.push(
        await runTorch(python, [
          torchScript(),
          '--bundle',
          join(dir, 'model'),
          '--x',
          join(dir, 'x.npy'),
          '--labels',
          join(dir, 'labels.npy'),
          '--order',
          join(dir, 'order.npy'),
          '--batch',
          String(batch),
          '--steps',
          String(steps),
          // Every peer process warms up with the check run (its first steps pay for lazy initialisation).
          '--check-steps',
          String(checkSteps),
          '--lr',
          String(lr),
          '--momentum',
          String(resolved.momentum),
          '--weight-decay',
          String(resolved.weightDecay),
          '--eta',
          String(resolved.eta),
          ...(resolved.balance ? [] : ['--no-balance']),
          '--seed',
          String(seed),
          '--threads',
          String(o.threads ?? cpuThreads),
        ]),
      );
      if (r === 0) {
        const theirs = peerRuns[0].check_losses ?? [];
        const a = check.losses[0];
        const b = theirs[0];
        const tolerance = LOSS_TOLERANCE * Math.max(1, Math.abs(a));
        result.check.peer = theirs;
        result.check.firstStepDiff = Math.abs(a - b);
        result.check.tolerance = tolerance;
        let worst = 0;
        for (let s = 0; s < Math.min(theirs.length, check.losses.length); s++)
          worst = Math.max(
            worst,
            Math.abs(check.losses[s] - theirs[s]) / Math.max(1, Math.abs(check.losses[s])),
          );
        result.check.maxRelativeDiff = worst;
        if (!(Math.abs(a - b) <= tolerance))
          throw new CliError(
            `bench train --peer torch: the first step's loss differs: ours ${a}, PyTorch ${b} ` +
              `(|diff| ${Math.abs(a - b).toExponential(2)} > ${tolerance.toExponential(1)}); ` +
              'the two sides do not train the same model on the same data, so their times are not comparable',
            'report it with the command line: bench/torch_train.py and train.ts / loss.ts have drifted apart',
          );
      }
    }
    const oursPerSecond = oursRuns.map((u) => u.samples / u.seconds);
    const mid = oursRuns[medianIndex(oursPerSecond)];
    result.ours = runOf(mid.samples, steps, mid.seconds);
    result.runs = { ours: oursPerSecond };
    if (peerRuns.length) {
      const peerPerSecond = peerRuns.map((u) => u.samples_per_second);
      const p = peerRuns[medianIndex(peerPerSecond)];
      result.peer = {
        engine: 'pytorch',
        version: p.version,
        threads: p.threads,
        env: p.env ?? {},
        ...runOf(p.samples, steps, p.seconds),
      };
      result.ratio = result.ours.samplesPerSecond / result.peer.samplesPerSecond;
      result.runs.peer = peerPerSecond;
      result.runs.ratios = oursPerSecond.map((v, i) => v / peerPerSecond[i]);
    }
    result.loadavg.end = loadavg();
    return result;
  } finally {
    kernels.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmtLoadavg(l: number[]): string {
  return l.map((v) => v.toFixed(2)).join(' ');
}

/** Adds `train` to the program's `bench` command group. */
export function registerBenchTrain(bench: Command): void {
  bench
    .command('train')
    .description(
      'Training samples per second of the training loop (dhta train: forward with dropout, the pairwise loss ' +
        'against the memory bank, backward to every weight, SGD with momentum and weight decay) on one epoch ' +
        '(or --steps) of random or real data; with --peer torch also the same steps in PyTorch on the CPU ' +
        "(Debian's python3-torch) from the same weights, data, batch order and dropout masks, in the same run, " +
        "taking turns, after checking that the first step's losses agree; medians and the ratio.",
    )
    .requiredOption('--preset <name>', `model: ${TRAIN_BENCH_PRESETS.join(' or ')}`, (v: string) => {
      if (!(TRAIN_BENCH_PRESETS as readonly string[]).includes(v))
        throw new CliError(`--preset must be ${TRAIN_BENCH_PRESETS.join(' or ')}, found "${v}"`);
      return v as TrainBenchPreset;
    })
    .option(
      '--batch <B>',
      "objects per step, 1 to 100000 (default: dhta train's, 24 for small-cnn, 20 for video)",
      positiveInt('--batch', 100_000),
    )
    .option(
      '--steps <N>',
      'timed steps per run, at most one epoch (default: one epoch, ceil(count / batch))',
      positiveInt('--steps', 1_000_000),
    )
    .option(
      '--check-steps <N>',
      'steps of the check run (also the warm-up), whose losses are compared (default 3)',
      positiveInt('--check-steps', 1_000_000),
    )
    .option(
      '--count <N>',
      "training-set size (the memory bank): random objects, or the first N of --data's training split (default: 5000 small-cnn, 1000 video; all of --data)",
      positiveInt('--count', 10_000_000),
    )
    .option(
      '--data <name>',
      "train on a data set's training split (mnist, fashion-mnist, moving-mnist, ...; split seed 0) instead of random pixels and labels",
    )
    .option('--bits <K>', 'code length, 1 to 4096', positiveInt('--bits', 4096), 64)
    .option(
      '--lr <LR>',
      "learning rate (default: dhta train's, 0.5); momentum, weight decay and eta are the training library's defaults",
      (v: string) => {
        const n = decimal(v);
        if (!(n > 0) || !(n <= 1000))
          throw new CliError(`--lr must be a number > 0 and <= 1000, found "${v}"`);
        return n;
      },
    )
    .option(
      '--seed <S>',
      'seed of weights, random data, batch order and dropout masks, 0 to 4294967295',
      nonNegativeInt('--seed'),
      1,
    )
    .option(
      '--repeat <R>',
      'timed runs of each side, ours and the peer taking turns, 1 to 1000; medians reported',
      positiveInt('--repeat', 1000),
      3,
    )
    .option('--engine <E>', `${ENGINE_HELP}: auto, webgpu or wasm`, engineOption)
    .option(
      '--cpu-threads <T>',
      `threads of our WebAssembly engine, 1 to ${MAX_CPU_THREADS} (default: the logical CPUs)`,
      positiveInt('--cpu-threads', MAX_CPU_THREADS),
    )
    .option('--peer <name>', 'also time a peer on the same model, data and steps: torch')
    .option(
      '--threads <T>',
      "PyTorch's threads, 1 to 256 (default: the same as our engine's)",
      positiveInt('--threads', 256),
    )
    .option('--python <path>', 'Python with PyTorch for --peer torch (default /usr/bin/python3)')
    .option('--out <file>', 'also write the result as JSON to this file (atomically)')
    .option('--backend <name>', 'Dawn backend', backendOption)
    .option('--adapter <name>', 'adapter name')
    .option('--json', 'print one JSON line')
    .action(
      async (
        o: GpuFlags & {
          preset: TrainBenchPreset;
          batch?: number;
          steps?: number;
          checkSteps?: number;
          count?: number;
          data?: string;
          bits: number;
          lr?: number;
          seed: number;
          repeat: number;
          engine?: Engine;
          cpuThreads?: number;
          peer?: string;
          threads?: number;
          python?: string;
          out?: string;
          json?: boolean;
        },
      ) => {
        const options: TrainBenchOptions = {
          preset: o.preset,
          batch: o.batch,
          steps: o.steps,
          checkSteps: o.checkSteps,
          count: o.count,
          data: o.data,
          bits: o.bits,
          lr: o.lr,
          seed: o.seed,
          repeat: o.repeat,
          peer: o.peer as 'torch' | undefined,
          engine: o.engine,
          cpuThreads: o.cpuThreads,
          threads: o.threads,
          python: o.python,
          log: o.json ? undefined : (line) => process.stderr.write(`  ${line}\n`),
        };
        validateTrainBench(options);
        const failed = outFileReady(o.out);
        await withOptionalGpu(o, async (gpu) => {
          const r = await benchTrain(gpu, options);
          if (o.out) writeAtomic(o.out, `${JSON.stringify(r, null, 2)}\n`);
          if (o.json) return printJson(r);
          console.log(
            `${r.preset}, ${r.bits} bits, ${r.data}: ${r.count} objects (${r.input.join('x')}), batch ${r.batch}, ` +
              `${r.steps} steps (${(100 * r.epochFraction).toFixed(0)}% of an epoch); lr ${r.training.lr}, momentum ` +
              `${r.training.momentum}, weight decay ${r.training.weightDecay}, eta ${r.training.eta}` +
              `${r.training.balance ? ', balanced' : ''}\n`,
          );
          const rows: Array<Array<string | number>> = [
            [
              `dhta (${r.engine})`,
              r.device,
              r.samples,
              r.steps,
              r.ours.seconds,
              r.ours.msPerStep,
              r.ours.samplesPerSecond,
            ],
          ];
          if (r.peer) {
            rows.push([
              `pytorch ${r.peer.version}`,
              `CPU, ${r.peer.threads} thread${r.peer.threads > 1 ? 's' : ''}`,
              r.samples,
              r.steps,
              r.peer.seconds,
              r.peer.msPerStep,
              r.peer.samplesPerSecond,
            ]);
          }
          console.log(
            formatTable(['engine', 'device', 'samples', 'steps', 'seconds', 'ms/step', 'samples/s'], rows),
          );
          const fmt = (v: number[]) => v.map((q) => q.toFixed(1)).join(', ');
          console.log(
            `\n${r.repeat} timed run${r.repeat > 1 ? 's' : ''} each (medians above): dhta ${fmt(r.runs.ours)}` +
              `${r.runs.peer ? `; pytorch ${fmt(r.runs.peer)}` : ''} samples/s`,
          );
          if (r.peer)
            console.log(
              `pytorch's environment: ${
                Object.entries(r.peer.env)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ') ||
                'OMP_WAIT_POLICY and MALLOC_* unset (libgomp spins, glibc unmaps large tensors: see bench/README.md)'
              }`,
            );
          const c = r.check;
          const losses = (v: number[]) => v.map((q) => q.toFixed(6)).join(', ');
          if (r.ratio !== undefined && c.peer) {
            console.log(
              `ratio dhta / pytorch: ${r.ratio.toFixed(2)}x (per turn ${r.runs.ratios?.map((q) => q.toFixed(2)).join(', ')})`,
            );
            console.log(
              `loss check, ${c.steps} steps: dhta ${losses(c.ours)}; pytorch ${losses(c.peer)}; first step ` +
                `|diff| ${c.firstStepDiff?.toExponential(2)} (tolerance ${c.tolerance?.toExponential(1)}): agree; ` +
                `max relative diff over the check steps ${c.maxRelativeDiff?.toExponential(2)}`,
            );
          } else console.log(`check run, ${c.steps} steps: losses ${losses(c.ours)}`);
          console.log(
            `load average (1, 5, 15 min): start ${fmtLoadavg(r.loadavg.start)}, end ${fmtLoadavg(r.loadavg.end)}`,
          );
        }).catch(failed);
      },
    );
}
