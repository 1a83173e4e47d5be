import { createGpu, type Gpu } from '@dhta/kernels';
import { SeededRandom } from '@dhta/kernels/reference';
import type { ModelSpec, Network, Weights } from '@dhta/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AttackOptions, type AttackProgress, resolveAttackSettings, runAttack } from '../src/attack.js';
import { referenceAttack } from '../src/reference.js';
import { alphaAt, alphaSegments } from '../src/schedule.js';
import { cpuNetwork, TinyNet, type TinyNetOptions } from './tiny-net.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await createGpu();
});
afterAll(() => gpu?.destroy());

function queries(n: number, size: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  const x = Float32Array.from(rng.uniformArray(n * size, 0, 1));
  // Some pixels on the box edges, so the box clamp acts.
  for (let i = 0; i < x.length; i += 7) x[i] = i % 2 === 0 ? 0 : 1;
  return x;
}

function randomCodes(n: number, bits: number, seed: number): Int8Array {
  const rng = new SeededRandom(seed);
  return Int8Array.from({ length: n * bits }, () => (rng.next() < 0.5 ? -1 : 1));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function hamming(a: Int8Array, b: Int8Array, q: number, bits: number): number {
  let d = 0;
  for (let j = 0; j < bits; j++) if (a[q * bits + j] !== b[q * bits + j]) d++;
  return d;
}

const IMAGE: TinyNetOptions = { channels: 3, height: 4, width: 5, hidden: 24, bits: 12, seed: 3 };
const VIDEO: TinyNetOptions = { channels: 2, height: 3, width: 3, frames: 3, hidden: 16, bits: 10, seed: 5 };

describe('alpha schedule', () => {
  it("follows the paper's blocks at 2000 iterations and scales them for other counts", () => {
    expect(alphaAt(0, 2000, 'paper')).toBe(0.1);
    expect(alphaAt(999, 2000, 'paper')).toBe(0.1);
    expect(alphaAt(1000, 2000, 'paper')).toBe(0.2);
    expect(alphaAt(1199, 2000, 'paper')).toBe(0.2);
    expect(alphaAt(1200, 2000, 'paper')).toBe(0.3);
    expect(alphaAt(1400, 2000, 'paper')).toBe(0.5);
    expect(alphaAt(1600, 2000, 'paper')).toBe(0.7);
    expect(alphaAt(1800, 2000, 'paper')).toBe(1.0);
    expect(alphaAt(1999, 2000, 'paper')).toBe(1.0);
    expect(alphaSegments(100, 'paper')).toEqual([
      { from: 0, alpha: 0.1 },
      { from: 50, alpha: 0.2 },
      { from: 60, alpha: 0.3 },
      { from: 70, alpha: 0.5 },
      { from: 80, alpha: 0.7 },
      { from: 90, alpha: 1.0 },
    ]);
    expect(alphaSegments(500, 0.1)).toEqual([{ from: 0, alpha: 0.1 }]);
    // Uneven counts: boundaries floor(T * k / 10).
    expect(alphaSegments(25, 'paper').map((s) => s.from)).toEqual([0, 12, 15, 17, 20, 22]);
  });

  it('defaults to the paper for images and to 500 iterations at alpha 0.1 for video', () => {
    expect(resolveAttackSettings('image', { method: 'dhta' })).toMatchObject({
      iterations: 2000,
      alpha: 'paper',
      eps: 0.032,
      lr: 1,
      step: 'l2',
      epsSpace: 'normalized',
      randomStart: false,
    });
    expect(resolveAttackSettings('video', { method: 'dhta' })).toMatchObject({ iterations: 500, alpha: 0.1 });
  });
});

describe('runAttack against the float64 reference', () => {
  const cases: [string, TinyNetOptions, Partial<AttackOptions>][] = [
    ['DHTA, l2 steps, paper alpha', IMAGE, { method: 'dhta', iterations: 40 }],
    [
      'P2P, sign steps, pixel eps',
      IMAGE,
      { method: 'p2p', iterations: 25, step: 'sign', lr: 0.01, epsSpace: 'pixel', eps: 8 / 255 },
    ],
    [
      'DHTA, raw steps, random start, constant alpha',
      IMAGE,
      { method: 'dhta', iterations: 20, step: 'raw', lr: 0.5, randomStart: true, alpha: 0.5, seed: 9 },
    ],
    ['HAG', IMAGE, { method: 'hag', iterations: 30 }],
    ['Noise', IMAGE, { method: 'noise', seed: 4 }],
    ['DHTA on video clips [T, C, H, W]', VIDEO, { method: 'dhta', iterations: 30, alpha: 0.1 }],
  ];
  for (const [name, netOptions, options] of cases) {
    it(name, async () => {
      const net = new TinyNet(gpu, netOptions);
      const n = 5;
      const x = queries(n, net.inputSize, 11);
      const anchors = randomCodes(n, net.bits, 12);
      const full = { method: 'dhta', ...options } as AttackOptions;
      const got = await runAttack(net, x, n, anchors, { ...full, progressEvery: 0 });
      const settings = resolveAttackSettings(net.spec.task, full);
      const ref = referenceAttack(net.reference(), x, n, anchors, settings);
      expect(maxAbsDiff(got.adversarial, ref.adversarial)).toBeLessThan(2e-5);
      expect(maxAbsDiff(got.features, ref.features)).toBeLessThan(1e-4);
      expect(Array.from(got.codes)).toEqual(Array.from(ref.codes));
      // The constraints: pixels in [0, 1], |x' - x| <= eps (pixel units through std), and the attack moved.
      const std = net.spec.input.std;
      let moved = 0;
      for (let i = 0; i < x.length; i++) {
        const c = Math.floor((i % net.inputSize) / net.planeSize) % net.channels;
        const bound = settings.epsSpace === 'pixel' ? settings.eps : settings.eps * std[c];
        expect(got.adversarial[i]).toBeGreaterThanOrEqual(0);
        expect(got.adversarial[i]).toBeLessThanOrEqual(1);
        expect(Math.abs(got.adversarial[i] - x[i])).toBeLessThanOrEqual(bound * (1 + 1e-5) + 1e-7);
        moved = Math.max(moved, Math.abs(got.adversarial[i] - x[i]));
      }
      expect(moved).toBeGreaterThan(0);
      if (full.method === 'hag')
        expect(Array.from(got.anchors)).toEqual(Array.from((await net.encode(x, n)).codes));
      if (full.method === 'noise') expect(got.anchors.length).toBe(0);
      net.destroy();
    });
  }
});

/** The tiny image net as a real model (flatten, linear, ReLU, linear) on the WebAssembly CPU engine. */
async function tinyCpuNet(net: TinyNet, threads: number, maxBatch?: number): Promise<Network> {
  const spec: ModelSpec = {
    ...(net.spec as ModelSpec & { task: 'image' }),
    layers: [
      { type: 'flatten' },
      { type: 'linear', out: net.o.hidden },
      { type: 'relu' },
      { type: 'linear', out: net.bits },
    ],
  };
  const weights: Weights = new Map([
    ['layers.1.weight', { shape: [net.o.hidden, net.inputSize], data: Float32Array.from(net.w1) }],
    ['layers.1.bias', { shape: [net.o.hidden], data: Float32Array.from(net.b1) }],
    ['layers.3.weight', { shape: [net.bits, net.o.hidden], data: Float32Array.from(net.w2) }],
    ['layers.3.bias', { shape: [net.bits], data: Float32Array.from(net.b2) }],
  ]);
  return cpuNetwork(spec, weights, { threads, maxBatch });
}

describe('runAttack on the WebAssembly CPU engine against the float64 reference', () => {
  const cases: [string, Partial<AttackOptions>, number][] = [
    ['DHTA, l2 steps, paper alpha', { method: 'dhta', iterations: 40 }, 1],
    ['DHTA, l2 steps, paper alpha, two threads', { method: 'dhta', iterations: 40 }, 2],
    [
      'P2P, sign steps, pixel eps',
      { method: 'p2p', iterations: 25, step: 'sign', lr: 0.01, epsSpace: 'pixel', eps: 8 / 255 },
      2,
    ],
    [
      'DHTA, raw steps, random start',
      { method: 'dhta', iterations: 20, step: 'raw', lr: 0.5, randomStart: true, alpha: 0.5, seed: 9 },
      2,
    ],
    ['HAG', { method: 'hag', iterations: 30 }, 2],
    ['Noise', { method: 'noise', seed: 4 }, 2],
  ];
  for (const [name, options, threads] of cases) {
    it(name, async () => {
      const tiny = new TinyNet(gpu, IMAGE);
      const net = await tinyCpuNet(tiny, threads);
      try {
        const n = 5;
        const x = queries(n, net.inputSize, 11);
        const anchors = randomCodes(n, net.bits, 12);
        const full = { method: 'dhta', ...options } as AttackOptions;
        const got = await runAttack(net, x, n, anchors, { ...full, progressEvery: 0, batch: 3 });
        const ref = referenceAttack(tiny.reference(), x, n, anchors, resolveAttackSettings('image', full));
        expect(maxAbsDiff(got.adversarial, ref.adversarial)).toBeLessThan(2e-5);
        expect(maxAbsDiff(got.features, ref.features)).toBeLessThan(1e-4);
        expect(Array.from(got.codes)).toEqual(Array.from(ref.codes));
        expect(maxAbsDiff(got.adversarial, x)).toBeGreaterThan(0);
        if (full.method === 'hag')
          expect(Array.from(got.anchors)).toEqual(Array.from((await net.encode(x, n)).codes));
      } finally {
        net.destroy();
        tiny.destroy();
      }
    });
  }
});

describe('runAttack on the WebAssembly engine with a capped batch', () => {
  it('returns every tensor it took: the engine memory in use is the same after a run as before', async () => {
    const tiny = new TinyNet(gpu, IMAGE);
    const net = await tinyCpuNet(tiny, 1);
    try {
      const n = 3;
      const x = queries(n, net.inputSize, 61);
      const anchors = randomCodes(n, net.bits, 62);
      const options: AttackOptions = { method: 'dhta', iterations: 5, progressEvery: 2 };
      await runAttack(net, x, n, anchors, options);
      const before = net.engine.memoryBytesLeft;
      await runAttack(net, x, n, anchors, { ...options, iterations: 50 });
      await runAttack(net, x, n, anchors, { ...options, method: 'hag' });
      expect(net.engine.memoryBytesLeft).toBe(before);
    } finally {
      net.destroy();
      tiny.destroy();
    }
  });

  it('splits a batch the engine cannot hold (maxBatch) and gets the same result', async () => {
    const tiny = new TinyNet(gpu, IMAGE);
    const whole = await tinyCpuNet(tiny, 2);
    const capped = await tinyCpuNet(tiny, 2, 2);
    try {
      const n = 5;
      const x = queries(n, whole.inputSize, 51);
      const anchors = randomCodes(n, whole.bits, 52);
      const batches = (seen: number[]): AttackOptions => ({
        method: 'dhta',
        iterations: 20,
        progressEvery: 10,
        onProgress: (p) => seen.push(p.batch),
      });
      const seenWhole: number[] = [];
      const seenCapped: number[] = [];
      const a = await runAttack(whole, x, n, anchors, batches(seenWhole));
      const b = await runAttack(capped, x, n, anchors, batches(seenCapped));
      expect(new Set(seenWhole)).toEqual(new Set([5]));
      expect(new Set(seenCapped)).toEqual(new Set([2, 1]));
      expect(maxAbsDiff(a.adversarial, b.adversarial)).toBe(0);
      expect(Array.from(a.codes)).toEqual(Array.from(b.codes));
    } finally {
      whole.destroy();
      capped.destroy();
      tiny.destroy();
    }
  });
});

describe('runAttack', () => {
  it('attacks each query of a batch exactly as if alone', async () => {
    const net = new TinyNet(gpu, IMAGE);
    const n = 6;
    const x = queries(n, net.inputSize, 21);
    const anchors = randomCodes(n, net.bits, 22);
    const options: AttackOptions = {
      method: 'dhta',
      iterations: 30,
      randomStart: true,
      seed: 5,
      progressEvery: 0,
    };
    const batched = await runAttack(net, x, n, anchors, options);
    for (const q of [0, 3, 5]) {
      const alone = await runAttack(
        net,
        x.subarray(q * net.inputSize, (q + 1) * net.inputSize),
        1,
        anchors.subarray(q * net.bits, (q + 1) * net.bits),
        { ...options, queryIds: [q] },
      );
      const batchedRow = batched.adversarial.subarray(q * net.inputSize, (q + 1) * net.inputSize);
      expect(maxAbsDiff(alone.adversarial, batchedRow)).toBeLessThan(1e-6);
      expect(Array.from(alone.codes)).toEqual(
        Array.from(batched.codes.subarray(q * net.bits, (q + 1) * net.bits)),
      );
    }
    // Batches of 4 (6 = 4 + 2) give the same as one batch of 6.
    const split = await runAttack(net, x, n, anchors, { ...options, batch: 4 });
    expect(maxAbsDiff(split.adversarial, batched.adversarial)).toBeLessThan(1e-6);
    net.destroy();
  });

  it('pulls the codes onto the anchors and reports progress', async () => {
    const net = new TinyNet(gpu, { ...IMAGE, seed: 8 });
    const n = 4;
    const x = queries(n, net.inputSize, 31);
    const anchors = randomCodes(n, net.bits, 32);
    const before = (await net.encode(x, n)).codes;
    const seen: AttackProgress[] = [];
    const out = await runAttack(net, x, n, anchors, {
      method: 'dhta',
      iterations: 300,
      eps: 3,
      progressEvery: 50,
      onProgress: (p) => seen.push(p),
    });
    let dBefore = 0;
    let dAfter = 0;
    for (let q = 0; q < n; q++) {
      dBefore += hamming(before, anchors, q, net.bits);
      dAfter += hamming(out.codes, anchors, q, net.bits);
    }
    console.log(
      `tiny net, 4 queries x 12 bits: Hamming distance to the anchors ${dBefore} before, ${dAfter} after`,
    );
    expect(dBefore).toBeGreaterThan(8);
    expect(dAfter).toBeLessThan(dBefore / 2);
    expect(seen.map((p) => p.iteration)).toEqual([0, 50, 100, 150, 200, 250, 300]);
    expect(seen[0].meanDistance).toBeCloseTo(dBefore / n, 10);
    expect(seen[seen.length - 1].meanDistance).toBeCloseTo(dAfter / n, 10);
    expect(seen[seen.length - 1].queryIterationsPerSecond).toBeGreaterThan(0);
    // The features of each report are the batch's f(x + delta) then; the last report's are the result's.
    expect(seen.every((p) => p.features.length === n * net.bits)).toBe(true);
    expect(Array.from(seen[seen.length - 1].features)).toEqual(Array.from(out.features));
    net.destroy();
  });

  it('stops when the progress callback throws, and runs again afterwards', async () => {
    const net = new TinyNet(gpu, { ...IMAGE, seed: 8 });
    const x = queries(2, net.inputSize, 33);
    const anchors = randomCodes(2, net.bits, 34);
    const options = { method: 'dhta' as const, iterations: 40, eps: 3, progressEvery: 10 };
    const stop = new Error('stopped');
    const reached: number[] = [];
    await expect(
      runAttack(net, x, 2, anchors, {
        ...options,
        onProgress: (p) => {
          reached.push(p.iteration);
          if (p.iteration === 20) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect(reached).toEqual([0, 10, 20]);
    // The network is usable after a stop, and gives what an uninterrupted run gives.
    const a = await runAttack(net, x, 2, anchors, options);
    const b = await runAttack(net, x, 2, anchors, options);
    expect(Array.from(a.adversarial)).toEqual(Array.from(b.adversarial));
    net.destroy();
  });

  it('rejects bad input before any work', async () => {
    const net = new TinyNet(gpu, IMAGE);
    const x = queries(2, net.inputSize, 41);
    const anchors = randomCodes(2, net.bits, 42);
    // null: no anchors (an undefined argument would take the default).
    const run = (o: Partial<AttackOptions>, xs = x, a: Int8Array | null = anchors) =>
      runAttack(net, xs, 2, a ?? undefined, { method: 'dhta', iterations: 2, ...o });
    await expect(run({}, x.subarray(1))).rejects.toThrow(/expected 2 queries of 60 values/);
    const bad = x.slice();
    bad[70] = 1.5;
    await expect(run({}, bad)).rejects.toThrow(/pixels in \[0, 1\]; query 1 holds 1.5 at element 10/);
    bad[70] = Number.NaN;
    await expect(run({}, bad)).rejects.toThrow(/query 1 holds NaN/);
    await expect(run({}, x, anchors.subarray(2))).rejects.toThrow(/2 codes of 12 bits/);
    await expect(run({}, x, randomCodes(2, 16, 1))).rejects.toThrow(/16 bits per query/);
    await expect(run({}, x, new Int8Array(24))).rejects.toThrow(/±1 values, found 0/);
    await expect(run({}, x, null)).rejects.toThrow(/needs anchor codes/);
    await expect(run({ eps: 0 })).rejects.toThrow(/eps must be a finite number > 0/);
    await expect(run({ eps: -0.1 })).rejects.toThrow(/eps/);
    await expect(run({ iterations: 0 })).rejects.toThrow(/iterations must be a positive integer/);
    await expect(run({ method: 'pgd' as never })).rejects.toThrow(/method must be/);
    await expect(run({ alpha: -1 })).rejects.toThrow(/alpha/);
    // Noise and HAG need no anchors.
    await expect(run({ method: 'noise' }, x, null)).resolves.toBeDefined();
    net.destroy();
  });
});
