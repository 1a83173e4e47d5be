// Reading a protocol run's output folder (what runProtocol writes) for the report, with checks that turn a
// wrong or partial folder into one clear error, not a crash deep inside the rendering.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readNpyFile } from '@dhta/kernels/hamming';
import { CliError, plainMessage } from '../errors.js';
import { fsReason, jsonReason } from '../files.js';

export interface RunMethodMetrics {
  method: string;
  tMap: number | null;
  map: number | null;
  perceptibility: number | null;
  anchorDistance?: number;
  seconds?: number;
  queryIterationsPerSecond?: number | null;
}

export interface RunMetrics {
  metrics: RunMethodMetrics[];
  R?: number;
  zeroHits?: 'skip' | 'count';
  databaseSize?: number;
  queries?: number;
  nT?: number;
  bits?: number;
  seed?: number;
  data?: string;
  model?: string;
  iterations?: number;
  seconds?: { encode?: number; total?: number };
  attack?: Record<string, unknown>;
}

export interface MethodCurves {
  radii: number[];
  precision: Array<number | null>;
  recall: Array<number | null>;
  ns: number[];
  precisionAtN: Array<number | null>;
}

export interface RunCurves {
  reference: string;
  curves: Record<string, MethodCurves>;
}

export interface RetrievedItem {
  id: number;
  distance: number;
  label: number[];
  hasTarget: boolean;
  hasQueryLabel: boolean;
}

export interface RunRetrieval {
  data: string;
  seed: number;
  queries: Array<{ query: number; label: number[]; target: number[] }>;
  /** Per method (benign = the clean query), per shown query, the top results. */
  top: Record<string, RetrievedItem[][]>;
}

/** Pixels in [0, 1], shape (q, C, H, W) or (q, T, C, H, W). */
export interface Examples {
  shape: number[];
  data: Float32Array;
}

/** OUT/timing.json: seconds over every session of the run (a resumed run has several). */
export interface RunTiming {
  seconds: { total: number; encode: number };
  methods: { method: string; seconds: number }[];
  sessions: number;
}

export interface RunFolder {
  dir: string;
  metrics: RunMetrics;
  /** null for folders written before timing.json existed (metrics.json then held the seconds). */
  timing: RunTiming | null;
  curves: RunCurves | null;
  retrieval: RunRetrieval | null;
  /** benign and one entry per attacked method found under examples/. */
  examples: Record<string, Examples>;
  /** What the folder lacked, said in the report instead of failing. */
  missing: string[];
}

