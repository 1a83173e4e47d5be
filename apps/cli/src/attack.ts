// `dhta attack`: from files (queries and target codes as .npy) or the whole protocol on a data set.

import { join } from 'node:path';
import { type AttackMethod, type AttackOptions, pickP2pAnchors, runAttack, voteAnchors } from '@dhta/attack';
import { readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import type { Command } from 'commander';
import { CliError } from './errors.js';
import { fmt, METHODS, type Method, type ProtocolResult, runProtocol } from './experiment.js';
import { makeDir } from './files.js';
import {
  backendOption,
  ENGINE_HELP,
  type Engine,
  engineOption,
  openNetwork,
  withOptionalGpu,
} from './gpu.js';
import { formatTable, printJson } from './output.js';
import { createProgress } from './progress.js';

// Numeric options: plain decimal syntax only (no 0x10, 1e3 or Infinity for integers) and a documented range,
// checked when the command line is read, before any work.

/** The largest seed: seeds are taken modulo 2^32 by the random streams, so larger ones are refused. */
export const MAX_SEED = 2 ** 32 - 1;

export function intInRange(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = decimalInt(v);
    if (Number.isNaN(n) || n < min || n > max)
      throw new CliError(`${name} must be an integer from ${min} to ${max}, found "${v}"`);
    return n;
  };
}

export function positiveInt(name: string, max = 1_000_000_000) {
  return intInRange(name, 1, max);
}

export function nonNegativeInt(name: string, max = MAX_SEED) {
  return intInRange(name, 0, max);
}

/** A non-negative decimal number (12, 0.5, .5, 1e-3); NaN for anything else (0x10, Infinity, -1, ''). */
export function decimal(v: string): number {
  const t = v.trim();
  return /^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(t) ? Number(t) : Number.NaN;
}

/** A non-negative integer in plain digits; NaN for anything else (0x10, 1e3, 1.0, -1, ''). */
export function decimalInt(v: string): number {
  const t = v.trim();
  const n = /^[0-9]+$/.test(t) ? Number(t) : Number.NaN;
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

export function positiveNumber(name: string, max = 1_000_000) {
  return (v: string): number => {
    const n = decimal(v);
    if (!(n > 0) || !(n <= max))
      throw new CliError(`${name} must be a number > 0 and <= ${max}, found "${v}"`);
    return n;
  };
}

function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (v: string): T => {
    if (!values.includes(v as T))
      throw new CliError(`${name} must be one of ${values.join(', ')}, found "${v}"`);
    return v as T;
  };
}

export function classList(name: string) {
  return (v: string): number[] => {
    const list = v.split(',').map((x) => Number(x.trim()));
    if (list.length === 0 || list.some((c) => !Number.isInteger(c) || c < 0)) {
      throw new CliError(`${name} must be comma-separated class indices (e.g. 7,8,9), found "${v}"`);
    }
    return list;
  };
}

export function shardOption(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count) {
    throw new CliError(`--shard must be i/n with 0 <= i < n (e.g. 0/4), found "${v}"`);
  }
  return { index, count };
}

function alphaOption(v: string): 'paper' | number {
  if (v === 'paper') return 'paper';
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n))
    throw new CliError(`--alpha must be "paper" or a number > 0, found "${v}"`);
  return n;
}

export function methodsOption(v: string): Method[] {
  const list = v.split(',').map((s) => s.trim());
  for (const [i, m] of list.entries()) {
    if (!METHODS.includes(m as Method))
      throw new CliError(`--methods: unknown method "${m}"; expected some of ${METHODS.join(', ')}`);
    if (list.indexOf(m) !== i) throw new CliError(`--methods: "${m}" is listed twice; give each method once`);
  }
  return list as Method[];
}

/** The attack settings and GPU flags shared by attack, demo and reproduce. */
export interface AttackSettingFlags {
  iters?: number;
  eps?: number;
  epsSpace?: 'normalized' | 'pixel';
  step?: 'l2' | 'sign' | 'raw';
  lr?: number;
  alpha?: 'paper' | number;
  randomStart?: boolean;
  seed: number;
  batch?: number;
  engine?: Engine;
  cpuThreads?: number;
  backend?: string;
  adapter?: string;
}

interface AttackFlags extends AttackSettingFlags {
  model: string;
  input?: string;
  queryIds?: string;
  targets?: string;
  method: AttackMethod;
  data?: string;
  queries: number;
  nT: number;
  methods: Method[];
  outDir: string;
  r?: number;
  zeroHits: 'skip' | 'count';
  resume?: boolean;
  shard?: { index: number; count: number };
  targetClasses?: number[];
  json?: boolean;
}

