// An object's features, codes and input gradient must not depend on the batch it ran in nor on the
// WebAssembly engine's thread count (DESIGN.md, Engines): compared byte for byte, not with a tolerance.
import { SeededRandom } from '@dhta/kernels/reference';
import { WasmEngine } from '@dhta/kernels/wasm';
import { describe, expect, it } from 'vitest';
import { createNetwork, initWeights, type Network } from '../src/index.js';
import { tailNet, useGpu } from './helpers.js';

/** 'identical', or where the bytes of two arrays (rows of `rowSize`) first differ and how many elements do. */
function difference(a: Float32Array | Int8Array, b: Float32Array | Int8Array, rowSize: number): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  const bitsA = a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a;
  const bitsB = b instanceof Float32Array ? new Uint32Array(b.buffer, b.byteOffset, b.length) : b;
  let first = -1;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (bitsA[i] !== bitsB[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first < 0) return 'identical';
  const q = Math.floor(first / rowSize);
  return `${count} of ${a.length} elements differ, first at object ${q}, element ${first - q * rowSize}: ${a[first]} vs ${b[first]}`;
}

const SPEC = tailNet();
const WEIGHTS = initWeights(SPEC, 7);
const INPUT = 3 * 13 * 11;
const BITS = SPEC.bits;
const N = 100;
const PIXELS = Float32Array.from(new SeededRandom(5).uniformArray(N * INPUT, 0, 1));
const GRAD = Float32Array.from(new SeededRandom(6).uniformArray(N * BITS, -1, 1));

/** Runs `rows(first, count)` over [0, n) in batches and concatenates the results (rows of `size`). */
async function inBatches(
  n: number,
  batch: number,
  size: number,
  rows: (first: number, count: number) => Float32Array | Promise<Float32Array>,
): Promise<Float32Array> {
  const out = new Float32Array(n * size);
  for (let first = 0; first < n; first += batch)
    out.set(await rows(first, Math.min(batch, n - first)), first * size);
  return out;
}

/** Input gradients of objects [first, first + m) through a taped forward pass on the network's engine. */
async function inputGradients(net: Network, first: number, m: number): Promise<Float32Array> {
  const e = net.engine;
  const x = e.tensor([m, INPUT], PIXELS.subarray(first * INPUT, (first + m) * INPUT));
  const xn = net.normalize(x, m);
  const { output, tape } = net.forward(xn, m, { tape: true });
  const dF = e.tensor([m, BITS], GRAD.subarray(first * BITS, (first + m) * BITS));
  const dx = net.backward(tape as NonNullable<typeof tape>, dF, { input: true });
  const out = await e.read(dx as NonNullable<typeof dx>);
  for (const t of [x, xn, output, dF, dx]) t?.release();
  tape?.release();
  return out;
}

describe('batch invariance on the WebAssembly engine', () => {
  it('encode: 100 objects in batches of 1, 3, 8 and 100 on 1 thread, 8 and 100 on 2 and 3, give the same bytes', async () => {
    let base: { features: Float32Array; codes: Int8Array } | undefined;
    for (const threads of [1, 2, 3]) {
      const net = createNetwork(await WasmEngine.create({ threads }), SPEC, WEIGHTS, { ownEngine: true });
      try {
        // Small batches on one thread only: on a loaded 2-core machine each call that wakes a helper thread can
        // wait for a time slice, and small batches make many such calls.
        for (const batch of threads === 1 ? [100, 8, 3, 1] : [100, 8]) {
          const got = await net.encode(PIXELS, N, { batch });
          base ??= got;
          expect(difference(got.features, base.features, BITS), `${threads} threads, batch ${batch}`).toBe(
            'identical',
          );
          expect(difference(got.codes, base.codes, BITS)).toBe('identical');
        }
      } finally {
        net.destroy();
      }
    }
  });

  it('the input gradient: 20 objects in batches of 1, 3, 8 and 20 on 1 thread, 3 and 20 on 2 and 3, give the same bytes', async () => {
    const n = 20;
    let base: Float32Array | undefined;
    for (const threads of [1, 2, 3]) {
      const net = createNetwork(await WasmEngine.create({ threads }), SPEC, WEIGHTS, { ownEngine: true });
      try {
        for (const batch of threads === 1 ? [20, 8, 3, 1] : [20, 3]) {
          const dx = await inBatches(n, batch, INPUT, (first, m) => inputGradients(net, first, m));
          base ??= dx;
          expect(difference(dx, base, INPUT), `${threads} threads, batch ${batch}`).toBe('identical');
        }
      } finally {
        net.destroy();
      }
    }
  });
});

describe('batch invariance on WebGPU', () => {
  const gpu = useGpu();

  it('encode: 100 objects in batches of 1, 3, 8 and 100 give the same bytes', async () => {
    const net = createNetwork(gpu(), SPEC, WEIGHTS);
    try {
      const base = await net.encode(PIXELS, N, { batch: 100 });
      for (const batch of [8, 3, 1]) {
        const got = await net.encode(PIXELS, N, { batch });
        expect(difference(got.features, base.features, BITS), `batch ${batch}`).toBe('identical');
        expect(difference(got.codes, base.codes, BITS)).toBe('identical');
      }
    } finally {
      net.destroy();
    }
  });

  it('the input gradient: 20 objects in batches of 1, 3, 8 and 20 give the same bytes', async () => {
    const net = createNetwork(gpu(), SPEC, WEIGHTS);
    try {
      const n = 20;
      const gradients = (batch: number) =>
        inBatches(n, batch, INPUT, (first, m) => inputGradients(net, first, m));
      const base = await gradients(20);
      for (const batch of [8, 3, 1]) {
        expect(difference(await gradients(batch), base, INPUT), `batch ${batch}`).toBe('identical');
      }
    } finally {
      net.destroy();
    }
  });
});