const RERUN = 'rerun the attack that wrote this folder (dhta attack ... --out-dir DIR, or dhta demo)';

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${fsReason(e)}`, RERUN);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(`${path}: not readable JSON (${jsonReason(e, text)})`, RERUN);
  }
}

/** A value found in a file, for a message: as JSON, at most 80 characters. */
function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function fail(path: string, what: string): never {
  throw new CliError(
    `${path}: ${what}`,
    'point dhta report at a folder written by dhta attack --data or dhta demo',
  );
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNumOrNull = (v: unknown) => v === null || isNum(v);
const isIntList = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);

function checkMetrics(path: string, v: unknown): RunMetrics {
  const m = v as RunMetrics;
  if (!m || typeof m !== 'object' || !Array.isArray(m.metrics) || m.metrics.length === 0)
    fail(path, 'expected an object with a non-empty "metrics" array (one entry per method)');
  for (const [i, e] of m.metrics.entries()) {
    if (!e || typeof e.method !== 'string' || !/^[a-z0-9-]+$/.test(e.method))
      fail(path, `metrics[${i}].method: expected a method name like "dhta", found ${shown(e?.method)}`);
    for (const k of ['tMap', 'map', 'perceptibility'] as const)
      if (!isNumOrNull(e[k]))
        fail(path, `metrics[${i}].${k}: expected a number or null, found ${shown(e[k])}`);
    for (const k of ['anchorDistance', 'seconds'] as const)
      if (e[k] !== undefined && !isNum(e[k]))
        fail(path, `metrics[${i}].${k}: expected a number, found ${shown(e[k])}`);
    if (e.queryIterationsPerSecond !== undefined && !isNumOrNull(e.queryIterationsPerSecond))
      fail(path, `metrics[${i}].queryIterationsPerSecond: expected a number or null`);
  }
  for (const k of ['R', 'databaseSize', 'queries', 'nT', 'bits', 'seed', 'iterations'] as const)
    if (m[k] !== undefined && !(Number.isInteger(m[k]) && (m[k] as number) >= 0))
      fail(path, `${k}: expected an integer >= 0, found ${shown(m[k])}`);
  for (const k of ['data', 'model'] as const)
    if (m[k] !== undefined && typeof m[k] !== 'string')
      fail(path, `${k}: expected a string, found ${shown(m[k])}`);
  if (m.zeroHits !== undefined && m.zeroHits !== 'skip' && m.zeroHits !== 'count')
    fail(path, `zeroHits: expected "skip" or "count", found ${shown(m.zeroHits)}`);
  if (m.seconds !== undefined && (typeof m.seconds !== 'object' || m.seconds === null))
    fail(path, 'seconds: expected {total, encode}');
  for (const k of ['total', 'encode'] as const)
    if (m.seconds?.[k] !== undefined && !isNum(m.seconds[k]))
      fail(path, `seconds.${k}: expected a number, found ${shown(m.seconds[k])}`);
  if (
    m.attack !== undefined &&
    (typeof m.attack !== 'object' || m.attack === null || Array.isArray(m.attack))
  )
    fail(path, 'attack: expected an object of attack settings');
  return m;
}

function checkTiming(path: string, v: unknown): RunTiming {
  const t = v as { seconds?: { total?: unknown; encode?: unknown }; methods?: unknown; sessions?: unknown };
  if (!t || typeof t !== 'object' || !t.seconds || !isNum(t.seconds.total) || !isNum(t.seconds.encode))
    fail(path, 'expected {seconds: {total, encode}, methods: [...], sessions: [...]}');
  const methods = Array.isArray(t.methods) ? t.methods : [];
  for (const [i, e] of methods.entries())
    if (!e || typeof e.method !== 'string' || !isNum(e.seconds))
      fail(path, `methods[${i}]: expected {method, seconds}`);
  return {
    seconds: { total: t.seconds.total as number, encode: t.seconds.encode as number },
    methods: methods as { method: string; seconds: number }[],
    sessions: Array.isArray(t.sessions) ? t.sessions.length : 1,
  };
}

function checkCurves(path: string, v: unknown): RunCurves {
  const c = v as RunCurves;
  if (!c || typeof c !== 'object' || !c.curves || typeof c.curves !== 'object')
    fail(path, 'expected {reference, curves: {method: {radii, precision, recall, ns, precisionAtN}}}');
  for (const [method, m] of Object.entries(c.curves)) {
    const ok =
      Array.isArray(m?.radii) &&
      Array.isArray(m.precision) &&
      Array.isArray(m.recall) &&
      m.precision.length === m.radii.length &&
      m.recall.length === m.radii.length &&
      Array.isArray(m.ns) &&
      Array.isArray(m.precisionAtN) &&
      m.precisionAtN.length === m.ns.length &&
      [...m.precision, ...m.recall, ...m.precisionAtN].every(isNumOrNull);
    if (!ok)
      fail(
        path,
        `curves.${method}: expected radii/precision/recall and ns/precisionAtN arrays of equal lengths`,
      );
  }
  return c;
}

function checkRetrieval(path: string, v: unknown, metrics: RunMetrics): RunRetrieval {
  const r = v as RunRetrieval;
  if (!r || typeof r.data !== 'string' || !Array.isArray(r.queries) || !r.top || typeof r.top !== 'object')
    fail(path, 'expected {data, seed, queries: [...], top: {benign: [...], ...}}');
  // The report opens the data set named here to draw the database images: it must be the run's own.
  if (metrics.data !== undefined && r.data !== metrics.data)
    fail(path, `data ${shown(r.data)} differs from metrics.json's ${shown(metrics.data)}`);
  if (metrics.seed !== undefined && r.seed !== metrics.seed)
    fail(path, `seed ${shown(r.seed)} differs from metrics.json's ${metrics.seed}`);
  for (const [i, q] of r.queries.entries())
    if (!q || !Number.isInteger(q.query) || !Array.isArray(q.label) || !Array.isArray(q.target))
      fail(path, `queries[${i}]: expected {query, label: [...], target: [...]}`);
  for (const [method, rows] of Object.entries(r.top)) {
    if (!Array.isArray(rows) || rows.length !== r.queries.length)
      fail(path, `top.${method}: expected one row per query (${r.queries.length})`);
    for (const row of rows) {
      if (!Array.isArray(row)) fail(path, `top.${method}: expected a list of results per query`);
      for (const item of row)
        if (
          !Number.isInteger(item?.id) ||
          item.id < 0 ||
          !Number.isInteger(item.distance) ||
          !isIntList(item.label) ||
          typeof item.hasTarget !== 'boolean' ||
          typeof item.hasQueryLabel !== 'boolean'
        )
          fail(path, `top.${method}: expected items {id, distance, label, hasTarget, hasQueryLabel}`);
    }
  }
  return r;
}

