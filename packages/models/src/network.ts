// The hashing network on the GPU: image networks (a layer list) and video networks (a frame network on every
// frame, a batch-first LSTM over the per-frame features, a pool over time, a head). Every layer runs through
// @dhta/kernels; ReLU is fused into the write of a conv2d / linear it follows. A forward pass may keep a tape
// (the activations, max-pool argmaxes, dropout seeds) for the backward pass to the normalised input and to
// every weight.
import {
  type Engine,
  type EngineLstmWeights,
  Gpu,
  type EngineTensor as Tensor,
  WebGpuEngine,
} from '@dhta/kernels';
import { pcgHash } from '@dhta/kernels/reference';
import { loadBundle } from './bundle.js';
import { ModelError } from './errors.js';
import { inferShapes, inputSizeOf, type LayerInfo, validateWeights } from './spec.js';
import type {
  BackwardOptions,
  ForwardOptions,
  ForwardResult,
  HashingNetwork,
  ModelSpec,
  Tape,
  Weights,
  WeightTensor,
} from './types.js';

export interface NetworkOptions {
  /**
   * Largest weight block in bytes (default: the device's largest storage binding). A linear weight larger
   * than this is held as row blocks, one matmul each (VGG-11's fc6 on llvmpipe: 4 blocks of 1024 rows).
   */
  maxBlockBytes?: number;
  /** A lower cap for maxBatch than the engine allows. */
  maxBatch?: number;
  /** destroy() destroys the engine too (a network opened with an engine of its own). */
  ownEngine?: boolean;
}

interface LinearBlock {
  w: Tensor;
  b: Tensor;
  r0: number;
  rows: number;
  wName: string;
  bName: string;
}

type Step =
  | {
      kind: 'conv';
      name: string;
      w: Tensor;
      b: Tensor;
      stride: number;
      pad: number;
      relu: boolean;
      in: number[];
      out: number[];
    }
  | { kind: 'linear'; name: string; blocks: LinearBlock[]; relu: boolean; in: number[]; out: number[] }
  | { kind: 'relu'; in: number[]; out: number[] }
  | { kind: 'pool'; kernel: number; stride: number; in: number[]; out: number[] }
  | { kind: 'flatten'; in: number[]; out: number[] }
  | { kind: 'dropout'; p: number; index: number; in: number[]; out: number[] };

interface Saved {
  input: Tensor;
  output: Tensor;
  argmax?: Tensor;
}

interface SectionTape {
  saved: Saved[];
  seed: number;
}

/** What a forward pass keeps; `release()` frees it. */
class NetworkTape implements Tape {
  released = false;
  constructor(
    readonly n: number,
    readonly train: boolean,
    readonly owned: Tensor[],
    readonly input: Tensor,
    readonly main: SectionTape,
    readonly video?: {
      features: Tensor;
      lstm: { h: Tensor; c: Tensor; gates: Tensor; hT: Tensor; cT: Tensor };
      pooled: Tensor;
      head: SectionTape;
    },
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.owned) t.release();
    this.owned.length = 0;
  }
}

/** The seed of one dropout layer's mask in a pass: mixes the pass seed, the section and the layer index. */
function layerSeed(seed: number, section: number, index: number): number {
  return pcgHash((pcgHash(seed >>> 0) ^ pcgHash(section * 65536 + index + 1)) >>> 0);
}

/**
 * Floats one object takes in a taped forward + backward round, for engines whose memory is bounded (the
 * WebAssembly engine): activations and their gradients, plus the largest scratch one op of the CPU engine
 * takes per object. Convolutions read a zero-padded copy of their input (direct and Winograd forward: at
 * most C (H + 2p + 3) (W + 2p + 3) with Winograd F(4x4, 3x3)'s whole tiles: 4 ceil(OH / 4) + 2 rows), and
 * stride-1 input gradients one of dy padded by k - 1 - p, with index tables of a few ints per output; strided
 * input gradients a packed dy and a column matrix (O + C k k) per output position for col2im; weight gradients a padded x, dy's rows packed
 * and the partial products of their pieces (one O x C k k block per piece of at most 4096 outputs of an
 * image). Linear layers pack their input and take their product's output as scratch.
 */