/** Attack settings shared by the CLI's attack, demo and reproduce commands. */
export function addAttackSettings(cmd: Command): Command {
  return cmd
    .option(
      '--iters <N>',
      'iterations, 1 to 1000000 (default: 2000 for image models, 500 for video)',
      positiveInt('--iters', 1_000_000),
    )
    .option(
      '--eps <E>',
      'L-infinity bound on the perturbation, > 0 (default 0.032); at most 1 with --eps-space pixel, 100 in the normalised space',
      positiveNumber('--eps', 100),
    )
    .option(
      '--eps-space <S>',
      "'normalized': eps in the model's (x - mean) / std units, the authors' code (default); 'pixel': in [0, 1] pixels",
      oneOf('--eps-space', ['normalized', 'pixel'] as const),
    )
    .option(
      '--step <S>',
      "'l2' (per-query L2-normalised gradient, default), 'sign' or 'raw'",
      oneOf('--step', ['l2', 'sign', 'raw'] as const),
    )
    .option('--lr <L>', 'step size, > 0 and <= 1000000 (default 1)', positiveNumber('--lr'))
    .option(
      '--alpha <A>',
      "tanh scale: 'paper' (0.1, then 0.2 ... 1.0 over the last half; default for images) or a constant (video default 0.1)",
      alphaOption,
    )
    .option('--random-start', 'start delta uniformly in the eps ball instead of at 0')
    .option(
      '--batch <B>',
      'queries attacked per pass, 1 to 100000 (default 100; results do not depend on it)',
      positiveInt('--batch', 100_000),
    )
    .option('--seed <S>', `seed of every random choice, 0 to ${MAX_SEED}`, nonNegativeInt('--seed'), 0)
    .option('--engine <E>', `${ENGINE_HELP}: auto, webgpu or wasm`, engineOption)
    .option(
      '--cpu-threads <T>',
      'threads of the WebAssembly engine, 1 to 16 (default: the logical CPUs, at most 16)',
      positiveInt('--cpu-threads', 16),
    );
}

export function attackSettingsOf(f: AttackSettingFlags): Omit<AttackOptions, 'method'> {
  if (f.epsSpace === 'pixel' && f.eps !== undefined && f.eps > 1)
    throw new CliError(
      `--eps must be at most 1 with --eps-space pixel (pixels are in [0, 1]), found ${f.eps}`,
    );
  return {
    iterations: f.iters,
    eps: f.eps,
    epsSpace: f.epsSpace,
    step: f.step,
    lr: f.lr,
    alpha: f.alpha,
    randomStart: f.randomStart,
    seed: f.seed,
    batch: f.batch,
  };
}

export function printProtocolTable(result: ProtocolResult): void {
  const rows = result.metrics.map((m) => [
    m.method,
    fmt(m.tMap),
    fmt(m.map),
    m.perceptibility === null ? '-' : m.perceptibility.toExponential(2),
    m.anchorDistance.toFixed(2),
    m.seconds.toFixed(1),
  ]);
  process.stdout.write(
    `${formatTable(['method', 't-MAP %', 'MAP %', 'perceptibility', 'd(anchor)', 'seconds'], rows)}\n` +
      `(${result.data}, ${result.bits} bits, ${result.queries} queries, n_t ${result.nT}, ${result.iterations} iterations, ` +
      `R ${result.R}, zero-hit queries: ${result.zeroHits === 'skip' ? 'left out' : 'counted as 0'}` +
      `${result.engine ? `, attack engine ${result.engine}` : ''})\n`,
  );
}

/** --query-ids: a comma-separated list or an .npy of integers, one per query; default the row numbers. */
async function readQueryIds(v: string | undefined, n: number): Promise<number[]> {
  if (v === undefined) return Array.from({ length: n }, (_, i) => i);
  let ids: number[];
  if (v.endsWith('.npy')) {
    const a = await readNpyFile(v);
    if (!/^u?int(8|16|32|64)$/.test(a.dtype) || a.shape.length !== 1)
      throw new CliError(
        `--query-ids ${v}: expected a 1-D array of integers, found ${a.dtype} ${JSON.stringify(a.shape)}`,
      );
    ids = Array.from(a.data as ArrayLike<number | bigint>, Number);
  } else {
    ids = v.split(',').map((t) => (/^\s*[0-9]+\s*$/.test(t) ? Number(t) : Number.NaN));
  }
  const bad = ids.findIndex((id) => !Number.isSafeInteger(id) || id < 0 || id > MAX_SEED);
  if (bad >= 0) throw new CliError(`--query-ids: entry ${bad} is not an integer from 0 to ${MAX_SEED}`);
  if (ids.length !== n)
    throw new CliError(`--query-ids: ${ids.length} ids for ${n} queries in --input; give one id per query`);
  const repeat = ids.findIndex((id, i) => ids.indexOf(id) !== i);
  if (repeat >= 0) throw new CliError(`--query-ids: id ${ids[repeat]} is given twice`);
  return ids;
}

