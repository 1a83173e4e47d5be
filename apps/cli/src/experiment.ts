// The protocol of PROTOCOL.md on a data set, end to end: encode the database (cached per model and data),
// sample queries and targets, vote anchors, attack with each method, evaluate, write results.
// Orchestration only: every number comes from the packages.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type AttackOptions, runAttack, sampleAttack, voteAnchors } from '@dhta/attack';
import { type Dataset, type OpenedDataset, openDataset } from '@dhta/data';
import { defaultNs, perceptibility, RetrievalDatabase } from '@dhta/eval';
import type { Gpu } from '@dhta/kernels';
import { readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import type { HashingNetwork, ModelSpec } from '@dhta/models';
import { CliError } from './errors.js';
import { lockOutDir, makeDir, removeIfEmpty } from './files.js';
import { type Engine, openNetwork } from './gpu.js';
import {
  appendLine,
  type Method,
  type MethodCurves,
  type MethodMetrics,
  type RunHeader,
  readAllResults,
  resumeResults,
  summarizeRun,
  syncResults,
  writeAtomic,
} from './results.js';

export type { Method, MethodMetrics };

export const METHODS: Method[] = ['original', 'noise', 'p2p', 'dhta', 'hag'];

/**
 * How queries and targets are drawn: 2 = no draw depends on n_t (paired sweeps). Runs of version 1 (files
 * without the field) drew otherwise, so they are never resumed or merged with runs of version 2.
 */
export const SAMPLING_VERSION = 2;

export interface ProtocolOptions {
  modelDir: string;
  data: string;
  /** Seed of the data splits and of the query/target draw. */
  seed: number;
  queries: number;
  nT: number;
  methods: Method[];
  attack: Omit<AttackOptions, 'method' | 'onProgress' | 'queryIds'>;
  /** R of MAP@R; default by data set (PROTOCOL.md). */
  R?: number;
  zeroHits: 'skip' | 'count';
  outDir: string;
  /** The open set (Table 6): target labels only from these classes (those the model was not trained on). */
  targetClasses?: number[];
  /**
   * Eligibility of target labels as if n_t were this (>= nT): a sweep over n_t passes its largest, so that every
   * cell draws the same queries and target labels (the n_t objects of a smaller n_t are a prefix of a larger's).
   */
  maxTargetsPerQuery?: number;
  /** Continue the run in outDir (its results.jsonl) instead of starting over. */
  resume?: boolean;
  /** Run only slice `index` of `count` of the sampled queries. */
  shard?: { index: number; count: number };
  /** Where the model runs (default auto: wasm on a software adapter or without one). */
  engine?: Engine;
  /** Threads of the WebAssembly engine (default: the logical CPUs, at most 16). */
  cpuThreads?: number;
  /** Progress lines/bars. */
  log: (line: string) => void;
  progress?: (phase: string, done: number, total: number, extra?: string) => void;
}

export interface ProtocolResult {
  metrics: MethodMetrics[];
  R: number;
  zeroHits: 'skip' | 'count';
  databaseSize: number;
  queries: number;
  nT: number;
  bits: number;
  seed: number;
  data: string;
  model: string;
  iterations: number;
  /** 'i/n' for a shard, null for a whole run. */
  shard: string | null;
  seconds: { encode: number; total: number };
  /** Whether the database codes came from the cache. */
  databaseCached: boolean;
  /** Where the attack loop ran (absent for merged shards). */
  engine?: 'webgpu' | 'wasm';
}

export function cacheDir(): string {
  // An empty DHTA_CACHE means unset (not the current folder).
  return process.env['DHTA_CACHE'] || join(homedir(), '.cache', 'dhta');
}

/** What encodes: a WebGPU network or one on the WebAssembly engine. */
type Encoder = Pick<HashingNetwork, 'bits' | 'spec' | 'engine'> & {
  encode(pixels: Float32Array, n: number): Promise<{ codes: Int8Array }> | { codes: Int8Array };
};

/** Codes of every item of a data set, in chunks (progress through `onChunk`). */
export async function encodeDataset(
  net: Encoder,
  ds: Dataset,
  onChunk?: (done: number, total: number) => void,
  chunk = 1000,
): Promise<Int8Array> {
  const codes = new Int8Array(ds.length * net.bits);
  for (let first = 0; first < ds.length; first += chunk) {
    const idx = Array.from({ length: Math.min(chunk, ds.length - first) }, (_, i) => first + i);
    const pixels = await ds.load(idx);
    const out = await net.encode(pixels, idx.length);
    codes.set(out.codes, first * net.bits);
    onChunk?.(first + idx.length, ds.length);
  }
  return codes;
}

/** Database codes, cached on disk by (model files, data set name, seed, split size). */
/**
 * Where a model's database codes are cached: keyed by the model's spec (its card aside: a card written after
 * training does not change the codes), its weights file and the data set's name, seed and database size.
 */
export function codesCacheFile(
  spec: ModelSpec,
  weightsBytes: Uint8Array,
  dataName: string,
  seed: number,
  n: number,
  engine: 'webgpu' | 'wasm' = 'webgpu',
): string {
  const { card: _card, ...plain } = spec;
  const hash = createHash('sha256');
  hash.update(JSON.stringify(plain));
  hash.update(weightsBytes);
  // Codes from the two engines may differ in a bit whose feature rounds to the other side of 0: each engine
  // keeps its own entry, so that a run's figures do not depend on which engine filled the cache first.
  hash.update(
    JSON.stringify(
      engine === 'wasm' ? { data: dataName, seed, n, v: 2, engine } : { data: dataName, seed, n, v: 2 },
    ),
  );
  return join(cacheDir(), 'codes', `${hash.digest('hex').slice(0, 32)}.i8`);
}

/** Stores database codes in the cache (atomically). */
export function cacheCodes(file: string, codes: Int8Array): void {
  makeDir(dirname(file), 'the codes cache');
  writeAtomic(file, new Uint8Array(codes.buffer, codes.byteOffset, codes.length));
}

/** Database codes, from the cache or encoded (then cached). */
async function databaseCodes(
  net: Encoder,
  modelDir: string,
  data: OpenedDataset,
  o: ProtocolOptions,
): Promise<{ codes: Int8Array; cached: boolean }> {
  const file = codesCacheFile(
    net.spec,
    readFileSync(join(modelDir, 'weights.safetensors')),
    o.data,
    data.info.seed,
    data.database.length,
    net.engine.kind,
  );
  try {
    const bytes = readFileSync(file);
    if (bytes.length === data.database.length * net.bits) {
      return { codes: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length), cached: true };
    }
  } catch {
    // not cached yet
  }
  const codes = await encodeDataset(net, data.database, (d, t) => o.progress?.('encode database', d, t));
  try {
    cacheCodes(file, codes);
  } catch (e) {
    // A cache that cannot be written costs time next run, not this run's results.
    o.log(
      `warning: database codes not cached (${(e as Error).message}); set DHTA_CACHE to a writable folder`,
    );
  }
  return { codes, cached: false };
}