function roundFloatsPerObject(spec: ModelSpec, shapes: ReturnType<typeof inferShapes>): number {
  const frames = spec.task === 'video' ? spec.frames : 1;
  let activations = inputSizeOf(spec);
  let scratch = 0;
  for (const l of [...shapes.layers, ...shapes.head]) {
    const per = shapes.head.includes(l) ? 1 : frames;
    activations += per * l.output.reduce((a, b) => a * b, 1);
    if (l.layer.type === 'conv2d') {
      const [C, H, W] = l.input;
      const [O, OH, OW] = l.output;
      const k = l.layer.kernel;
      const s = l.layer.stride ?? 1;
      const p = l.layer.padding ?? 0;
      const P = OH * OW;
      const forward = C * (H + 2 * p + 3) * (W + 2 * p + 3) + 3 * P;
      const q = k - 1 - p;
      const backwardInput =
        s === 1 && q >= 0 ? O * (OH + 2 * q + 3) * (OW + 2 * q + 3) + 3 * H * W : (O + C * k * k) * P + 6 * P;
      // Pieces of R output rows of an image (R the largest divisor of OH with R OW <= 4096).
      let R = 1;
      for (let r = 1; r <= OH; r++) if (OH % r === 0 && r * OW <= 4096) R = r;
      const weights = C * (H + 2 * p) * (W + 2 * p) + O * P + (OH / R) * O * C * k * k;
      scratch = Math.max(scratch, per * Math.max(forward, backwardInput, weights));
    } else if (l.layer.type === 'linear') {
      scratch = Math.max(scratch, per * (l.input[0] + l.output[0] + 8));
    }
  }
  if (spec.task === 'video') activations += 8 * frames * spec.lstm.hidden;
  return 2 * activations + scratch;
}

export class Network implements HashingNetwork {
  readonly engine: Engine;
  readonly spec: ModelSpec;
  readonly bits: number;
  readonly inputSize: number;
  readonly channels: number;
  /** H*W: per-channel ops see one object as [C, H*W] (image) or [T, C, H*W] (video), i.e. c = (i / planeSize) % C. */
  readonly planeSize: number;
  /** Objects per chunk in `encode` when no batch is given (bounded by the largest activation). */
  readonly defaultBatch: number;
  /** The most objects whose largest activation fits one storage binding (`encode` caps its batch here). */
  readonly maxBatch: number;

  private readonly params = new Map<string, Tensor>();
  private grads: Map<string, Tensor> | null = null;
  private readonly main: Step[];
  private readonly head: Step[];
  private readonly lstm: EngineLstmWeights | null;
  private readonly frameFeatures: number;
  private destroyed = false;
  private readonly ownEngine: boolean;

  constructor(engine: Engine | Gpu, spec: ModelSpec, weights: Weights, options: NetworkOptions = {}) {
    validateWeights(spec, weights);
    this.engine = engine instanceof Gpu ? new WebGpuEngine(engine) : engine;
    this.ownEngine = options.ownEngine ?? false;
    this.spec = spec;
    this.bits = spec.bits;
    this.inputSize = inputSizeOf(spec);
    this.channels = spec.input.channels;
    this.planeSize = spec.input.height * spec.input.width;
    const shapes = inferShapes(spec);
    const maxBinding = this.engine.maxTensorBytes;
    const maxBlock = Math.min(options.maxBlockBytes ?? maxBinding, maxBinding);
    this.main = this.compile(shapes.layers, weights, maxBlock);
    this.head = this.compile(shapes.head, weights, maxBlock);
    this.frameFeatures = shapes.frameFeatures;
    if (spec.task === 'video') {
      const up = (name: string) => {
        const t = weights.get(name) as WeightTensor;
        const tensor = this.engine.tensor(t.shape, t.data);
        this.params.set(name, tensor);
        return tensor;
      };
      this.lstm = {
        wIh: up('lstm.weight_ih_l0'),
        wHh: up('lstm.weight_hh_l0'),
        bIh: up('lstm.bias_ih_l0'),
        bHh: up('lstm.bias_hh_l0'),
      };
    } else this.lstm = null;
    // The largest activation must fit one tensor (WebGPU: one storage binding), and a whole round must fit
    // the engine's memory (the WebAssembly engine's 2 GiB, weights included, less some room for packing).
    const roundBudget = this.engine.memoryBytesLeft - 64 * 2 ** 20;
    this.maxBatch = Math.max(
      1,
      Math.min(
        options.maxBatch ?? Number.POSITIVE_INFINITY,
        Math.floor(maxBinding / 4 / shapes.maxActivation),
        Math.floor(roundBudget / 4 / roundFloatsPerObject(spec, shapes)),
      ),
    );
    this.defaultBatch = Math.min(256, this.maxBatch);
  }

