// The WebGPU engine: the Engine op set (../engine.ts) on the WGSL kernels of ../ops, one call each.
import type {
  Engine,
  EngineAttackProjectOptions,
  EngineConvOptions,
  EngineDType,
  EngineLstmForward,
  EngineLstmGradients,
  EngineLstmWeights,
  EngineMatmulOptions,
  EngineTensor,
} from '../engine.js';
import { KernelError } from '../errors.js';
import { channelAffine } from '../ops/channel.js';
import { conv2d, conv2dBackwardInput, conv2dBackwardWeight } from '../ops/conv2d.js';
import { dropout, dropoutBackward } from '../ops/dropout.js';
import { type LstmForwardTensors, type LstmWeightTensors, lstmBackward, lstmForward } from '../ops/lstm.js';
import { type MatmulOptions, matmul } from '../ops/matmul.js';
import { pairwiseTerms } from '../ops/pairwise.js';
import { maxPool2d, maxPool2dBackward } from '../ops/pool.js';
import { sumChannels } from '../ops/reduce.js';
import { relu, reluBackward } from '../ops/relu.js';
import { tanhScaled, tanhScaledBackward } from '../ops/tanh.js';
import { attackProject, attackStep, attackStepProject, axpy, sgdMomentumStep } from '../ops/training.js';
import type { Gpu } from './context.js';
import { Tensor } from './tensor.js';

export class WebGpuEngine implements Engine {
  readonly kind = 'webgpu' as const;
  readonly gpu: Gpu;

  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  get software(): boolean {
    return this.gpu.adapter.isSoftware;
  }

  get description(): string {
    const a = this.gpu.adapter;
    return `WebGPU on ${a.description || a.vendor || 'an adapter'}${a.isSoftware ? ' (software)' : ''}`;
  }

  get maxTensorBytes(): number {
    return this.gpu.limits['maxStorageBufferBindingSize'] ?? 134217728;
  }

  readonly memoryBytesLeft = Number.POSITIVE_INFINITY;

  /** The GPU tensor behind an engine tensor (one of this engine's). */
  private t(x: EngineTensor, op: string): Tensor {
    if (!(x instanceof Tensor) || x.gpu !== this.gpu) {
      throw new KernelError(
        'BAD_ARGUMENT',
        `${op}: a tensor of another engine was given to the WebGPU engine`,
      );
    }
    return x;
  }

  private opt(x: EngineTensor | null | undefined, op: string): Tensor | undefined {
    return x ? this.t(x, op) : undefined;
  }

  tensor(shape: readonly number[], data: Float32Array): Tensor {
    return this.gpu.tensor(shape, data);
  }
  empty(shape: readonly number[], dtype: EngineDType = 'f32'): Tensor {
    return this.gpu.empty(shape, dtype);
  }
  zeros(shape: readonly number[], dtype: EngineDType = 'f32'): Tensor {
    return this.gpu.zeros(shape, dtype);
  }
  fill(t: EngineTensor, value: 0): void {
    this.gpu.fill(this.t(t, 'fill'), value);
  }
  write(t: EngineTensor, data: Float32Array): void {
    this.gpu.write(this.t(t, 'write'), data);
  }
  copy(src: EngineTensor, dst: EngineTensor): void {
    this.gpu.copy(this.t(src, 'copy'), this.t(dst, 'copy'));
  }
  async read(t: EngineTensor): Promise<Float32Array> {
    return this.gpu.readF32(this.t(t, 'read'));
  }

  channelAffine(
    x: EngineTensor,
    o: {
      channels: number;
      planeSize: number;
      scale: readonly number[];
      shift: readonly number[];
      out?: EngineTensor;
    },
  ): Tensor {
    const op = 'channelAffine';
    return channelAffine(this.gpu, this.t(x, op), { ...o, out: this.opt(o.out, op) });
  }

  conv2d(
    x: EngineTensor,
    w: EngineTensor,
    bias: EngineTensor | null,
    o: EngineConvOptions & { relu?: boolean; out?: EngineTensor } = {},
  ): Tensor {
    const op = 'conv2d';
    return conv2d(this.gpu, this.t(x, op), this.t(w, op), bias ? this.t(bias, op) : null, {
      ...o,
      out: this.opt(o.out, op),
    });
  }

  conv2dBackwardInput(
    dy: EngineTensor,
    w: EngineTensor,
    xShape: readonly number[],
    o: EngineConvOptions & { out?: EngineTensor } = {},
  ): Tensor {
    const op = 'conv2dBackwardInput';
    return conv2dBackwardInput(this.gpu, this.t(dy, op), this.t(w, op), xShape, {
      ...o,
      out: this.opt(o.out, op),
    });
  }

  conv2dBackwardWeight(
    x: EngineTensor,
    dy: EngineTensor,
    wShape: readonly number[],
    o: EngineConvOptions & { out?: EngineTensor; accumulate?: boolean } = {},
  ): Tensor {
    const op = 'conv2dBackwardWeight';
    return conv2dBackwardWeight(this.gpu, this.t(x, op), this.t(dy, op), wShape, {
      ...o,
      out: this.opt(o.out, op),
    });
  }

  matmul(
    a: EngineTensor,
    b: EngineTensor,
    M: number,
    K: number,
    N: number,
    o: EngineMatmulOptions = {},
  ): Tensor {
    const op = 'matmul';
    const options: MatmulOptions = { ...o, bias: this.opt(o.bias, op), out: this.opt(o.out, op) };
    return matmul(this.gpu, this.t(a, op), this.t(b, op), M, K, N, options);
  }

  relu(x: EngineTensor, out?: EngineTensor): Tensor {
    return relu(this.gpu, this.t(x, 'relu'), this.opt(out, 'relu'));
  }

