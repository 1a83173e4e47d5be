import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGpu, type Gpu } from '@dhta/kernels';
import { afterAll, beforeAll } from 'vitest';
import { type ModelSpec, readSafetensors } from '../src/index.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'parity');

/** One poisoned, error-checked GPU context per test file. */
export function useGpu(): () => Gpu {
  let gpu: Gpu | null = null;
  beforeAll(async () => {
    gpu = await createGpu({ checkErrors: true, poison: true });
  });
  afterAll(() => gpu?.destroy());
  return () => {
    if (!gpu) throw new Error('GPU not initialised');
    return gpu;
  };
}

/** Normwise relative error max|a - e| / max|e|; NaN anywhere is Infinity. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]) || !Number.isFinite(expected[i])) return Number.POSITIVE_INFINITY;
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

/** A case's data.safetensors (x, f, anchor, grad_input, r, grad.<name>) and metadata. */
export function readCaseData(name: string) {
  const { weights, metadata } = readSafetensors(readFileSync(join(FIXTURES, name, 'data.safetensors')));
  const get = (k: string) => {
    const t = weights.get(k);
    if (!t) throw new Error(`fixture ${name}: no tensor ${k}`);
    return t;
  };
  return { tensors: weights, get, alpha: Number(metadata['alpha']), n: Number(metadata['n']) };
}

/**
 * A small network with the tails that batch-dependent arithmetic hid in: planes of 143, 30 and 9 pixels (not
 * multiples of 4 or 8, so that an image's im2col columns start mid-panel at most places in a batch), a
 * stride-2 conv (the general conv kernels), and linear layers of 2561 and 40 units (widths and reductions
 * that are not multiples of 4: the generic GEMM, its column tails, and reductions long enough for split-K).
 */
export function tailNet(): ModelSpec {
  return {
    format: 'dhta-model/1',
    task: 'image',
    bits: 12,
    input: { channels: 3, height: 13, width: 11, mean: [0.5, 0.4, 0.3], std: [0.3, 0.2, 0.25] },
    layers: [
      { type: 'conv2d', out: 4, kernel: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernel: 2 },
      { type: 'conv2d', out: 6, kernel: 3, padding: 1 },
      { type: 'relu' },
      { type: 'conv2d', out: 8, kernel: 3, stride: 2, padding: 1 },
      { type: 'relu' },
      { type: 'flatten' },
      { type: 'linear', out: 2561 },
      { type: 'relu' },
      { type: 'linear', out: 40 },
      { type: 'relu' },
      { type: 'linear', out: 12 },
    ],
  };
}
