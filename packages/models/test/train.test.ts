import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '@dhta/kernels/reference';
import { WasmEngine } from '@dhta/kernels/wasm';
import { describe, expect, it } from 'vitest';
import {
  createNetwork,
  type ImageModelSpec,
  initWeights,
  learningRateAt,
  loadCheckpoint,
  resolveTrainOptions,
  type TrainingData,
  trainHashingNetwork,
} from '../src/index.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();

/** 3 classes of 1x8x8 images: a bright 3x3 block whose position is the class, plus noise. */
function toyData(n: number, seed: number): TrainingData {
  const rng = new SeededRandom(seed);
  const pixels = new Float32Array(n * 64);
  const labels = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    labels[i * 3 + c] = 1;
    for (let p = 0; p < 64; p++) pixels[i * 64 + p] = 0.2 * rng.next();
    for (let y = 1; y < 4; y++) for (let x = 1 + 2 * c; x < 4 + 2 * c; x++) pixels[i * 64 + y * 8 + x] = 0.9;
  }
  return {
    length: n,
    classes: 3,
    labels: () => labels,
    load: async (idx) => {
      const out = new Float32Array(idx.length * 64);
      for (const [k, j] of idx.entries()) out.set(pixels.subarray(j * 64, (j + 1) * 64), k * 64);
      return out;
    },
  };
}

const spec: ImageModelSpec = {
  format: 'dhta-model/1',
  task: 'image',
  bits: 8,
  input: { channels: 1, height: 8, width: 8, mean: [0.2], std: [0.3] },
  layers: [
    { type: 'conv2d', out: 4, kernel: 3, padding: 1 },
    { type: 'relu' },
    { type: 'maxpool2d', kernel: 2 },
    { type: 'flatten' },
    { type: 'linear', out: 16 },
    { type: 'relu' },
    { type: 'dropout', p: 0.1 },
    { type: 'linear', out: 8 },
  ],
};

