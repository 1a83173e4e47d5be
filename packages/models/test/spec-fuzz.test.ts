// Property tests (fast-check, seeded) of model.json parsing and of bundle folders: generated valid specs
// round trip; edited, mutated or random ones give a valid spec or a ModelError naming what is wrong, quickly,
// never another error; a bundle with broken files loads as a ModelError, and saving never leaves a partial
// bundle.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  expectedWeights,
  inferShapes,
  initWeights,
  type LayerSpec,
  loadBundle,
  ModelError,
  type ModelSpec,
  parseSpec,
  saveBundle,
  validateSpec,
  writeSafetensors,
} from '../src/index.js';

const SEED = 15;
const RUNS = 300;
const MAX_MS_PER_CASE = 2000;
const SPEC_CODES = ['BAD_SPEC', 'UNKNOWN_LAYER', 'SHAPE_MISMATCH'];
const LIMIT = 2 ** 31 - 1;

type Op =
  | { type: 'conv2d'; out: number; kernel: number; stride?: number; padding?: number }
  | { type: 'maxpool2d'; kernel: number; stride?: number }
  | { type: 'relu' }
  | { type: 'dropout'; p: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record(
    {
      type: fc.constant('conv2d' as const),
      out: fc.integer({ min: 1, max: 4 }),
      kernel: fc.integer({ min: 1, max: 3 }),
      stride: fc.integer({ min: 1, max: 2 }),
      padding: fc.integer({ min: 0, max: 1 }),
    },
    { requiredKeys: ['type', 'out', 'kernel'] },
  ),
  fc.record(
    {
      type: fc.constant('maxpool2d' as const),
      kernel: fc.integer({ min: 1, max: 3 }),
      stride: fc.integer({ min: 1, max: 2 }),
    },
    { requiredKeys: ['type', 'kernel'] },
  ),
  fc.constant({ type: 'relu' as const }),
  fc.record({ type: fc.constant('dropout' as const), p: fc.constantFrom(0, 0.25, 0.5) }),
);

/** Image layers that fit a C x H x W input (ops that would not fit are left out), then flatten. */
function fitLayers(ops: Op[], c: number, h: number, w: number): LayerSpec[] {
  const out: LayerSpec[] = [];
  let [C, H, W] = [c, h, w];
  for (const op of ops) {
    if (op.type === 'conv2d' || op.type === 'maxpool2d') {
      const s = op.stride ?? (op.type === 'conv2d' ? 1 : op.kernel);
      const p = op.type === 'conv2d' ? (op.padding ?? 0) : 0;
      const OH = Math.floor((H + 2 * p - op.kernel) / s) + 1;
      const OW = Math.floor((W + 2 * p - op.kernel) / s) + 1;
      if (OH < 1 || OW < 1 || (op.type === 'maxpool2d' && (op.kernel > H || op.kernel > W))) continue;
      [C, H, W] = [op.type === 'conv2d' ? op.out : C, OH, OW];
    }
    out.push(op as LayerSpec);
  }
  out.push({ type: 'flatten' });
  return out;
}

const headArb = fc.array(
  fc.oneof(
    fc.record({ type: fc.constant('linear' as const), out: fc.integer({ min: 1, max: 6 }) }),
    fc.constant({ type: 'relu' as const }),
    fc.record({ type: fc.constant('dropout' as const), p: fc.constantFrom(0, 0.1) }),
  ),
  { maxLength: 3 },
);

const inputArb = fc.integer({ min: 1, max: 3 }).chain((channels) =>
  fc.record({
    channels: fc.constant(channels),
    height: fc.integer({ min: 1, max: 10 }),
    width: fc.integer({ min: 1, max: 10 }),
    mean: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: channels, maxLength: channels }),
    std: fc.array(fc.double({ min: 0.01, max: 2, noNaN: true }), {
      minLength: channels,
      maxLength: channels,
    }),
  }),
);

