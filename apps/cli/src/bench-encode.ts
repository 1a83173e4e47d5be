// `dhta bench encode`: images per second of encoding (f(x) and codes sign(f(x))) through our engine, and with
// --peer onnxruntime the same model, written as ONNX (peers/onnx.ts), on onnxruntime-node's CPU execution
// provider, on the same images in the same run: warm-up runs whose features and codes are compared, then
// timed rounds taking turns, medians reported.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { openDataset } from '@dhta/data';
import type { Gpu } from '@dhta/kernels';
import { SeededRandom } from '@dhta/kernels/reference';
import {
  type ImageModelSpec,
  initWeights,
  loadBundle,
  loadSpec,
  type ModelSpec,
  saveBundle,
  smallCnn,
  vgg11,
  type Weights,
} from '@dhta/models';
import type { Command } from 'commander';
import { nonNegativeInt, positiveInt } from './attack.js';
import { outFileReady, writeAtomic } from './bench.js';
import { CliError } from './errors.js';
import {
  backendOption,
  ENGINE_HELP,
  type Engine,
  engineOption,
  type GpuFlags,
  openNetwork,
  withOptionalGpu,
} from './gpu.js';
import { formatTable, printJson } from './output.js';
import { assertOnnxWritable, imageModelToOnnx, ONNX_OPSET } from './peers/onnx.js';
import { ensureOnnxRuntime, OrtRunner } from './peers/onnxruntime.js';

export const ENCODE_BENCH_PRESETS = ['small-cnn', 'vgg11'] as const;
export type EncodeBenchPreset = (typeof ENCODE_BENCH_PRESETS)[number];
export const ENCODE_BENCH_PEERS = ['onnxruntime'] as const;
export type EncodeBenchPeer = (typeof ENCODE_BENCH_PEERS)[number];
const SPLITS = ['train', 'database', 'query'] as const;
type Split = (typeof SPLITS)[number];

/** Our WebAssembly engine's default threads (the logical CPUs, at most 16), also ONNX Runtime's default. */
const MAX_CPU_THREADS = 16;
function defaultThreads(): number {
  return Math.max(1, Math.min(MAX_CPU_THREADS, availableParallelism()));
}

export interface EncodeBenchOptions {
  /** A model bundle folder; or `preset` (seeded random weights). Exactly one of the two. */
  model?: string;
  preset?: EncodeBenchPreset;
  /** Preset only: code length (default 64). */
  bits?: number;
  /** Images from a data set (`dhta data list`), its `split` (default query), the first `count`; else random. */
  data?: string;
  split?: Split;
  /** Images encoded per round (default 1000). */
  count?: number;
  /** Images per call of each side (default 100). */
  batch?: number;
  /** Timed rounds of each side, taking turns (default 5). */
  rounds?: number;
  /** Seed of the preset's weights and of random images (default 1). */
  seed?: number;
  engine?: Engine;
  /** Threads of our WebAssembly engine (default: the logical CPUs, at most 16). */
  cpuThreads?: number;
  peer?: EncodeBenchPeer;
  /** ONNX Runtime's intra-op threads (default: the same as our engine's). */
  threads?: number;
  /** Progress lines (stderr). */
  log?: (line: string) => void;
}

export interface EncodeBenchRun {
  seconds: number;
  imagesPerSecond: number;
}

export interface EncodeBenchResult {
  /** The bundle folder, or "preset small-cnn" / "preset vgg11" (seeded random weights). */
  model: string;
  input: [number, number, number];
  bits: number;
  /** "random (seed S)" or "NAME SPLIT[0..count)". */
  data: string;
  count: number;
  batch: number;
  rounds: number;
  engine: 'webgpu' | 'wasm';
  /** The WebGPU adapter, or the WebAssembly engine and its threads. */
  device: string;
  date: string;
  /** os.loadavg() at the start and at the end: the machine is shared. */
  loadavg: { start: number[]; end: number[] };
  ours: EncodeBenchRun;
  peer?: EncodeBenchRun & {
    engine: 'onnxruntime-node';
    version: string;
    executionProvider: 'cpu';
    threads: number;
    opset: number;
    modelBytes: number;
  };
  /** ours / peer (images per second, medians): above 1 means we are faster. */
  ratio?: number;
  /** Every timed round's images per second, in order, and with a peer each round's ratio ours / peer. */
  runs: { ours: number[]; peer?: number[]; ratios?: number[] };
  /** Warm-up outputs compared: ours against the peer. */
  check?: {
    /** Images whose codes are identical in every bit. */
    identicalCodes: number;
    differingCodes: number;
    differingBits: number;
    /** max |f_ours - f_peer| over all images and bits, and max |f| for scale. */
    maxFeatureDiff: number;
    maxAbsFeature: number;
  };
}

