// The model bundle's description (model.json) and the interface every hashing network offers to training,
// encoding and the attacks. Other packages (attack, cli) program against these types only.

import type { Engine, EngineTensor as Tensor } from '@dhta/kernels';

export type LayerSpec =
  | { type: 'conv2d'; out: number; kernel: number; stride?: number; padding?: number }
  | { type: 'relu' }
  | { type: 'maxpool2d'; kernel: number; stride?: number }
  | { type: 'flatten' }
  | { type: 'linear'; out: number }
  | { type: 'dropout'; p: number };

/** One image (or one video frame) as the model takes it: pixels in [0, 1], normalised by the model. */
export interface InputSpec {
  channels: number;
  height: number;
  width: number;
  /** Per channel; the model computes (x - mean[c]) / std[c] before its first layer. */
  mean: number[];
  std: number[];
}

export interface ImageModelSpec {
  format: 'dhta-model/1';
  task: 'image';
  bits: number;
  input: InputSpec;
  layers: LayerSpec[];
  /** Free-form provenance (data set, split, epochs, seed, clean MAP...), kept as is. */
  card?: Record<string, unknown>;
}

export interface VideoModelSpec {
  format: 'dhta-model/1';
  task: 'video';
  bits: number;
  frames: number;
  input: InputSpec;
  frame: LayerSpec[];
  lstm: { hidden: number; pool: 'last' | 'mean' };
  head: LayerSpec[];
  card?: Record<string, unknown>;
}

export type ModelSpec = ImageModelSpec | VideoModelSpec;

/** Named weights in PyTorch's layouts (conv [out, in, kh, kw], linear [out, in]), float32. */
export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}
export type Weights = Map<string, WeightTensor>;

/** What a forward pass keeps for its backward pass; release it when done. */
export interface Tape {
  release(): void;
}

export interface ForwardOptions {
  /** Training mode: dropout active (needs `seed`). Default false (evaluation mode). */
  train?: boolean;
  /** Seed of this pass's dropout masks (counter-based, so a pass is reproducible). */
  seed?: number;
  /** Keep what the backward pass needs (default false). */
  tape?: boolean;
}

export interface ForwardResult {
  /** f(x): [n, bits], the real-valued hash-layer output (no tanh). */
  output: Tensor;
  /** Present when `tape: true` was asked for. */
  tape?: Tape;
}

export interface BackwardOptions {
  /** Compute d/dx of the normalised input (default true). */
  input?: boolean;
  /** Compute weight gradients (default false); they are accumulated into `gradients()` tensors. */
  weights?: boolean;
}

/**
 * A hashing network resident on an engine (WebGPU or the WebAssembly CPU engine). Inputs are tensors of n
 * objects, each `inputSize` floats laid out as [C, H, W] (image) or [T, C, H, W] (video).
 */
export interface HashingNetwork {
  readonly engine: Engine;
  /** The most objects one forward + backward round may hold on this engine. */
  readonly maxBatch: number;
  readonly spec: ModelSpec;
  readonly bits: number;
  /** Floats per object: C*H*W, or T*C*H*W for video. */
  readonly inputSize: number;
  /**
   * Channels, and elements per channel plane (H*W) of one object, for per-channel ops: element j of an object
   * belongs to channel floor(j / planeSize) % channels, for images [C, H, W] and videos [T, C, H, W] alike.
   */
  readonly channels: number;
  readonly planeSize: number;

  /** (x - mean) / std per channel, pixels [n, inputSize] -> a new normalised tensor. */
  normalize(pixels: Tensor, n: number): Tensor;
  /** f(x) of inputs already normalised, [n, inputSize] -> [n, bits]. */
  forward(normalized: Tensor, n: number, options?: ForwardOptions): ForwardResult;
  /**
   * Back-propagates gradOutput = dL/df [n, bits] through a taped forward pass. Returns dL/d(normalised
   * input) [n, inputSize] when asked (the caller releases it); weight gradients accumulate into
   * `gradients()`. The tape stays valid (release it separately).
   */
  backward(tape: Tape, gradOutput: Tensor, options?: BackwardOptions): Tensor | undefined;

  /** Trainable parameters on the engine, by PyTorch name, and their gradient accumulators (same names). */
  parameters(): Map<string, Tensor>;
  gradients(): Map<string, Tensor>;
  zeroGradients(): void;

  /** Encodes pixels [n, inputSize] in [0, 1] in chunks that fit the device: f(x) and codes sign(f(x)) (sign(0) = +1). */
  encode(
    pixels: Float32Array,
    n: number,
    options?: { batch?: number; onProgress?: (done: number, total: number) => void },
  ): Promise<{ features: Float32Array; codes: Int8Array }>;

  /** Reads the current weights back (for saving). */
  readWeights(): Promise<Weights>;
  destroy(): void;
}
