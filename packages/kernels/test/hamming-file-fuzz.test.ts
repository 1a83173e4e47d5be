// Property tests (fast-check, seeded) of the Hamming index file: round trips, and mutated or random bytes
// give the codes or a HammingError, quickly, never another error and never a partial file.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Codes,
  decodeIndexFile,
  encodeIndexFile,
  fromWords,
  HammingError,
  HammingIndex,
  INDEX_MAGIC,
  readIndexFile,
  wordsPerCode,
} from '../src/hamming/index.ts';

const SEED = 15;
const RUNS = 300;
const MAX_MS_PER_CASE = 2000;
const FILE_CODES = ['BAD_FILE', 'TRUNCATED', 'CHECKSUM', 'UNSUPPORTED_VERSION', 'BITS_MISMATCH'];

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hamming-file-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const codesArb: fc.Arbitrary<Codes> = fc
  .record({
    bits: fc.oneof(fc.integer({ min: 8, max: 300 }), fc.constantFrom(8, 32, 64, 100, 4096)),
    count: fc.integer({ min: 0, max: 12 }),
  })
  .chain(({ bits, count }) => {
    const n = count * wordsPerCode(bits);
    return fc.uint32Array({ minLength: n, maxLength: n }).map((words) => fromWords(bits, words));
  });

function attempt(bytes: Uint8Array, expectedBits?: number): Codes | HammingError {
  const t0 = performance.now();
  try {
    return decodeIndexFile(bytes, { name: 'fuzz.dhi', expectedBits });
  } catch (e) {
    if (!(e instanceof HammingError)) throw new Error(`not a HammingError: ${(e as Error)?.stack ?? e}`);
    expect(FILE_CODES).toContain(e.code);
    expect(e.message).toMatch(/^fuzz\.dhi: expected .*found/);
    return e;
  } finally {
    expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
  }
}

describe('Hamming index file: property tests', () => {
  it(`round trips encodeIndexFile -> decodeIndexFile (${RUNS} code sets)`, () => {
    fc.assert(
      fc.property(codesArb, (codes) => {
        const file = encodeIndexFile(codes);
        const back = attempt(file, codes.bits);
        expect(back).not.toBeInstanceOf(HammingError);
        expect((back as Codes).bits).toBe(codes.bits);
        expect((back as Codes).count).toBe(codes.count);
        expect((back as Codes).words).toEqual(codes.words);
        expect(encodeIndexFile(back as Codes)).toEqual(file);
        const other = attempt(file, codes.bits === 8 ? 16 : 8);
        expect((other as HammingError).code).toBe('BITS_MISMATCH');
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

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
    // Header fields: version, bits, count (low and high words).
    fc.record({
      kind: fc.constant('field' as const),
      offset: fc.constantFrom(8, 12, 16, 20),
      value: fc.oneof(fc.nat({ max: 5000 }), fc.constant(0xffffffff), fc.nat()),
    }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(file: Uint8Array, ms: Mutation[]): Uint8Array {
    let b = Array.from(file);
    for (const m of ms) {
      if (m.kind === 'field') {
        if (b.length >= m.offset + 4)
          for (let i = 0; i < 4; i++) b[m.offset + i] = (m.value >>> (8 * i)) & 0xff;
        continue;
      }
      const at = m.at % (b.length + 1);
      if (m.kind === 'flip' && at < b.length) b[at] ^= 1 << m.bit;
      else if (m.kind === 'set' && at < b.length) b[at] = m.value;
      else if (m.kind === 'delete') b.splice(at, m.length);
      else if (m.kind === 'insert') b.splice(at, 0, ...m.bytes);
      else if (m.kind === 'truncate') b = b.slice(0, at);
    }
    return Uint8Array.from(b);
  }

  it(`mutated files give a HammingError, or the very codes when the bytes did not change (${2 * RUNS} files)`, () => {
    fc.assert(
      fc.property(codesArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (codes, ms) => {
        const file = encodeIndexFile(codes);
        const bad = mutate(file, ms);
        const r = attempt(bad);
        if (!(r instanceof HammingError)) {
          // CRC-32 catches every change these mutations make; a successful read is an unchanged file (or one
          // whose only change is in padding bits past the code length, which are ignored).
          expect(encodeIndexFile(r)).toEqual(encodeIndexFile(fromWords(r.bits, r.words)));
          expect(r.bits).toBe(codes.bits);
          expect(r.words).toEqual(codes.words);
        }
      }),
      { seed: SEED, numRuns: 2 * RUNS },
    );
  });

  it(`random bytes give a HammingError (${RUNS} files)`, () => {
    const magic = Array.from(INDEX_MAGIC, (c) => c.charCodeAt(0));
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 200 }), (withMagic, rest) => {
        const bytes = Uint8Array.from([...(withMagic ? magic : []), ...rest]);
        const r = attempt(bytes);
        if (!(r instanceof HammingError)) expect(r.words.length).toBe(r.count * wordsPerCode(r.bits));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('files: readIndexFile and HammingIndex.load name the file; save never leaves a partial file (40 files)', async () => {
    await fc.assert(
      fc.asyncProperty(codesArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (codes, ms) => {
        const path = join(dir, 'a.dhi');
        const index = HammingIndex.fromCodes(codes, { threads: 1 });
        await index.save(path);
        expect((await readIndexFile(path)).words).toEqual(codes.words);
        const bad = mutate(encodeIndexFile(codes), ms);
        await writeFile(path, bad);
        const r = await HammingIndex.load(path, { threads: 1 }).catch((e: unknown) => e);
        if (r instanceof HammingIndex) expect(r.codes.words).toEqual(codes.words);
        else {
          expect(r).toBeInstanceOf(HammingError);
          expect((r as Error).message).toContain(path);
        }
        // Saving into a folder that does not exist: an error, and nothing left behind.
        await expect(index.save(join(dir, 'missing', 'b.dhi'))).rejects.toBeInstanceOf(HammingError);
        expect(await readdir(dir)).toEqual(['a.dhi']);
      }),
      { seed: SEED, numRuns: 40 },
    );
  });
});
