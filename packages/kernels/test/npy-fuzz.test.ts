// Property tests (fast-check, seeded) of the .npy reader and writer: round trips, every Python spelling of
// a valid header numpy reads, edits numpy refuses, and mutated or random bytes: each gives the right array
// or a HammingError (BAD_NPY or TRUNCATED), quickly, never another error and never a partial file.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  firstNonFinite,
  HammingError,
  type NpyArray,
  type NpyData,
  type NpyDtype,
  readNpy,
  readNpyFile,
  writeNpy,
  writeNpyFile,
} from '../src/hamming/index.ts';

const SEED = 15;
const RUNS = 300;
const MAX_MS_PER_CASE = 2000;

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'npy-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DTYPES: NpyDtype[] = ['uint8', 'int8', 'int32', 'uint32', 'int64', 'float32', 'float64'];
const ITEM: Record<NpyDtype, number> = {
  uint8: 1,
  int8: 1,
  int32: 4,
  uint32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
};
const DESCR: Record<NpyDtype, string> = {
  uint8: '|u1',
  int8: '|i1',
  int32: '<i4',
  uint32: '<u4',
  int64: '<i8',
  float32: '<f4',
  float64: '<f8',
};

function typed(dtype: NpyDtype, bytes: Uint8Array): NpyData {
  const b = bytes.slice().buffer;
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(b);
    case 'int8':
      return new Int8Array(b);
    case 'int32':
      return new Int32Array(b);
    case 'uint32':
      return new Uint32Array(b);
    case 'int64':
      return new BigInt64Array(b);
    case 'float32':
      return new Float32Array(b);
    case 'float64':
      return new Float64Array(b);
  }
}

/** A dtype, a small shape (0 to 4 dimensions of 0..5) and random bytes for it. */
const arrayArb = fc
  .record({
    dtype: fc.constantFrom(...DTYPES),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
  })
  .chain(({ dtype, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1) * ITEM[dtype];
    return fc.uint8Array({ minLength: n, maxLength: n }).map((bytes) => ({ dtype, shape, bytes }));
  });

const bytesOf = (d: NpyData) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** Runs readNpy; returns the array or the HammingError (anything else fails the test). Times each call. */
function attempt(bytes: Uint8Array): NpyArray | HammingError {
  const t0 = performance.now();
  try {
    return readNpy(bytes, 'fuzz.npy');
  } catch (e) {
    if (!(e instanceof HammingError)) throw new Error(`not a HammingError: ${(e as Error)?.stack ?? e}`);
    expect(['BAD_NPY', 'TRUNCATED']).toContain(e.code);
    expect(e.message).toMatch(/^fuzz\.npy: /);
    return e;
  } finally {
    expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
  }
}

