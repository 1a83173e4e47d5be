// An image hashing network on the WebAssembly CPU engine (@dhta/kernels/wasm): inference and the input
// gradient, which is what the attacks need, for hosts without a GPU where the software Vulkan driver is the
// bottleneck. Same layers, weights and float32 arithmetic as Network (up to summation order); training stays
// on the WebGPU network. Video models (LSTM) are not supported here.
import {
  type ConvGeometry,
  conv2dBackwardInputCpu,
  conv2dForwardCpu,
  convGeometry,
  MAX_MEMORY_BYTES,
  matmulPackedCpu,
  maxPool2dBackwardCpu,
  maxPool2dCpu,
  type PackedMatrix,
  packConvBackwardInput,
  packConvForward,
  packLinearBackwardInput,
  packLinearForward,
  type Region,
  reluBackwardCpu,
  reluCpu,
  WasmCpu,
} from '@dhta/kernels/wasm';
import { ModelError } from './errors.js';
import { inferShapes, inputSizeOf, validateWeights } from './spec.js';
import type { ModelSpec, Weights, WeightTensor } from './types.js';

type CpuStep =
  | {
      kind: 'conv';
      in: number[];
      out: number[];
      relu: boolean;
      geometry: (n: number) => ConvGeometry;
      fwd: PackedMatrix;
      bwd: PackedMatrix;
      bias: Region;
    }
  | {
      kind: 'linear';
      in: number[];
      out: number[];
      relu: boolean;
      fwd: PackedMatrix;
      bwd: PackedMatrix;
      bias: Region;
    }
  | { kind: 'relu'; in: number[]; out: number[] }
  | { kind: 'pool'; in: number[]; out: number[]; kernel: number; stride: number }
  | { kind: 'identity'; in: number[]; out: number[] };

/** The activations of one forward pass (regions of the engine's stack), for its backward pass. */
export interface CpuTape {
  readonly n: number;
  /** Per step: its input and output, and a pool's argmax. */
  readonly saved: Array<{ input: Region; output: Region; argmax?: Region }>;
}

