// Protocol results on disk: OUT/results.jsonl is appended one line per (method, query) as batches finish, so a
// killed run loses at most the batch in flight and `--resume` continues it; shards of one run (`--shard i/n`)
// merge into exactly what the unsharded run writes, because every figure is summarised from the per-query
// lines in query order.

import { existsSync, fsyncSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from './errors.js';
import { writeAtomic } from './files.js';

export type Method = 'original' | 'noise' | 'p2p' | 'dhta' | 'hag';

/** What identifies a run: a resumed run or a shard must match it exactly (the shard itself aside). */
export interface RunHeader {
  format: 'dhta-results/1';
  data: string;
  model: string;
  seed: number;
  queries: number;
  nT: number;
  bits: number;
  methods: Method[];
  R: number;
  zeroHits: 'skip' | 'count';
  databaseSize: number;
  /** P@N cut-offs (the per-query precisionAtN values follow them). */
  ns: number[];
  attack: Record<string, unknown>;
  /** The open set's target classes, or null. */
  targetClasses: number[] | null;
  shard: { index: number; count: number };
  /** The engine every code of the run came from (absent in files of older versions). */
  engine?: 'webgpu' | 'wasm';
  /** Eligibility n_t of a paired sweep (null: the run's own n_t; absent in files of older versions). */
  maxTargetsPerQuery?: number | null;
  /** The version of the query and target draw (absent = 1, before sweeps were paired). */
  sampling?: number;
}

export interface QueryResult {
  method: Method;
  /** Index in the run's sampled query list (0..queries-1). */
  position: number;
  /** Index in the query split. */
  query: number;
  label: number[];
  target: number[];
  anchorDistanceBefore: number;
  anchorDistanceAfter: number;
  ap: number | null;
  tap: number | null;
  perceptibility: number | null;
  iterations: number;
  seconds: number;
  precision: (number | null)[];
  recall: (number | null)[];
  precisionAtN: number[];
}

export interface MethodMetrics {
  method: Method;
  tMap: number | null;
  map: number | null;
  perceptibility: number | null;
  /** Mean Hamming distance of the final codes to the anchors. */
  anchorDistance: number;
  seconds: number;
  queryIterationsPerSecond: number | null;
}

export interface MethodCurves {
  radii: number[];
  precision: (number | null)[];
  recall: (number | null)[];
  ns: number[];
  precisionAtN: number[];
}

export interface RunSummary {
  metrics: MethodMetrics[];
  curves: Record<string, MethodCurves>;
  queries: number;
  iterations: number;
}

export { writeAtomic };

export function appendLine(fd: number, value: unknown): void {
  writeSync(fd, `${JSON.stringify(value)}\n`);
}

/** Flushes appended lines to disk (once per finished batch). */
export function syncResults(fd: number): void {
  fsyncSync(fd);
}

function sameRun(a: RunHeader, b: RunHeader): string | null {
  for (const key of [
    'data',
    'model',
    'seed',
    'queries',
    'nT',
    'bits',
    'R',
    'zeroHits',
    'databaseSize',
  ] as const) {
    if (a[key] !== b[key]) return `${key} (${String(a[key])} there, ${String(b[key])} here)`;
  }
  // The batch (kept in files of older versions) does not change what a run computes.
  const settings = (h: RunHeader) => JSON.stringify({ ...h.attack, batch: undefined });
  if (settings(a) !== settings(b)) return 'the attack settings';
  if (JSON.stringify(a.ns) !== JSON.stringify(b.ns)) return 'the P@N cut-offs';
  if (JSON.stringify(a.targetClasses) !== JSON.stringify(b.targetClasses)) return 'the target classes';
  if (JSON.stringify(a.methods) !== JSON.stringify(b.methods)) return 'the methods';
  if (a.engine && b.engine && a.engine !== b.engine)
    return `the engine (${a.engine} there, ${b.engine} here)`;
  return null;
}

const METHOD_NAMES: readonly Method[] = ['original', 'noise', 'p2p', 'dhta', 'hag'];
/** Bounds that no real run reaches; a header beyond them is damaged (and would make merge loop for hours). */
const MAX_QUERIES = 10_000_000;
const MAX_BITS = 4096;

const isInt = (v: unknown, lo: number, hi = Number.MAX_SAFE_INTEGER): v is number =>
  Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNumOrNull = (v: unknown) => v === null || isNum(v);
const isIntList = (v: unknown) => Array.isArray(v) && v.every((x) => isInt(x, 0));

/** The header line, field by field; a clear error naming the file and the field. */
function checkHeader(path: string, value: unknown): RunHeader {
  const h = (value as { header?: unknown } | null)?.header as Record<string, unknown> | undefined;
  if (!h || typeof h !== 'object' || h['format'] !== 'dhta-results/1')
    throw new CliError(`${path}:1: not a dhta results file (no dhta-results/1 header)`);
  const bad = (field: string, expected: string): never => {
    throw new CliError(
      `${path}:1: header field "${field}": expected ${expected}, found ${JSON.stringify(h[field])?.slice(0, 80)}`,
      'the file was edited or damaged; rerun the attack into a new --out-dir',
    );
  };
  if (typeof h['data'] !== 'string') bad('data', 'a data set name');
  if (typeof h['model'] !== 'string') bad('model', 'a model folder');
  if (!isInt(h['seed'], 0, 2 ** 32 - 1)) bad('seed', 'an integer in [0, 2^32)');
  if (!isInt(h['queries'], 1, MAX_QUERIES)) bad('queries', `an integer in [1, ${MAX_QUERIES}]`);
  if (!isInt(h['nT'], 1)) bad('nT', 'an integer >= 1');
  if (!isInt(h['bits'], 1, MAX_BITS)) bad('bits', `an integer in [1, ${MAX_BITS}]`);
  const methods = h['methods'];
  if (
    !Array.isArray(methods) ||
    methods.length === 0 ||
    methods.some((m) => !METHOD_NAMES.includes(m as Method)) ||
    new Set(methods).size !== methods.length
  )
    bad('methods', `a list of distinct methods from ${METHOD_NAMES.join(', ')}`);
  if (!isInt(h['R'], 1)) bad('R', 'an integer >= 1');
  if (h['zeroHits'] !== 'skip' && h['zeroHits'] !== 'count') bad('zeroHits', '"skip" or "count"');
  if (!isInt(h['databaseSize'], 1)) bad('databaseSize', 'an integer >= 1');
  if (!isIntList(h['ns']) || (h['ns'] as number[]).length > 10_000) bad('ns', 'a list of integers');
  if (!h['attack'] || typeof h['attack'] !== 'object' || Array.isArray(h['attack']))
    bad('attack', 'an object of attack settings');
  if (h['targetClasses'] !== null && !isIntList(h['targetClasses']))
    bad('targetClasses', 'null or a list of class indices');
  const shard = h['shard'] as { index?: unknown; count?: unknown } | null;
  if (!shard || !isInt(shard.count, 1, MAX_QUERIES) || !isInt(shard.index, 0, (shard.count as number) - 1))
    bad('shard', '{index, count} with 0 <= index < count');
  if (h['engine'] !== undefined && h['engine'] !== 'webgpu' && h['engine'] !== 'wasm')
    bad('engine', '"webgpu" or "wasm"');
  if (h['sampling'] !== undefined && !isInt(h['sampling'], 1, 1000)) bad('sampling', 'a version number');
  if (
    h['maxTargetsPerQuery'] !== undefined &&
    h['maxTargetsPerQuery'] !== null &&
    !isInt(h['maxTargetsPerQuery'], 1)
  )
    bad('maxTargetsPerQuery', 'null or an integer >= 1');
  return h as unknown as RunHeader;
}

/** One per-query line, field by field, against its header. */
function checkRow(path: string, lineNo: number, value: unknown, h: RunHeader): QueryResult {
  const r = value as Record<string, unknown> | null;
  const bad = (field: string, expected: string): never => {
    throw new CliError(
      `${path}:${lineNo}: field "${field}": expected ${expected}, found ${JSON.stringify(r?.[field])?.slice(0, 80)}`,
      'the file was edited or damaged; rerun the attack into a new --out-dir',
    );
  };
  if (!r || typeof r !== 'object' || Array.isArray(r))
    throw new CliError(
      `${path}:${lineNo}: expected a per-query object, found ${JSON.stringify(r)?.slice(0, 80)}`,
    );
  if (!h.methods.includes(r['method'] as Method))
    bad('method', `one of the run's methods (${h.methods.join(', ')})`);
  if (!isInt(r['position'], 0, h.queries - 1)) bad('position', `an integer in [0, ${h.queries - 1}]`);
  if (!isInt(r['query'], 0)) bad('query', 'an integer >= 0');
  if (!isIntList(r['label'])) bad('label', 'a list of class indices');
  if (!isIntList(r['target'])) bad('target', 'a list of class indices');
  for (const k of ['anchorDistanceBefore', 'anchorDistanceAfter'])
    if (!isInt(r[k], 0, h.bits)) bad(k, `an integer in [0, ${h.bits}]`);
  for (const k of ['ap', 'tap', 'perceptibility']) if (!isNumOrNull(r[k])) bad(k, 'a number or null');
  if (!isInt(r['iterations'], 0)) bad('iterations', 'an integer >= 0');
  if (!isNum(r['seconds']) || (r['seconds'] as number) < 0) bad('seconds', 'a number >= 0');
  for (const k of ['precision', 'recall']) {
    const v = r[k];
    if (!Array.isArray(v) || v.length !== h.bits + 1 || !v.every(isNumOrNull))
      bad(k, `${h.bits + 1} numbers or nulls (one per Hamming radius)`);
  }
  const pn = r['precisionAtN'];
  if (!Array.isArray(pn) || pn.length !== h.ns.length || !pn.every(isNum))
    bad('precisionAtN', `${h.ns.length} numbers (one per N)`);
  return r as unknown as QueryResult;
}

/** The key of a per-query line: each (method, query position) counts once. */
export function rowKey(r: Pick<QueryResult, 'method' | 'position'>): string {
  return `${r.method}/${r.position}`;
}

/**
 * Reads a results file: its header and complete lines, each (method, position) once (the first line written
 * for it; a later repeat, as an older version's resume could append, is dropped and counted). A last line cut
 * by a kill is dropped (`validBytes` ends before it).
 */
export function readAllResults(path: string): {
  header: RunHeader;
  lines: QueryResult[];
  validBytes: number;
  repeats: number;
} {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${path} (${(e as Error).message})`);
  }
  const lines: QueryResult[] = [];
  const seen = new Set<string>();
  let header: RunHeader | null = null;
  let offset = 0;
  let validBytes = 0;
  let lineNo = 0;
  let repeats = 0;
  while (offset < text.length) {
    const end = text.indexOf('\n', offset);
    if (end < 0) break; // an unfinished last line
    lineNo++;
    const raw = text.slice(offset, end);
    offset = end + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw new CliError(
        `${path}:${lineNo}: not a JSON line`,
        'the file was edited or is not a dhta results file',
      );
    }
    if (lineNo === 1) {
      header = checkHeader(path, value);
    } else {
      const row = checkRow(path, lineNo, value, header as RunHeader);
      const key = rowKey(row);
      if (seen.has(key)) repeats++;
      else {
        seen.add(key);
        lines.push(row);
      }
    }
    validBytes = Buffer.byteLength(text.slice(0, offset));
  }
  if (!header) throw new CliError(`${path}: empty results file (no complete header line)`);
  return { header, lines, validBytes, repeats };
}

/**
 * The (method/position) pairs already done in OUT/results.jsonl when resuming (an unfinished last line is cut
 * off first); none when not resuming. Refuses a file of another run.
 */
export function resumeResults(path: string, header: RunHeader, resume: boolean): Set<string> {
  const done = new Set<string>();
  if (!resume || !existsSync(path)) {
    if (!resume && existsSync(path)) {
      const { header: old } = readAllResults(path);
      if (
        old &&
        sameRun(old, header) === null &&
        old.shard.index === header.shard.index &&
        old.shard.count === header.shard.count
      ) {
        throw new CliError(
          `${path} holds results of this run already`,
          'add --resume to continue it, or choose another --out-dir',
        );
      }
    }
    return done;
  }
  const { header: old, lines, validBytes } = readAllResults(path);
  const diff = sameRun(old, header);
  if (diff)
    throw new CliError(
      `${path} is from another run: ${diff} differ`,
      'resume with the same settings, or choose another --out-dir',
    );
  if (old.shard.index !== header.shard.index || old.shard.count !== header.shard.count) {
    throw new CliError(
      `${path} is shard ${old.shard.index}/${old.shard.count}, not ${header.shard.index}/${header.shard.count}`,
    );
  }
  // A line cut by a kill is cut off, so that appended lines start on a line of their own.
  truncateSync(path, validBytes);
  for (const l of lines) done.add(rowKey(l));
  return done;
}

function mean(values: (number | null)[]): number | null {
  let s = 0;
  let n = 0;
  for (const v of values) {
    if (v === null) continue;
    s += v;
    n++;
  }
  return n ? s / n : null;
}

/** Every figure of a run from its per-query lines, in query order (so shards merge exactly). */
export function summarizeRun(lines: QueryResult[], header: RunHeader): RunSummary {
  const metrics: MethodMetrics[] = [];
  const curves: Record<string, MethodCurves> = {};
  let iterations = 0;
  let queries = 0;
  for (const method of header.methods) {
    const rows = lines.filter((l) => l.method === method).sort((a, b) => a.position - b.position);
    if (rows.length === 0) continue;
    queries = Math.max(queries, rows.length);
    let seconds = 0;
    let qit = 0;
    for (const r of rows) {
      seconds += r.seconds;
      qit += r.iterations;
      iterations = Math.max(iterations, r.iterations);
    }
    metrics.push({
      method,
      tMap: mean(rows.map((r) => r.tap)),
      map: mean(rows.map((r) => r.ap)),
      perceptibility: mean(rows.map((r) => r.perceptibility)),
      anchorDistance: mean(rows.map((r) => r.anchorDistanceAfter)) ?? 0,
      seconds,
      queryIterationsPerSecond: qit > 0 && seconds > 0 ? qit / seconds : null,
    });
    const radii = rows[0].precision.length;
    curves[method] = {
      radii: Array.from({ length: radii }, (_, r) => r),
      precision: Array.from({ length: radii }, (_, r) => mean(rows.map((x) => x.precision[r]))),
      recall: Array.from({ length: radii }, (_, r) => mean(rows.map((x) => x.recall[r]))),
      ns: header.ns,
      precisionAtN: header.ns.map((_, i) => mean(rows.map((x) => x.precisionAtN[i])) ?? 0),
    };
  }
  return { metrics, curves, queries, iterations };
}

/** Merges shard folders' results into one results file (the header of shard 0, shard 0/1); checks completeness. */
export function mergeResults(dirs: string[]): { header: RunHeader; lines: QueryResult[] } {
  if (dirs.length === 0) throw new CliError('merge needs at least one results folder');
  const parts = dirs.map((d) => ({ dir: d, ...readAllResults(join(d, 'results.jsonl')) }));
  const first = parts[0].header;
  const seen = new Map<string, QueryResult>();
  const shards = new Set<number>();
  for (const p of parts) {
    const diff = sameRun(first, p.header);
    if (diff) throw new CliError(`${p.dir} is from another run than ${parts[0].dir}: ${diff} differ`);
    if (p.header.shard.count !== first.shard.count)
      throw new CliError(`${p.dir}: shards of ${p.header.shard.count} and ${first.shard.count} mixed`);
    shards.add(p.header.shard.index);
    for (const l of p.lines) if (!seen.has(rowKey(l))) seen.set(rowKey(l), l);
  }
  const expected = first.methods.length * first.queries;
  const missing: string[] = [];
  for (const method of first.methods) {
    for (let q = 0; q < first.queries && missing.length < 3 && seen.size < expected; q++)
      if (!seen.has(`${method}/${q}`)) missing.push(`${method}/${q}`);
  }
  if (seen.size < expected) {
    const absent = Array.from({ length: first.shard.count }, (_, i) => i).filter((i) => !shards.has(i));
    throw new CliError(
      `the results are incomplete: ${expected - seen.size} (method, query) pairs missing, e.g. ${missing.join(', ')}` +
        (absent.length ? `; shards not given: ${absent.join(', ')}` : ''),
      'finish the shards (dhta ... --resume) and merge all of them',
    );
  }
  return { header: { ...first, shard: { index: 0, count: 1 } }, lines: [...seen.values()] };
}

export function writeResultsFile(path: string, header: RunHeader, lines: QueryResult[]): void {
  const methodOrder = new Map(header.methods.map((m, i) => [m, i]));
  const sorted = [...lines].sort(
    (a, b) => (methodOrder.get(a.method) ?? 0) - (methodOrder.get(b.method) ?? 0) || a.position - b.position,
  );
  writeAtomic(path, `${[JSON.stringify({ header }), ...sorted.map((l) => JSON.stringify(l))].join('\n')}\n`);
}
