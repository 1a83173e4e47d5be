// Protocol results on disk: OUT/results.jsonl is appended one line per (method, query) as batches finish, so a
// killed run loses at most the batch in flight and `--resume` continues it; shards of one run (`--shard i/n`)
// merge into exactly what the unsharded run writes, because every figure is summarised from the per-query
// lines in query order.

import {
  existsSync,
  fsyncSync,
  readFileSync,
  renameSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CliError } from './errors.js';

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

export function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

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
  if (JSON.stringify(a.attack) !== JSON.stringify(b.attack)) return 'the attack settings';
  if (JSON.stringify(a.ns) !== JSON.stringify(b.ns)) return 'the P@N cut-offs';
  if (JSON.stringify(a.targetClasses) !== JSON.stringify(b.targetClasses)) return 'the target classes';
  return null;
}

/** Reads a results file: its header and complete lines (a line cut by a kill is dropped). */
export function readAllResults(path: string): {
  header: RunHeader;
  lines: QueryResult[];
  validBytes: number;
} {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${path} (${(e as Error).message})`);
  }
  const lines: QueryResult[] = [];
  let header: RunHeader | null = null;
  let offset = 0;
  let validBytes = 0;
  let lineNo = 0;
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
      header = (value as { header?: RunHeader }).header ?? null;
      if (header?.format !== 'dhta-results/1') {
        throw new CliError(`${path}:1: not a dhta results file (no dhta-results/1 header)`);
      }
    } else {
      lines.push(value as QueryResult);
    }
    validBytes = Buffer.byteLength(text.slice(0, offset));
  }
  if (!header) throw new CliError(`${path}: empty results file`);
  return { header, lines, validBytes };
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
  truncateSync(path, validBytes);
  for (const l of lines) done.add(`${l.method}/${l.position}`);
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
    for (const l of p.lines) seen.set(`${l.method}/${l.position}`, l);
  }
  const missing: string[] = [];
  for (const method of first.methods) {
    for (let q = 0; q < first.queries; q++) if (!seen.has(`${method}/${q}`)) missing.push(`${method}/${q}`);
  }
  if (missing.length) {
    const absent = Array.from({ length: first.shard.count }, (_, i) => i).filter((i) => !shards.has(i));
    throw new CliError(
      `the results are incomplete: ${missing.length} (method, query) pairs missing, e.g. ${missing.slice(0, 3).join(', ')}` +
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
