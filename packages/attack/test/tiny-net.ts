// A tiny hashing network for the attack tests: f = W2 relu(W1 xn + b1) + b2 over the flattened object, on the
// engine's ops (WebGPU or WebAssembly) through @dhta/kernels and in float64 through @dhta/kernels/reference. Small enough to run thousands of
// attack iterations in a test, with per-channel normalisation and either an image or a video layout.

import { type Engine, Gpu, type EngineTensor as Tensor, WebGpuEngine } from '@dhta/kernels';
import {
  linearBackwardInput as refLinearBackwardInput,
  linearForward as refLinearForward,
  relu as refRelu,
  reluBackward as refReluBackward,
  SeededRandom,
} from '@dhta/kernels/reference';
import { WasmEngine } from '@dhta/kernels/wasm';
import {
  createNetwork,
  type ForwardResult,
  type HashingNetwork,
  type ModelSpec,
  type Network,
  type Tape,
  type Weights,
} from '@dhta/models';
import type { ReferenceModel } from '../src/reference.js';

export interface TinyNetOptions {
  channels: number;
  height: number;
  width: number;
  frames?: number;
  hidden: number;
  bits: number;
  seed: number;
}

export class TinyNet implements HashingNetwork {
  readonly spec: ModelSpec;
  readonly bits: number;
  readonly inputSize: number;
  readonly channels: number;
  readonly planeSize: number;
  readonly w1: Float64Array;
  readonly b1: Float64Array;
  readonly w2: Float64Array;
  readonly b2: Float64Array;
  readonly engine: Engine;
  readonly maxBatch = 1 << 20;
  private readonly t: Record<'w1' | 'b1' | 'w2' | 'b2' | 'diag' | 'shift', Tensor>;

  constructor(
    engine: Engine | Gpu,
    readonly o: TinyNetOptions,
  ) {
    this.engine = engine instanceof Gpu ? new WebGpuEngine(engine) : engine;
    const e = this.engine;
    const mean = [0.485, 0.456, 0.406, 0.5].slice(0, o.channels);
    const std = [0.229, 0.224, 0.225, 0.25].slice(0, o.channels);
    const input = { channels: o.channels, height: o.height, width: o.width, mean, std };
    this.spec = o.frames
      ? {
          format: 'dhta-model/1',
          task: 'video',
          bits: o.bits,
          frames: o.frames,
          input,
          frame: [],
          lstm: { hidden: 1, pool: 'last' },
          head: [],
        }
      : { format: 'dhta-model/1', task: 'image', bits: o.bits, input, layers: [] };
    this.bits = o.bits;
    this.channels = o.channels;
    this.planeSize = o.height * o.width;
    this.inputSize = (o.frames ?? 1) * o.channels * this.planeSize;
    const rng = new SeededRandom(o.seed);
    const d = this.inputSize;
    this.w1 = rng.uniformArray(o.hidden * d, -1 / Math.sqrt(d), 1 / Math.sqrt(d));
    this.b1 = rng.uniformArray(o.hidden, -0.1, 0.1);
    this.w2 = rng.uniformArray(o.bits * o.hidden, -1 / Math.sqrt(o.hidden), 1 / Math.sqrt(o.hidden));
    this.b2 = rng.uniformArray(o.bits, -0.05, 0.05);
    // Normalisation as a linear layer with a diagonal weight: xn = x diag(1/std) - mean/std.
    const diag = new Float32Array(d * d);
    const shift = new Float32Array(d);
    for (let j = 0; j < d; j++) {
      const c = Math.floor(j / this.planeSize) % o.channels;
      diag[j * d + j] = 1 / std[c];
      shift[j] = -mean[c] / std[c];
    }
    this.t = {
      w1: e.tensor([o.hidden, d], Float32Array.from(this.w1)),
      b1: e.tensor([o.hidden], Float32Array.from(this.b1)),
      w2: e.tensor([o.bits, o.hidden], Float32Array.from(this.w2)),
      b2: e.tensor([o.bits], Float32Array.from(this.b2)),
      diag: e.tensor([d, d], diag),
      shift: e.tensor([d], shift),
    };
  }