function defaultR(data: OpenedDataset): number {
  if (data.info.protocol === 'nus-wide') return 5000;
  if (data.info.layout === 'list' || data.info.layout === 'folder') return 1000;
  return data.database.length;
}

function rowsOf(codes: Int8Array, indices: ArrayLike<number>, bits: number): Int8Array {
  const out = new Int8Array(indices.length * bits);
  for (let i = 0; i < indices.length; i++)
    out.set(codes.subarray(indices[i] * bits, (indices[i] + 1) * bits), i * bits);
  return out;
}

/** Hamming distance between row i of a and row j of b. */
function hamming(a: Int8Array, i: number, b: Int8Array, j: number, bits: number): number {
  let d = 0;
  for (let k = 0; k < bits; k++) if (a[i * bits + k] !== b[j * bits + k]) d++;
  return d;
}

/** The rows at `positions` of a row-major array of rows of `size` values, in that order. */
function gather<T extends Float32Array | Int8Array | Uint8Array>(
  all: T,
  positions: readonly number[],
  size: number,
): T {
  const out = new (all.constructor as new (n: number) => T)(positions.length * size);
  positions.forEach((q, i) => {
    out.set(all.subarray(q * size, (q + 1) * size), i * size);
  });
  return out;
}

/**
 * examples/METHOD.json and .npy (the grids and adversarial images of the shown queries) from the per-query
 * parts, once every shown query of this shard has its part (a resumed run finds the earlier ones on disk).
 */
