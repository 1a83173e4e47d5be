// Property tests (fast-check, seeded) of the IDX reader, plain and gzipped: round trips, and mutated or random
// files give the array or a DataError (BAD_IDX, TRUNCATED, TOO_LARGE), quickly, never another error, and never
// leave a partial file in the cache.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataError, IdxFile } from '../src/index.js';
import { tempDir } from './helpers.js';

const SEED = 15;
const RUNS = 200;
const MAX_MS_PER_CASE = 2000;
const IDX_CODES = ['BAD_IDX', 'TRUNCATED', 'TOO_LARGE'];
const MAX_BYTES = 1 << 20;

/** IDX type byte -> element size. */
const TYPES: [number, number][] = [
  [0x08, 1],
  [0x09, 1],
  [0x0b, 2],
  [0x0c, 4],
  [0x0d, 4],
  [0x0e, 8],
];

const idxArb = fc
  .record({
    type: fc.constantFrom(...TYPES),
    dims: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }),
  })
  .chain(({ type, dims }) => {
    const n = dims.reduce((a, b) => a * b, 1) * type[1];
    return fc.uint8Array({ minLength: n, maxLength: n }).map((data) => {
      const head = Buffer.alloc(4 + 4 * dims.length);
      head[2] = type[0];
      head[3] = dims.length;
      for (const [i, d] of dims.entries()) head.writeUInt32BE(d, 4 + 4 * i);
      return { type: type[0], elementBytes: type[1], dims, data, file: Buffer.concat([head, data]) };
    });
  });

const dir = tempDir('idx-fuzz');
const cache = tempDir('idx-fuzz-cache');
let fileNo = 0;

/**
 * Writes bytes to a fresh file and opens it: a DataError (anything else fails the test), or an IdxFile that
 * `check` is given (before the file is removed: plain files are read lazily).
 */
async function attempt(
  bytes: Uint8Array,
  gz: boolean,
  check: (f: IdxFile) => void,
): Promise<DataError | undefined> {
  const path = join(dir, `f${fileNo++}${gz ? '.gz' : ''}`);
  writeFileSync(path, bytes);
  const t0 = performance.now();
  let f: IdxFile;
  try {
    f = await IdxFile.open(path, { cacheDir: cache, maxBytes: MAX_BYTES });
  } catch (e) {
    if (!(e instanceof DataError)) throw new Error(`not a DataError: ${(e as Error)?.stack ?? e}`);
    expect(IDX_CODES).toContain(e.code);
    expect(e.message).toContain(path);
    expect(readdirSync(cache)).toEqual([]); // a refused file leaves nothing in the cache
    rmSync(path, { force: true });
    return e;
  } finally {
    expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
  }
  try {
    check(f);
  } finally {
    rmSync(path, { force: true });
    // Only complete, checked copies are ever in the cache (removed here: each case starts from none).
    for (const c of readdirSync(cache)) {
      expect(c).toMatch(/^idx-[0-9a-f]{20}\.idx$/);
      await IdxFile.open(join(cache, c));
      rmSync(join(cache, c));
    }
  }
  return undefined;
}

/** An opened file is consistent with the bytes it was read from (inflated when gzipped). */
function checkConsistent(f: IdxFile, raw: Uint8Array) {
  const h = f.header;
  expect(h.dataOffset).toBe(4 + 4 * h.dims.length);
  expect(f.count).toBe(h.dims[0]);
  expect(h.dataOffset + f.count * f.recordBytes).toBe(raw.length);
  expect(Buffer.from(f.readRecords(0, f.count)).equals(Buffer.from(raw.subarray(h.dataOffset)))).toBe(true);
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('dim' as const),
    index: fc.integer({ min: 0, max: 3 }),
    value: fc.oneof(fc.nat({ max: 10 }), fc.constant(0xffffffff), fc.nat({ max: 0xffffffff })),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(file: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Buffer.from(file);
  for (const m of ms) {
    if (m.kind === 'dim') {
      const at = 4 + 4 * m.index;
      if (b.length >= at + 4) b.writeUInt32BE(m.value, at);
      continue;
    }
    const at = m.at % (b.length + 1);
    if (m.kind === 'flip' && at < b.length) b[at] ^= 1 << m.bit;
    else if (m.kind === 'set' && at < b.length) b[at] = m.value;
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else if (m.kind === 'truncate') b = b.subarray(0, at);
  }
  return b;
}

/** The size (header included) a well-formed IDX header at the start of `raw` declares, else null. */
function declaredSize(raw: Uint8Array | null): number | null {
  if (!raw || raw.length < 4 || raw[0] !== 0 || raw[1] !== 0 || raw[3] < 1 || raw[3] > 4) return null;
  const size = TYPES.find(([t]) => t === raw[2])?.[1];
  const offset = 4 + 4 * raw[3];
  if (size === undefined || raw.length < offset) return null;
  const b = Buffer.from(raw);
  let n = size;
  for (let i = 0; i < raw[3]; i++) n *= b.readUInt32BE(4 + 4 * i);
  return offset + n;
}

/** A header that declares more than the limit is TOO_LARGE, whatever else is wrong with the file. */
function checkLimit(e: DataError | undefined, raw: Uint8Array | null) {
  const declared = declaredSize(raw);
  if (declared !== null && declared > MAX_BYTES) expect(e?.code).toBe('TOO_LARGE');
}

function gunzipOrNull(bytes: Uint8Array): Uint8Array | null {
  try {
    return gunzipSync(bytes);
  } catch {
    return null;
  }
}

describe('IDX: property tests', () => {
  it(`round trips, plain and gzipped (${RUNS} arrays)`, async () => {
    await fc.assert(
      fc.asyncProperty(idxArb, fc.boolean(), async (a, gz) => {
        const e = await attempt(gz ? gzipSync(a.file) : a.file, gz, (f) => {
          expect(f.header.dims).toEqual(a.dims);
          expect(f.header.elementBytes).toBe(a.elementBytes);
          checkConsistent(f, a.file);
        });
        expect(e).toBeUndefined();
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`mutated plain files give the array they hold or a DataError (${RUNS} files)`, async () => {
    await fc.assert(
      fc.asyncProperty(idxArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), async (a, ms) => {
        const bad = mutate(a.file, ms);
        checkLimit(await attempt(bad, false, (f) => checkConsistent(f, bad)), bad);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`mutated gzip files (the IDX inside, or the gzip stream) give the array or a DataError (${2 * RUNS} files)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        idxArb,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (a, ms, inside) => {
          const bad = inside ? gzipSync(mutate(a.file, ms)) : mutate(gzipSync(a.file), ms);
          if (bad[0] !== 0x1f || bad[1] !== 0x8b) return; // no longer gzip: the plain test's business
          const raw = gunzipOrNull(bad);
          const e = await attempt(bad, true, (f) => {
            expect(raw).not.toBeNull();
            checkConsistent(f, raw as Uint8Array);
          });
          checkLimit(e, raw);
        },
      ),
      { seed: SEED, numRuns: 2 * RUNS },
    );
  });

  it(`random bytes, plain and after a gzip magic, give a DataError (${RUNS} files)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom([], [0, 0], [0, 0, 8], [0, 0, 8, 1], [0x1f, 0x8b], [0x1f, 0x8b, 8, 0]),
        fc.uint8Array({ maxLength: 100 }),
        async (prefix, rest) => {
          const bytes = Uint8Array.from([...prefix, ...rest]);
          const gz = bytes[0] === 0x1f && bytes[1] === 0x8b;
          await attempt(bytes, gz, (f) => checkConsistent(f, gz ? gunzipSync(bytes) : bytes));
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