const specArb: fc.Arbitrary<ModelSpec> = fc.oneof(
  fc
    .record({
      input: inputArb,
      ops: fc.array(opArb, { maxLength: 4 }),
      head: headArb,
      bits: fc.integer({ min: 1, max: 16 }),
    })
    .map(({ input, ops, head, bits }) => ({
      format: 'dhta-model/1' as const,
      task: 'image' as const,
      bits,
      input,
      layers: [
        ...fitLayers(ops, input.channels, input.height, input.width),
        ...head,
        { type: 'linear', out: bits },
      ] as LayerSpec[],
    })),
  fc
    .record({
      input: inputArb,
      ops: fc.array(opArb, { maxLength: 3 }),
      head: headArb,
      bits: fc.integer({ min: 1, max: 16 }),
      frames: fc.integer({ min: 1, max: 4 }),
      hidden: fc.integer({ min: 1, max: 6 }),
      pool: fc.constantFrom('last' as const, 'mean' as const),
    })
    .map(({ input, ops, head, bits, frames, hidden, pool }) => ({
      format: 'dhta-model/1' as const,
      task: 'video' as const,
      bits,
      frames,
      input,
      frame: fitLayers(ops, input.channels, input.height, input.width),
      lstm: { hidden, pool },
      head: [...head, { type: 'linear', out: bits }] as LayerSpec[],
    })),
);

/** parseSpec on text: the spec, or the ModelError (anything else fails the test). */
function attempt(text: string): ModelSpec | ModelError {
  const t0 = performance.now();
  try {
    return parseSpec(text, 'fuzz/model.json');
  } catch (e) {
    if (!(e instanceof ModelError)) throw new Error(`not a ModelError: ${(e as Error)?.stack ?? e}`);
    expect(SPEC_CODES).toContain(e.code);
    expect(e.message).toMatch(/fuzz\/model\.json|layer|lstm|input|head|frame|network/);
    return e;
  } finally {
    expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
  }
}

/** An accepted spec describes a network that can be built: parsing is idempotent, every size is bounded. */
function checkValid(spec: ModelSpec) {
  expect(validateSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  const shapes = inferShapes(spec);
  expect(Number.isSafeInteger(shapes.maxActivation) && shapes.maxActivation <= LIMIT).toBe(true);
  for (const [, shape] of expectedWeights(spec)) {
    const n = shape.reduce((a, b) => a * b, 1);
    expect(shape.every((d) => Number.isSafeInteger(d) && d >= 1)).toBe(true);
    expect(n).toBeLessThanOrEqual(LIMIT);
  }
}

/** Every path to a value inside a JSON value (objects and arrays). */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at];
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]));
  } else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

const weird = fc.constantFrom<unknown>(
  -1,
  0,
  1,
  2,
  0.5,
  1.5,
  1e300,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 53,
  100_000,
  '3',
  null,
  true,
  [],
  {},
  [1],
  'relu',
  'linear',
  'conv2d',
  'flatten',
  'image',
  'video',
  'mean',
  'gelu',
  { type: 'flatten' },
  { type: 'linear', out: 3 },
  { type: 'conv2d', out: 2, kernel: 3 },
  { type: 'maxpool2d', kernel: 2 },
);

function edit(
  value: unknown,
  path: (string | number)[],
  kind: 'set' | 'delete' | 'add',
  x: unknown,
): unknown {
  if (path.length === 0) return kind === 'set' ? x : value;
  const copy = JSON.parse(JSON.stringify(value));
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k];
  const last = path[path.length - 1];
  if (kind === 'set') node[last] = x;
  else if (kind === 'delete') {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else if (Array.isArray(node)) node.splice(last as number, 0, x);
  else node[`${String(last)}_extra`] = x;
  return copy;
}