  /** y = x W^T + b for W [out, in] (PyTorch's Linear). */
  private linear(x: Tensor, n: number, w: Tensor, b: Tensor, relu = false): Tensor {
    const [out, inp] = w.shape;
    return this.engine.matmul(x, w, n, inp, out, { transB: true, bias: b, relu });
  }

  /** dx = dy W for W [out, in]. */
  private linearBackwardInput(dy: Tensor, n: number, w: Tensor): Tensor {
    const [out, inp] = w.shape;
    return this.engine.matmul(dy, w, n, out, inp);
  }

  normalize(pixels: Tensor, n: number): Tensor {
    return this.linear(pixels.reshape([n, this.inputSize]), n, this.t.diag, this.t.shift);
  }

  forward(normalized: Tensor, n: number, options: { tape?: boolean } = {}): ForwardResult {
    const x = normalized.reshape([n, this.inputSize]);
    const h = this.linear(x, n, this.t.w1, this.t.b1, true);
    const output = this.linear(h, n, this.t.w2, this.t.b2);
    if (!options.tape) {
      h.release();
      return { output };
    }
    const tape: Tape & { h: Tensor } = { h, release: () => h.release() };
    return { output, tape };
  }

  backward(tape: Tape, gradOutput: Tensor): Tensor {
    const { h } = tape as Tape & { h: Tensor };
    const n = gradOutput.size / this.bits;
    const dh = this.linearBackwardInput(gradOutput, n, this.t.w2);
    const dPre = this.engine.reluBackward(dh, h);
    const dx = this.linearBackwardInput(dPre, n, this.t.w1);
    dh.release();
    dPre.release();
    return dx;
  }

  parameters(): Map<string, Tensor> {
    return new Map();
  }
  gradients(): Map<string, Tensor> {
    return new Map();
  }
  zeroGradients(): void {}

  async encode(pixels: Float32Array, n: number): Promise<{ features: Float32Array; codes: Int8Array }> {
    const x = this.engine.tensor([n, this.inputSize], pixels);
    const xn = this.normalize(x, n);
    const { output } = this.forward(xn, n);
    const features = await this.engine.read(output);
    for (const t of [x, xn, output]) t.release();
    return { features, codes: Int8Array.from(features, (v) => (v >= 0 ? 1 : -1)) };
  }

  async readWeights(): Promise<Weights> {
    return new Map();
  }
  destroy(): void {
    for (const t of Object.values(this.t)) t.release();
  }

  /** The same network in float64. */
  reference(): ReferenceModel {
    const { hidden, bits } = this.o;
    const d = this.inputSize;
    return {
      inputSize: d,
      bits,
      channels: this.channels,
      planeSize: this.planeSize,
      mean: this.spec.input.mean,
      std: this.spec.input.std,
      forward: (xn, n) => {
        const pre = refLinearForward(xn, [n, d], this.w1, [hidden, d], this.b1);
        const h = refRelu(pre);
        const f = refLinearForward(h, [n, hidden], this.w2, [bits, hidden], this.b2);
        return {
          f,
          backward: (dLdf) => {
            const dh = refReluBackward(refLinearBackwardInput(dLdf, [n, bits], this.w2, [bits, hidden]), h);
            return refLinearBackwardInput(dh, [n, hidden], this.w1, [hidden, d]);
          },
        };
      },
    };
  }
}

/** A model on a WebAssembly engine of its own (destroyed with the network). */
export async function cpuNetwork(
  spec: ModelSpec,
  weights: Weights,
  o: { threads?: number; maxBatch?: number } = {},
): Promise<Network> {
  const engine = await WasmEngine.create({ threads: o.threads });
  return createNetwork(engine, spec, weights, { maxBatch: o.maxBatch, ownEngine: true });
}
