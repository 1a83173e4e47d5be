// Property tests (fast-check, seeded) of the .safetensors reader and writer: round trips, and mutated,
// edited or random files give the tensors or a ModelError (BAD_SAFETENSORS, BAD_DTYPE), quickly, never
// another error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ModelError,
  parseSafetensors,
  readSafetensors,
  type SafetensorsFile,
  type Weights,
  writeSafetensors,
} from '../src/index.js';

const SEED = 15;
const RUNS = 300;
const MAX_MS_PER_CASE = 2000;

const ITEM: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

const nameArb = fc.oneof(
  fc
    .array(fc.constantFrom('a', 'b', '.', '_', '0', '9', 'é', '漢', '"', '\\', ' ', '\n'), {
      minLength: 1,
      maxLength: 10,
    })
    .map((cs) => cs.join('')),
  // Names that are special to JavaScript objects, or to the format.
  fc.constantFrom('__proto__', 'toString', 'constructor', 'hasOwnProperty', '__metadata__'),
);

const weightsArb: fc.Arbitrary<Weights> = fc
  .uniqueArray(
    fc.tuple(nameArb, fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })).chain(([name, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      // Any float32 bit pattern, NaN payloads included: the file keeps the bits.
      return fc
        .uint32Array({ minLength: n, maxLength: n })
        .map((bits) => [name, { shape, data: new Float32Array(bits.buffer) }] as const);
    }),
    { maxLength: 5, selector: ([name]) => name },
  )
  .map((entries) => new Map(entries.map(([k, v]) => [k, { shape: v.shape, data: v.data }])));

const metadataArb = fc.dictionary(nameArb, fc.string({ maxLength: 8 }), { maxKeys: 3 });

function attempt(bytes: Uint8Array): SafetensorsFile | ModelError {
  const t0 = performance.now();
  try {
    return parseSafetensors(bytes, 'fuzz.safetensors');
  } catch (e) {
    if (!(e instanceof ModelError)) throw new Error(`not a ModelError: ${(e as Error)?.stack ?? e}`);
    expect(e.code).toBe('BAD_SAFETENSORS');
    expect(e.message).toMatch(/^fuzz\.safetensors: /);
    return e;
  } finally {
    expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
  }
}

