// A query's result must not depend on how it was run (DESIGN.md, Engines): its adversarial pixels, features
// and codes are bit-identical whatever the batch it was attacked in and whatever the WebAssembly engine's
// thread count. Compared byte for byte, not with a tolerance: a difference of one ulp in a gradient makes
// the attack's trajectories part after a few hundred iterations.
import { createGpu, type Gpu } from '@dhta/kernels';
import { SeededRandom } from '@dhta/kernels/reference';
import { createNetwork, initWeights } from '@dhta/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailNet } from '../../models/test/helpers.js';
import { type AttackOptions, type AttackResult, runAttack } from '../src/attack.js';
import { cpuNetwork } from './tiny-net.js';

function queries(n: number, size: number, seed: number): Float32Array {
  const x = Float32Array.from(new SeededRandom(seed).uniformArray(n * size, 0, 1));
  // Some pixels on the box edges, so that the box clamp acts.
  for (let i = 0; i < x.length; i += 7) x[i] = i % 2 === 0 ? 0 : 1;
  return x;
}

function randomCodes(n: number, bits: number, seed: number): Int8Array {
  const rng = new SeededRandom(seed);
  return Int8Array.from({ length: n * bits }, () => (rng.next() < 0.5 ? -1 : 1));
}

/** 'identical', or where the bytes of two arrays (rows of `rowSize`) first differ and how many elements do. */
function difference(
  a: Float32Array | Int8Array,
  b: Float32Array | Int8Array,
  rowSize: number,
  rows = a.length / rowSize,
): string {
  const n = rows * rowSize;
  if (a.length < n || b.length < n) return `lengths ${a.length} and ${b.length}, expected ${n} at least`;
  const bitsA = a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, n) : a.subarray(0, n);
  const bitsB = b instanceof Float32Array ? new Uint32Array(b.buffer, b.byteOffset, n) : b.subarray(0, n);
  let first = -1;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (bitsA[i] !== bitsB[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first < 0) return 'identical';
  const q = Math.floor(first / rowSize);
  return `${count} of ${n} elements differ, first at query ${q}, element ${first - q * rowSize}: ${a[first]} vs ${b[first]}`;
}

/** Adversarial pixels, features and codes of the first `rows` queries of two runs are bit-identical. */
function expectSame(
  got: AttackResult,
  want: AttackResult,
  inputSize: number,
  bits: number,
  rows?: number,
): void {
  expect(difference(got.adversarial, want.adversarial, inputSize, rows), 'adversarial pixels').toBe(
    'identical',
  );
  expect(difference(got.features, want.features, bits, rows), 'features').toBe('identical');
  expect(difference(got.codes, want.codes, bits, rows), 'codes').toBe('identical');
}

const SPEC = tailNet();
const WEIGHTS = initWeights(SPEC, 7);
const INPUT = 3 * 13 * 11;
const N = 100;
const X = queries(N, INPUT, 11);
const ANCHORS = randomCodes(N, SPEC.bits, 12);
// DHTA with l2 steps from a random start (each query's own stream, by its id), few iterations.
const OPTIONS: AttackOptions = {
  method: 'dhta',
  iterations: 4,
  randomStart: true,
  seed: 3,
  progressEvery: 0,
};

describe('batch invariance on the WebAssembly engine', () => {
  it('8 queries: batches 1, 3 and 8 on 1 thread, 3 and 8 on 2 and 3 threads give the same bytes', async () => {
    let base: AttackResult | undefined;
    for (const threads of [1, 2, 3]) {
      const net = await cpuNetwork(SPEC, WEIGHTS, { threads });
      try {
        // Batch 1 on one thread only: on a loaded 2-core machine each call that wakes a helper thread can wait
        // for a time slice, and batch 1 makes many such calls.
        for (const batch of threads === 1 ? [8, 3, 1] : [8, 3]) {
          const got = await runAttack(net, X.subarray(0, 8 * INPUT), 8, ANCHORS.subarray(0, 8 * SPEC.bits), {
            ...OPTIONS,
            batch,
          });
          base ??= got;
          expectSame(got, base, INPUT, SPEC.bits);
        }
      } finally {
        net.destroy();
      }
    }
    // The attack moved the queries (the comparison is not one of untouched inputs).
    expect(difference(base?.adversarial ?? X, X.subarray(0, 8 * INPUT), INPUT)).not.toBe('identical');
  });

  it('100 queries: batches 1, 3, 8 and 100, 100 with 2 and 3 threads, and the first 8 as attacked alone', async () => {
    let base: AttackResult | undefined;
    for (const threads of [1, 2, 3]) {
      const net = await cpuNetwork(SPEC, WEIGHTS, { threads });
      try {
        for (const batch of threads === 1 ? [100, 8, 3, 1] : [100]) {
          const got = await runAttack(net, X, N, ANCHORS, { ...OPTIONS, batch });
          base ??= got;
          expectSame(got, base, INPUT, SPEC.bits);
        }
        if (threads === 3) {
          // The same 8 queries run as a set of their own: the first 8 rows of the 100.
          const eight = await runAttack(
            net,
            X.subarray(0, 8 * INPUT),
            8,
            ANCHORS.subarray(0, 8 * SPEC.bits),
            {
              ...OPTIONS,
              batch: 8,
            },
          );
          expectSame(eight, base as AttackResult, INPUT, SPEC.bits, 8);
        }
      } finally {
        net.destroy();
      }
    }
  });
});

describe('batch invariance on WebGPU', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await createGpu();
  });
  afterAll(() => gpu?.destroy());

  it('20 queries: batches 1, 3, 8 and 20 give the same bytes, and the first 8 as attacked alone', async () => {
    const net = createNetwork(gpu, SPEC, WEIGHTS);
    try {
      const n = 20;
      const x = X.subarray(0, n * INPUT);
      const anchors = ANCHORS.subarray(0, n * SPEC.bits);
      const base = await runAttack(net, x, n, anchors, { ...OPTIONS, batch: n });
      for (const batch of [8, 3, 1]) {
        expectSame(await runAttack(net, x, n, anchors, { ...OPTIONS, batch }), base, INPUT, SPEC.bits);
      }
      const eight = await runAttack(net, X.subarray(0, 8 * INPUT), 8, ANCHORS.subarray(0, 8 * SPEC.bits), {
        ...OPTIONS,
        batch: 8,
      });
      expectSame(eight, base, INPUT, SPEC.bits, 8);
      expect(difference(base.adversarial, x, INPUT)).not.toBe('identical');
    } finally {
      net.destroy();
    }
  });
});
