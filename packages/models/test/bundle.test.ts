import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  entryToFloat32,
  expectedWeights,
  inferShapes,
  initWeights,
  loadBundle,
  ModelError,
  type ModelSpec,
  parseSafetensors,
  preset,
  readSafetensors,
  saveBundle,
  smallCnn,
  validateSpec,
  validateWeights,
  vgg11,
  videoNet,
  type Weights,
  writeSafetensors,
} from '../src/index.js';

function tiny(): ModelSpec {
  return {
    format: 'dhta-model/1',
    task: 'image',
    bits: 4,
    input: { channels: 1, height: 6, width: 6, mean: [0.5], std: [0.25] },
    layers: [
      { type: 'conv2d', out: 2, kernel: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernel: 2 },
      { type: 'flatten' },
      { type: 'linear', out: 4 },
    ],
  };
}

/** A safetensors file from a raw header object and a data buffer. */
function rawFile(header: unknown, data: Uint8Array, headerLen?: number): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelError);
    return `${(e as ModelError).code}: ${(e as Error).message}`;
  }
  throw new Error('expected a ModelError');
}

describe('safetensors', () => {
  it('round-trips float32 weights with metadata, header aligned to 8 bytes', () => {
    const w: Weights = new Map([
      ['b', { shape: [3], data: Float32Array.from([1, -2, 3.5]) }],
      ['a.weight', { shape: [2, 2], data: Float32Array.from([0.1, 0.2, 0.3, 0.4]) }],
      ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const bytes = writeSafetensors(w, { format: 'pt' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const r = readSafetensors(bytes);
    expect(r.metadata).toEqual({ format: 'pt' });
    expect([...r.weights.keys()].sort()).toEqual(['a.weight', 'b', 'empty']);
    expect([...(r.weights.get('a.weight')?.data ?? [])]).toEqual([
      ...Float32Array.from([0.1, 0.2, 0.3, 0.4]),
    ]);
    expect(r.weights.get('empty')?.shape).toEqual([0, 4]);
  });

  it('converts F16, BF16 and F64 to float32 and refuses integer weights', () => {
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001]).buffer); // 1, -2, ~1/3, 2^-24
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc040]).buffer); // 1, -3
    const f64 = new Uint8Array(new Float64Array([0.1]).buffer);
    const i32 = new Uint8Array(new Int32Array([7]).buffer);
    const data = new Uint8Array([...f16, ...bf16, ...f64, ...i32]);
    const file = parseSafetensors(
      rawFile(
        {
          h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
          b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
          d: { dtype: 'F64', shape: [1], data_offsets: [12, 20] },
          i: { dtype: 'I32', shape: [1], data_offsets: [20, 24] },
        },
        data,
      ),
    );
    const h = entryToFloat32('h', file.tensors.get('h')!);
    expect(h[0]).toBe(1);
    expect(h[1]).toBe(-2);
    expect(h[2]).toBeCloseTo(1 / 3, 3);
    expect(h[3]).toBe(2 ** -24);
    expect([...entryToFloat32('b', file.tensors.get('b')!)]).toEqual([1, -3]);
    expect(entryToFloat32('d', file.tensors.get('d')!)[0]).toBe(Math.fround(0.1));
    expect(code(() => entryToFloat32('i', file.tensors.get('i')!))).toMatch(/^BAD_DTYPE: tensor "i".*I32/);
  });

  it('rejects bad headers, offsets outside the data, overlaps, holes and size mismatches', () => {
    const data = new Uint8Array(16);
    const ok = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    };
    expect(parseSafetensors(rawFile(ok, data)).tensors.size).toBe(2);
    expect(code(() => parseSafetensors(new Uint8Array(5)))).toMatch(/BAD_SAFETENSORS.*at least 8 bytes/);
    expect(code(() => parseSafetensors(rawFile(ok, data, 1e9)))).toMatch(/header length/);
    expect(code(() => parseSafetensors(rawFile(ok, data, 10)))).toMatch(/not valid UTF-8 JSON/);
    expect(code(() => parseSafetensors(rawFile([1, 2], data)))).toMatch(/JSON object/);
    expect(code(() => parseSafetensors(rawFile({ ...ok, a: { ...ok.a, dtype: 'F8' } }, data)))).toMatch(
      /"a": unknown dtype "F8"/,
    );
    expect(code(() => parseSafetensors(rawFile({ ...ok, a: { ...ok.a, shape: [3] } }, data)))).toMatch(
      /"a": shape \[3\] F32 needs 12 bytes/,
    );
    expect(
      code(() => parseSafetensors(rawFile({ ...ok, b: { ...ok.b, data_offsets: [8, 24] } }, data))),
    ).toMatch(/"b".*(needs 8 bytes|past)/);
    expect(
      code(() =>
        parseSafetensors(rawFile({ a: ok.a, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, data)),
      ),
    ).toMatch(/"b": its data ends at byte 24, past the 16/);
    expect(
      code(() => parseSafetensors(rawFile({ a: ok.a, b: { ...ok.b, data_offsets: [4, 12] } }, data))),
    ).toMatch(/overlaps/);
    expect(code(() => parseSafetensors(rawFile({ a: ok.a }, data)))).toMatch(/after the last tensor/);
    expect(code(() => parseSafetensors(rawFile({ b: ok.b }, data)))).toMatch(/bytes 0..8 before tensor "b"/);
    expect(
      code(() => parseSafetensors(rawFile({ ...ok, a: { ...ok.a, data_offsets: [8, 0] } }, data))),
    ).toMatch(/data_offsets/);
    expect(code(() => parseSafetensors(rawFile({ ...ok, __metadata__: { x: 1 } }, data)))).toMatch(
      /__metadata__.x must be a string/,
    );
  });
});

