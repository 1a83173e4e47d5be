// Bundles with NaN or infinite weights are refused at load, naming the tensor and the first bad index; a
// .safetensors dtype must be a real dtype (not an Object.prototype name); model.json sizes are bounded.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ImageModelSpec,
  initWeights,
  loadBundle,
  ModelError,
  type ModelSpec,
  parseSafetensors,
  readSafetensors,
  saveBundle,
  validateSpec,
  writeSafetensors,
} from '../src/index.js';

function tiny(): ImageModelSpec {
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

async function modelError(fn: () => unknown): Promise<ModelError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ModelError) return e;
    throw new Error(`expected a ModelError, got ${(e as Error)?.stack ?? e}`);
  }
  throw new Error('expected a ModelError, nothing was thrown');
}

/** A safetensors file from a raw header object and a data buffer. */
function rawFile(header: unknown, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('non-finite weights', () => {
  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('loadBundle refuses %s, naming the file, the tensor and the first bad index', async (what, value) => {
    const dir = join(mkdtempSync(join(tmpdir(), 'nonfinite-')), 'bundle');
    const weights = initWeights(tiny(), 1);
    await saveBundle(dir, { spec: tiny(), weights });
    // Put the bad values in the file itself (saveBundle writes what it is given; loading is what refuses).
    const w = weights.get('layers.4.weight')?.data as Float32Array; // [4, 18]
    w[19] = value;
    w[30] = value;
    writeFileSync(join(dir, 'weights.safetensors'), writeSafetensors(weights, { format: 'pt' }));
    const e = await modelError(() => loadBundle(dir));
    expect(e.code).toBe('BAD_SAFETENSORS');
    expect(e.message).toContain(join(dir, 'weights.safetensors'));
    expect(e.message).toContain(
      `expected finite weights, found ${what} in tensor "layers.4.weight" [4, 18] at index 19 (element [1, 1])`,
    );
  });

  it('refuses F64 weights that overflow float32 and F16 infinities, saying so', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'nonfinite-')), 'bundle');
    const weights = initWeights(tiny(), 1);
    await saveBundle(dir, { spec: tiny(), weights });
    const good = parseSafetensors(readFileSync(join(dir, 'weights.safetensors')));
    const header: Record<string, unknown> = {};
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (const [key, t] of good.tensors) {
      let bytes = t.bytes;
      let dtype = 'F32';
      if (key === 'layers.0.bias') {
        const f64 = Float64Array.from(new Float32Array(Uint8Array.from(t.bytes).buffer));
        f64[1] = 1e300; // finite as F64, infinite as float32
        bytes = new Uint8Array(f64.buffer);
        dtype = 'F64';
      }
      header[key] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
      parts.push(bytes);
      offset += bytes.length;
    }
    writeFileSync(join(dir, 'weights.safetensors'), rawFile(header, Buffer.concat(parts)));
    const e = await modelError(() => loadBundle(dir));
    expect(e.message).toMatch(
      /found Infinity in tensor "layers.0.bias" \[2\] at index 1 after conversion from F64 to float32/,
    );
    const f16 = rawFile(
      { w: { dtype: 'F16', shape: [3], data_offsets: [0, 6] } },
      Uint8Array.of(0, 0x3c, 0, 0x7c, 0, 0),
    );
    expect(() => readSafetensors(f16, 'w.safetensors', { finite: true })).toThrow(
      /found Infinity in tensor "w" \[3\] at index 1 after conversion from F16/,
    );
    // Reading a file as data (not as a bundle's weights) still takes any value.
    expect(readSafetensors(f16).weights.get('w')?.data[1]).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('safetensors dtype names', () => {
  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty'])(
    'refuses the dtype "%s" as unknown',
    (dtype) => {
      const f = rawFile({ w: { dtype, shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
      expect(() => parseSafetensors(f, 'w.safetensors')).toThrow(
        new RegExp(`w.safetensors: tensor "w": unknown dtype "${dtype}"; expected one of F64, F32`),
      );
    },
  );
});

describe('model.json sizes', () => {
  it.each([
    ['bits', { bits: 1e300 }, /"bits" must be an integer >= 1 \(and at most 2147483647\), found 1e\+300/],
    [
      'input height',
      { input: { ...tiny().input, height: 2 ** 40 } },
      /"height" must be an integer >= 1 \(and at most/,
    ],
  ])('refuses a %s past 2^31 - 1', (_what, patch, message) => {
    const e = (() => {
      try {
        validateSpec({ ...tiny(), ...patch });
      } catch (x) {
        return x as ModelError;
      }
      throw new Error('accepted');
    })();
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe('BAD_SPEC');
    expect(e.message).toMatch(message);
  });

  it('refuses layers whose weights or activations would not fit a typed array', () => {
    const wide: ModelSpec = {
      ...tiny(),
      bits: 4,
      layers: [{ type: 'flatten' }, { type: 'linear', out: 100_000_000 }, { type: 'linear', out: 4 }],
    };
    expect(() => validateSpec(wide)).toThrow(
      /layers layer 1 \(linear\): its weight \[100000000, 36\] holds 3600000000 values, over the limit of 2147483647/,
    );
    const e = (() => {
      try {
        validateSpec({ ...tiny(), input: { ...tiny().input, height: 50_000, width: 50_000 } });
      } catch (x) {
        return x as ModelError;
      }
      throw new Error('accepted');
    })();
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/input: one image \[1, 50000, 50000\] holds 2500000000 values, over the limit/);
  });
});