/** Checks the options that need no file or device (so bad input fails before any work). */
export function validateEncodeBench(o: EncodeBenchOptions): void {
  if (o.model !== undefined && o.preset !== undefined)
    throw new CliError('give --model DIR or --preset NAME, not both');
  if (o.model !== undefined && o.bits !== undefined)
    throw new CliError('--bits applies to --preset only (a bundle has its own code length)');
  if (o.preset !== undefined && !(ENCODE_BENCH_PRESETS as readonly string[]).includes(o.preset))
    throw new CliError(`--preset must be ${ENCODE_BENCH_PRESETS.join(' or ')}, found "${o.preset}"`);
  if (o.peer !== undefined && !(ENCODE_BENCH_PEERS as readonly string[]).includes(o.peer))
    throw new CliError(`--peer must be ${ENCODE_BENCH_PEERS.join(' or ')}, found "${o.peer}"`);
  if (o.split !== undefined && o.data === undefined)
    throw new CliError('--split applies to --data only (without it the images are random)');
  if (o.threads !== undefined && o.peer === undefined)
    throw new CliError(
      "--threads sets the peer's threads: use it with --peer onnxruntime (ours: --cpu-threads)",
    );
  for (const [flag, v] of [
    ['--count', o.count],
    ['--batch', o.batch],
    ['--rounds', o.rounds],
    ['--bits', o.bits],
    ['--cpu-threads', o.cpuThreads],
    ['--threads', o.threads],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1))
      throw new CliError(`${flag} must be an integer >= 1, found ${v}`);
  }
}

async function modelOf(
  o: EncodeBenchOptions,
  tmp: string,
): Promise<{ dir: string; spec: ModelSpec; weights: Weights; name: string }> {
  if (o.model !== undefined) {
    const spec = await loadSpec(o.model);
    assertOnnxWritable(spec); // before the weights are read
    const bundle = await loadBundle(o.model);
    return { dir: o.model, spec: bundle.spec, weights: bundle.weights, name: o.model };
  }
  const preset = o.preset ?? 'small-cnn';
  const bits = o.bits ?? 64;
  const spec: ImageModelSpec = preset === 'small-cnn' ? smallCnn(bits) : vgg11(bits);
  const weights = initWeights(spec, o.seed ?? 1);
  // Our side opens the network from a bundle folder, as `dhta encode` does.
  const dir = join(tmp, 'model');
  await saveBundle(dir, { spec, weights });
  return { dir, spec, weights, name: `preset ${preset}` };
}

async function pixelsOf(
  o: EncodeBenchOptions,
  spec: ImageModelSpec,
  count: number,
): Promise<{ pixels: Float32Array; n: number; data: string }> {
  const { channels: C, height: H, width: W } = spec.input;
  const size = C * H * W;
  const bytes = 4 * count * size;
  const limit = Math.min(2 ** 31, Math.floor(totalmem() / 4));
  if (bytes > limit)
    throw new CliError(
      `--count ${count} images of ${C}x${H}x${W} take ${(bytes / 2 ** 30).toFixed(1)} GiB, more than a benchmark may hold here (${(limit / 2 ** 30).toFixed(1)} GiB)`,
      'choose a smaller --count',
    );
  if (o.data === undefined) {
    const seed = o.seed ?? 1;
    const rng = new SeededRandom((seed * 7919 + 13) >>> 0);
    const pixels = new Float32Array(count * size);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rng.next();
    return { pixels, n: count, data: `random (seed ${seed})` };
  }
  // Split seed 0: the splits every other command (attack, demo, train, data export) uses by default.
  const d = await openDataset(o.data, { seed: 0 });
  const split = o.split ?? 'query';
  const ds = d[split];
  const shape = ds.batchShape(1).slice(1);
  if (shape.length !== 3 || shape[0] !== C || shape[1] !== H || shape[2] !== W)
    throw new CliError(
      `--data ${o.data}: the model takes ${C}x${H}x${W} images, the data set's items are ${shape.join('x')}`,
      "pick a data set of the model's input shape (image sources take &resize=...&channels=...), or leave out --data for random images",
    );
  const n = Math.min(count, ds.length);
  const pixels = new Float32Array(n * size);
  await ds.loadInto(
    Array.from({ length: n }, (_, k) => k),
    pixels,
    0,
  );
  return { pixels, n, data: `${o.data} ${split}[0..${n})` };
}

