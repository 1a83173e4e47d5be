// The protocol of PROTOCOL.md on a data set, end to end: encode the database (cached per model and data),
// sample queries and targets, vote anchors, attack with each method, evaluate, write results.
// Orchestration only: every number comes from the packages.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { type AttackMethod, type AttackOptions, runAttack, sampleAttack, voteAnchors } from '@dhta/attack';
import { type Dataset, type OpenedDataset, openDataset } from '@dhta/data';
import { perceptibility, RetrievalDatabase } from '@dhta/eval';
import type { Gpu } from '@dhta/kernels';
import { writeNpyFile } from '@dhta/kernels/hamming';
import { type HashingNetwork, loadNetwork } from '@dhta/models';
import { CliError } from './errors.js';

export type Method = 'original' | AttackMethod;
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
  /** Progress lines/bars. */
  log: (line: string) => void;
  progress?: (phase: string, done: number, total: number, extra?: string) => void;
}

export interface MethodMetrics {
  method: Method;
  tMap: number | null;
  map: number | null;
  perceptibility: number | null;
  /** Mean Hamming distance of the codes to the anchors (targeted methods' anchors; NaN-free). */
  anchorDistance: number;
  seconds: number;
  queryIterationsPerSecond: number | null;
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
  seconds: { encode: number; total: number };
  /** Whether the database codes came from the cache. */
  databaseCached: boolean;
}

export function cacheDir(): string {
  return process.env['DHTA_CACHE'] ?? join(homedir(), '.cache', 'dhta');
}

