// The model presets: the paper's image threat model (VGG-11 hashing), a small CNN for 28x28 inputs and a
// frame CNN + LSTM for short grey-scale clips.
import { ModelError } from './errors.js';
import type { ImageModelSpec, LayerSpec, ModelSpec, VideoModelSpec } from './types.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
export const MNIST_MEAN = [0.1307];
export const MNIST_STD = [0.3081];

const conv = (out: number, kernel = 3, padding = 1): LayerSpec => ({
  type: 'conv2d',
  out,
  kernel,
  stride: 1,
  padding,
});
const relu: LayerSpec = { type: 'relu' };
const pool: LayerSpec = { type: 'maxpool2d', kernel: 2, stride: 2 };

/**
 * VGG-11 hashing (PROTOCOL.md, threat model): torchvision's vgg11 `features` (indices 0-20 here as there),
 * flatten, fc6 25088 -> 4096, ReLU, dropout 0.5, fc7 4096 -> 4096, ReLU, dropout 0.5, hash Linear(4096 ->
 * bits). Input 3x224x224 with ImageNet mean/std (torchvision's adaptive 7x7 average pool is the identity at
 * 224, so it is left out). Layer indices: fc6 = layers.22, fc7 = layers.25, hash = layers.28.
 */
export function vgg11(bits: number, options: { size?: number; widthDivisor?: number } = {}): ImageModelSpec {
  const size = options.size ?? 224;
  const d = options.widthDivisor ?? 1;
  const w = (c: number) => Math.max(1, Math.round(c / d));
  const layers: LayerSpec[] = [];
  for (const item of [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'] as const) {
    if (item === 'M') layers.push(pool);
    else layers.push(conv(w(item)), relu);
  }
  const fc = w(4096);
  layers.push(
    { type: 'flatten' },
    { type: 'linear', out: fc },
    relu,
    { type: 'dropout', p: 0.5 },
    { type: 'linear', out: fc },
    relu,
    { type: 'dropout', p: 0.5 },
    { type: 'linear', out: bits },
  );
  return {
    format: 'dhta-model/1',
    task: 'image',
    bits,
    input: { channels: 3, height: size, width: size, mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] },
    layers,
  };
}

/**
 * Small CNN for 28x28 inputs (the PyTorch peer of DESIGN.md): conv 32-64-128 (3x3, padding 1), each with
 * ReLU and 2x2 max-pool (28 -> 14 -> 7 -> 3), fc 512 + ReLU + dropout 0.5, hash Linear(512 -> bits).
 * Default normalisation: MNIST's mean/std (Fashion-MNIST: mean 0.2860, std 0.3530).
 */
export function smallCnn(
  bits: number,
  options: { channels?: number; size?: number; mean?: number[]; std?: number[] } = {},
): ImageModelSpec {
  const channels = options.channels ?? 1;
  const size = options.size ?? 28;
  return {
    format: 'dhta-model/1',
    task: 'image',
    bits,
    input: {
      channels,
      height: size,
      width: size,
      mean: options.mean ?? Array(channels).fill(MNIST_MEAN[0]),
      std: options.std ?? Array(channels).fill(MNIST_STD[0]),
    },
    layers: [
      conv(32),
      relu,
      pool,
      conv(64),
      relu,
      pool,
      conv(128),
      relu,
      pool,
      { type: 'flatten' },
      { type: 'linear', out: 512 },
      relu,
      { type: 'dropout', p: 0.5 },
      { type: 'linear', out: bits },
    ],
  };
}

/**
 * Video hashing for short grey-scale clips (the moving-items set: 1 channel, 32x32, 10 frames): a frame CNN
 * (conv 16-32 with ReLU and 2x2 pools, 32 -> 16 -> 8, then fc 128 + ReLU), an LSTM with 128 hidden units over
 * the frames (its last state pooled), and a hash head (dropout 0.2, Linear(128 -> bits)).
 * Why this shape: the moving-items classes differ only by motion. With a third conv + pool (a 4x4 grid of
 * 8-pixel cells) and the mean over time, training from scratch sat at the all-zero saddle of the pairwise
 * loss for epochs (MAP about 0.36 after 10 epochs of 1000 clips); the 8x8 grid keeps the 6-10 pixel paths
 * visible to the fc layer, and the last state keeps the order of frames (0.62 after the same 10 epochs).
 */
export function videoNet(
  bits: number,
  options: {
    frames?: number;
    channels?: number;
    size?: number;
    mean?: number[];
    std?: number[];
    hidden?: number;
    pool?: 'last' | 'mean';
  } = {},
): VideoModelSpec {
  const channels = options.channels ?? 1;
  const size = options.size ?? 32;
  return {
    format: 'dhta-model/1',
    task: 'video',
    bits,
    frames: options.frames ?? 10,
    input: {
      channels,
      height: size,
      width: size,
      mean: options.mean ?? Array(channels).fill(0.5),
      std: options.std ?? Array(channels).fill(0.5),
    },
    frame: [
      conv(16),
      relu,
      pool,
      conv(32),
      relu,
      pool,
      { type: 'flatten' },
      { type: 'linear', out: 128 },
      relu,
    ],
    lstm: { hidden: options.hidden ?? 128, pool: options.pool ?? 'last' },
    head: [
      { type: 'dropout', p: 0.2 },
      { type: 'linear', out: bits },
    ],
  };
}

export const PRESET_NAMES = ['vgg11', 'small-cnn', 'video'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** A preset by name ('vgg11', 'small-cnn', 'video') at a code length. */
export function preset(name: string, bits: number): ModelSpec {
  if (!Number.isInteger(bits) || bits < 1) {
    throw new ModelError('BAD_INPUT', `bits must be an integer >= 1, found ${bits}`);
  }
  switch (name) {
    case 'vgg11':
      return vgg11(bits);
    case 'small-cnn':
      return smallCnn(bits);
    case 'video':
      return videoNet(bits);
    default:
      throw new ModelError(
        'BAD_INPUT',
        `unknown preset "${name}"; expected one of ${PRESET_NAMES.join(', ')}`,
      );
  }
}
