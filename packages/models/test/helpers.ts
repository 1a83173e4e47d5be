import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGpu, type Gpu } from '@dhta/kernels';
import { afterAll, beforeAll } from 'vitest';
import { readSafetensors } from '../src/index.js';

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