function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Codes of every item of a data set, in chunks (progress through `onChunk`). */
export async function encodeDataset(
  net: HashingNetwork,
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
async function databaseCodes(
  net: HashingNetwork,
  modelDir: string,
  data: OpenedDataset,
  o: ProtocolOptions,
): Promise<{ codes: Int8Array; cached: boolean }> {
  const hash = createHash('sha256');
  hash.update(readFileSync(join(modelDir, 'model.json')));
  hash.update(readFileSync(join(modelDir, 'weights.safetensors')));
  hash.update(JSON.stringify({ data: o.data, seed: data.info.seed, n: data.database.length, v: 1 }));
  const key = hash.digest('hex').slice(0, 32);
  const dir = join(cacheDir(), 'codes');
  const file = join(dir, `${key}.i8`);
  try {
    const bytes = readFileSync(file);
    if (bytes.length === data.database.length * net.bits) {
      return { codes: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length), cached: true };
    }
  } catch {
    // not cached yet
  }
  const codes = await encodeDataset(net, data.database, (d, t) => o.progress?.('encode database', d, t));
  mkdirSync(dir, { recursive: true });
  writeAtomic(file, new Uint8Array(codes.buffer, codes.byteOffset, codes.length));
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
export async function runProtocol(gpu: Gpu, o: ProtocolOptions): Promise<ProtocolResult> {
  const started = performance.now();
  const modelDir = resolve(o.modelDir);
  mkdirSync(o.outDir, { recursive: true });
  const net = await loadNetwork(gpu, modelDir);
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
    const encodeStart = performance.now();
    const db = await databaseCodes(net, modelDir, data, o);
    const encodeSeconds = (performance.now() - encodeStart) / 1000;
    o.log(`database codes: ${db.cached ? 'from the cache' : `encoded in ${encodeSeconds.toFixed(1)} s`}`);
    const dbLabels = data.database.labels();
    const retrieval = new RetrievalDatabase(bits, db.codes, dbLabels);
    const R = o.R ?? defaultR(data);

    const sample = sampleAttack(data.query.labels(), dbLabels, C, {
      seed: o.seed,
      queries: o.queries,
      targetsPerQuery: o.nT,
    });
    const nq = sample.queryIndices.length;
    const queryIdx = Array.from(sample.queryIndices);
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

    const lines: string[] = [];
    const metrics: MethodMetrics[] = [];
    const curves: Record<string, unknown> = {};
    // Retrieval grids and examples (the paper's Fig. 4 and Fig. 8) for the first few queries.
    const shown = Math.min(GRID_QUERIES, nq);
    const gridOf = async (codes: Int8Array) => {
      const r = await retrieval.rank(codes.subarray(0, shown * bits), GRID_TOP);
      return Array.from({ length: shown }, (_, q) =>
        Array.from({ length: r.k }, (_, i) => {
          const id = r.ids[q * r.k + i];
          return {
            id,
            distance: r.distances[q * r.k + i],
            label: positives(dbLabels, id, C),
            hasTarget: sharesLabel(dbLabels, id, sample.targetLabels, q, C),
            hasQueryLabel: sharesLabel(dbLabels, id, queryLabels, q, C),
          };
        }),
      );
    };
    const grids: Record<string, unknown> = { benign: await gridOf(clean.codes) };
    mkdirSync(join(o.outDir, 'examples'), { recursive: true });
    const itemShape = data.info.itemShape;
    await writeNpyFile(join(o.outDir, 'examples', 'benign.npy'), pixels.slice(0, shown * itemSize), [
      shown,
      ...itemShape,
    ]);
    let iterations = 0;
    for (const method of o.methods) {
      const t0 = performance.now();
      let codes: Int8Array;
      let adversarial: Float32Array | null = null;
      let qips: number | null = null;
      const anchors = method === 'p2p' ? anchorsP2p : anchorsDhta;
      if (method === 'original') {
        codes = clean.codes;
      } else {
        const out = await runAttack(
          net,
          pixels,
          nq,
          method === 'dhta' || method === 'p2p' ? anchors : undefined,
          {
            ...o.attack,
            method,
            queryIds: queryIdx,
            onProgress: (p) =>
              o.progress?.(
                method,
                p.queriesDone * p.iterations + p.batch * p.iteration,
                p.queries * p.iterations,
                `d(anchor) ${p.meanDistance.toFixed(2)}  ${p.queryIterationsPerSecond.toFixed(0)} q-it/s`,
              ),
          },
        );
        codes = out.codes;
        adversarial = out.adversarial;
        iterations = out.iterations || iterations;
        if (out.iterations > 0) qips = (nq * out.iterations) / out.seconds;
      }
      const seconds = (performance.now() - t0) / 1000;
      const tMap = await retrieval.targetedMap(codes, sample.targetLabels, { R, zeroHits: o.zeroHits });
      const map = await retrieval.map(codes, queryLabels, { R, zeroHits: o.zeroHits });
      const perc = adversarial ? perceptibility(adversarial, pixels, nq) : null;
      const pr = await retrieval.precisionRecall(codes, sample.targetLabels);
      const pAtN = await retrieval.precisionAtN(codes, sample.targetLabels);
      curves[method] = {
        radii: pr.radii,
        precision: Array.from(pr.precision, nanToNull),
        recall: Array.from(pr.recall, nanToNull),
        ns: pAtN.ns,
        precisionAtN: Array.from(pAtN.precision, nanToNull),
      };
      if (method !== 'original') grids[method] = await gridOf(codes);
      if (adversarial) {
        await writeNpyFile(
          join(o.outDir, 'examples', `${method}.npy`),
          adversarial.slice(0, shown * itemSize),
          [shown, ...itemShape],
        );
      }
      let distance = 0;
      for (let q = 0; q < nq; q++) {
        distance += hamming(codes, anchorsDhta, q, bits);
        lines.push(
          JSON.stringify({
            method,
            query: queryIdx[q],
            label: positives(queryLabels, q, C),
            target: positives(sample.targetLabels, q, C),
            anchorDistanceBefore: hamming(clean.codes, method === 'p2p' ? anchorsP2p : anchorsDhta, q, bits),
            anchorDistanceAfter: hamming(codes, method === 'p2p' ? anchorsP2p : anchorsDhta, q, bits),
            ap: map.ap[q],
            tap: tMap.ap[q],
            perceptibility: perc ? perc.perObject[q] : null,
          }),
        );
      }
      metrics.push({
        method,
        tMap: tMap.map,
        map: map.map,
        perceptibility: perc ? perc.mean : null,
        anchorDistance: nq ? distance / nq : 0,
        seconds,
        queryIterationsPerSecond: qips,
      });
      o.log(
        `${method}: t-MAP ${fmt(tMap.map)}  MAP ${fmt(map.map)}  ${seconds.toFixed(1)} s` +
          (qips ? `  ${qips.toFixed(1)} query-iterations/s` : ''),
      );
    }
    const result: ProtocolResult = {
      metrics,
      R,
      zeroHits: o.zeroHits,
      databaseSize: data.database.length,
      queries: nq,
      nT: o.nT,
      bits,
      seed: o.seed,
      data: o.data,
      model: o.modelDir,
      iterations,
      seconds: { encode: encodeSeconds, total: (performance.now() - started) / 1000 },
      databaseCached: db.cached,
    };
    writeAtomic(join(o.outDir, 'results.jsonl'), `${lines.join('\n')}\n`);
    writeAtomic(join(o.outDir, 'curves.json'), `${JSON.stringify({ reference: 'target labels', curves })}\n`);
    writeAtomic(
      join(o.outDir, 'retrieval.json'),
      `${JSON.stringify({
        data: o.data,
        seed: o.seed,
        split: 'database',
        queries: queryIdx.slice(0, shown).map((id, q) => ({
          query: id,
          label: positives(queryLabels, q, C),
          target: positives(sample.targetLabels, q, C),
        })),
        top: grids,
      })}\n`,
    );
    writeAtomic(
      join(o.outDir, 'metrics.json'),
      `${JSON.stringify({ ...result, attack: o.attack }, null, 2)}\n`,
    );
    return result;
  } finally {
    net.destroy();
  }
}

export function fmt(v: number | null): string {
  return v === null ? '-' : (100 * v).toFixed(2);
}