/**
 * Where our side runs: auto is wasm on a software adapter (llvmpipe) or without a GPU, webgpu otherwise (as
 * the other commands); passed to openNetwork resolved, so the report names what ran.
 */
function engineOf(engine: Engine | undefined, gpu: Gpu | null): 'webgpu' | 'wasm' {
  if (!gpu) {
    if (engine === 'webgpu')
      throw new CliError(
        '--engine webgpu needs a WebGPU adapter, and none is open',
        'use --engine wasm or auto',
      );
    return 'wasm';
  }
  const e = engine ?? 'auto';
  return e === 'auto' ? (gpu.adapter.isSoftware ? 'wasm' : 'webgpu') : e;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs the benchmark (`gpu`: the WebGPU device, or null for the WebAssembly engine). */
export async function benchEncode(gpu: Gpu | null, o: EncodeBenchOptions): Promise<EncodeBenchResult> {
  validateEncodeBench(o);
  const log = o.log ?? (() => {});
  const count = o.count ?? 1000;
  const batch = o.batch ?? 100;
  const rounds = o.rounds ?? 5;
  const startLoad = loadavg();
  const tmp = mkdtempSync(join(tmpdir(), 'dhta-bench-encode-'));
  let peer: OrtRunner | undefined;
  let modelBytes = 0;
  let net: Awaited<ReturnType<typeof openNetwork>> | undefined;
  try {
    const model = await modelOf(o, tmp);
    const spec = model.spec;
    assertOnnxWritable(spec);
    const { pixels, n, data } = await pixelsOf(o, spec, count);
    const shape: [number, number, number] = [spec.input.channels, spec.input.height, spec.input.width];
    const engine = engineOf(o.engine, gpu);
    const cpuThreads = o.cpuThreads ?? defaultThreads();
    const device =
      engine === 'webgpu' && gpu
        ? gpu.adapter.description
        : `WebAssembly SIMD, ${cpuThreads} CPU thread${cpuThreads > 1 ? 's' : ''}`;
    if (o.peer === 'onnxruntime') {
      const { dir, version } = await ensureOnnxRuntime({ log: (t) => process.stderr.write(t) });
      const onnx = imageModelToOnnx(spec, model.weights);
      modelBytes = onnx.length;
      const threads = o.threads ?? cpuThreads;
      log(
        `onnxruntime-node ${version}: ${(onnx.length / 2 ** 20).toFixed(1)} MiB ONNX model (opset ${ONNX_OPSET}), ${threads} threads`,
      );
      peer = await OrtRunner.open(dir, version, onnx, threads);
    }
    net = await openNetwork(gpu, model.dir, engine, cpuThreads);
    const ours = net;
    const runOurs = async () => (await ours.encode(pixels, n, { batch })).features;
    const runPeer = async (p: OrtRunner) => p.encode(pixels, n, shape, batch, spec.bits);

    // Warm-up (compiles, allocates, fills caches) of each side on the same images: its outputs are compared.
    log(`dhta (${engine}): warm-up, ${n} images in batches of ${batch}`);
    const warm = await ours.encode(pixels, n, { batch });
    const result: EncodeBenchResult = {
      model: model.name,
      input: shape,
      bits: spec.bits,
      data,
      count: n,
      batch,
      rounds,
      engine,
      device,
      date: new Date().toISOString(),
      loadavg: { start: startLoad, end: [] },
      ours: { seconds: 0, imagesPerSecond: 0 },
      runs: { ours: [] },
    };
    if (peer) {
      log('onnxruntime: warm-up and check');
      const f = await runPeer(peer);
      const bits = spec.bits;
      let identical = 0;
      let differingBits = 0;
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < n; i++) {
        let same = true;
        for (let j = i * bits; j < (i + 1) * bits; j++) {
          // sign(0) = +1, as our codes.
          if ((f[j] < 0 ? -1 : 1) !== warm.codes[j]) {
            same = false;
            differingBits++;
          }
          maxDiff = Math.max(maxDiff, Math.abs(f[j] - warm.features[j]));
          maxAbs = Math.max(maxAbs, Math.abs(warm.features[j]));
        }
        if (same) identical++;
      }
      result.check = {
        identicalCodes: identical,
        differingCodes: n - identical,
        differingBits,
        maxFeatureDiff: maxDiff,
        maxAbsFeature: maxAbs,
      };
    }

    // Timed rounds; the side that goes first alternates, so both see the same phases of a shared machine.
    const oursSeconds: number[] = [];
    const peerSeconds: number[] = [];
    const time = async (what: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await what();
      return (performance.now() - t0) / 1000;
    };
    for (let r = 0; r < rounds; r++) {
      const p = peer;
      const turns = [
        async () => {
          oursSeconds.push(await time(runOurs));
        },
        ...(p
          ? [
              async () => {
                peerSeconds.push(await time(() => runPeer(p)));
              },
            ]
          : []),
      ];
      if (r % 2 === 1) turns.reverse();
      for (const turn of turns) await turn();
      log(
        `round ${r + 1}/${rounds}: dhta ${(n / (oursSeconds.at(-1) ?? 1)).toFixed(1)} images/s` +
          (p ? `, onnxruntime ${(n / (peerSeconds.at(-1) ?? 1)).toFixed(1)} images/s` : ''),
      );
    }
    const oursRate = oursSeconds.map((s) => n / s);
    result.runs.ours = oursRate;
    result.ours = { imagesPerSecond: median(oursRate), seconds: n / median(oursRate) };
    if (peer) {
      const peerRate = peerSeconds.map((s) => n / s);
      result.runs.peer = peerRate;
      result.runs.ratios = oursRate.map((v, i) => v / peerRate[i]);
      result.peer = {
        engine: 'onnxruntime-node',
        version: peer.version,
        executionProvider: 'cpu',
        threads: peer.threads,
        opset: ONNX_OPSET,
        modelBytes,
        imagesPerSecond: median(peerRate),
        seconds: n / median(peerRate),
      };
      result.ratio = result.ours.imagesPerSecond / result.peer.imagesPerSecond;
    }
    result.loadavg.end = loadavg();
    return result;
  } finally {
    net?.destroy();
    await peer?.release();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The printed report: the table, every round, the ratio and the check. */
export function formatEncodeBench(r: EncodeBenchResult): string {
  const rows: Array<Array<string | number>> = [
    [`dhta (${r.engine})`, r.device, r.count, r.batch, r.ours.seconds, r.ours.imagesPerSecond],
  ];
  if (r.peer)
    rows.push([
      `onnxruntime-node ${r.peer.version}`,
      `CPU EP, ${r.peer.threads} thread${r.peer.threads > 1 ? 's' : ''}`,
      r.count,
      r.batch,
      r.peer.seconds,
      r.peer.imagesPerSecond,
    ]);
  const fmt = (v: number[]) => v.map((q) => q.toFixed(1)).join(', ');
  const lines = [
    `model: ${r.model} (${r.input.join('x')}, ${r.bits} bits); images: ${r.data}`,
    '',
    formatTable(['engine', 'device', 'images', 'batch', 'seconds', 'images/s'], rows),
    '',
    r.runs.peer
      ? `${r.rounds} timed round${r.rounds > 1 ? 's' : ''} each, turns alternating (medians above): dhta ` +
        `${fmt(r.runs.ours)}; onnxruntime ${fmt(r.runs.peer)} images/s`
      : `${r.rounds} timed round${r.rounds > 1 ? 's' : ''} (median above): dhta ${fmt(r.runs.ours)} images/s`,
  ];
  if (r.ratio !== undefined && r.check) {
    const c = r.check;
    const per = r.runs.ratios ?? [];
    lines.push(
      `ratio dhta / onnxruntime: ${r.ratio.toFixed(2)}x (per round ${Math.min(...per).toFixed(2)}-${Math.max(...per).toFixed(2)}); codes identical ${c.identicalCodes}/${r.count} ` +
        `(differing codes ${c.differingCodes}, bits ${c.differingBits}); max |f diff| ${c.maxFeatureDiff.toExponential(2)} ` +
        `(max |f| ${c.maxAbsFeature.toFixed(2)})`,
    );
  }
  lines.push(
    `load average (1 min): ${r.loadavg.start[0].toFixed(2)} at the start, ${r.loadavg.end[0].toFixed(2)} at the end`,
  );
  return lines.join('\n');
}

/** Adds `encode` to the `bench` command group. */
export function registerBenchEncode(bench: Command): void {
  bench
    .command('encode')
    .description(
      'Images per second of encoding (f(x) and codes sign(f(x))) through our engine; with --peer onnxruntime ' +
        "also through onnxruntime-node's CPU execution provider (MLAS) on the same model, written as ONNX " +
        '(opset 13) from the spec and weights, and the same images, in the same run: warm-up runs whose codes ' +
        'and features are compared, then timed rounds taking turns, medians and the ratio. The peer is a ' +
        'benchmark-only package (bench/peers/onnxruntime), installed on first use with `npm ci --ignore-scripts` ' +
        '(needs npm and the network once). Image models only.',
    )
    .option('--model <DIR>', 'model bundle folder (model.json + weights.safetensors); or --preset')
    .option(
      '--preset <name>',
      `seeded random weights of a preset: ${ENCODE_BENCH_PRESETS.join(' or ')} (default small-cnn when no --model)`,
    )
    .option('--bits <K>', 'code length of --preset, 1 to 4096 (default 64)', positiveInt('--bits', 4096))
    .option(
      '--data <NAME>',
      'encode the first --count items of a data set split (e.g. mnist; `dhta data list`), split seed 0; default: ' +
        'random pixels in [0, 1]',
    )
    .option('--split <S>', 'split of --data: train, database or query (default query)', (v: string) => {
      if (!(SPLITS as readonly string[]).includes(v))
        throw new CliError(`--split must be one of ${SPLITS.join(', ')}, found "${v}"`);
      return v as Split;
    })
    .option(
      '--count <N>',
      'images encoded per round, 1 to 10000000 (default 1000)',
      positiveInt('--count', 10_000_000),
    )
    .option(
      '--batch <B>',
      'images per call on each side, 1 to 100000 (default 100)',
      positiveInt('--batch', 100_000),
    )
    .option(
      '--rounds <R>',
      'timed rounds of each side, taking turns, 1 to 1000; medians reported (default 5)',
      positiveInt('--rounds', 1000),
    )
    .option(
      '--seed <S>',
      'seed of the preset weights and of random images, 0 to 4294967295 (default 1)',
      nonNegativeInt('--seed'),
    )
    .option(
      '--engine <E>',
      `${ENGINE_HELP.replace('the attack loop runs', 'our network runs')}: auto, webgpu or wasm`,
      engineOption,
    )
    .option(
      '--cpu-threads <T>',
      'threads of our WebAssembly engine, 1 to 16 (default: the logical CPUs)',
      positiveInt('--cpu-threads', MAX_CPU_THREADS),
    )
    .option(
      '--peer <name>',
      `also time a peer on the same model and images: ${ENCODE_BENCH_PEERS.join(', ')}`,
    )
    .option(
      '--threads <T>',
      "ONNX Runtime's intra-op threads, 1 to 256 (default: the same as our engine's)",
      positiveInt('--threads', 256),
    )
    .option('--out <file>', 'also write the result as JSON to this file (atomically)')
    .option('--backend <name>', 'Dawn backend', backendOption)
    .option('--adapter <name>', 'adapter name')
    .option('--json', 'print one JSON line (the result; see BENCHMARKS.md)')
    .action(async (o: GpuFlags & EncodeBenchOptions & { out?: string; json?: boolean }) => {
      validateEncodeBench(o);
      const failed = outFileReady(o.out);
      await withOptionalGpu(o, async (gpu) => {
        const r = await benchEncode(gpu, {
          ...o,
          log: o.json ? undefined : (line) => process.stderr.write(`  ${line}\n`),
        });
        if (o.out) writeAtomic(o.out, `${JSON.stringify(r, null, 2)}\n`);
        if (o.json) return printJson(r);
        console.log(formatEncodeBench(r));
      }).catch(failed);
    });
}