  reluBackward(dy: EngineTensor, y: EngineTensor, out?: EngineTensor): Tensor {
    const op = 'reluBackward';
    return reluBackward(this.gpu, this.t(dy, op), this.t(y, op), this.opt(out, op));
  }

  maxPool2d(x: EngineTensor, o: { kernel: number; stride?: number }): { y: Tensor; argmax: Tensor } {
    return maxPool2d(this.gpu, this.t(x, 'maxPool2d'), o);
  }

  maxPool2dBackward(
    dy: EngineTensor,
    argmax: EngineTensor,
    xShape: readonly number[],
    o: { kernel: number; stride?: number; reluOutput?: EngineTensor },
  ): Tensor {
    const op = 'maxPool2dBackward';
    return maxPool2dBackward(this.gpu, this.t(dy, op), this.t(argmax, op), xShape, {
      ...o,
      reluOutput: this.opt(o.reluOutput, op),
    });
  }

  dropout(x: EngineTensor, o: { p: number; seed: number; out?: EngineTensor }): Tensor {
    return dropout(this.gpu, this.t(x, 'dropout'), { ...o, out: this.opt(o.out, 'dropout') });
  }

  dropoutBackward(dy: EngineTensor, o: { p: number; seed: number; out?: EngineTensor }): Tensor {
    const op = 'dropoutBackward';
    return dropoutBackward(this.gpu, this.t(dy, op), { ...o, out: this.opt(o.out, op) });
  }

  private lstmWeights(w: EngineLstmWeights, op: string): LstmWeightTensors {
    return { wIh: this.t(w.wIh, op), wHh: this.t(w.wHh, op), bIh: this.t(w.bIh, op), bHh: this.t(w.bHh, op) };
  }

  lstmForward(
    x: EngineTensor,
    w: EngineLstmWeights,
    h0?: EngineTensor | null,
    c0?: EngineTensor | null,
  ): LstmForwardTensors {
    const op = 'lstmForward';
    return lstmForward(this.gpu, this.t(x, op), this.lstmWeights(w, op), this.opt(h0, op), this.opt(c0, op));
  }

  lstmBackward(
    x: EngineTensor,
    w: EngineLstmWeights,
    h0: EngineTensor | null | undefined,
    c0: EngineTensor | null | undefined,
    forward: EngineLstmForward,
    dh: EngineTensor,
    dhT?: EngineTensor | null,
    dcT?: EngineTensor | null,
  ): EngineLstmGradients {
    const op = 'lstmBackward';
    const f: LstmForwardTensors = {
      h: this.t(forward.h, op),
      c: this.t(forward.c, op),
      gates: this.t(forward.gates, op),
      hT: this.t(forward.hT, op),
      cT: this.t(forward.cT, op),
    };
    return lstmBackward(
      this.gpu,
      this.t(x, op),
      this.lstmWeights(w, op),
      this.opt(h0, op),
      this.opt(c0, op),
      f,
      this.t(dh, op),
      this.opt(dhT, op),
      this.opt(dcT, op),
    );
  }

  sumChannels(x: EngineTensor): Tensor {
    return sumChannels(this.gpu, this.t(x, 'sumChannels'));
  }

  axpy(alpha: number, x: EngineTensor, y: EngineTensor): Tensor {
    return axpy(this.gpu, alpha, this.t(x, 'axpy'), this.t(y, 'axpy'));
  }

  sgdMomentumStep(
    w: EngineTensor,
    g: EngineTensor,
    v: EngineTensor,
    o: { lr: number; momentum: number; weightDecay: number },
  ): void {
    const op = 'sgdMomentumStep';
    sgdMomentumStep(this.gpu, this.t(w, op), this.t(g, op), this.t(v, op), o);
  }

  tanhScaled(x: EngineTensor, alpha: number, out?: EngineTensor): Tensor {
    return tanhScaled(this.gpu, this.t(x, 'tanhScaled'), alpha, this.opt(out, 'tanhScaled'));
  }

  tanhScaledBackward(dy: EngineTensor, x: EngineTensor, alpha: number, out?: EngineTensor): Tensor {
    const op = 'tanhScaledBackward';
    return tanhScaledBackward(this.gpu, this.t(dy, op), this.t(x, op), alpha, this.opt(out, op));
  }

  attackStep(
    delta: EngineTensor,
    g: EngineTensor,
    rows: number,
    o: { mode: 'l2' | 'sign' | 'raw'; lr: number },
  ): void {
    attackStep(this.gpu, this.t(delta, 'attackStep'), this.t(g, 'attackStep'), rows, o);
  }

  pairwiseTerms(
    theta: EngineTensor,
    sim: EngineTensor,
    o: { thetaScale: number; scale: number; balance: boolean },
  ): { coef: Tensor; likelihood: Tensor } {
    return pairwiseTerms(this.gpu, this.t(theta, 'pairwiseTerms'), this.t(sim, 'pairwiseTerms'), o);
  }

  attackProject(delta: EngineTensor, xn: EngineTensor, o: EngineAttackProjectOptions): void {
    attackProject(this.gpu, this.t(delta, 'attackProject'), this.t(xn, 'attackProject'), o);
  }

  attackStepProject(
    delta: EngineTensor,
    g: EngineTensor,
    xn: EngineTensor,
    xAdv: EngineTensor,
    rows: number,
    o: EngineAttackProjectOptions & { lr: number },
  ): void {
    const op = 'attackStepProject';
    attackStepProject(this.gpu, this.t(delta, op), this.t(g, op), this.t(xn, op), this.t(xAdv, op), rows, o);
  }

  sync(): Promise<void> {
    return this.gpu.sync();
  }

  /** The engine does not own the GPU context (the caller made it and destroys it). */
  destroy(): void {}
}