async function assembleExamples(
  dir: string,
  method: Method,
  lo: number,
  hi: number,
  itemShape: number[],
): Promise<void> {
  if (lo >= hi) return;
  const grids: unknown[] = [];
  const images: Float32Array[] = [];
  for (let q = lo; q < hi; q++) {
    const part = join(dir, 'parts', `${method}.${q}`);
    if (!existsSync(`${part}.json`)) return;
    if (!existsSync(`${part}.npy`)) return;
    grids.push(JSON.parse(readFileSync(`${part}.json`, 'utf8')));
    images.push((await readNpyFile(`${part}.npy`)).data as Float32Array);
  }
  const size = images[0].length;
  const all = new Float32Array(images.length * size);
  images.forEach((im, i) => {
    all.set(im, i * size);
  });
  await writeNpyFile(join(dir, `${method}.npy`), all, [images.length, ...itemShape]);
  writeAtomic(join(dir, `${method}.json`), JSON.stringify(grids));
}

function sharesLabel(a: Uint8Array, i: number, b: Uint8Array, j: number, classes: number): boolean {
  for (let c = 0; c < classes; c++) if (a[i * classes + c] && b[j * classes + c]) return true;
  return false;
}

function nanToNull(v: number): number | null {
  return Number.isNaN(v) ? null : v;
}

/** Queries shown in retrieval grids and examples, and results shown per grid row. */
export const GRID_QUERIES = 8;
export const GRID_TOP = 10;

function positives(labels: Uint8Array, q: number, classes: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < classes; c++) if (labels[q * classes + c]) out.push(c);
  return out;
}

