// The protocol of PROTOCOL.md on a data set, end to end: encode the database (cached per model and data),
// sample queries and targets, vote anchors, attack with each method, evaluate, write results.
// Orchestration only: every number comes from the packages.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type AttackOptions, runAttack, sampleAttack, voteAnchors } from '@dhta/attack';
import { type Dataset, type OpenedDataset, openDataset } from '@dhta/data';
import { defaultNs, perceptibility, RetrievalDatabase } from '@dhta/eval';
import type { Gpu } from '@dhta/kernels';
import { writeNpyFile } from '@dhta/kernels/hamming';
import { CpuImageNetwork, type HashingNetwork, type ModelSpec } from '@dhta/models';
import { CliError } from './errors.js';
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
  /** Continue the run in outDir (its results.jsonl) instead of starting over. */
  resume?: boolean;
  /** Run only slice `index` of `count` of the sampled queries. */
  shard?: { index: number; count: number };
  /** Where the attack loop runs (default auto: wasm for image models on a software adapter). */
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
  return process.env['DHTA_CACHE'] ?? join(homedir(), '.cache', 'dhta');
}

/** What encodes: a WebGPU network or one on the WebAssembly engine. */
type Encoder = Pick<HashingNetwork, 'bits' | 'spec'> & {
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
  mkdirSync(dirname(file), { recursive: true });
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
    net instanceof CpuImageNetwork ? 'wasm' : 'webgpu',
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
  cacheCodes(file, codes);
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

function hamming(a: Int8Array, b: Int8Array, q: number, bits: number): number {
  let d = 0;
  for (let j = 0; j < bits; j++) if (a[q * bits + j] !== b[q * bits + j]) d++;
  return d;
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
  mkdirSync(o.outDir, { recursive: true });
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
      attack: JSON.parse(JSON.stringify(o.attack)),
      targetClasses: o.targetClasses ?? null,
      shard,
    };
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
    const fd = openSync(resultsPath, done.size ? 'a' : 'w');
    if (!done.size) appendLine(fd, { header });

    // Retrieval grids and examples (the paper's Fig. 4 and Fig. 8) for the first few queries.
    const shown = Math.min(GRID_QUERIES, nq);
    const itemShape = data.info.itemShape;
    const gridOf = async (codes: Int8Array, first: number, count: number) => {
      const r = await retrieval.rank(codes.subarray(0, count * bits), GRID_TOP);
      return Array.from({ length: count }, (_, i) =>
        Array.from({ length: r.k }, (_, j) => {
          const id = r.ids[i * r.k + j];
          return {
            id,
            distance: r.distances[i * r.k + j],
            label: positives(dbLabels, id, C),
            hasTarget: sharesLabel(dbLabels, id, sample.targetLabels, first + i, C),
            hasQueryLabel: sharesLabel(dbLabels, id, queryLabels, first + i, C),
          };
        }),
      );
    };
    if (lo < shown) {
      mkdirSync(join(o.outDir, 'examples'), { recursive: true });
      const n = shown - lo;
      await writeNpyFile(
        join(o.outDir, 'examples', 'benign.npy'),
        pixels.slice(lo * itemSize, shown * itemSize),
        [n, ...itemShape],
      );
      writeAtomic(
        join(o.outDir, 'examples', 'benign.json'),
        JSON.stringify(await gridOf(clean.codes.subarray(lo * bits), lo, n)),
      );
    }

    const chunk = o.attack.batch ?? 100;
    const timing = new Map<Method, { seconds: number; queryIterations: number }>();
    for (const method of o.methods) {
      const anchors = method === 'p2p' ? anchorsP2p : anchorsDhta;
      const t = { seconds: 0, queryIterations: 0 };
      timing.set(method, t);
      for (let first = lo; first < hi; first += chunk) {
        const count = Math.min(chunk, hi - first);
        const positions = Array.from({ length: count }, (_, i) => first + i);
        if (positions.every((q) => done.has(`${method}/${q}`))) continue;
        const t0 = performance.now();
        let codes: Int8Array;
        let adversarial: Float32Array | null = null;
        const x = pixels.subarray(first * itemSize, (first + count) * itemSize);
        if (method === 'original') {
          codes = clean.codes.slice(first * bits, (first + count) * bits);
        } else {
          const out = await runAttack(
            net,
            x,
            count,
            method === 'dhta' || method === 'p2p'
              ? anchors.subarray(first * bits, (first + count) * bits)
              : undefined,
            {
              ...o.attack,
              method,
              queryIds: queryIdx.slice(first, first + count),
              onProgress: (p) =>
                o.progress?.(
                  method,
                  (first - lo) * p.iterations + p.batch * p.iteration,
                  (hi - lo) * p.iterations,
                  `d(anchor) ${p.meanDistance.toFixed(2)}  ${p.queryIterationsPerSecond.toFixed(0)} q-it/s`,
                ),
            },
          );
          codes = out.codes;
          adversarial = out.adversarial;
          t.queryIterations += count * out.iterations;
        }
        const seconds = (performance.now() - t0) / 1000;
        t.seconds += seconds;
        const tLabels = sample.targetLabels.subarray(first * C, (first + count) * C);
        const qLabels = queryLabels.subarray(first * C, (first + count) * C);
        const tMap = await retrieval.targetedMap(codes, tLabels, { R, zeroHits: o.zeroHits });
        const map = await retrieval.map(codes, qLabels, { R, zeroHits: o.zeroHits });
        const perc = adversarial ? perceptibility(adversarial, x, count) : null;
        const pAtN = await retrieval.precisionAtN(codes, tLabels, { ns: header.ns });
        if (first < shown && method !== 'original') {
          const n = Math.min(shown, first + count) - first;
          writeAtomic(
            join(o.outDir, 'examples', `${method}.json`),
            JSON.stringify(await gridOf(codes, first, n)),
          );
          if (adversarial) {
            await writeNpyFile(
              join(o.outDir, 'examples', `${method}.npy`),
              adversarial.slice(0, n * itemSize),
              [n, ...itemShape],
            );
          }
        }
        for (let i = 0; i < count; i++) {
          const q = first + i;
          // Per-query precision and recall at every radius, so that shards merge exactly.
          const pr = await retrieval.precisionRecall(
            codes.subarray(i * bits, (i + 1) * bits),
            tLabels.subarray(i * C, (i + 1) * C),
          );
          appendLine(fd, {
            method,
            position: q,
            query: queryIdx[q],
            label: positives(queryLabels, q, C),
            target: positives(sample.targetLabels, q, C),
            anchorDistanceBefore: hamming(clean.codes, anchors, q, bits),
            anchorDistanceAfter: hamming(codes, anchors.subarray(first * bits), i, bits),
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
      if (t.seconds > 0) {
        o.log(
          `${method}: ${t.seconds.toFixed(1)} s` +
            (t.queryIterations ? `  ${(t.queryIterations / t.seconds).toFixed(1)} query-iterations/s` : ''),
        );
      }
    }
    closeSync(fd);
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
      engine: net instanceof CpuImageNetwork ? 'wasm' : 'webgpu',
    };
    writeRunOutputs(o.outDir, result, curves, o.attack, {
      data: o.data,
      seed: o.seed,
      queries: queryIdx.slice(0, shown).map((id, q) => ({
        query: id,
        label: positives(queryLabels, q, C),
        target: positives(sample.targetLabels, q, C),
      })),
    });
    return result;
  } finally {
    net.destroy();
  }
}

/** Writes metrics.json, curves.json and retrieval.json (from the grids in OUT/examples) atomically. */
export function writeRunOutputs(
  outDir: string,
  result: ProtocolResult,
  curves: Record<string, MethodCurves>,
  attack: unknown,
  shown: { data: string; seed: number; queries: { query: number; label: number[]; target: number[] }[] },
): void {
  const top: Record<string, unknown> = {};
  for (const name of ['benign', ...METHODS]) {
    const file = join(outDir, 'examples', `${name}.json`);
    if (existsSync(file)) top[name] = JSON.parse(readFileSync(file, 'utf8'));
  }
  writeAtomic(join(outDir, 'curves.json'), `${JSON.stringify({ reference: 'target labels', curves })}\n`);
  if (shown.queries.length && top['benign']) {
    writeAtomic(join(outDir, 'retrieval.json'), `${JSON.stringify({ ...shown, split: 'database', top })}\n`);
  }
  writeAtomic(join(outDir, 'metrics.json'), `${JSON.stringify({ ...result, attack }, null, 2)}\n`);
}

export function fmt(v: number | null): string {
  return v === null ? '-' : (100 * v).toFixed(2);
}