export interface CpuNetworkOptions {
  /** Threads of the engine, 1 to 16 (default: the logical CPUs, at most 16). */
  threads?: number;
  /** A lower cap for maxBatch than the engine's memory allows. */
  maxBatch?: number;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class CpuImageNetwork {
  readonly spec: ModelSpec;
  readonly bits: number;
  readonly inputSize: number;
  readonly channels: number;
  readonly planeSize: number;
  readonly cpu: WasmCpu;
  private readonly steps: CpuStep[];
  /** The stack position after the weights: everything above it belongs to one forward/backward round. */
  private readonly base: number;
  private destroyed = false;

  private constructor(cpu: WasmCpu, spec: ModelSpec, weights: Weights, maxBatch?: number) {
    this.cpu = cpu;
    this.spec = spec;
    this.bits = spec.bits;
    this.inputSize = inputSizeOf(spec);
    this.channels = spec.input.channels;
    this.planeSize = spec.input.height * spec.input.width;
    this.steps = this.compile(weights);
    this.base = cpu.mark();
    // What one object costs on the stack during a forward + backward round: its activations (the tape) and
    // their gradients, plus the largest conv scratch (im2col panels and the GEMM output, either direction).
    let activations = this.inputSize;
    let scratch = 0;
    for (const s of this.steps) {
      if (s.kind === 'identity') continue;
      activations += product(s.out);
      if (s.kind === 'conv') {
        const g = s.geometry(1);
        const P = g.OH * g.OW;
        const K = g.C * g.KH * g.KW;
        scratch = Math.max(scratch, (K + Math.max(K, g.O) + g.O + 8) * P);
      }
    }
    const perObject = 4 * (2 * activations + scratch);
    const budget = MAX_MEMORY_BYTES - this.base - 64 * 2 ** 20;
    this.maxBatch = Math.max(
      1,
      Math.min(maxBatch ?? Number.POSITIVE_INFINITY, Math.floor(budget / perObject)),
    );
  }

  /**
   * The most objects per forward/backward round that fit the engine's memory (2 GiB, weights included): a
   * few for VGG-11 at 224x224, thousands for the small CNN. runAttack and encode cap their batches here.
   */
  readonly maxBatch: number;

  /** Checks the spec and weights, starts the engine and packs the weights for it. */
  static async create(
    spec: ModelSpec,
    weights: Weights,
    options: CpuNetworkOptions = {},
  ): Promise<CpuImageNetwork> {
    if (spec.task !== 'image') {
      throw new ModelError(
        'BAD_INPUT',
        `the WebAssembly CPU engine runs image models only (conv, linear, ReLU, max-pool, flatten, dropout); this is a ${spec.task} model: use the WebGPU backend`,
      );
    }
    validateWeights(spec, weights);
    if (options.maxBatch !== undefined && (!Number.isInteger(options.maxBatch) || options.maxBatch < 1)) {
      throw new ModelError('BAD_INPUT', `maxBatch must be an integer >= 1, found ${options.maxBatch}`);
    }
    const cpu = await WasmCpu.create({ threads: options.threads });
    try {
      return new CpuImageNetwork(cpu, spec, weights, options.maxBatch);
    } catch (e) {
      cpu.destroy();
      throw e;
    }
  }

  private compile(weights: Weights): CpuStep[] {
    const cpu = this.cpu;
    const infos = inferShapes(this.spec).layers;
    const steps: CpuStep[] = [];
    for (let i = 0; i < infos.length; i++) {
      const { layer, name, input, output } = infos[i];
      const fuse = infos[i + 1]?.layer.type === 'relu';
      const get = (suffix: string) => weights.get(`${name}.${suffix}`) as WeightTensor;
      switch (layer.type) {
        case 'conv2d': {
          const w = get('weight');
          const [O, C, KH, KW] = w.shape;
          const stride = layer.stride ?? 1;
          const padding = layer.padding ?? 0;
          steps.push({
            kind: 'conv',
            in: input,
            out: output,
            relu: fuse,
            geometry: (n) => convGeometry([n, C, input[1], input[2]], O, KH, KW, stride, padding),
            fwd: packConvForward(cpu, w.data, O, C * KH * KW),
            bwd: packConvBackwardInput(cpu, w.data, O, C * KH * KW),
            bias: cpu.upload(get('bias').data),
          });
          if (fuse) i++;
          break;
        }
        case 'linear': {
          const w = get('weight');
          const [Out, In] = w.shape;
          steps.push({
            kind: 'linear',
            in: input,
            out: output,
            relu: fuse,
            fwd: packLinearForward(cpu, w.data, Out, In),
            bwd: packLinearBackwardInput(cpu, w.data, Out, In),
            bias: cpu.upload(get('bias').data),
          });
          if (fuse) i++;
          break;
        }
        case 'relu':
          steps.push({ kind: 'relu', in: input, out: output });
          break;
        case 'maxpool2d':
          steps.push({
            kind: 'pool',
            in: input,
            out: output,
            kernel: layer.kernel,
            stride: layer.stride ?? layer.kernel,
          });
          break;
        case 'flatten':
        case 'dropout': // inference: the identity
          steps.push({ kind: 'identity', in: input, out: output });
          break;
      }
    }
    return steps;
  }

  private assertLive(): void {
    if (this.destroyed) throw new ModelError('BAD_INPUT', 'this network was destroyed; create a new one');
  }

  /** Frees every activation and gradient of earlier rounds (regions and tapes from before become invalid). */
  resetStack(): void {
    this.assertLive();
    this.cpu.reset(this.base);
  }

  /** (x - mean) / std per channel, as the WebGPU network computes it (x * (1/std) + (-mean/std) in float32). */
  normalize(pixels: Float32Array, n: number): Float32Array {
    this.assertLive();
    if (!Number.isInteger(n) || n < 1 || pixels.length !== n * this.inputSize) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `normalize: expected ${n} objects of ${this.inputSize} floats, found ${pixels.length} floats`,
      );
    }
    const { mean, std } = this.spec.input;
    const scale = std.map((s) => Math.fround(1 / s));
    const shift = mean.map((m, c) => Math.fround(-m / std[c]));
    const out = new Float32Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) {
      const c = Math.floor((i % this.inputSize) / this.planeSize) % this.channels;
      out[i] = Math.fround(pixels[i] * scale[c]) + shift[c];
    }
    return out;
  }

  /** f(x) [n, bits] of normalised inputs (a region of n x inputSize floats on the engine's stack). */
  forward(x: Region, n: number, options: { tape?: boolean } = {}): { output: Region; tape?: CpuTape } {
    this.assertLive();
    if (!Number.isInteger(n) || n < 1 || x.floats !== n * this.inputSize) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `forward: expected ${n} objects of ${this.inputSize} floats, found ${x.floats}`,
      );
    }
    const cpu = this.cpu;
    const saved: CpuTape['saved'] = [];
    let cur = x;
    for (const s of this.steps) {
      let y: Region;
      let argmax: Region | undefined;
      switch (s.kind) {
        case 'conv':
          y = conv2dForwardCpu(cpu, cur, s.geometry(n), s.fwd, s.bias, s.relu);
          break;
        case 'linear':
          y = matmulPackedCpu(cpu, cur, n, s.fwd, s.bias, s.relu);
          break;
        case 'relu':
          y = reluCpu(cpu, cur);
          break;
        case 'pool': {
          const r = maxPool2dCpu(cpu, cur, [n, ...s.in], s.kernel, s.stride);
          y = r.y;
          argmax = r.argmax;
          break;
        }
        case 'identity':
          y = cur;
          break;
      }
      saved.push({ input: cur, output: y, argmax });
      cur = y;
    }
    return { output: cur, tape: options.tape ? { n, saved } : undefined };
  }

  /** dL/d(normalised input) [n, inputSize] from dL/df [n, bits], through a taped forward pass. */
  backward(tape: CpuTape, gradOutput: Region): Region {
    this.assertLive();
    const { n, saved } = tape;
    if (gradOutput.floats !== n * this.bits) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `backward: expected ${n} x ${this.bits} gradients, found ${gradOutput.floats}`,
      );
    }
    const cpu = this.cpu;
    let d = gradOutput;
    // A pool right after a conv with a fused ReLU applies that ReLU's backward itself (y > 0 gates dy).
    let reluDoneAt = -1;
    for (let i = this.steps.length - 1; i >= 0; i--) {
      const s = this.steps[i];
      const { output, argmax } = saved[i];
      switch (s.kind) {
        case 'identity':
          break;
        case 'relu':
          d = reluBackwardCpu(cpu, d, output);
          break;
        case 'pool': {
          const prev = this.steps[i - 1];
          const fuse = prev?.kind === 'conv' && prev.relu;
          d = maxPool2dBackwardCpu(
            cpu,
            d,
            argmax as Region,
            [n, ...s.out],
            [n, ...s.in],
            fuse ? output : undefined,
          );
          if (fuse) reluDoneAt = i - 1;
          break;
        }
        case 'conv': {
          if (s.relu && reluDoneAt !== i) d = reluBackwardCpu(cpu, d, output);
          d = conv2dBackwardInputCpu(cpu, d, s.geometry(n), s.bwd);
          break;
        }
        case 'linear':
          if (s.relu) d = reluBackwardCpu(cpu, d, output);
          d = matmulPackedCpu(cpu, d, n, s.bwd, null, false);
          break;
      }
    }
    return d;
  }

  /** f(x) and codes sign(f(x)) (sign(0) = +1) of pixels [n, inputSize] in [0, 1], in batches. */
  encode(
    pixels: Float32Array,
    n: number,
    options: { batch?: number; onProgress?: (done: number, total: number) => void } = {},
  ): { features: Float32Array; codes: Int8Array } {
    this.assertLive();
    if (options.batch !== undefined && (!Number.isInteger(options.batch) || options.batch < 1)) {
      throw new ModelError('BAD_INPUT', `encode: batch must be an integer >= 1, found ${options.batch}`);
    }
    const batch = Math.min(options.batch ?? 256, this.maxBatch);
    const features = new Float32Array(n * this.bits);
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      this.resetStack();
      const x = this.cpu.upload(
        this.normalize(pixels.subarray(start * this.inputSize, (start + m) * this.inputSize), m),
      );
      features.set(this.cpu.read(this.forward(x, m).output), start * this.bits);
      options.onProgress?.(start + m, n);
    }
    this.resetStack();
    return { features, codes: Int8Array.from(features, (v) => (v < 0 ? -1 : 1)) };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.cpu.destroy();
  }
}