describe('model.json', () => {
  it('validates, fills defaults and infers shapes', () => {
    const spec = validateSpec(JSON.parse(JSON.stringify(tiny())));
    expect(spec.task === 'image' && spec.layers[0]).toEqual({
      type: 'conv2d',
      out: 2,
      kernel: 3,
      stride: 1,
      padding: 1,
    });
    expect(spec.task === 'image' && spec.layers[2]).toEqual({ type: 'maxpool2d', kernel: 2, stride: 2 });
    const s = inferShapes(spec);
    expect(s.layers.map((l) => l.output)).toEqual([[2, 6, 6], [2, 6, 6], [2, 3, 3], [18], [4]]);
    expect([...expectedWeights(spec)]).toEqual([
      ['layers.0.weight', [2, 1, 3, 3]],
      ['layers.0.bias', [2]],
      ['layers.4.weight', [4, 18]],
      ['layers.4.bias', [4]],
    ]);
  });

  it('names the layer and field of every mistake', () => {
    const base = tiny() as unknown as Record<string, unknown>;
    const layers = (tiny() as { layers: unknown[] }).layers;
    const withLayer = (i: number, l: unknown) => ({
      ...base,
      layers: layers.map((x, j) => (j === i ? l : x)),
    });
    expect(code(() => validateSpec({ ...base, format: 'x' }))).toMatch(
      /BAD_SPEC.*"format" must be "dhta-model\/1"/,
    );
    expect(code(() => validateSpec(withLayer(1, { type: 'gelu' })))).toMatch(
      /UNKNOWN_LAYER: model.json layers\[1\]: unknown layer type "gelu"/,
    );
    expect(code(() => validateSpec(withLayer(0, { type: 'conv2d', out: 2, kernal: 3 })))).toMatch(
      /layers\[0\]: unknown field "kernal"/,
    );
    expect(code(() => validateSpec(withLayer(0, { type: 'conv2d', out: 0, kernel: 3 })))).toMatch(
      /layers\[0\]: "out" must be an integer >= 1/,
    );
    expect(code(() => validateSpec({ ...base, layers: [...layers, { type: 'dropout', p: 1 }] }))).toMatch(
      /"p" must be a number in \[0, 1\)/,
    );
    expect(code(() => validateSpec({ ...base, input: { ...(base['input'] as object), std: [0] } }))).toMatch(
      /"std" values must be > 0/,
    );
    expect(
      code(() => validateSpec({ ...base, input: { ...(base['input'] as object), mean: [0, 1] } })),
    ).toMatch(/"mean" must be a list of 1/);
    expect(code(() => validateSpec(withLayer(3, { type: 'relu' })))).toMatch(
      /SHAPE_MISMATCH: layers layer 4 \(linear\): expects a flat vector.*add a flatten/,
    );
    expect(code(() => validateSpec({ ...base, bits: 5 }))).toMatch(
      /SHAPE_MISMATCH: the network's output is \[4\].*"bits" is 5/,
    );
    expect(code(() => validateSpec(withLayer(2, { type: 'maxpool2d', kernel: 7 })))).toMatch(
      /layer 2 \(maxpool2d\): a 7x7 kernel does not fit its 6x6 input/,
    );
  });

  it('checks weights: missing, wrong shape, unexpected', () => {
    const spec = tiny();
    const w = initWeights(spec, 1);
    validateWeights(spec, w);
    const missing = new Map(w);
    missing.delete('layers.4.bias');
    expect(code(() => validateWeights(spec, missing))).toMatch(
      /MISSING_TENSOR.*"layers.4.bias" of shape \[4\].*layers\[4\] \(linear\)/,
    );
    const wrong = new Map(w);
    wrong.set('layers.0.weight', { shape: [2, 1, 5, 5], data: new Float32Array(50) });
    expect(code(() => validateWeights(spec, wrong))).toMatch(
      /SHAPE_MISMATCH.*"layers.0.weight" has shape \[2, 1, 5, 5\].*needs \[2, 1, 3, 3\]/,
    );
    const extra = new Map(w);
    extra.set('layers.1.weight', { shape: [1], data: new Float32Array(1) });
    expect(code(() => validateWeights(spec, extra))).toMatch(/UNEXPECTED_TENSOR.*"layers.1.weight"/);
  });

  it('presets are valid; init follows PyTorch bounds and the seed', () => {
    const v = vgg11(32);
    const s = inferShapes(v);
    expect(s.layers[21].output).toEqual([25088]);
    expect(expectedWeights(v).get('layers.22.weight')).toEqual([4096, 25088]);
    expect(expectedWeights(v).get('layers.28.weight')).toEqual([32, 4096]);
    expect(inferShapes(smallCnn(16)).layers[9].output).toEqual([1152]);
    const video = videoNet(32);
    expect(expectedWeights(video).get('lstm.weight_ih_l0')).toEqual([512, 128]);
    for (const name of ['vgg11', 'small-cnn', 'video'])
      expect(validateSpec(JSON.parse(JSON.stringify(preset(name, 48)))).bits).toBe(48);
    expect(code(() => preset('resnet', 16))).toMatch(/unknown preset "resnet"/);
    const spec = smallCnn(16);
    const a = initWeights(spec, 3);
    const b = initWeights(spec, 3);
    const c = initWeights(spec, 4);
    const w = a.get('layers.3.weight')!.data;
    expect(w).toEqual(b.get('layers.3.weight')!.data);
    expect(w).not.toEqual(c.get('layers.3.weight')!.data);
    const bound = 1 / Math.sqrt(32 * 9);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.95 * bound);
  });

  it('hashScale multiplies the hash layer (the last linear layer) and nothing else', () => {
    for (const [spec, hash] of [
      [smallCnn(16), 'layers.13'],
      [videoNet(32), 'head.1'],
    ] as const) {
      const a = initWeights(spec, 5);
      const b = initWeights(spec, 5, { hashScale: 10 });
      for (const [name, t] of a) {
        const scaled = b.get(name)!.data;
        const factor = name.startsWith(`${hash}.`) ? 10 : 1;
        expect(Array.from(scaled), name).toEqual(Array.from(t.data, (v) => Math.fround(v * factor)));
      }
    }
  });
});