async function attackFiles(f: AttackFlags): Promise<void> {
  if (!f.input || (!f.targets && (f.method === 'dhta' || f.method === 'p2p'))) {
    throw new CliError(
      `--input is required (and --targets for ${f.method})`,
      'give --input X.npy [--targets T.npy] for queries from files, or --data NAME for the whole protocol',
    );
  }
  const x = await readNpyFile(f.input);
  if (x.dtype !== 'float32')
    throw new CliError(`--input ${f.input}: expected float32 pixels in [0, 1], found ${x.dtype}`);
  const pixels = x.data as Float32Array;
  const bad = pixels.findIndex((v) => !(v >= 0 && v <= 1));
  if (bad >= 0) {
    const perItem = pixels.length / Math.max(1, x.shape[0]);
    throw new CliError(
      `--input ${f.input}: expected pixels in [0, 1], found ${pixels[bad]} at flat index ${bad} ` +
        `(item ${Math.floor(bad / perItem)}, element ${bad % perItem})`,
      'scale 8-bit images by 1/255, and replace NaN or infinite values',
    );
  }
  const queryIds = await readQueryIds(f.queryIds, x.shape[0]);
  await withOptionalGpu(f, async (gpu) => {
    const net = await openNetwork(gpu, f.model, f.engine, f.cpuThreads);
    try {
      const itemShape =
        net.spec.task === 'video'
          ? [net.spec.frames, net.spec.input.channels, net.spec.input.height, net.spec.input.width]
          : [net.spec.input.channels, net.spec.input.height, net.spec.input.width];
      if (x.shape.length !== itemShape.length + 1 || itemShape.some((d, i) => x.shape[i + 1] !== d)) {
        throw new CliError(
          `--input ${f.input}: expected shape (n, ${itemShape.join(', ')}) for this model, found (${x.shape.join(', ')})`,
        );
      }
      const n = x.shape[0];
      let anchors: Int8Array | undefined;
      if (f.targets && (f.method === 'dhta' || f.method === 'p2p')) {
        const t = await readNpyFile(f.targets);
        if (t.dtype !== 'int8')
          throw new CliError(`--targets ${f.targets}: expected int8 ±1 codes, found ${t.dtype}`);
        const bits = t.shape[t.shape.length - 1];
        if (bits !== net.bits) {
          throw new CliError(
            `--targets ${f.targets}: codes of ${bits} bits, but the model's codes have ${net.bits}`,
          );
        }
        if (t.shape[0] !== n || (t.shape.length !== 2 && t.shape.length !== 3)) {
          throw new CliError(
            `--targets ${f.targets}: expected shape (${n}, n_t, ${net.bits}) or (${n}, ${net.bits}), found (${t.shape.join(', ')})`,
          );
        }
        const codes = t.data as Int8Array;
        for (let i = 0; i < codes.length; i++) {
          if (codes[i] !== 1 && codes[i] !== -1)
            throw new CliError(`--targets ${f.targets}: codes must be ±1, found ${codes[i]} at ${i}`);
        }
        if (t.shape.length === 2) anchors = codes;
        else if (f.method === 'p2p') {
          // P2P attacks towards one object's code: one of the n_t, drawn from (seed, query id).
          anchors = pickP2pAnchors(codes, t.shape[1], net.bits, f.seed, queryIds).anchors;
        } else anchors = voteAnchors(codes, t.shape[1], net.bits);
      }
      const progress = createProgress({ quiet: f.json });
      const out = await runAttack(net, x.data as Float32Array, n, anchors, {
        ...attackSettingsOf(f),
        method: f.method,
        queryIds,
        onProgress: (p) =>
          progress.update(
            f.method,
            p.queriesDone * p.iterations + p.batch * p.iteration,
            p.queries * p.iterations,
            `d(anchor) ${p.meanDistance.toFixed(2)}  ${p.queryIterationsPerSecond.toFixed(0)} q-it/s`,
          ),
      });
      progress.stop();
      makeDir(f.outDir);
      await writeNpyFile(join(f.outDir, 'adversarial.npy'), out.adversarial, x.shape);
      await writeNpyFile(join(f.outDir, 'codes.npy'), out.codes, [n, net.bits]);
      if (out.anchors.length) await writeNpyFile(join(f.outDir, 'anchors.npy'), out.anchors, [n, net.bits]);
      const summary = {
        method: f.method,
        queries: n,
        queryIds: f.queryIds ? queryIds : 'row numbers 0..n-1 of --input',
        bits: net.bits,
        iterations: out.iterations,
        seconds: out.seconds,
        queryIterationsPerSecond: out.iterations ? (n * out.iterations) / out.seconds : null,
        engine: net.engine.kind,
        outDir: f.outDir,
      };
      if (f.json) printJson(summary);
      else
        process.stdout.write(
          `${f.method}: ${n} queries, ${out.iterations} iterations in ${out.seconds.toFixed(1)} s; wrote ${f.outDir}/adversarial.npy, codes.npy` +
            `${out.anchors.length ? ', anchors.npy' : ''}\n`,
        );
    } finally {
      net.destroy();
    }
  });
}