  private compile(infos: LayerInfo[], weights: Weights, maxBlock: number): Step[] {
    const steps: Step[] = [];
    for (let i = 0; i < infos.length; i++) {
      const { layer, name, input, output } = infos[i];
      const fuse = infos[i + 1]?.layer.type === 'relu';
      const get = (suffix: string) => weights.get(`${name}.${suffix}`) as WeightTensor;
      switch (layer.type) {
        case 'conv2d': {
          const w = this.upload(`${name}.weight`, get('weight'));
          const b = this.upload(`${name}.bias`, get('bias'));
          steps.push({
            kind: 'conv',
            name,
            w,
            b,
            stride: layer.stride ?? 1,
            pad: layer.padding ?? 0,
            relu: fuse,
            in: input,
            out: output,
          });
          if (fuse) i++;
          break;
        }
        case 'linear': {
          const W = get('weight');
          const B = get('bias');
          const In = input[0];
          const Out = layer.out;
          const maxRows = Math.max(1, Math.floor(maxBlock / (4 * In)));
          const count = Math.ceil(Out / maxRows);
          const rowsPer = Math.ceil(Out / count);
          const blocks: LinearBlock[] = [];
          for (let r0 = 0; r0 < Out; r0 += rowsPer) {
            const rows = Math.min(rowsPer, Out - r0);
            const suffix = count > 1 ? `[${r0}:${r0 + rows}]` : '';
            const wName = `${name}.weight${suffix}`;
            const bName = `${name}.bias${suffix}`;
            const w = this.upload(wName, {
              shape: [rows, In],
              data: W.data.subarray(r0 * In, (r0 + rows) * In),
            });
            const b = this.upload(bName, { shape: [rows], data: B.data.subarray(r0, r0 + rows) });
            blocks.push({ w, b, r0, rows, wName, bName });
          }
          steps.push({ kind: 'linear', name, blocks, relu: fuse, in: input, out: output });
          if (fuse) i++;
          break;
        }
        case 'relu':
          steps.push({ kind: 'relu', in: input, out: output });
          break;
        case 'maxpool2d':
          steps.push({
            kind: 'pool',
            kernel: layer.kernel,
            stride: layer.stride ?? layer.kernel,
            in: input,
            out: output,
          });
          break;
        case 'flatten':
          steps.push({ kind: 'flatten', in: input, out: output });
          break;
        case 'dropout':
          steps.push({ kind: 'dropout', p: layer.p, index: i, in: input, out: output });
          break;
      }
    }
    return steps;
  }

  private upload(name: string, t: WeightTensor): Tensor {
    const tensor = this.engine.tensor(t.shape, t.data);
    this.params.set(name, tensor);
    return tensor;
  }

  private assertLive(): void {
    if (this.destroyed) throw new ModelError('BAD_INPUT', 'this network was destroyed; create a new one');
  }