/** A parsed file is consistent: each tensor holds its shape's bytes, the tensors tile the data exactly. */
function checkConsistent(f: SafetensorsFile, bytes: Uint8Array) {
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const dataStart = bytes.byteOffset + 8 + headerLen;
  let total = 0;
  for (const [, t] of f.tensors) {
    expect(t.bytes.length).toBe(t.shape.reduce((a, b) => a * b, 1) * ITEM[t.dtype]);
    expect(t.bytes.byteOffset).toBeGreaterThanOrEqual(dataStart);
    total += t.bytes.length;
  }
  expect(total).toBe(bytes.length - 8 - headerLen);
  for (const v of Object.values(f.metadata)) expect(typeof v).toBe('string');
  // Converting to float32 works, or is refused as a non-float dtype.
  try {
    const { weights } = readSafetensors(bytes, 'fuzz.safetensors');
    for (const [, w] of weights) expect(w.data.length).toBe(w.shape.reduce((a, b) => a * b, 1));
  } catch (e) {
    expect(e).toBeInstanceOf(ModelError);
    expect((e as ModelError).code).toBe('BAD_DTYPE');
  }
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
    kind: fc.constant('headerLength' as const),
    value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(file: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Buffer.from(file);
  for (const m of ms) {
    if (m.kind === 'headerLength') {
      if (b.length >= 8) b.writeBigUInt64LE(m.value, 0);
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

/** Rebuilds a file from an edited header object and the original data bytes. */
function withHeader(header: unknown, data: Uint8Array): Uint8Array {
  const h = Buffer.from(JSON.stringify(header) ?? 'null');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return out;
}

const weirdValue = fc.constantFrom<unknown>(
  -1,
  0,
  1,
  0.5,
  1e300,
  2 ** 53,
  -0,
  '4',
  null,
  true,
  [],
  {},
  [0],
  [0, 4],
  [4, 0],
  [0, 2 ** 60],
  'F32',
  'F16',
  'I8',
  'BOOL',
  'toString',
  'constructor',
  '__proto__',
  'f32',
);

describe('.safetensors: property tests', () => {
  it(`round trips writeSafetensors -> readSafetensors, bit for bit (${RUNS} files)`, () => {
    fc.assert(
      fc.property(weightsArb, metadataArb, (weights, metadata) => {
        if (weights.has('__metadata__')) {
          // The format reserves the name: refused before anything is written.
          expect(() => writeSafetensors(weights, metadata)).toThrow(/other than "__metadata__"/);
          weights.delete('__metadata__');
        }
        const bytes = writeSafetensors(weights, metadata);
        const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect(headerLen % 8).toBe(0);
        const f = attempt(bytes);
        if (f instanceof ModelError) throw f;
        checkConsistent(f, bytes);
        const back = readSafetensors(bytes, 'fuzz.safetensors', { finite: false });
        expect(back.metadata).toEqual(metadata);
        expect([...back.weights.keys()].sort()).toEqual([...weights.keys()].sort());
        for (const [k, w] of weights) {
          const b = back.weights.get(k);
          expect(b?.shape).toEqual(w.shape);
          const data = b?.data as Float32Array;
          expect(new Uint32Array(data.buffer, data.byteOffset, data.length)).toEqual(
            new Uint32Array(w.data.buffer),
          );
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`mutated files give consistent tensors or a ModelError (${2 * RUNS} files)`, () => {
    fc.assert(
      fc.property(weightsArb, metadataArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (w, m, ms) => {
        w.delete('__metadata__');
        const bad = mutate(writeSafetensors(w, m), ms);
        const f = attempt(bad);
        if (!(f instanceof ModelError)) checkConsistent(f, bad);
      }),
      { seed: SEED, numRuns: 2 * RUNS },
    );
  });

  it(`edited headers (dtypes, shapes, offsets, keys) give consistent tensors or a ModelError (${RUNS} files)`, () => {
    fc.assert(
      fc.property(
        weightsArb.filter((w) => w.size > 0 && !w.has('__metadata__')),
        fc.array(
          fc.record({
            tensor: fc.nat(),
            field: fc.constantFrom(
              'dtype',
              'shape',
              'data_offsets',
              'extra',
              '__metadata__',
              'whole',
              'copy',
            ),
            value: weirdValue,
          }),
          { minLength: 1, maxLength: 3 },
        ),
        (weights, edits) => {
          const good = writeSafetensors(weights);
          const headerLen = Number(Buffer.from(good).readBigUInt64LE(0));
          const header = JSON.parse(Buffer.from(good.subarray(8, 8 + headerLen)).toString()) as Record<
            string,
            Record<string, unknown>
          >;
          const keys = Object.keys(header);
          for (const e of edits) {
            const key = keys[e.tensor % keys.length];
            if (e.field === '__metadata__') header['__metadata__'] = e.value as Record<string, unknown>;
            else if (e.field === 'whole') header[key] = e.value as Record<string, unknown>;
            else if (e.field === 'copy') header[`${key}+`] = { ...header[key] };
            else header[key] = { ...header[key], [e.field]: e.value };
          }
          const bytes = withHeader(header, good.subarray(8 + headerLen));
          const f = attempt(bytes);
          if (!(f instanceof ModelError)) checkConsistent(f, bytes);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`random bytes give a ModelError (${RUNS} files)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          // A plausible length field, then random bytes or random JSON.
          fc
            .tuple(
              fc.oneof(
                fc.uint8Array({ maxLength: 100 }),
                fc.json().map((j) => new TextEncoder().encode(j)),
              ),
              fc.uint8Array({ maxLength: 40 }),
            )
            .map(([h, d]) => {
              const out = Buffer.alloc(8 + h.length + d.length);
              out.writeBigUInt64LE(BigInt(h.length), 0);
              out.set(h, 8);
              out.set(d, 8 + h.length);
              return new Uint8Array(out);
            }),
        ),
        (bytes) => {
          const f = attempt(bytes);
          if (!(f instanceof ModelError)) checkConsistent(f, bytes);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