/** Runs the protocol; writes OUT/results.jsonl and OUT/metrics.json; returns the metrics. */
export async function runProtocol(gpu: Gpu | null, o: ProtocolOptions): Promise<ProtocolResult> {
  const started = performance.now();
  const modelDir = resolve(o.modelDir);
  const repeated = o.methods.find((m, i) => o.methods.indexOf(m) !== i);
  if (repeated) throw new CliError(`method ${repeated} is listed twice; each method runs once per query`);
  if (o.methods.length === 0) throw new CliError('no methods to run');
  let createdOutDir = false;
  let unlock = (): void => {};
  let fd: number | null = null;
  // One engine for the whole run (database, clean queries and attacks), so that every code of a run comes
  // from it (database codes are cached per engine). Without a GPU: the WebAssembly engine.
  const net = await openNetwork(gpu, modelDir, o.engine, o.cpuThreads);
  try {
    const data = await openDataset(o.data, { seed: o.seed });
    const itemSize = data.query.itemSize;
    if (itemSize !== net.inputSize) {
      throw new CliError(
        `the model ${o.modelDir} takes inputs of ${net.inputSize} values, but ${o.data} items hold ${itemSize} ` +
          `(${data.info.itemShape.join('x')})`,
        'pick the model trained for this data set',
      );
    }
    const bits = net.bits;
    const C = data.info.classes;
    o.log(`data ${o.data}: database ${data.database.length}, queries ${data.query.length}, ${C} classes`);
    const dbLabels = data.database.labels();
    const R = o.R ?? defaultR(data);

    const sample = sampleAttack(data.query.labels(), dbLabels, C, {
      seed: o.seed,
      queries: o.queries,
      targetsPerQuery: o.nT,
      targetClasses: o.targetClasses,
      maxTargetsPerQuery: o.maxTargetsPerQuery,
    });
    const nq = sample.queryIndices.length;
    const queryIdx = Array.from(sample.queryIndices);

    // This shard's slice of the sampled queries (the whole list without --shard).
    const shard = o.shard ?? { index: 0, count: 1 };
    const lo = Math.floor((shard.index * nq) / shard.count);
    const hi = Math.floor(((shard.index + 1) * nq) / shard.count);
    const resultsPath = join(o.outDir, 'results.jsonl');
    const header: RunHeader = {
      format: 'dhta-results/1',
      data: o.data,
      model: o.modelDir,
      seed: o.seed,
      queries: nq,
      nT: o.nT,
      bits,
      methods: o.methods,
      R,
      zeroHits: o.zeroHits,
      databaseSize: data.database.length,
      ns: defaultNs(data.database.length),
      // The batch is how the run was cut up, not what it computes (results do not depend on it): a run
      // resumed or sharded with another batch is the same run.
      attack: JSON.parse(JSON.stringify({ ...o.attack, batch: undefined })),
      targetClasses: o.targetClasses ?? null,
      maxTargetsPerQuery: o.maxTargetsPerQuery ?? null,
      sampling: SAMPLING_VERSION,
      shard,
      engine: net.engine.kind,
    };
    // The output folder is made (and taken: one run at a time) only now that the settings are checked.
    createdOutDir = makeDir(o.outDir);
    unlock = lockOutDir(o.outDir);
    // Checked before the (long) database encoding: a results file of this run or of another one.
    const done = resumeResults(resultsPath, header, Boolean(o.resume));
    if (done.size) o.log(`resuming: ${done.size} query results already in ${resultsPath}`);

    const encodeStart = performance.now();
    const db = await databaseCodes(net, modelDir, data, o);
    const encodeSeconds = (performance.now() - encodeStart) / 1000;
    o.log(`database codes: ${db.cached ? 'from the cache' : `encoded in ${encodeSeconds.toFixed(1)} s`}`);
    const retrieval = new RetrievalDatabase(bits, db.codes, dbLabels);
    const pixels = await data.query.load(queryIdx);
    const allQueryLabels = data.query.labels();
    const queryLabels = new Uint8Array(nq * C);
    for (let q = 0; q < nq; q++)
      queryLabels.set(allQueryLabels.subarray(queryIdx[q] * C, (queryIdx[q] + 1) * C), q * C);
    const targetCodes = rowsOf(db.codes, sample.targetIndices, bits);
    const anchorsDhta = voteAnchors(targetCodes, o.nT, bits);
    // P2P: one random object of the target label, the first of the n_t drawn (drawn at random).
    const firstTargets = Array.from({ length: nq }, (_, q) => sample.targetIndices[q * o.nT]);
    const anchorsP2p = rowsOf(db.codes, firstTargets, bits);
    const clean = await net.encode(pixels, nq);
    fd = openSync(resultsPath, done.size ? 'a' : 'w');
    if (!done.size) appendLine(fd, { header });

    // Retrieval grids and examples (the paper's Fig. 4 and Fig. 8) for the first few queries of the run: this
    // shard's share of them is [lo, shownHi).
    const shown = Math.min(GRID_QUERIES, nq);
    const shownHi = Math.min(shown, hi);
    const itemShape = data.info.itemShape;
    const gridOf = async (codes: Int8Array, at: readonly number[]) => {
      const r = await retrieval.rank(codes.subarray(0, at.length * bits), GRID_TOP);
      return at.map((q, i) =>
        Array.from({ length: r.k }, (_, j) => {
          const id = r.ids[i * r.k + j];
          return {
            id,
            distance: r.distances[i * r.k + j],
            label: positives(dbLabels, id, C),
            hasTarget: sharesLabel(dbLabels, id, sample.targetLabels, q, C),
            hasQueryLabel: sharesLabel(dbLabels, id, queryLabels, q, C),
          };
        }),
      );
    };
    const examplesDir = join(o.outDir, 'examples');
    if (lo < shownHi) {
      makeDir(join(examplesDir, 'parts'));
      const at = Array.from({ length: shownHi - lo }, (_, i) => lo + i);
      await writeNpyFile(join(examplesDir, 'benign.npy'), pixels.slice(lo * itemSize, shownHi * itemSize), [
        at.length,
        ...itemShape,
      ]);
      writeAtomic(
        join(examplesDir, 'benign.json'),
        JSON.stringify(await gridOf(gather(clean.codes, at, bits), at)),
      );
    }

    const chunk = o.attack.batch ?? 100;
    for (const method of o.methods) {
      const anchors = method === 'p2p' ? anchorsP2p : anchorsDhta;
      // The positions still to do (all of them unless resuming), in batches: a query's figures do not depend
      // on the batch it runs in, so a resumed run attacks only what is missing and equals an uninterrupted one.
      const todo: number[] = [];
      for (let q = lo; q < hi; q++) if (!done.has(`${method}/${q}`)) todo.push(q);
      let queryIterations = 0;
      let attackSeconds = 0;
      for (let b = 0; b < todo.length; b += chunk) {
        const positions = todo.slice(b, b + chunk);
        const count = positions.length;
        const t0 = performance.now();
        let codes: Int8Array;
        let adversarial: Float32Array | null = null;
        const x = gather(pixels, positions, itemSize);
        if (method === 'original') {
          codes = gather(clean.codes, positions, bits);
        } else {
          const out = await runAttack(
            net,
            x,
            count,
            method === 'dhta' || method === 'p2p' ? gather(anchors, positions, bits) : undefined,
            {
              ...o.attack,
              method,
              queryIds: positions.map((q) => queryIdx[q]),
              onProgress: (p) =>
                o.progress?.(
                  method,
                  (hi - lo - todo.length + b) * p.iterations + p.batch * p.iteration,
                  (hi - lo) * p.iterations,
                  `d(anchor) ${p.meanDistance.toFixed(2)}  ${p.queryIterationsPerSecond.toFixed(0)} query-iterations/s`,
                ),
            },
          );
          codes = out.codes;
          adversarial = out.adversarial;
          queryIterations += count * out.iterations;
        }
        const seconds = (performance.now() - t0) / 1000;
        attackSeconds += seconds;
        const tLabels = gather(sample.targetLabels, positions, C);
        const qLabels = gather(queryLabels, positions, C);
        const tMap = await retrieval.targetedMap(codes, tLabels, { R, zeroHits: o.zeroHits });
        const map = await retrieval.map(codes, qLabels, { R, zeroHits: o.zeroHits });
        const perc = adversarial ? perceptibility(adversarial, x, count) : null;
        // Curves: the attacks against the target label; Original against the query's own label, as the
        // paper's Figs. 3 and 5 draw it.
        const curveLabels = method === 'original' ? qLabels : tLabels;
        const pAtN = await retrieval.precisionAtN(codes, curveLabels, { ns: header.ns });
        for (let i = 0; i < count; i++) {
          const q = positions[i];
          if (q < shownHi && method !== 'original') {
            // This query's example, on its own (a file per query: nothing depends on the batches).
            const part = join(examplesDir, 'parts', `${method}.${q}`);
            writeAtomic(`${part}.json`, JSON.stringify((await gridOf(codes.subarray(i * bits), [q]))[0]));
            if (adversarial)
              await writeNpyFile(`${part}.npy`, adversarial.slice(i * itemSize, (i + 1) * itemSize), [
                1,
                ...itemShape,
              ]);
          }
          // Per-query precision and recall at every radius, so that shards merge exactly.
          const pr = await retrieval.precisionRecall(
            codes.subarray(i * bits, (i + 1) * bits),
            curveLabels.subarray(i * C, (i + 1) * C),
          );
          appendLine(fd, {
            method,
            position: q,
            query: queryIdx[q],
            label: positives(queryLabels, q, C),
            target: positives(sample.targetLabels, q, C),
            anchorDistanceBefore: hamming(clean.codes, q, anchors, q, bits),
            anchorDistanceAfter: hamming(codes, i, anchors, q, bits),
            ap: map.ap[i],
            tap: tMap.ap[i],
            perceptibility: perc ? perc.perObject[i] : null,
            iterations:
              method === 'original' || method === 'noise'
                ? 0
                : (o.attack.iterations ?? (net.spec.task === 'video' ? 500 : 2000)),
            seconds: seconds / count,
            precision: Array.from(pr.precision, nanToNull),
            recall: Array.from(pr.recall, nanToNull),
            precisionAtN: Array.from(pAtN.perQuery.subarray(i * pAtN.ns.length, (i + 1) * pAtN.ns.length)),
          });
        }
        syncResults(fd);
      }
      if (attackSeconds > 0) {
        o.log(
          `${method}: ${attackSeconds.toFixed(1)} s` +
            (queryIterations ? `  ${(queryIterations / attackSeconds).toFixed(1)} query-iterations/s` : ''),
        );
      }
      if (method !== 'original') await assembleExamples(examplesDir, method, lo, shownHi, itemShape);
    }
    closeSync(fd);
    fd = null;
    const { curves, ...summary } = summarizeRun(readAllResults(resultsPath).lines, header);
    const result: ProtocolResult = {
      ...summary,
      R,
      zeroHits: o.zeroHits,
      databaseSize: data.database.length,
      nT: o.nT,
      bits,
      seed: o.seed,
      data: o.data,
      model: o.modelDir,
      shard: shard.count > 1 ? `${shard.index}/${shard.count}` : null,
      seconds: { encode: encodeSeconds, total: (performance.now() - started) / 1000 },
      databaseCached: db.cached,
      engine: net.engine.kind,
    };
    const shownQueries = Array.from({ length: Math.max(0, shownHi - lo) }, (_, i) => lo + i);
    writeRunOutputs(
      o.outDir,
      result,
      curves,
      header.attack,
      {
        data: o.data,
        seed: o.seed,
        queries: shownQueries.map((q) => ({
          query: queryIdx[q],
          label: positives(queryLabels, q, C),
          target: positives(sample.targetLabels, q, C),
        })),
      },
      [
        ...(o.resume ? readSessions(o.outDir) : []),
        {
          started: new Date(Date.now() - result.seconds.total * 1000).toISOString(),
          seconds: result.seconds.total,
          encodeSeconds,
          databaseCached: db.cached,
          engine: result.engine ?? null,
          shard: result.shard,
        },
      ],
    );
    return result;
  } catch (e) {
    if (fd !== null) closeSync(fd);
    unlock();
    if (createdOutDir) removeIfEmpty(o.outDir);
    throw e;
  } finally {
    unlock();
    net.destroy();
  }
}

