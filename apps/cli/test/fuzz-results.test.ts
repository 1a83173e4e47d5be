// Property and fuzz tests of the results file (results.jsonl) and of merge: whatever the bytes, a clear
// CliError or a correct result, never another exception, never a hang; valid files read back exactly, each
// (method, query) counted once, and shards merge into the whole.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CliError } from '../src/errors.js';
import {
  type Method,
  mergeResults,
  type QueryResult,
  type RunHeader,
  readAllResults,
  summarizeRun,
  writeResultsFile,
} from '../src/results.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-fuzz-results-'));
const bits = 4;
const ns = [2, 4];
let files = 0;
const fresh = (text: string | Uint8Array): string => {
  const dir = join(root, `f${files++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'results.jsonl'), text);
  return dir;
};

function header(queries: number, methods: Method[], shard = { index: 0, count: 1 }): RunHeader {
  return {
    format: 'dhta-results/1',
    data: 'idx:/x',
    model: 'm',
    seed: 3,
    queries,
    nT: 3,
    bits,
    methods,
    R: 10,
    zeroHits: 'skip',
    databaseSize: 10,
    ns,
    attack: { iterations: 5 },
    targetClasses: null,
    shard,
    engine: 'wasm',
  };
}

const rowArb = (queries: number, methods: Method[]) =>
  fc.record({
    method: fc.constantFrom(...methods),
    position: fc.integer({ min: 0, max: queries - 1 }),
    query: fc.nat(1000),
    label: fc.array(fc.nat(9), { minLength: 1, maxLength: 2 }),
    target: fc.array(fc.nat(9), { minLength: 1, maxLength: 2 }),
    anchorDistanceBefore: fc.integer({ min: 0, max: bits }),
    anchorDistanceAfter: fc.integer({ min: 0, max: bits }),
    ap: fc.option(fc.double({ min: 0, max: 1, noNaN: true })),
    tap: fc.option(fc.double({ min: 0, max: 1, noNaN: true })),
    perceptibility: fc.option(fc.double({ min: 0, max: 1, noNaN: true })),
    iterations: fc.nat(10),
    seconds: fc.double({ min: 0, max: 10, noNaN: true }),
    precision: fc.array(fc.option(fc.double({ min: 0, max: 1, noNaN: true })), {
      minLength: bits + 1,
      maxLength: bits + 1,
    }),
    recall: fc.array(fc.option(fc.double({ min: 0, max: 1, noNaN: true })), {
      minLength: bits + 1,
      maxLength: bits + 1,
    }),
    precisionAtN: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), {
      minLength: ns.length,
      maxLength: ns.length,
    }),
  }) as fc.Arbitrary<QueryResult>;

const text = (h: RunHeader, rows: QueryResult[]) =>
  `${[JSON.stringify({ header: h }), ...rows.map((r) => JSON.stringify(r))].join('\n')}\n`;

/** Runs f; passes when it returns or throws a CliError with a one-line message naming the file. */
function cleanly(f: () => unknown): 'ok' | 'refused' {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    expect(e.message).toMatch(/results\.jsonl|merge needs|incomplete|another run|shards of/);
    expect(e.message.includes('\n')).toBe(false);
    return 'refused';
  }
}

const counts: Record<string, number> = {};
const count = (name: string) => {
  counts[name] = (counts[name] ?? 0) + 1;
};

describe('results.jsonl and merge under fuzzing (fast-check, seeded)', () => {
  it('reads valid files back exactly, each (method, position) once, the first line written for it', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 6 })
          .chain((q) =>
            fc.tuple(fc.constant(q), fc.array(rowArb(q, ['original', 'dhta']), { maxLength: 20 })),
          ),
        ([q, rows]) => {
          count('valid files');
          const dir = fresh(text(header(q, ['original', 'dhta']), rows));
          const read = readAllResults(join(dir, 'results.jsonl'));
          const firsts = new Map<string, QueryResult>();
          for (const r of rows)
            if (!firsts.has(`${r.method}/${r.position}`)) firsts.set(`${r.method}/${r.position}`, r);
          expect(read.lines).toEqual([...firsts.values()]);
          expect(read.repeats).toBe(rows.length - firsts.size);
          summarizeRun(read.lines, read.header);
        },
      ),
      { seed: 14, numRuns: 200 },
    );
  });

  it('merges complete shards into what the whole run holds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 7 }), fc.integer({ min: 1, max: 3 }), (q, shards) => {
        count('merge of valid shards');
        const methods: Method[] = ['noise', 'dhta'];
        const sample = fc.sample(rowArb(q, methods), { seed: q * 10 + shards, numRuns: 1 })[0];
        const rows: QueryResult[] = [];
        for (const method of methods)
          for (let p = 0; p < q; p++) rows.push({ ...sample, method, position: p, tap: p / q });
        const dirs = Array.from({ length: shards }, (_, i) => {
          const lo = Math.floor((i * q) / shards);
          const hi = Math.floor(((i + 1) * q) / shards);
          return fresh(
            text(
              header(q, methods, { index: i, count: shards }),
              rows.filter((r) => r.position >= lo && r.position < hi),
            ),
          );
        });
        const merged = mergeResults(dirs);
        const whole = fresh(text(header(q, methods), rows));
        const out = join(whole, 'merged.jsonl');
        writeResultsFile(out, merged.header, merged.lines);
        expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(whole, 'results.jsonl'), 'utf8'));
        expect(summarizeRun(merged.lines, merged.header).metrics).toEqual(
          summarizeRun(rows, header(q, methods)).metrics,
        );
      }),
      { seed: 15, numRuns: 60 },
    );
  });

  it('damaged files (bit flips, cuts, spliced bytes, replaced fields): a CliError naming the file, or a correct read', () => {
    const methods: Method[] = ['original', 'p2p', 'dhta'];
    const base = fc.sample(fc.array(rowArb(4, methods), { minLength: 3, maxLength: 8 }), {
      seed: 16,
      numRuns: 1,
    })[0];
    const valid = Buffer.from(text(header(4, methods), base));
    const mutation = fc.oneof(
      // flip bits
      fc
        .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 7 })), {
          minLength: 1,
          maxLength: 8,
        })
        .map((flips) => {
          const b = Buffer.from(valid);
          for (const [i, bit] of flips) b[i] ^= 1 << bit;
          return b;
        }),
      // cut anywhere
      fc.nat(valid.length).map((n) => valid.subarray(0, n)),
      // splice random bytes in
      fc
        .tuple(fc.nat(valid.length), fc.uint8Array({ maxLength: 40 }))
        .map(([at, bytes]) => Buffer.concat([valid.subarray(0, at), bytes, valid.subarray(at)])),
      // replace one field of one line (the header included) with any JSON value
      fc
        .tuple(fc.nat(base.length), fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }))
        .map(([line, key, value]) => {
          const lines = valid.toString('utf8').trimEnd().split('\n');
          const i = line % lines.length;
          const obj = JSON.parse(lines[i]);
          const target = i === 0 ? obj.header : obj;
          const keys = Object.keys(target);
          target[keys.length && key.length % 2 ? keys[key.length % keys.length] : key] = value;
          lines[i] = JSON.stringify(obj);
          return Buffer.from(`${lines.join('\n')}\n`);
        }),
      // random bytes
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(mutation, (bytes) => {
        count('damaged files (read and merge)');
        const dir = fresh(bytes);
        const outcome = cleanly(() => {
          const r = readAllResults(join(dir, 'results.jsonl'));
          summarizeRun(r.lines, r.header);
        });
        const merged = cleanly(() => mergeResults([dir]));
        if (outcome === 'refused') expect(merged).toBe('refused');
      }),
      { seed: 17, numRuns: 600 },
    );
    // Reading never writes: no temporary or partial files appeared.
    for (const d of readdirSync(root))
      expect(readdirSync(join(root, d)).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('reports the case counts', () => {
    // The counts go to the closing note; each parser ran at least its numRuns.
    console.log(`fuzz-results cases: ${JSON.stringify(counts)}`);
    expect(counts['damaged files (read and merge)']).toBeGreaterThanOrEqual(600);
  });
});