/** A header dict for an array, spelled in one of the many ways Python (and so numpy) reads the same. */
function spelledHeader(
  dtype: NpyDtype,
  shape: number[],
  major: number,
): fc.Arbitrary<{ text: string; decoys: boolean }> {
  const space = fc.constantFrom('', '', ' ', '  ', '\t', '\n', '\r\n', '\r', ' # note\n', '\\\n', '\f');
  const quote = (s: string) =>
    fc.constantFrom(
      `'${s}'`,
      `"${s}"`,
      `'''${s}'''`,
      `"""${s}"""`,
      `u'${s}'`,
      `R'${s}'`,
      `'${s.slice(0, 2)}' '${s.slice(2)}'`,
      `'${s.slice(0, 1)}'\n'${s.slice(1)}'`,
      `'\\x${s.charCodeAt(0).toString(16)}${s.slice(1)}'`,
      `'\\${s.charCodeAt(0).toString(8)}${s.slice(1)}'`,
    );
  const int = (v: number) => {
    const forms = [
      `${v}`,
      `0x${v.toString(16)}`,
      `0O${v.toString(8)}`,
      `0b${v.toString(2)}`,
      `+${v}`,
      `(${v})`,
    ];
    if (v >= 10) forms.push(`${String(v)[0]}_${String(v).slice(1)}`);
    if (v === 0) forms.push('00', '0_0', '-0', '-(0)');
    if (major <= 2) forms.push(`${v}L`, `${v} L`, `0x${v.toString(16)}L`);
    return fc.constantFrom(...forms);
  };
  const descrs = [DESCR[dtype], `=${DESCR[dtype].slice(1)}`, DESCR[dtype].slice(1)];
  if (ITEM[dtype] === 1) descrs.push(`<${DESCR[dtype].slice(1)}`, `>${DESCR[dtype].slice(1)}`);
  else descrs.push(`|${DESCR[dtype].slice(1)}`);
  const shapeText = fc
    .tuple(
      fc.tuple(...shape.map(int)),
      fc.array(space, { minLength: shape.length + 1, maxLength: shape.length + 1 }),
      fc.boolean(),
    )
    .map(([dims, ws, trailing]) => {
      if (dims.length === 0) return `(${ws[0]})`;
      const body = dims.map((d, i) => `${ws[i]}${d}`).join(',');
      return `(${body}${dims.length === 1 || trailing ? ',' : ''}${ws[dims.length]})`;
    });
  const entry = (key: string, value: fc.Arbitrary<string>) =>
    fc.tuple(quote(key), space, space, value).map(([k, a, b, v]) => `${k}${a}:${b}${v}`);
  return fc
    .record({
      entries: fc.tuple(
        entry(
          'descr',
          fc.constantFrom(...descrs).chain((d) => quote(d)),
        ),
        entry('fortran_order', fc.constantFrom('False', '(False)')),
        entry('shape', shapeText),
      ),
      order: fc.constantFrom([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]),
      // Earlier entries for the same keys, which the real ones (later) replace.
      decoys: fc.subarray(["'shape': (7, 7)", "'descr': '<f8'", "'fortran_order': True", "'shape': 3"]),
      seps: fc.array(space, { minLength: 8, maxLength: 8 }),
      trailingComma: fc.boolean(),
      parens: fc.boolean(),
      before: fc.constantFrom('', ' ', '\t', '\n', '\r\n', '# c\n', '\\\n', '\f'),
      after: fc.constantFrom('', '\n', ' \n', '  # end\n', '\n\n', ' \\\n \n', '\f'),
    })
    .map(({ entries, order, decoys, seps, trailingComma, parens, before, after }) => {
      const items = [...decoys, ...order.map((i) => entries[i])];
      const body = items.map((e, i) => `${seps[i % 8]}${e}`).join(',');
      const dict = `{${body}${trailingComma ? ',' : ''}${seps[7]}}`;
      return { text: `${before}${parens ? `(${dict})` : dict}${after}`, decoys: decoys.length > 0 };
    });
}

/** A .npy file with the given header text, version and data, padded (or not) as numpy pads. */
function npyFile(header: string, major: number, data: Uint8Array, pad: boolean): Uint8Array {
  let text = header;
  const prefix = major === 1 ? 10 : 12;
  let headerBytes =
    major === 3 ? new TextEncoder().encode(text) : Uint8Array.from(text, (c) => c.charCodeAt(0));
  if (pad) {
    const total = Math.ceil((prefix + headerBytes.length + 1) / 64) * 64;
    text = `${text}${' '.repeat(total - prefix - headerBytes.length - 1)}\n`;
    headerBytes =
      major === 3 ? new TextEncoder().encode(text) : Uint8Array.from(text, (c) => c.charCodeAt(0));
  }
  const out = new Uint8Array(prefix + headerBytes.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerBytes.length, true);
  else view.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, prefix);
  out.set(data, prefix + headerBytes.length);
  return out;
}

const spelledFileArb = fc
  .tuple(arrayArb, fc.constantFrom(1, 1, 2, 3), fc.boolean())
  .chain(([a, major, pad]) =>
    spelledHeader(a.dtype, a.shape, major).map((h) => ({ ...a, major, pad, header: h.text })),
  );