async function readExamples(path: string): Promise<Examples> {
  let arr: Awaited<ReturnType<typeof readNpyFile>>;
  if (statSync(path).isDirectory()) fail(path, 'is a folder; expected a .npy file of pixels');
  try {
    arr = await readNpyFile(path);
  } catch (e) {
    // The reader's message names the file itself (or not): said once.
    const why = plainMessage((e as Error).message.split('\n')[0]);
    throw new CliError(
      why.startsWith(path) ? why : `${path}: ${why}`,
      'rerun the attack that wrote this folder',
    );
  }
  if (arr.dtype !== 'float32' || (arr.shape.length !== 4 && arr.shape.length !== 5))
    fail(
      path,
      `expected float32 pixels of shape (q, C, H, W) or (q, T, C, H, W), found ${arr.dtype} ${JSON.stringify(arr.shape)}`,
    );
  const channels = arr.shape[arr.shape.length - 3];
  if (channels !== 1 && channels !== 3) fail(path, `expected 1 or 3 channels, found ${channels}`);
  return { shape: arr.shape, data: arr.data as Float32Array };
}

/** Reads OUT (metrics.json required; curves, retrieval and examples when present). */
export async function readRunFolder(dir: string): Promise<RunFolder> {
  const metricsPath = join(dir, 'metrics.json');
  const hint =
    'give the --out-dir of a protocol run (dhta attack --model DIR --data NAME --out-dir OUT, or dhta demo)';
  if (!existsSync(dir)) throw new CliError(`no metrics.json in ${dir}: no such folder`, hint);
  if (!statSync(dir).isDirectory()) throw new CliError(`${dir} is a file; expected a run folder`, hint);
  if (!existsSync(metricsPath)) {
    throw new CliError(
      `no metrics.json in ${dir}`,
      'give the --out-dir of a protocol run (dhta attack --model DIR --data NAME --out-dir OUT, or dhta demo)',
    );
  }
  const metrics = checkMetrics(metricsPath, readJson(metricsPath));
  const missing: string[] = [];
  const curvesPath = join(dir, 'curves.json');
  const curves = existsSync(curvesPath) ? checkCurves(curvesPath, readJson(curvesPath)) : null;
  if (!curves) missing.push('curves.json (precision-recall and precision@N curves)');
  const retrievalPath = join(dir, 'retrieval.json');
  const retrieval = existsSync(retrievalPath)
    ? checkRetrieval(retrievalPath, readJson(retrievalPath), metrics)
    : null;
  const timingPath = join(dir, 'timing.json');
  const timing = existsSync(timingPath) ? checkTiming(timingPath, readJson(timingPath)) : null;
  if (!retrieval) missing.push('retrieval.json (retrieval grids)');
  const examples: Record<string, Examples> = {};
  for (const name of ['benign', ...metrics.metrics.map((m) => m.method).filter((m) => m !== 'original')]) {
    const p = join(dir, 'examples', `${name}.npy`);
    if (existsSync(p)) examples[name] = await readExamples(p);
  }
  if (!examples['benign']) missing.push('examples/benign.npy (query images)');
  const b = examples['benign'];
  for (const [name, e] of Object.entries(examples)) {
    if (b && JSON.stringify(e.shape) !== JSON.stringify(b.shape))
      fail(
        join(dir, 'examples', `${name}.npy`),
        `shape ${JSON.stringify(e.shape)} differs from benign.npy's ${JSON.stringify(b.shape)}`,
      );
  }
  return { dir, metrics, timing, curves, retrieval, examples, missing };
}