describe('model.json: property tests', () => {
  it(`round trips generated specs, defaults filled (${RUNS} specs)`, () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        const back = attempt(JSON.stringify(spec));
        if (back instanceof ModelError) throw back;
        checkValid(back);
        // The same spec with every default written out.
        const filled = JSON.parse(JSON.stringify(spec), (_key, v) => {
          if (v && typeof v === 'object' && v.type === 'conv2d') return { stride: 1, padding: 0, ...v };
          if (v && typeof v === 'object' && v.type === 'maxpool2d') return { stride: v.kernel, ...v };
          return v;
        });
        expect(back).toEqual(filled);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`edited specs (a value replaced, deleted or added anywhere) give a valid spec or a ModelError (${2 * RUNS} specs)`, () => {
    fc.assert(
      fc.property(
        specArb,
        fc.array(
          fc.tuple(fc.nat(), fc.constantFrom('set' as const, 'delete' as const, 'add' as const), weird),
          {
            minLength: 1,
            maxLength: 3,
          },
        ),
        (spec, edits) => {
          let value: unknown = spec;
          for (const [n, kind, x] of edits) {
            const all = paths(value);
            value = edit(value, all[n % all.length], kind, x);
          }
          const r = attempt(JSON.stringify(value) ?? 'null');
          if (!(r instanceof ModelError)) checkValid(r);
        },
      ),
      { seed: SEED, numRuns: 2 * RUNS },
    );
  });

  it(`mutated text and random JSON give a valid spec or a ModelError (${RUNS} texts)`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .tuple(
              specArb,
              fc.nat(),
              fc.nat({ max: 20 }),
              fc.constantFrom('', '{', '}', '"', ',', '1e999', '-', 'null', '\u0000'),
            )
            .map(([s, at, del, ins]) => {
              const t = JSON.stringify(s);
              const i = at % (t.length + 1);
              return t.slice(0, i) + ins + t.slice(i + del);
            }),
          fc.json(),
          fc.string(),
        ),
        (text) => {
          const r = attempt(text);
          if (!(r instanceof ModelError)) checkValid(r);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('bundle folders: property tests', () => {
  const root = mkdtempSync(join(tmpdir(), 'bundle-fuzz-'));

  it('a bundle with a mutated model.json or weights file loads or gives a ModelError naming the file (60 bundles)', async () => {
    await fc.assert(
      fc.asyncProperty(
        specArb,
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        fc.option(fc.tuple(fc.nat(), fc.constantFrom(0x7fc00000, 0x7f800000, 0xff800000, 0xffffffff)), {
          nil: undefined,
        }),
        async (spec, inSpec, sets, cut, poison) => {
          const dir = join(root, 'b');
          rmSync(dir, { recursive: true, force: true });
          const weights = initWeights(spec, 1);
          await saveBundle(dir, { spec, weights });
          const file = join(dir, inSpec ? 'model.json' : 'weights.safetensors');
          const bytes = Buffer.from(readFileSync(file));
          if (poison && !inSpec) {
            // A NaN or an infinity in place of one weight.
            const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
            const count = (bytes.length - dataStart) / 4;
            if (count > 0) bytes.writeUInt32LE(poison[1], dataStart + 4 * (poison[0] % count));
          } else {
            for (const [at, v] of sets) bytes[at % bytes.length] = v;
          }
          writeFileSync(file, bytes.subarray(0, cut % 3 === 0 ? cut % (bytes.length + 1) : bytes.length));
          const t0 = performance.now();
          try {
            const b = await loadBundle(dir);
            checkValid(b.spec);
            for (const [, w] of b.weights) for (const v of w.data) expect(Number.isFinite(v)).toBe(true);
          } catch (e) {
            if (!(e instanceof ModelError)) throw new Error(`not a ModelError: ${(e as Error)?.stack ?? e}`);
            expect(e.message).toContain(file);
          }
          expect(performance.now() - t0).toBeLessThan(MAX_MS_PER_CASE);
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });

  it('saving bad weights over a bundle leaves it as it was, with nothing partial beside it (40 bundles)', async () => {
    await fc.assert(
      fc.asyncProperty(specArb, fc.constantFrom('missing', 'shape', 'extra'), async (spec, how) => {
        const dir = join(root, 'c');
        rmSync(dir, { recursive: true, force: true });
        await saveBundle(dir, { spec, weights: initWeights(spec, 1) });
        const before = [
          readFileSync(join(dir, 'model.json')),
          readFileSync(join(dir, 'weights.safetensors')),
        ];
        const weights = initWeights(spec, 2);
        const first = [...weights.keys()][0];
        if (how === 'missing') weights.delete(first);
        else if (how === 'shape') weights.set(first, { shape: [1], data: new Float32Array(1) });
        else weights.set('extra.weight', { shape: [1], data: new Float32Array(1) });
        await expect(saveBundle(dir, { spec, weights })).rejects.toBeInstanceOf(ModelError);
        expect(readFileSync(join(dir, 'model.json'))).toEqual(before[0]);
        expect(readFileSync(join(dir, 'weights.safetensors'))).toEqual(before[1]);
        expect(readdirSync(root).sort()).toEqual(
          ['c', ...(readdirSync(root).includes('b') ? ['b'] : [])].sort(),
        );
        // A weights file written by hand with the same mistake does not load either.
        writeFileSync(join(dir, 'weights.safetensors'), writeSafetensors(weights));
        await expect(loadBundle(dir)).rejects.toBeInstanceOf(ModelError);
      }),
      { seed: SEED, numRuns: 40 },
    );
  });
});
