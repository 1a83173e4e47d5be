// `dhta bench attack`: DHTA query-iterations per second through our kernels (runAttack), and with
// --peer torch the same loop in PyTorch (bench/torch_attack.py) on the same model, pixels and anchors, in
// the same run, after a short check run whose codes and deltas are compared.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveAttackSettings, runAttack } from '@dhta/attack';
import type { Gpu } from '@dhta/kernels';
import { readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import { SeededRandom } from '@dhta/kernels/reference';
import {
  createNetwork,
  type ImageModelSpec,
  initWeights,
  saveBundle,
  smallCnn,
  type VideoModelSpec,
  vgg11,
  videoNet,
} from '@dhta/models';
import type { Command } from 'commander';
import { nonNegativeInt, positiveInt } from './attack.js';
import { outFileReady, writeAtomic } from './bench.js';
import { startBusy } from './busy.js';
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

export const ATTACK_BENCH_PRESETS = ['small-cnn', 'vgg11', 'video'] as const;
export type AttackBenchPreset = (typeof ATTACK_BENCH_PRESETS)[number];
/** "small-cnn, vgg11 or video", for messages. */
const PRESET_LIST = `${ATTACK_BENCH_PRESETS.slice(0, -1).join(', ')} or ${ATTACK_BENCH_PRESETS.at(-1)}`;

export interface AttackBenchOptions {
  preset: AttackBenchPreset;
  /** Queries attacked at once. */
  batch: number;
  /** Timed iterations (default: 50 for small-cnn and video, 3 for vgg11). */
  iters?: number;
  /** Iterations of the check run, which is also our warm-up (default: 10 for small-cnn and video, 2 for vgg11). */
  checkIters?: number;
  /** Code length (default 64). */
  bits?: number;
  /** Input side (vgg11 only; default 224, a multiple of 32). */
  size?: number;
  /** Seed of the weights, pixels and anchors (default 1). */
  seed?: number;
  /** Timed runs of each side, taking turns with the peer; medians are reported (default 1). */
  repeat?: number;
  peer?: 'torch';
  /** Where our attack loop runs (default auto: wasm on a software adapter). */
  engine?: Engine;
  /** Python with PyTorch (default /usr/bin/python3). */
  python?: string;
  /** Threads of PyTorch and of the WebAssembly engine (default 2). */
  threads?: number;
  /** Competing busy processes (one core each) running from the check run to the end (default 0). */
  busy?: number;
  /** Progress lines (stderr). */
  log?: (line: string) => void;
}

export interface AttackBenchRun {
  seconds: number;
  queryIterationsPerSecond: number;
  msPerIteration: number;
}

export interface AttackBenchResult {
  preset: AttackBenchPreset;
  /** One query: [C, H, W], or [T, C, H, W] for video. */
  input: number[];
  batch: number;
  bits: number;
  iters: number;
  checkIters: number;
  repeat: number;
  /** Our engine: the WGSL kernels through WebGPU, or the WebAssembly SIMD engine on the CPU. */
  engine: 'webgpu' | 'wasm';
  /** The WebGPU adapter, or for wasm the CPU threads. */
  device: string;
  software: boolean;
  date: string;
  /** The 1, 5 and 15 minute load averages when the run started and ended (the machine is shared). */
  loadavg: { start: number[]; end: number[] };
  /** dispatchesPerIteration: GPU dispatches (0 for wasm). */
  ours: AttackBenchRun & { dispatchesPerIteration: number };
  /** env: the variables that change PyTorch's times on a shared machine, as the peer saw them (bench/README.md). */
  peer?: AttackBenchRun & { engine: string; version: string; threads: number; env: Record<string, string> };
  /** ours / peer (query-iterations per second, medians with --repeat). */
  ratio?: number;
  /** With --repeat: every timed run's query-iterations per second, in order. */
  runs?: { ours: number[]; peer?: number[] };
  check?: {
    iterations: number;
    identicalBitFraction: number;
    identicalCodes: number;
    /** max |delta_ours - delta_torch| in the normalised space. */
    maxDeltaDiff: number;
    /**
     * Queries whose delta differs anywhere by more than 1e-4: a max-pool or ReLU decision that float
     * rounding tips the other way sends that query's gradient down another path (expect few or none).
     */
    divergedQueries: number;
    maxFeatureDiff: number;
  };
}

/** The location of bench/torch_attack.py, from the bundle (apps/cli/dist) or the sources (apps/cli/src). */
function torchScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '../../../bench/torch_attack.py');
}