describe('training', () => {
  it('resolves the paper defaults and the step schedule', () => {
    const image = resolveTrainOptions('image', { epochs: 8 });
    expect(image).toMatchObject({ batch: 24, lr: 0.01, momentum: 0.9, weightDecay: 5e-4, balance: true });
    const video = resolveTrainOptions('video', { epochs: 8 });
    expect(video).toMatchObject({ batch: 100, lr: 0.05, weightDecay: 1e-4, eta: 1e-4 });
    expect([0, 3, 4, 5, 6, 7].map((e) => learningRateAt(e, image))).toEqual([
      0.01,
      0.01,
      0.01 * 0.1,
      0.01 * 0.1,
      0.01 * 0.1 * 0.1,
      0.01 * 0.1 * 0.1,
    ]);
    expect(() => resolveTrainOptions('image', { epochs: 0 })).toThrow(/epochs must be a positive integer/);
    expect(() => resolveTrainOptions('image', { epochs: 1, lr: -1 })).toThrow(/lr must be/);
  });

  it('lowers the loss and separates the classes', async () => {
    const data = toyData(48, 1);
    const net = createNetwork(gpu(), spec, initWeights(spec, 2));
    const result = await trainHashingNetwork(net, data, {
      epochs: 12,
      batch: 8,
      lr: 0.5,
      seed: 3,
      milestones: [0.75],
    });
    expect(result.losses).toHaveLength(12);
    expect(result.losses[11]).toBeLessThan(result.losses[0] * 0.8);
    // Codes of the same class agree more than codes of different classes.
    const { codes } = await net.encode(await data.load(Array.from({ length: 48 }, (_, i) => i)), 48);
    let same = 0;
    let diff = 0;
    let nSame = 0;
    let nDiff = 0;
    for (let i = 0; i < 48; i++) {
      for (let j = i + 1; j < 48; j++) {
        let d = 0;
        for (let k = 0; k < 8; k++) if (codes[i * 8 + k] !== codes[j * 8 + k]) d++;
        if (i % 3 === j % 3) {
          same += d;
          nSame++;
        } else {
          diff += d;
          nDiff++;
        }
      }
    }
    expect(same / nSame + 2).toBeLessThan(diff / nDiff);
    net.destroy();
  });

  it('releases its engine tensors (momentum, the bank) when the bank cannot be allocated or a checkpoint is refused', async () => {
    const engine = await WasmEngine.create({ threads: 1 });
    const net = createNetwork(engine, spec, initWeights(spec, 2), { ownEngine: true });
    const data = toyData(12, 1);
    net.gradients(); // the network's own gradient buffers (kept until it is destroyed)
    const before = engine.memoryBytesLeft;
    // The bank's labels ([N, classes]) are the one tensor of that shape: refuse it once.
    const tensor = engine.tensor.bind(engine);
    engine.tensor = (shape, values) => {
      if (shape.length === 2 && shape[0] === 12 && shape[1] === 3)
        throw new Error('no memory for the labels');
      return tensor(shape, values);
    };
    await expect(trainHashingNetwork(net, data, { epochs: 1, batch: 4, lr: 0.1, seed: 1 })).rejects.toThrow(
      /no memory for the labels/,
    );
    expect(engine.memoryBytesLeft, 'momentum and the bank codes released').toBe(before);
    engine.tensor = tensor;
    // A checkpoint of another training set is refused after the momentum buffers exist.
    const dir = mkdtempSync(join(tmpdir(), 'dhta-train-'));
    await trainHashingNetwork(net, toyData(6, 2), {
      epochs: 2,
      batch: 3,
      lr: 0.1,
      seed: 1,
      checkpointDir: join(dir, 'ck'),
      stopAfterEpochs: 1,
    });
    const held = engine.memoryBytesLeft;
    await expect(
      trainHashingNetwork(net, data, {
        epochs: 2,
        batch: 3,
        lr: 0.1,
        seed: 1,
        checkpointDir: join(dir, 'ck'),
        resume: true,
      }),
    ).rejects.toThrow(/memory bank does not match/);
    expect(engine.memoryBytesLeft, 'momentum released after the refused checkpoint').toBe(held);
    net.destroy();
  });

  it('resumes from a checkpoint exactly where an uninterrupted run would be', async () => {
    const data = toyData(30, 4);
    const dir = mkdtempSync(join(tmpdir(), 'dhta-train-'));
    const options = { batch: 10, lr: 0.3, seed: 5 };
    const straight = createNetwork(gpu(), spec, initWeights(spec, 6));
    const a = await trainHashingNetwork(straight, data, { ...options, epochs: 3 });
    const first = createNetwork(gpu(), spec, initWeights(spec, 6));
    await trainHashingNetwork(first, data, {
      ...options,
      epochs: 3,
      checkpointDir: join(dir, 'ck'),
      stopAfterEpochs: 2,
    });
    expect(existsSync(join(dir, 'ck', 'state.json'))).toBe(true);
    const ckpt = await loadCheckpoint(join(dir, 'ck'));
    expect(ckpt?.state.epoch).toBe(2);
    // A fresh network (other initial weights: the checkpoint's must win) resumes for the last epoch.
    const resumed = createNetwork(gpu(), spec, initWeights(spec, 99));
    const b = await trainHashingNetwork(resumed, data, {
      ...options,
      epochs: 3,
      checkpointDir: join(dir, 'ck'),
      resume: true,
    });
    expect(b.resumedFrom).toBe(2);
    expect(b.losses).toHaveLength(3);
    expect(b.losses[2]).toBeCloseTo(a.losses[2], 5);
    const wa = await straight.readWeights();
    const wb = await resumed.readWeights();
    for (const [name, t] of wa) {
      const u = wb.get(name)?.data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t.data[i] - u[i]));
      expect(maxDiff, name).toBeLessThan(1e-5);
    }
    for (const n of [straight, first, resumed]) n.destroy();
  });
});