/** One command's share of a run (a run resumed twice has three). */
export interface RunSession {
  started: string;
  seconds: number;
  encodeSeconds: number;
  databaseCached: boolean;
  engine: string | null;
  shard: string | null;
}

/** The sessions recorded in OUT/timing.json (none when absent or unreadable: timing is not a result). */
export function readSessions(outDir: string): RunSession[] {
  try {
    const t = JSON.parse(readFileSync(join(outDir, 'timing.json'), 'utf8')) as { sessions?: unknown };
    if (!Array.isArray(t.sessions)) return [];
    return t.sessions.filter(
      (x): x is RunSession =>
        !!x && typeof x === 'object' && Number.isFinite(x.seconds) && Number.isFinite(x.encodeSeconds),
    );
  } catch {
    return [];
  }
}

/**
 * Writes metrics.json (the figures only: nothing in it depends on timing, batches, shards or resumes, so an
 * unsharded run, merged shards and a resumed run write the same bytes), timing.json (seconds, per method and
 * per session), curves.json and retrieval.json (from the grids in OUT/examples), each atomically.
 */
export function writeRunOutputs(
  outDir: string,
  result: ProtocolResult,
  curves: Record<string, MethodCurves>,
  attack: unknown,
  shown: { data: string; seed: number; queries: { query: number; label: number[]; target: number[] }[] },
  sessions: RunSession[],
): void {
  const top: Record<string, unknown> = {};
  for (const name of ['benign', ...METHODS]) {
    const file = join(outDir, 'examples', `${name}.json`);
    if (existsSync(file)) top[name] = JSON.parse(readFileSync(file, 'utf8'));
  }
  const reference = "target labels (original: the query's own labels, as in the paper's Figs. 3 and 5)";
  writeAtomic(join(outDir, 'curves.json'), `${JSON.stringify({ reference, curves })}\n`);
  if (shown.queries.length && top['benign']) {
    writeAtomic(join(outDir, 'retrieval.json'), `${JSON.stringify({ ...shown, split: 'database', top })}\n`);
  }
  const { metrics } = result;
  // Keys in a fixed order, whoever built the result.
  const figures = {
    metrics: metrics.map((m) => ({
      method: m.method,
      tMap: m.tMap,
      map: m.map,
      perceptibility: m.perceptibility,
      anchorDistance: m.anchorDistance,
    })),
    queries: result.queries,
    iterations: result.iterations,
    R: result.R,
    zeroHits: result.zeroHits,
    databaseSize: result.databaseSize,
    nT: result.nT,
    bits: result.bits,
    seed: result.seed,
    data: result.data,
    model: result.model,
    shard: result.shard,
    engine: result.engine ?? null,
    attack,
  };
  writeAtomic(join(outDir, 'metrics.json'), `${JSON.stringify(figures, null, 2)}\n`);
  const timing = {
    seconds: {
      total: sessions.reduce((a, x) => a + x.seconds, 0),
      encode: sessions.reduce((a, x) => a + x.encodeSeconds, 0),
    },
    methods: metrics.map((m) => ({
      method: m.method,
      seconds: m.seconds,
      queryIterationsPerSecond: m.queryIterationsPerSecond,
    })),
    sessions,
  };
  writeAtomic(join(outDir, 'timing.json'), `${JSON.stringify(timing, null, 2)}\n`);
}

export function fmt(v: number | null): string {
  return v === null ? '-' : (100 * v).toFixed(2);
}