function specOf(
  preset: AttackBenchPreset,
  bits: number,
  size: number | undefined,
): ImageModelSpec | VideoModelSpec {
  if (preset === 'small-cnn') {
    if (size !== undefined && size !== 28)
      throw new CliError('--size applies to vgg11 only (small-cnn is 28x28)');
    return smallCnn(bits);
  }
  if (preset === 'video') {
    if (size !== undefined && size !== 32)
      throw new CliError('--size applies to vgg11 only (video is 10 frames of 32x32)');
    return videoNet(bits);
  }
  const s = size ?? 224;
  if (!Number.isInteger(s) || s < 32 || s % 32 !== 0)
    throw new CliError(`--size must be a multiple of 32 (VGG-11 pools five times), found ${s}`);
  return vgg11(bits, { size: s });
}

function runOf(rows: number, iters: number, seconds: number): AttackBenchRun {
  return {
    seconds,
    queryIterationsPerSecond: (rows * iters) / seconds,
    msPerIteration: (seconds * 1000) / iters,
  };
}

interface TorchOutput {
  version: string;
  threads: number;
  seconds: number;
  query_iterations_per_second: number;
  env?: Record<string, string>;
}

function runTorch(python: string, args: string[]): Promise<TorchOutput> {
  return runTorchPeer<TorchOutput>('bench attack', python, args);
}