async function attackData(f: AttackFlags): Promise<void> {
  const progress = createProgress({ quiet: f.json });
  const result = await withOptionalGpu(f, (gpu) =>
    runProtocol(gpu, {
      modelDir: f.model,
      data: f.data!,
      seed: f.seed,
      queries: f.queries,
      nT: f.nT,
      methods: f.methods,
      attack: attackSettingsOf(f),
      R: f.r,
      zeroHits: f.zeroHits,
      outDir: f.outDir,
      resume: f.resume,
      shard: f.shard,
      targetClasses: f.targetClasses,
      engine: f.engine,
      cpuThreads: f.cpuThreads,
      log: (l) => progress.log(l),
      progress: (phase, done, total, extra) => progress.update(phase, done, total, extra),
    }),
  );
  progress.stop();
  if (f.json) printJson(result);
  else printProtocolTable(result);
}

export function registerAttack(program: Command): void {
  const cmd = program
    .command('attack')
    .description(
      'Targeted attack (DHTA, P2P) or baseline (Noise, HAG) on a hashing model.\n' +
        'From files: --input X.npy (float32 pixels in [0, 1], NCHW or NTCHW) and --targets T.npy (int8 ±1 codes, ' +
        '(n, n_t, bits): each anchor voted from n_t codes, or (n, bits): the anchors) -> OUT/adversarial.npy, codes.npy, anchors.npy.\n' +
        'On a data set: --data NAME runs the whole protocol (database encoded and cached, queries and targets ' +
        'sampled, every method attacked and evaluated) -> OUT/results.jsonl, OUT/metrics.json and a table.',
    )
    .requiredOption('--model <DIR>', 'model bundle folder (model.json + weights.safetensors)')
    .option('--input <X.npy>', 'queries from a file (float32, pixels in [0, 1])')
    .option('--targets <T.npy>', 'target codes (int8 ±1): (n, n_t, bits) or (n, bits)')
    .option(
      '--method <M>',
      'dhta, p2p, noise or hag (file mode)',
      oneOf('--method', ['dhta', 'p2p', 'noise', 'hag'] as const),
      'dhta',
    )
    .option(
      '--query-ids <IDS>',
      "file mode: the queries' ids, comma-separated integers or an .npy of integers, one per --input row " +
        '(default: the row numbers 0..n-1). Random draws (Noise, --random-start, the P2P pick) depend on (seed, id) ' +
        'only, so a query gets the same result from any file, batch or order',
    )
    .option('--data <NAME>', 'run the protocol on a data set (see dhta data list)')
    .option(
      '--queries <N>',
      'queries drawn from the query set (protocol mode), 1 to 10000000',
      positiveInt('--queries', 10_000_000),
      100,
    )
    .option(
      '--n-t <N>',
      'objects voted into each anchor (protocol mode), 1 to 100000',
      positiveInt('--n-t', 100_000),
      9,
    )
    .option(
      '--methods <LIST>',
      `comma-separated, from ${METHODS.join(', ')} (protocol mode)`,
      methodsOption,
      ['original', 'noise', 'p2p', 'dhta'] as Method[],
    )
    .option(
      '--r <R>',
      'R of MAP@R (default: 1000 ImageNet-like, 5000 NUS-WIDE-like, else the whole database)',
      positiveInt('--r'),
    )
    .option(
      '--zero-hits <C>',
      "queries with no relevant object in the top R: 'skip' (left out, the authors' code) or 'count' (as 0)",
      oneOf('--zero-hits', ['skip', 'count'] as const),
      'skip',
    )
    .requiredOption('--out-dir <DIR>', 'where the outputs go')
    .option(
      '--resume',
      'continue an interrupted protocol run in --out-dir (its results.jsonl) without redoing finished queries',
    )
    .option(
      '--shard <i/n>',
      'protocol mode: run only slice i of n of the sampled queries (merge the shards with dhta merge)',
      shardOption,
    )
    .option('--json', 'print the result as one JSON line')
    .option('--backend <B>', 'WebGPU backend (vulkan, metal, d3d12, ...)', backendOption)
    .option('--adapter <NAME>', 'adapter name substring');
  addAttackSettings(cmd).action(async (f: AttackFlags) => {
    attackSettingsOf(f); // every setting checked before any work
    if (f.data) {
      if (f.input || f.targets)
        throw new CliError('give either --data (protocol) or --input/--targets (files), not both');
      await attackData(f);
    } else {
      await attackFiles(f);
    }
  });
}