  private checkBatch(op: string, t: Tensor, n: number, per: number): void {
    if (!Number.isInteger(n) || n < 1)
      throw new ModelError('BAD_INPUT', `${op}: n must be an integer >= 1, found ${n}`);
    if (t.size !== n * per) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `${op}: expected ${n} objects of ${per} floats (${n * per}), found a tensor [${t.shape.join(', ')}] of ${t.size}`,
      );
    }
  }

  normalize(pixels: Tensor, n: number): Tensor {
    this.assertLive();
    this.checkBatch('normalize', pixels, n, this.inputSize);
    const { mean, std } = this.spec.input;
    return this.engine.channelAffine(pixels, {
      channels: this.channels,
      planeSize: this.planeSize,
      scale: std.map((s) => 1 / s),
      shift: mean.map((m, c) => -m / std[c]),
      out: this.engine.empty([n, this.inputSize]),
    });
  }

  /**
   * Runs one section. `x` belongs to the caller. Returns the output (always a tensor the caller owns,
   * unless it is `x` itself: `aliased`). With `tape`, every activation is kept and listed in `owned`.
   */
  private runSection(
    steps: Step[],
    x: Tensor,
    n: number,
    train: boolean,
    seed: number,
    section: number,
    tape: { saved: Saved[]; owned: Tensor[] } | null,
  ): { y: Tensor; aliased: boolean } {
    const g = this.engine;
    let cur = x;
    let owned = false; // whether `cur` is a fresh tensor of this section
    for (const s of steps) {
      const input = cur;
      let y: Tensor;
      let fresh = true;
      let argmax: Tensor | undefined;
      switch (s.kind) {
        case 'conv':
          y = g.conv2d(input.reshape([n, ...s.in]), s.w, s.b, {
            stride: s.stride,
            padding: s.pad,
            relu: s.relu,
          });
          break;
        case 'linear': {
          const [In] = s.in;
          const [Out] = s.out;
          y = g.empty([n, Out]);
          for (const blk of s.blocks) {
            g.matmul(input, blk.w, n, In, blk.rows, {
              transB: true,
              bias: blk.b,
              relu: s.relu,
              out: y,
              cOffset: blk.r0,
              ldc: Out,
            });
          }
          break;
        }
        case 'relu':
          y = g.relu(input);
          break;
        case 'pool': {
          const r = g.maxPool2d(input.reshape([n, ...s.in]), { kernel: s.kernel, stride: s.stride });
          y = r.y;
          argmax = r.argmax;
          break;
        }
        case 'flatten':
          y = input.reshape([n, ...s.out]);
          fresh = false;
          break;
        case 'dropout':
          if (train && s.p > 0) y = g.dropout(input, { p: s.p, seed: layerSeed(seed, section, s.index) });
          else {
            y = input;
            fresh = false;
          }
          break;
      }
      if (tape) {
        tape.saved.push({ input, output: y, argmax });
        if (fresh) tape.owned.push(y);
        if (argmax) tape.owned.push(argmax);
      } else {
        argmax?.release();
        if (fresh && owned) input.release();
      }
      cur = y;
      owned = owned || fresh;
    }
    return { y: cur, aliased: !owned };
  }

  /** Back through one section; `dy` is released when `ownDy`. Returns dx (owned) or undefined. */
  private backSection(
    steps: Step[],
    tape: SectionTape,
    n: number,
    train: boolean,
    section: number,
    dy: Tensor,
    ownDy: boolean,
    wantInput: boolean,
    weights: boolean,
  ): Tensor | undefined {
    const g = this.engine;
    let cur = dy;
    let owned = ownDy;
    const drop = (t: Tensor, o: boolean) => {
      if (o) t.release();
    };
    // A pool right after a conv with fused ReLU applies that ReLU's backward itself (its output > 0 gates
    // dy), so the conv step skips its own: one pass over the large pre-pool gradient instead of two.
    let reluAppliedAt = -1;
    for (let i = steps.length - 1; i >= 0; i--) {
      const s = steps[i];
      const saved = tape.saved[i];
      const needDx = i > 0 || wantInput;
      let next: Tensor | undefined;
      let fresh = true;
      switch (s.kind) {
        case 'dropout':
          if (train && s.p > 0)
            next = g.dropoutBackward(cur, { p: s.p, seed: layerSeed(tape.seed, section, s.index) });
          else {
            next = cur;
            fresh = false;
          }
          break;
        case 'flatten':
          next = cur.reshape([n, ...s.in]);
          fresh = false;
          break;
        case 'relu':
          next = g.reluBackward(cur, saved.output);
          break;
        case 'pool': {
          const prev = steps[i - 1];
          const fuseRelu = prev?.kind === 'conv' && prev.relu;
          next = g.maxPool2dBackward(cur.reshape([n, ...s.out]), saved.argmax as Tensor, [n, ...s.in], {
            kernel: s.kernel,
            stride: s.stride,
            reluOutput: fuseRelu ? saved.output : undefined,
          });
          if (fuseRelu) reluAppliedAt = i - 1;
          break;
        }
        case 'conv': {
          const ownRelu = s.relu && reluAppliedAt !== i;
          const dyr = ownRelu ? g.reluBackward(cur, saved.output) : cur;
          const dy4 = dyr.reshape([n, ...s.out]);
          const x4 = saved.input.reshape([n, ...s.in]);
          if (weights) {
            const grads = this.gradientTensors();
            g.conv2dBackwardWeight(x4, dy4, s.w.shape, {
              stride: s.stride,
              padding: s.pad,
              out: grads.get(`${s.name}.weight`),
              accumulate: true,
            });
            const db = g.sumChannels(dy4);
            g.axpy(1, db, grads.get(`${s.name}.bias`) as Tensor);
            db.release();
          }
          next = needDx
            ? g.conv2dBackwardInput(dy4, s.w, [n, ...s.in], { stride: s.stride, padding: s.pad })
            : undefined;
          if (ownRelu) dyr.release();
          break;
        }
        case 'linear': {
          const dyr = s.relu ? g.reluBackward(cur, saved.output) : cur;
          const [In] = s.in;
          const [Out] = s.out;
          if (weights) {
            const grads = this.gradientTensors();
            const ones = g.tensor([n], new Float32Array(n).fill(1));
            for (const blk of s.blocks) {
              // dW_block = dy[:, r0:r0+rows]^T x; db_block = 1^T dy[:, r0:r0+rows].
              g.matmul(dyr, saved.input, blk.rows, n, In, {
                transA: true,
                aOffset: blk.r0,
                lda: Out,
                out: grads.get(blk.wName),
                accumulate: true,
              });
              g.matmul(ones, dyr, 1, n, blk.rows, {
                bOffset: blk.r0,
                ldb: Out,
                out: grads.get(blk.bName),
                accumulate: true,
              });
            }
            ones.release();
          }
          if (needDx) {
            next = g.empty([n, In]);
            s.blocks.forEach((blk, b) => {
              g.matmul(dyr, blk.w, n, blk.rows, In, {
                aOffset: blk.r0,
                lda: Out,
                out: next,
                accumulate: b > 0,
              });
            });
          }
          if (s.relu) dyr.release();
          break;
        }
      }
      if (fresh) drop(cur, owned);
      if (!next) return undefined;
      cur = next;
      owned = fresh || owned;
    }
    if (!owned) {
      // Nothing computed (an empty section or only aliases): hand back a copy the caller may release.
      const copy = g.empty(cur.shape);
      g.copy(cur, copy);
      return copy;
    }
    return cur;
  }

  /**
   * The output [n, bits] as a tensor the caller owns: a copy when the last activation is not ours to give
   * (an alias of the input) or stays on the tape (the backward may read it).
   */
  private ownedOutput(y: Tensor, n: number, copy: boolean): Tensor {
    if (!copy) return y.reshape([n, this.bits]);
    const out = this.engine.empty([n, this.bits]);
    this.engine.copy(y, out);
    return out;
  }

  forward(normalized: Tensor, n: number, options: ForwardOptions = {}): ForwardResult {
    this.assertLive();
    this.checkBatch('forward', normalized, n, this.inputSize);
    const train = options.train ?? false;
    if (train && options.seed === undefined) {
      throw new ModelError('BAD_INPUT', 'forward: training mode (dropout on) needs a seed');
    }
    const seed = options.seed ?? 0;
    const g = this.engine;
    const keep = options.tape ? { saved: [] as Saved[], owned: [] as Tensor[] } : null;
    const { input } = this.spec;
    if (this.spec.task === 'image') {
      const r = this.runSection(this.main, normalized, n, train, seed, 0, keep);
      const output = this.ownedOutput(r.y, n, r.aliased || !!keep);
      if (!keep) return { output };
      return { output, tape: new NetworkTape(n, train, keep.owned, normalized, { saved: keep.saved, seed }) };
    }
    // Video: frames of all objects at once, [n*T, C, H, W].
    const spec = this.spec;
    const T = spec.frames;
    const H = spec.lstm.hidden;
    const frames = normalized.reshape([n * T, input.channels, input.height, input.width]);
    const frameKeep = keep ? { saved: [] as Saved[], owned: [] as Tensor[] } : null;
    const f = this.runSection(this.main, frames, n * T, train, seed, 1, frameKeep);
    const features = f.y.reshape([n, T, this.frameFeatures]);
    const lstm = g.lstmForward(features, this.lstm as EngineLstmWeights);
    let pooled: Tensor;
    if (spec.lstm.pool === 'last') pooled = lstm.hT;
    else {
      const ones = g.tensor([T], new Float32Array(T).fill(1));
      pooled = g.matmul(ones, lstm.h, 1, T, H, {
        batch: n,
        strideA: 0,
        strideB: T * H,
        strideC: H,
        alpha: 1 / T,
        out: g.empty([n, H]),
      });
      ones.release();
    }
    const headKeep = keep ? { saved: [] as Saved[], owned: [] as Tensor[] } : null;
    const h = this.runSection(this.head, pooled, n, train, seed, 2, headKeep);
    const output = this.ownedOutput(h.y, n, h.aliased || !!keep);
    const lstmTensors = [lstm.h, lstm.c, lstm.gates, lstm.hT, lstm.cT];
    if (!keep || !frameKeep || !headKeep) {
      if (!f.aliased) f.y.release();
      for (const t of lstmTensors) if (t !== pooled) t.release();
      pooled.release();
      return { output };
    }
    const owned = [...frameKeep.owned, ...lstmTensors, ...headKeep.owned];
    if (spec.lstm.pool === 'mean') owned.push(pooled);
    const tape = new NetworkTape(
      n,
      train,
      owned,
      normalized,
      { saved: frameKeep.saved, seed },
      { features, lstm, pooled, head: { saved: headKeep.saved, seed } },
    );
    return { output, tape };
  }

  backward(tape: Tape, gradOutput: Tensor, options: BackwardOptions = {}): Tensor | undefined {
    this.assertLive();
    if (!(tape instanceof NetworkTape)) {
      throw new ModelError(
        'BAD_INPUT',
        'backward: the tape must come from forward(..., { tape: true }) of this network',
      );
    }
    if (tape.released) throw new ModelError('BAD_INPUT', 'backward: the tape was released');
    const { n, train } = tape;
    this.checkBatch('backward', gradOutput, n, this.bits);
    const wantInput = options.input ?? true;
    const weights = options.weights ?? false;
    if (weights) this.gradientTensors();
    const g = this.engine;
    const dy = gradOutput.reshape([n, this.bits]);
    if (this.spec.task === 'image') {
      const dx = this.backSection(this.main, tape.main, n, train, 0, dy, false, wantInput, weights);
      if (!wantInput) {
        dx?.release();
        return undefined;
      }
      return dx?.reshape([n, this.inputSize]);
    }
    const v = tape.video as NonNullable<NetworkTape['video']>;
    const spec = this.spec;
    const T = spec.frames;
    const H = spec.lstm.hidden;
    const dPooled = this.backSection(this.head, v.head, n, train, 2, dy, false, true, weights) as Tensor;
    let dh: Tensor;
    let dhT: Tensor | null = null;
    if (spec.lstm.pool === 'last') {
      dh = g.zeros([n, T, H]);
      dhT = dPooled;
    } else {
      const ones = g.tensor([T], new Float32Array(T).fill(1));
      dh = g.matmul(ones, dPooled, T, 1, H, {
        batch: n,
        strideA: 0,
        strideB: H,
        strideC: T * H,
        alpha: 1 / T,
        out: g.empty([n, T, H]),
      });
      ones.release();
    }
    const lw = this.lstm as EngineLstmWeights;
    const grads = g.lstmBackward(v.features, lw, null, null, v.lstm, dh, dhT);
    dh.release();
    dPooled.release();
    if (weights) {
      const acc = this.gradientTensors();
      g.axpy(1, grads.dWih, acc.get('lstm.weight_ih_l0') as Tensor);
      g.axpy(1, grads.dWhh, acc.get('lstm.weight_hh_l0') as Tensor);
      g.axpy(1, grads.dbIh, acc.get('lstm.bias_ih_l0') as Tensor);
      g.axpy(1, grads.dbHh, acc.get('lstm.bias_hh_l0') as Tensor);
    }
    for (const t of [grads.dWih, grads.dWhh, grads.dbIh, grads.dbHh, grads.dh0, grads.dc0]) t.release();
    const dFeat = grads.dx.reshape([n * T, this.frameFeatures]);
    const dx = this.backSection(this.main, tape.main, n * T, train, 1, dFeat, true, wantInput, weights);
    if (!wantInput) {
      dx?.release();
      return undefined;
    }
    return dx?.reshape([n, this.inputSize]);
  }

  parameters(): Map<string, Tensor> {
    this.assertLive();
    return new Map(this.params);
  }

  private gradientTensors(): Map<string, Tensor> {
    if (!this.grads) {
      this.grads = new Map();
      for (const [name, p] of this.params) this.grads.set(name, this.engine.zeros(p.shape));
    }
    return this.grads;
  }

  gradients(): Map<string, Tensor> {
    this.assertLive();
    return new Map(this.gradientTensors());
  }

  zeroGradients(): void {
    this.assertLive();
    for (const t of this.gradientTensors().values()) this.engine.fill(t, 0);
  }

  async encode(
    pixels: Float32Array,
    n: number,
    options: { batch?: number; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<{ features: Float32Array; codes: Int8Array }> {
    this.assertLive();
    if (!Number.isInteger(n) || n < 0)
      throw new ModelError('BAD_INPUT', `encode: n must be an integer >= 0, found ${n}`);
    if (pixels.length !== n * this.inputSize) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `encode: expected ${n} objects of ${this.inputSize} floats (${n * this.inputSize}), found ${pixels.length}`,
      );
    }
    if (options.batch !== undefined && (!Number.isInteger(options.batch) || options.batch < 1)) {
      throw new ModelError('BAD_INPUT', `encode: batch must be an integer >= 1, found ${options.batch}`);
    }
    // A larger batch than fits one storage binding is capped (the results do not depend on the batch).
    const batch = Math.min(options.batch ?? this.defaultBatch, this.maxBatch);
    const K = this.bits;
    const features = new Float32Array(n * K);
    const codes = new Int8Array(n * K);
    const g = this.engine;
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      const x = g.tensor(
        [m, this.inputSize],
        pixels.subarray(start * this.inputSize, (start + m) * this.inputSize),
      );
      const xn = this.normalize(x, m);
      x.release();
      const { output } = this.forward(xn, m);
      xn.release();
      features.set(await g.read(output), start * K);
      output.release();
      options.onProgress?.(start + m, n);
    }
    // sign(0) = +1, as PROTOCOL.md fixes it.
    for (let i = 0; i < features.length; i++) codes[i] = features[i] < 0 ? -1 : 1;
    return { features, codes };
  }

  async readWeights(): Promise<Weights> {
    this.assertLive();
    const out: Weights = new Map();
    const read = async (t: Tensor) => this.engine.read(t);
    for (const steps of [this.main, this.head]) {
      for (const s of steps) {
        if (s.kind === 'conv') {
          out.set(`${s.name}.weight`, { shape: [...s.w.shape], data: await read(s.w) });
          out.set(`${s.name}.bias`, { shape: [...s.b.shape], data: await read(s.b) });
        } else if (s.kind === 'linear') {
          const In = s.in[0];
          const Out = s.out[0];
          const w = new Float32Array(Out * In);
          const b = new Float32Array(Out);
          for (const blk of s.blocks) {
            w.set(await read(blk.w), blk.r0 * In);
            b.set(await read(blk.b), blk.r0);
          }
          out.set(`${s.name}.weight`, { shape: [Out, In], data: w });
          out.set(`${s.name}.bias`, { shape: [Out], data: b });
        }
      }
    }
    if (this.lstm) {
      for (const name of ['lstm.weight_ih_l0', 'lstm.weight_hh_l0', 'lstm.bias_ih_l0', 'lstm.bias_hh_l0']) {
        const t = this.params.get(name) as Tensor;
        out.set(name, { shape: [...t.shape], data: await read(t) });
      }
    }
    // In expectedWeights' order, so saved files list the layers in order.
    return out;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const t of this.params.values()) t.release();
    for (const t of this.grads?.values() ?? []) t.release();
    this.params.clear();
    this.grads = null;
    if (this.ownEngine) this.engine.destroy();
  }
}

/** A network on an engine (a Gpu means its WebGPU engine) from a spec and its weights (validated first). */
export function createNetwork(
  engine: Engine | Gpu,
  spec: ModelSpec,
  weights: Weights,
  options?: NetworkOptions,
): Network {
  return new Network(engine, spec, weights, options);
}

/** Loads a bundle folder (model.json + weights.safetensors) onto an engine (a Gpu: its WebGPU engine). */
export async function loadNetwork(
  engine: Engine | Gpu,
  dir: string,
  options?: NetworkOptions,
): Promise<Network> {
  const { spec, weights } = await loadBundle(dir);
  return new Network(engine, spec, weights, options);
}