/** Runs the benchmark on `gpu`. */
export async function benchAttack(gpu: Gpu | null, o: AttackBenchOptions): Promise<AttackBenchResult> {
  const bits = o.bits ?? 64;
  const seed = o.seed ?? 1;
  const iters = o.iters ?? (o.preset === 'vgg11' ? 3 : 50);
  const checkIters = o.checkIters ?? (o.preset === 'vgg11' ? 2 : 10);
  const log = o.log ?? (() => {});
  if (!Number.isInteger(o.batch) || o.batch < 1)
    throw new CliError(`--batch must be an integer >= 1, found ${o.batch}`);
  const spec = specOf(o.preset, bits, o.size);
  const { channels, height, width } = spec.input;
  const inputShape =
    spec.task === 'video' ? [spec.frames, channels, height, width] : [channels, height, width];
  const inputSize = inputShape.reduce((a, b) => a * b, 1);
  // The attack's alpha: the paper's schedule for image models, a constant (0.1) for video models.
  const alpha = resolveAttackSettings(spec.task, { method: 'dhta' }).alpha;
  // The batch's pixels (float32) are held about five times over during the attack: refuse what cannot fit.
  const bytes = 5 * 4 * o.batch * inputSize;
  const limit = Math.min(2 ** 33, Math.floor(totalmem() / 2));
  if (bytes > limit)
    throw new CliError(
      `--batch ${o.batch} of ${inputShape.join('x')} inputs needs about ${(bytes / 2 ** 30).toFixed(0)} GiB, ` +
        `more than a benchmark may take here (${(limit / 2 ** 30).toFixed(0)} GiB)`,
      'choose a smaller --batch (or --size)',
    );
  const weights = initWeights(spec, seed);
  const rng = new SeededRandom((seed * 7919 + 13) >>> 0);
  const x = new Float32Array(o.batch * inputSize);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  const anchors = Int8Array.from({ length: o.batch * bits }, () => (rng.next() < 0.5 ? -1 : 1));

  const engine = resolveEngine(o.engine, gpu);
  const kernels = await openEngine(gpu, engine, o.threads ?? 2);
  const net = createNetwork(kernels, spec, weights, { ownEngine: true });
  const device = deviceOf(net);
  const dispatches = (): number => gpu?.dispatches ?? 0;
  const n = o.batch;
  const repeat = o.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1)
    throw new CliError(`--repeat must be an integer >= 1, found ${o.repeat}`);
  const result: AttackBenchResult = {
    preset: o.preset,
    input: inputShape,
    batch: n,
    bits,
    iters,
    checkIters,
    repeat,
    engine,
    device,
    software: engine === 'wasm' || !gpu || gpu.adapter.isSoftware,
    date: new Date().toISOString(),
    loadavg: { start: loadavg(), end: [] },
    ours: { seconds: 0, queryIterationsPerSecond: 0, msPerIteration: 0, dispatchesPerIteration: 0 },
  };
  const busy = await startBusy(o.busy ?? 0);
  if (busy.count) log(`dhta: ${busy.count} busy process(es) running`);
  const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-attack-'));
  try {
    // The check run doubles as the warm-up: it compiles every shader the timed run uses.
    log(`dhta: check run, ${checkIters} iterations of ${n} queries`);
    const check = await runAttack(net, x, n, anchors, {
      method: 'dhta',
      iterations: Math.max(1, checkIters),
      progressEvery: 0,
    });
    const oursRuns: Array<AttackBenchResult['ours']> = [];
    const timeOurs = async (r: number): Promise<void> => {
      log(`dhta: timed run${repeat > 1 ? ` ${r + 1}/${repeat}` : ''}, ${iters} iterations`);
      const d0 = dispatches();
      const t0 = performance.now();
      await runAttack(net, x, n, anchors, { method: 'dhta', iterations: iters, progressEvery: 0 });
      const seconds = (performance.now() - t0) / 1000;
      oursRuns.push({ ...runOf(n, iters, seconds), dispatchesPerIteration: (dispatches() - d0) / iters });
    };
    if (!o.peer) {
      for (let r = 0; r < repeat; r++) await timeOurs(r);
      result.ours = medianRun(oursRuns);
      if (repeat > 1) result.runs = { ours: oursRuns.map((u) => u.queryIterationsPerSecond) };
      result.loadavg.end = loadavg();
      return result;
    }

    const bundle = join(dir, 'model');
    await saveBundle(bundle, { spec, weights });
    await writeNpyFile(join(dir, 'x.npy'), x, [n, ...inputShape]);
    await writeNpyFile(join(dir, 'anchors.npy'), anchors, [n, bits]);
    const python = o.python ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
    // Ours and the peer take turns, so that both see the same phases of a shared, noisy machine.
    const peerRuns: TorchOutput[] = [];
    mkdirSync(join(dir, 'later'));
    for (let r = 0; r < repeat; r++) {
      await timeOurs(r);
      log(
        r === 0
          ? `torch: check run (${checkIters} iterations), then ${iters} timed iterations`
          : `torch: timed run ${r + 1}/${repeat}, ${iters} iterations`,
      );
      peerRuns.push(
        await runTorch(python, [
          torchScript(),
          '--bundle',
          bundle,
          '--x',
          join(dir, 'x.npy'),
          '--anchors',
          join(dir, 'anchors.npy'),
          '--iters',
          String(iters),
          '--check-iters',
          String(r === 0 ? Math.max(1, checkIters) : 1),
          '--threads',
          String(o.threads ?? 2),
          '--alpha',
          String(alpha),
          '--out-dir',
          r === 0 ? dir : join(dir, 'later'),
        ]),
      );
    }
    result.ours = medianRun(oursRuns);
    const sortedPeer = [...peerRuns].sort(
      (a, b) => a.query_iterations_per_second - b.query_iterations_per_second,
    );
    const peerMedian = sortedPeer[Math.floor(sortedPeer.length / 2)];
    const codes = (await readNpyFile(join(dir, 'check_codes.npy'))).data as Int8Array;
    const delta = (await readNpyFile(join(dir, 'check_delta.npy'))).data as Float32Array;
    const features = (await readNpyFile(join(dir, 'check_features.npy'))).data as Float32Array;
    let same = 0;
    let sameCodes = 0;
    for (let q = 0; q < n; q++) {
      let all = true;
      for (let j = 0; j < bits; j++) {
        if (codes[q * bits + j] === check.codes[q * bits + j]) same++;
        else all = false;
      }
      if (all) sameCodes++;
    }
    let maxDelta = 0;
    let diverged = 0;
    const std = spec.input.std;
    const plane = height * width;
    for (let q = 0; q < n; q++) {
      let m = 0;
      for (let i = q * inputSize; i < (q + 1) * inputSize; i++) {
        const c = Math.floor(i / plane) % channels;
        const ourDelta = (check.adversarial[i] - x[i]) / std[c];
        m = Math.max(m, Math.abs(ourDelta - delta[i]));
      }
      maxDelta = Math.max(maxDelta, m);
      if (m > 1e-4) diverged++;
    }
    let maxFeature = 0;
    for (let i = 0; i < features.length; i++)
      maxFeature = Math.max(maxFeature, Math.abs(features[i] - check.features[i]));
    result.check = {
      iterations: Math.max(1, checkIters),
      identicalBitFraction: same / (n * bits),
      identicalCodes: sameCodes,
      maxDeltaDiff: maxDelta,
      divergedQueries: diverged,
      maxFeatureDiff: maxFeature,
    };
    result.peer = {
      engine: 'pytorch',
      version: peerMedian.version,
      threads: peerMedian.threads,
      env: peerMedian.env ?? {},
      seconds: peerMedian.seconds,
      queryIterationsPerSecond: peerMedian.query_iterations_per_second,
      msPerIteration: (peerMedian.seconds * 1000) / iters,
    };
    result.ratio = result.ours.queryIterationsPerSecond / peerMedian.query_iterations_per_second;
    if (repeat > 1) {
      result.runs = {
        ours: oursRuns.map((u) => u.queryIterationsPerSecond),
        peer: peerRuns.map((u) => u.query_iterations_per_second),
      };
    }
    result.loadavg.end = loadavg();
    return result;
  } finally {
    await busy.stop();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The run with the median query-iterations per second (the upper middle one of an even count). */
function medianRun<T extends AttackBenchRun>(runs: T[]): T {
  const sorted = [...runs].sort((a, b) => a.queryIterationsPerSecond - b.queryIterationsPerSecond);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Adds `attack` to the program's `bench` command group (register the group first: registerBench). */
export function registerBenchAttack(program: Command): void {
  const bench = program.commands.find((c) => c.name() === 'bench');
  if (!bench) throw new Error('registerBenchAttack: register the bench command group first');
  bench
    .command('attack')
    .description(
      'DHTA query-iterations per second (forward with tape, tanh loss gradient, backward to the input, L2 step, ' +
        'box and eps clamps) on seeded random weights, pixels and anchors; with --peer torch also the same loop ' +
        "in PyTorch (Debian's python3-torch) on the same model and data in the same run, after checking that a " +
        'short run gives the same codes, and the ratio.',
    )
    .requiredOption('--preset <name>', `model: ${PRESET_LIST}`, (v: string) => {
      if (!(ATTACK_BENCH_PRESETS as readonly string[]).includes(v))
        throw new CliError(`--preset must be ${PRESET_LIST}, found "${v}"`);
      return v as AttackBenchPreset;
    })
    .requiredOption('--batch <B>', 'queries attacked at once', positiveInt('--batch'))
    .option(
      '--iters <N>',
      'timed iterations, 1 to 1000000 (default 50 for small-cnn and video, 3 for vgg11)',
      positiveInt('--iters', 1_000_000),
    )
    .option(
      '--check-iters <N>',
      'iterations of the check run, also the warm-up, 1 to 1000000 (default 10 for small-cnn and video, 2 for vgg11)',
      positiveInt('--check-iters', 1_000_000),
    )
    .option('--bits <K>', 'code length, 1 to 4096', positiveInt('--bits', 4096), 64)
    .option(
      '--size <S>',
      'vgg11 input side, a multiple of 32 up to 2048 (default 224)',
      positiveInt('--size', 2048),
    )
    .option('--seed <S>', 'seed of weights, pixels and anchors, 0 to 4294967295', nonNegativeInt('--seed'), 1)
    .option(
      '--repeat <R>',
      'timed runs of each side, ours and the peer taking turns, 1 to 1000; medians reported',
      positiveInt('--repeat', 1000),
      1,
    )
    .option('--engine <E>', `${ENGINE_HELP}: auto, webgpu or wasm`, engineOption)
    .option('--peer <name>', 'also time a peer on the same model and data: torch')
    .option('--python <path>', 'Python with PyTorch for --peer torch (default /usr/bin/python3)')
    .option(
      '--threads <T>',
      'threads of PyTorch and of our WebAssembly engine, 1 to 256',
      positiveInt('--threads', 256),
      2,
    )
    .option(
      '--busy <N>',
      'start N busy processes (each spins on one core) before the check run and kill them after the timed runs, 0 to 64',
      nonNegativeInt('--busy', 64),
      0,
    )
    .option('--out <file>', 'also write the result as JSON to this file (atomically)')
    .option('--backend <name>', 'Dawn backend', backendOption)
    .option('--adapter <name>', 'adapter name')
    .option('--json', 'print one JSON line')
    .action(
      async (
        o: GpuFlags & {
          preset: AttackBenchPreset;
          batch: number;
          iters?: number;
          checkIters?: number;
          bits: number;
          size?: number;
          seed: number;
          repeat: number;
          peer?: string;
          engine?: Engine;
          python?: string;
          threads: number;
          busy: number;
          out?: string;
          json?: boolean;
        },
      ) => {
        if (o.peer !== undefined && o.peer !== 'torch')
          throw new CliError(`--peer must be torch, found "${o.peer}"`);
        const failed = outFileReady(o.out);
        await withOptionalGpu(o, async (gpu) => {
          const r = await benchAttack(gpu, {
            preset: o.preset,
            batch: o.batch,
            iters: o.iters,
            checkIters: o.checkIters,
            bits: o.bits,
            size: o.size,
            seed: o.seed,
            repeat: o.repeat,
            peer: o.peer as 'torch' | undefined,
            engine: o.engine,
            python: o.python,
            threads: o.threads,
            busy: o.busy,
            log: o.json ? undefined : (line) => process.stderr.write(`  ${line}\n`),
          });
          if (o.out) writeAtomic(o.out, `${JSON.stringify(r, null, 2)}\n`);
          if (o.json) return printJson(r);
          const shape = `${r.batch}x${r.input.join('x')}`;
          const rows: Array<Array<string | number>> = [
            [
              `dhta (${r.engine})`,
              r.device,
              shape,
              r.iters,
              r.ours.seconds,
              r.ours.msPerIteration,
              r.ours.queryIterationsPerSecond,
            ],
          ];
          if (r.peer) {
            rows.push([
              `pytorch ${r.peer.version}`,
              `CPU, ${r.peer.threads} threads`,
              shape,
              r.iters,
              r.peer.seconds,
              r.peer.msPerIteration,
              r.peer.queryIterationsPerSecond,
            ]);
          }
          console.log(
            formatTable(['engine', 'device', 'queries', 'iters', 'seconds', 'ms/iter', 'query-iter/s'], rows),
          );
          if (r.engine === 'webgpu')
            console.log(`\ndispatches per iteration: ${r.ours.dispatchesPerIteration.toFixed(1)}`);
          if (r.runs) {
            const fmt = (v: number[]) => v.map((q) => q.toFixed(1)).join(', ');
            console.log(
              `\n${r.repeat} timed runs each (medians above): dhta ${fmt(r.runs.ours)}` +
                `${r.runs.peer ? `; pytorch ${fmt(r.runs.peer)}` : ''} query-iter/s`,
            );
          }
          if (r.peer)
            console.log(
              `pytorch's environment: ${
                Object.entries(r.peer.env)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ') ||
                'OMP_WAIT_POLICY and MALLOC_* unset (libgomp spins, glibc unmaps large tensors: see bench/README.md)'
              }`,
            );
          if (r.ratio !== undefined && r.check) {
            const c = r.check;
            console.log(
              `ratio dhta / pytorch: ${r.ratio.toFixed(2)}x  (check run of ${c.iterations} iterations: identical bits ` +
                `${(100 * c.identicalBitFraction).toFixed(2)}%, identical codes ${c.identicalCodes}/${r.batch}, ` +
                `max |delta diff| ${c.maxDeltaDiff.toExponential(2)} (queries over 1e-4: ${c.divergedQueries}), ` +
                `max |f diff| ${c.maxFeatureDiff.toExponential(2)})`,
            );
          }
          const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(' ');
          console.log(
            `load average (1, 5, 15 min): start ${load(r.loadavg.start)}, end ${load(r.loadavg.end)}`,
          );
        }).catch(failed);
      },
    );
}