describe('.npy: property tests', () => {
  it(`round trips writeNpy -> readNpy (${RUNS} arrays)`, () => {
    fc.assert(
      fc.property(arrayArb, ({ dtype, shape, bytes }) => {
        const file = writeNpy(typed(dtype, bytes), shape);
        const back = attempt(file);
        expect(back).not.toBeInstanceOf(HammingError);
        const a = back as NpyArray;
        expect(a.dtype).toBe(dtype);
        expect(a.shape).toEqual(shape);
        expect(bytesOf(a.data)).toEqual(bytes);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`reads every Python spelling of a header as numpy does (${RUNS} headers)`, () => {
    fc.assert(
      fc.property(spelledFileArb, ({ dtype, shape, bytes, major, pad, header }) => {
        const back = attempt(npyFile(header, major, bytes, pad));
        if (back instanceof HammingError) throw new Error(`${JSON.stringify(header)}: ${back.message}`);
        expect(back.dtype).toBe(dtype);
        expect(back.shape).toEqual(shape);
        expect(bytesOf(back.data)).toEqual(bytes);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  // Edits after which numpy.load refuses the file (each kind checked against numpy in numpy-verdicts.json).
  const refusedEdits: [
    string,
    (h: string, major: number) => { header: string; major?: number; minor?: number },
  ][] = [
    ['an extra key', (h) => ({ header: h.replace('{', "{'extra': 1, ") })],
    ['a missing key', (h) => ({ header: h.replace(/'fortran_order': False, /, '') })],
    ['fortran_order 0', (h) => ({ header: h.replace('False', '0') })],
    ["fortran_order 'False'", (h) => ({ header: h.replace('False', "'False'") })],
    ['fortran_order Falsey', (h) => ({ header: h.replace('False', 'Falsey') })],
    ['a negative dimension', (h) => ({ header: h.replace("'shape': (", "'shape': (-1, ") })],
    ['a float dimension', (h) => ({ header: h.replace("'shape': (", "'shape': (1.0, ") })],
    ['a bool dimension', (h) => ({ header: h.replace("'shape': (", "'shape': (True, ") })],
    ['a str dimension', (h) => ({ header: h.replace("'shape': (", "'shape': ('1', ") })],
    ['a list shape', (h) => ({ header: h.replace(/'shape': \(([^)]*)\)/, "'shape': [$1]") })],
    ['no closing brace', (h) => ({ header: h.replace('}', '') })],
    ['text before the dict', (h) => ({ header: `x${h}` })],
    ['text after the dict', (h) => ({ header: h.replace('}', '} 0') })],
    ['an indented first line', (h) => ({ header: `\n  ${h}` })],
    ['a NUL', (h) => ({ header: h.replace(',', ',\0') })],
    ['a long suffix in format 3.0', (h) => ({ header: h.replace("'shape': (", "'shape': (1L, "), major: 3 })],
    ['a lower-case long suffix', (h) => ({ header: h.replace("'shape': (", "'shape': (1l, ") })],
    ['a leading zero', (h) => ({ header: h.replace("'shape': (", "'shape': (01, ") })],
    ['a bytes key', (h) => ({ header: h.replace("'descr'", "b'descr'") })],
    ['an f-string', (h) => ({ header: h.replace("'descr'", "f'descr'") })],
    ['a name', (h) => ({ header: h.replace('False', 'false') })],
    ['a call', (h) => ({ header: h.replace('False', 'bool(0)') })],
    ['a format minor version', (h) => ({ header: h, minor: 1 })],
    ['format 4.0', (h) => ({ header: h, major: 4 })],
    ['65 dimensions', (h) => ({ header: h.replace("'shape': (", `'shape': (${'1, '.repeat(65)}`) })],
    ['a header over 10000 characters', (h) => ({ header: h + ' '.repeat(10_001) })],
  ];

  it(`refuses every edit numpy refuses (${RUNS} files)`, () => {
    fc.assert(
      fc.property(
        arrayArb,
        fc.constantFrom(1, 2, 3),
        fc.constantFrom(...refusedEdits),
        ({ dtype, shape, bytes }, major, [what, edit]) => {
          const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
          const header = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
          const e = edit(header, major);
          const file = npyFile(e.header, e.major ?? major, bytes, true);
          if (e.minor !== undefined) file[7] = e.minor;
          const r = attempt(file);
          if (!(r instanceof HammingError)) throw new Error(`${what}: read ${JSON.stringify(e.header)}`);
          expect(r.code).toBe('BAD_NPY');
        },
      ),
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
    fc.record({ kind: fc.constant('headerLength' as const), value: fc.nat({ max: 0xffff }) }),
    fc.record({
      kind: fc.constant('headerText' as const),
      at: fc.nat(),
      text: fc.constantFrom(
        "'",
        '"',
        '(',
        ')',
        '{',
        '}',
        ',',
        ':',
        '-',
        'L',
        '#',
        '\\',
        '\n',
        '0',
        '9',
        ' ',
        'True',
        "'x': 1, ",
      ),
    }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

  function mutate(file: Uint8Array, ms: Mutation[]): Uint8Array {
    let b = Array.from(file);
    for (const m of ms) {
      const at = b.length === 0 ? 0 : ('at' in m ? m.at : 0) % (b.length + 1);
      if (m.kind === 'flip' && at < b.length) b[at] ^= 1 << m.bit;
      else if (m.kind === 'set' && at < b.length) b[at] = m.value;
      else if (m.kind === 'delete') b.splice(at, m.length);
      else if (m.kind === 'insert') b.splice(at, 0, ...m.bytes);
      else if (m.kind === 'truncate') b = b.slice(0, at);
      else if (m.kind === 'headerLength' && b.length >= 10) {
        b[8] = m.value & 0xff;
        b[9] = m.value >>> 8;
      } else if (m.kind === 'headerText') {
        const pos = 10 + (at % Math.max(1, b.length - 10));
        b.splice(pos, 0, ...Array.from(m.text, (c) => c.charCodeAt(0)));
      }
    }
    return Uint8Array.from(b);
  }

  it(`mutated files (bit flips, edits, truncation) give an array or a HammingError (${2 * RUNS} files)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          arrayArb.map((a) => writeNpy(typed(a.dtype, a.bytes), a.shape)),
          spelledFileArb.map((f) => npyFile(f.header, f.major, f.bytes, f.pad)),
        ),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (file, ms) => {
          const r = attempt(mutate(file, ms));
          if (!(r instanceof HammingError)) {
            // Whatever was read is self-consistent: one element per cell of the shape.
            expect(r.data.length).toBe(r.shape.reduce((a, b) => a * b, 1));
            expect(DTYPES).toContain(r.dtype);
          }
        },
      ),
      { seed: SEED, numRuns: 2 * RUNS },
    );
  });

  it(`random bytes give a HammingError (${RUNS} files)`, () => {
    const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
    fc.assert(
      fc.property(
        fc.constantFrom(0, 6, 7, 8),
        fc.integer({ min: 0, max: 4 }),
        fc.uint8Array({ maxLength: 300 }),
        (keep, major, rest) => {
          const head = [...magic, major, 0].slice(0, keep);
          const r = attempt(Uint8Array.from([...head, ...rest]));
          if (!(r instanceof HammingError)) expect(r.data.length).toBe(r.shape.reduce((a, b) => a * b, 1));
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('files: readNpyFile names the file; writeNpyFile never leaves a partial file (50 files)', async () => {
    await fc.assert(
      fc.asyncProperty(arrayArb, fc.boolean(), async ({ dtype, shape, bytes }, badShape) => {
        const path = join(dir, 'a.npy');
        await rm(path, { force: true });
        if (badShape) {
          // A shape that does not fit the data: refused before anything is written.
          const data = typed(dtype, bytes);
          await expect(writeNpyFile(path, data, [data.length + 1])).rejects.toBeInstanceOf(HammingError);
          await expect(writeNpyFile(path, data, [-1, -data.length])).rejects.toBeInstanceOf(HammingError);
        } else {
          await writeNpyFile(path, typed(dtype, bytes), shape);
          expect(bytesOf((await readNpyFile(path)).data)).toEqual(bytes);
          await writeFile(path, writeNpy(typed(dtype, bytes), shape).subarray(0, 9));
          const e = await readNpyFile(path).catch((x: unknown) => x);
          expect(e).toBeInstanceOf(HammingError);
          expect((e as Error).message).toContain(path);
        }
        // Into a folder that does not exist: an error, nothing left behind.
        await expect(
          writeNpyFile(join(dir, 'missing', 'b.npy'), typed(dtype, bytes), shape),
        ).rejects.toBeInstanceOf(HammingError);
        expect((await readdir(dir)).filter((f) => f !== 'a.npy')).toEqual([]);
      }),
      { seed: SEED, numRuns: 50 },
    );
  });
});

describe('firstNonFinite', () => {
  it('finds the first NaN or infinity, -1 when there is none, and -1 for integer arrays', () => {
    expect(firstNonFinite(Float32Array.of(1, 2, 3))).toBe(-1);
    expect(firstNonFinite(Float32Array.of(1, Number.NaN, Number.POSITIVE_INFINITY))).toBe(1);
    expect(firstNonFinite(Float64Array.of(0, -0, 1e308, Number.NEGATIVE_INFINITY))).toBe(3);
    expect(firstNonFinite([1, 2, Number.NaN])).toBe(2);
    expect(firstNonFinite(new Int32Array(4))).toBe(-1);
    expect(firstNonFinite(new BigInt64Array(4))).toBe(-1);
    expect(firstNonFinite(new Float32Array(0))).toBe(-1);
    fc.assert(
      fc.property(fc.float32Array({ maxLength: 50 }), (a) => {
        expect(firstNonFinite(a)).toBe(a.findIndex((v) => !Number.isFinite(v)));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
