// The authors' list files (`path l_0 ... l_{C-1}`): labels are exactly 0 or 1, the text is UTF-8, paths hold
// no NUL; and property tests (fast-check, seeded): round trips, and mutated or random files give the lists or
// a DataError (BAD_LIST) naming the file and line, never another error.
import { writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataError, parseListFile } from '../src/index.js';
import { dataError, tempDir } from './helpers.js';

const SEED = 15;
const RUNS = 300;
const MAX_MS_PER_CASE = 2000;

const dir = tempDir('list-fuzz');
const root = join(dir, 'root');
let fileNo = 0;

function write(content: string | Uint8Array): string {
  const file = join(dir, `list${fileNo++}.txt`);
  writeFileSync(file, content);
  return file;
}

describe('list files: strict labels and text', () => {
  it.each(['0x1', '1.0', '1e0', '+1', '-0', '01', '1_0', '.0', '0b1'])(
    'refuses the label "%s" (only 0 and 1 are labels)',
    async (label) => {
      const file = write(`a.png 0 1\nb.png 1 ${label}\n`);
      const e = await dataError(() => parseListFile(file, root));
      expect(e.code).toBe('BAD_LIST');
      expect(e.message).toContain(`${file}:2: `);
      expect(e.message).toMatch(/label 1 is .*expected 0 or 1/);
    },
  );

  it('refuses text that is not UTF-8, naming the line', async () => {
    const file = write(
      Buffer.concat([
        Buffer.from('a.png 0 1\nb.png 1 0\ncaf'),
        Buffer.from([0xe9]),
        Buffer.from('.png 1 1\n'),
      ]),
    );
    const e = await dataError(() => parseListFile(file, root));
    expect(e.code).toBe('BAD_LIST');
    expect(e.message).toContain(`${file}:3: expected UTF-8 text`);
  });

  it('refuses a path with a NUL character', async () => {
    const file = write('a.png 0 1\nb\0.png 1 0\n');
    const e = await dataError(() => parseListFile(file, root));
    expect(e.code).toBe('BAD_LIST');
    expect(e.message).toContain(`${file}:2: expected a path, found one with a NUL`);
  });
});

/** parseListFile on a fresh file: the lists, or the DataError (anything else fails the test). */
function attempt(content: string | Uint8Array, classes?: number) {
  const file = write(content);
  const t0 = performance.now();
  try {
    return parseListFile(file, root, classes);
  } catch (e) {
    if (!(e instanceof DataError)) throw new Error(`not a DataError: ${(e as Error)?.stack ?? e}`);
    expect(e.code).toBe('BAD_LIST');
    expect(e.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(:\\d+)?: `));
    return e;
  } finally {
    expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
  }
}

/** What a successful parse must be: whole rows of 0/1 labels, absolute paths without whitespace or NUL. */
function checkConsistent(r: ReturnType<typeof parseListFile>) {
  expect(r.paths.length).toBeGreaterThan(0);
  expect(r.labels.length).toBe(r.paths.length * r.classes);
  for (const v of r.labels) expect(v === 0 || v === 1).toBe(true);
  for (const p of r.paths) {
    expect(isAbsolute(p)).toBe(true);
    expect(p).not.toMatch(/[\s\0]/);
  }
}

// Path characters: ASCII, accents, CJK, an emoji; no whitespace.
const pathArb = fc
  .array(fc.constantFrom('a', 'B', '0', '_', '-', '.', '/', 'é', '漢', '😀', '#', "'"), {
    minLength: 1,
    maxLength: 12,
  })
  .map((cs) => cs.join(''))
  .filter((p) => p !== '/' && !/^\/+$/.test(p));

const listArb = fc.integer({ min: 1, max: 5 }).chain((classes) =>
  fc.record({
    classes: fc.constant(classes),
    rows: fc.array(
      fc.record({
        path: pathArb,
        labels: fc.array(fc.constantFrom(0, 1), { minLength: classes, maxLength: classes }),
        sep: fc.array(fc.constantFrom(' ', '  ', '\t', ' \t'), { minLength: classes, maxLength: classes }),
        lead: fc.constantFrom('', '', ' ', '\t'),
        trail: fc.constantFrom('', '', ' ', '\t '),
        blank: fc.constantFrom('', '', '', '\n', ' \n'),
      }),
      { minLength: 1, maxLength: 10 },
    ),
    eol: fc.constantFrom('\n', '\r\n'),
    finalEol: fc.boolean(),
  }),
);

type ListCase = typeof listArb extends fc.Arbitrary<infer T> ? T : never;

function format(l: ListCase): string {
  const lines = l.rows.map(
    (r) => `${r.blank}${r.lead}${r.path}${r.labels.map((v, j) => `${r.sep[j]}${v}`).join('')}${r.trail}`,
  );
  return lines.join(l.eol) + (l.finalEol ? l.eol : '');
}

describe('list files: property tests', () => {
  it(`round trips (${RUNS} lists)`, () => {
    fc.assert(
      fc.property(listArb, (l) => {
        const r = attempt(format(l));
        if (r instanceof DataError) throw r;
        expect(r.classes).toBe(l.classes);
        expect(r.paths).toEqual(l.rows.map((x) => (isAbsolute(x.path) ? x.path : resolve(root, x.path))));
        expect(Array.from(r.labels)).toEqual(l.rows.flatMap((x) => x.labels));
        // The same file read with a given class count: the same lists, or BAD_LIST when the count differs.
        const again = attempt(format(l), l.classes);
        expect(again).toEqual(r);
        const other = attempt(format(l), l.classes + 1);
        expect(other).toBeInstanceOf(DataError);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 4 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      text: fc.constantFrom(
        '0',
        '1',
        '2',
        ' ',
        '\t',
        '\n',
        '\r',
        '\r\n',
        'x',
        '0x1',
        '1.0',
        '-0',
        '\0',
        '\u00a0',
        '\ufeff',
      ),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(text: string, ms: Mutation[]): Buffer {
    let b = Buffer.from(text);
    for (const m of ms) {
      const at = m.at % (b.length + 1);
      if (m.kind === 'flip' && at < b.length) b[at] ^= 1 << m.bit;
      else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
      else if (m.kind === 'insert')
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.text), b.subarray(at)]);
      else if (m.kind === 'truncate') b = b.subarray(0, at);
    }
    return b;
  }

  it(`mutated lists give whole, 0/1 rows or BAD_LIST (${RUNS} files)`, () => {
    fc.assert(
      fc.property(listArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (l, ms) => {
        const r = attempt(mutate(format(l), ms));
        if (!(r instanceof DataError)) checkConsistent(r);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`random text and bytes give whole, 0/1 rows or BAD_LIST (${RUNS} files)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .array(
              fc.constantFrom(
                'a.png',
                '/x/y.jpg',
                '0',
                '1',
                '2',
                ' ',
                '\t',
                '\n',
                '\r\n',
                '\r',
                '0x1',
                '\0',
                '漢',
              ),
              {
                maxLength: 40,
              },
            )
            .map((t) => Buffer.from(t.join(''))),
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        ),
        (bytes) => {
          const r = attempt(bytes);
          if (!(r instanceof DataError)) checkConsistent(r);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