describe('bundles', () => {
  it('save then load round-trips; saving over a bundle replaces it atomically', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dhta-models-')), 'm');
    const spec = { ...tiny(), card: { note: 'test' } };
    const w = initWeights(spec, 2);
    await saveBundle(dir, { spec, weights: w });
    const back = await loadBundle(dir);
    expect(back.spec).toEqual(validateSpec(spec));
    expect(back.weights.get('layers.0.weight')!.data).toEqual(w.get('layers.0.weight')!.data);
    const w2 = initWeights(spec, 9);
    await saveBundle(dir, { spec, weights: w2 });
    expect((await loadBundle(dir)).weights.get('layers.4.weight')!.data).toEqual(
      w2.get('layers.4.weight')!.data,
    );
    expect(readdirSync(join(dir, '..'))).toEqual(['m']);
  });

  it('refuses bad weights before writing anything, and reports bad files with their path', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dhta-models-'));
    const spec = tiny();
    const w = initWeights(spec, 2);
    w.delete('layers.0.bias');
    await expect(saveBundle(join(root, 'x'), { spec, weights: w })).rejects.toThrow(/MISSING|missing/);
    expect(readdirSync(root)).toEqual([]);
    await expect(loadBundle(join(root, 'none'))).rejects.toThrow(/model.json: expected a model.json/);
    const dir = join(root, 'ok');
    await saveBundle(dir, { spec, weights: initWeights(spec, 1) });
    const bytes = readFileSync(join(dir, 'weights.safetensors'));
    writeFileSync(join(dir, 'weights.safetensors'), bytes.subarray(0, bytes.length - 4));
    await expect(loadBundle(dir)).rejects.toThrow(/weights.safetensors: .*(truncated|belong)/);
    writeFileSync(join(dir, 'model.json'), '{ nope');
    await expect(loadBundle(dir)).rejects.toThrow(/model.json: not valid JSON/);
  });
});
