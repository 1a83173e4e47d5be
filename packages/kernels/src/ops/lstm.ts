// One-layer, batch-first LSTM (PyTorch's nn.LSTM semantics, gate order i, f, g, o), forward and
// backpropagation through time, on the GPU:
//   forward:  one GEMM projects the inputs of all steps (x [N*T, I] W_ih^T + b_ih) straight into the gates
//             buffer; then per step a small GEMM adds h_{t-1} W_hh^T to that step's rows (offsets and
//             leading dimensions address step t inside [N, T, 4H], no copies) and one fused kernel adds
//             b_hh, activates the gates in place (saved for BPTT) and writes c_t, h_t.
//   backward: per step in reverse, one fused kernel turns dh_t (+ the recurrent gradient) and the running dc
//             into the pre-activation gradients dG_t, then a GEMM gives the recurrent dh_{t-1} = dG_t W_hh;
//             after the loop, one GEMM each for dx, dW_ih, dW_hh (against a shifted copy of h with h0 as
//             step -1) and a column sum for the biases.
// Everything is encoded without reading back, so a whole pass is one submit (on a context without poison).
import { argError, shapeError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import {
  LSTM_WORKGROUP,
  lstmBiasGradShader,
  lstmGateBackwardShader,
  lstmGateForwardShader,
  lstmShiftShader,
} from './lstm.wgsl.js';
import { matmul } from './matmul.js';

/** The parameters of one LSTM layer, in PyTorch's layout (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0). */
export interface LstmWeightTensors {
  /** [4H, I] */
  wIh: Tensor;
  /** [4H, H] */
  wHh: Tensor;
  /** [4H] */
  bIh: Tensor;
  /** [4H] */
  bHh: Tensor;
}

export interface LstmForwardTensors {
  /** every hidden state h_1..h_T: [N, T, H] (PyTorch's output) */
  h: Tensor;
  /** every cell state c_1..c_T: [N, T, H] */
  c: Tensor;
  /** post-activation gates (sigmoid i, sigmoid f, tanh g, sigmoid o): [N, T, 4H], saved for BPTT */
  gates: Tensor;
  /** final hidden state: [N, H] */
  hT: Tensor;
  /** final cell state: [N, H] */
  cT: Tensor;
}

export interface LstmGradientTensors {
  /** [N, T, I] */
  dx: Tensor;
  /** [4H, I] */
  dWih: Tensor;
  /** [4H, H] */
  dWhh: Tensor;
  /** [4H] */
  dbIh: Tensor;
  /** [4H], equal to dbIh */
  dbHh: Tensor;
  /** [N, H] */
  dh0: Tensor;
  /** [N, H] */
  dc0: Tensor;
}

export interface LstmShape {
  N: number;
  T: number;
  I: number;
  H: number;
}

function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function expectShape(op: string, name: string, t: Tensor, shape: readonly number[]): void {
  if (t.dtype !== 'f32') throw argError(op, `${name} must be an f32 tensor, found ${t.dtype}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw shapeError(op, `${name} of shape ${shapeString(shape)}`, shapeString(t.shape));
  }
}

/** An initial state: [N, H], or PyTorch's [1, N, H] (one layer). */
function expectState(op: string, name: string, t: Tensor, N: number, H: number): void {
  const ok =
    t.shape.length === 2
      ? t.shape[0] === N && t.shape[1] === H
      : t.shape.length === 3 && t.shape[0] === 1 && t.shape[1] === N && t.shape[2] === H;
  if (t.dtype !== 'f32') throw argError(op, `${name} must be an f32 tensor, found ${t.dtype}`);
  if (!ok) throw shapeError(op, `${name} of shape [${N}, ${H}] (or [1, ${N}, ${H}])`, shapeString(t.shape));
}

/** Reads N, T, I, H off x [N, T, I] and the weights, and checks every weight's shape. */
function lstmShape(op: string, x: Tensor, w: LstmWeightTensors): LstmShape {
  if (x.shape.length !== 3) throw shapeError(op, 'x of shape [N, T, I]', shapeString(x.shape));
  const [N, T, I] = x.shape;
  if (w.wHh.shape.length !== 2 || w.wHh.shape[0] !== 4 * w.wHh.shape[1]) {
    throw shapeError(op, 'wHh of shape [4H, H]', shapeString(w.wHh.shape));
  }
  const H = w.wHh.shape[1];
  for (const [name, v] of [
    ['N (batch)', N],
    ['T (time steps)', T],
    ['I (input features)', I],
    ['H (hidden size)', H],
  ] as const) {
    if (v < 1) throw argError(op, `${name} must be at least 1, found ${v}`);
  }
  expectShape(op, 'x', x, [N, T, I]);
  expectShape(op, 'wIh', w.wIh, [4 * H, I]);
  expectShape(op, 'wHh', w.wHh, [4 * H, H]);
  expectShape(op, 'bIh', w.bIh, [4 * H]);
  expectShape(op, 'bHh', w.bHh, [4 * H]);
  return { N, T, I, H };
}

/**
 * Runs the LSTM over all T steps of x [N, T, I]; h0 / c0 absent mean zeros (PyTorch's default). Returns new
 * tensors; the gates are kept for `lstmBackward`.
 */
export function lstmForward(
  gpu: Gpu,
  x: Tensor,
  weights: LstmWeightTensors,
  h0?: Tensor | null,
  c0?: Tensor | null,
): LstmForwardTensors {
  const op = 'lstmForward';
  const { N, T, I, H } = lstmShape(op, x, weights);
  if (h0) expectState(op, 'h0', h0, N, H);
  if (c0) expectState(op, 'c0', c0, N, H);
  const G = 4 * H;

  // Input projection of every step at once: gates[n, t] = x[n, t] W_ih^T + b_ih.
  const gates = matmul(gpu, x, weights.wIh, N * T, I, G, {
    transB: true,
    bias: weights.bIh,
    out: gpu.empty([N, T, G]),
  });
  const h = gpu.empty([N, T, H]);
  const c = gpu.empty([N, T, H]);
  const hT = gpu.empty([N, H]);
  const cT = gpu.empty([N, H]);
  for (let t = 0; t < T; t++) {
    // gates[:, t] += h_{t-1} W_hh^T; h_{-1} = 0 contributes nothing when h0 is absent.
    const prev =
      t > 0 ? { a: h, aOffset: (t - 1) * H, lda: T * H } : h0 ? { a: h0, aOffset: 0, lda: H } : null;
    if (prev) {
      matmul(gpu, prev.a, weights.wHh, N, H, G, {
        transB: true,
        accumulate: true,
        out: gates,
        aOffset: prev.aOffset,
        lda: prev.lda,
        cOffset: t * G,
        ldc: T * G,
      });
    }
    gpu.run({
      op: 'lstmGateForward',
      key: 'f',
      code: lstmGateForwardShader,
      // Without c0 the binding is a placeholder the kernel never reads (a read-only one, so it may alias).
      buffers: [gates, weights.bHh, c0 ?? weights.bHh, h, c, hT, cT],
      uniforms: [N, T, H, t, c0 ? 1 : 0],
      workgroups: grid(Math.ceil((N * H) / LSTM_WORKGROUP)),
    });
  }
  return { h, c, gates, hT, cT };
}

/**
 * Backpropagation through time. `forward` is what `lstmForward` returned for the same x, weights, h0, c0.
 * dh [N, T, H]: the gradient w.r.t. every output h_t (zeros where a step's output is unused); dhT / dcT
 * [N, H]: gradients w.r.t. the final states (absent = zero; h_T is both the last output and hT, so their
 * gradients add, as in autograd). Returns new tensors.
 */
export function lstmBackward(
  gpu: Gpu,
  x: Tensor,
  weights: LstmWeightTensors,
  h0: Tensor | null | undefined,
  c0: Tensor | null | undefined,
  forward: LstmForwardTensors,
  dh: Tensor,
  dhT?: Tensor | null,
  dcT?: Tensor | null,
): LstmGradientTensors {
  const op = 'lstmBackward';
  const { N, T, I, H } = lstmShape(op, x, weights);
  const G = 4 * H;
  if (h0) expectState(op, 'h0', h0, N, H);
  if (c0) expectState(op, 'c0', c0, N, H);
  expectShape(op, 'forward.h', forward.h, [N, T, H]);
  expectShape(op, 'forward.c', forward.c, [N, T, H]);
  expectShape(op, 'forward.gates', forward.gates, [N, T, G]);
  expectShape(op, 'dh', dh, [N, T, H]);
  if (dhT) expectState(op, 'dhT', dhT, N, H);
  if (dcT) expectState(op, 'dcT', dcT, N, H);

  // Running recurrent gradients: dhRec flows into h_t from step t+1, dc into c_t. After step 0 they are
  // dh0 and dc0.
  const dhRec = gpu.empty([N, H]);
  const dc = gpu.empty([N, H]);
  if (dhT) gpu.copy(dhT, dhRec);
  else gpu.fill(dhRec, 0);
  if (dcT) gpu.copy(dcT, dc);
  else gpu.fill(dc, 0);

  const dG = gpu.empty([N, T, G]);
  for (let t = T - 1; t >= 0; t--) {
    gpu.run({
      op: 'lstmGateBackward',
      key: 'b',
      code: lstmGateBackwardShader,
      // Without c0 the placeholder is c itself: both bindings are read-only, which WebGPU allows.
      buffers: [dh, dhRec, dc, forward.gates, forward.c, c0 ?? forward.c, dG],
      uniforms: [N, T, H, t, c0 ? 1 : 0],
      workgroups: grid(Math.ceil((N * H) / LSTM_WORKGROUP)),
    });
    // dh_{t-1} = dG_t W_hh (overwrites dhRec, which the kernel above has consumed).
    matmul(gpu, dG, weights.wHh, N, G, H, { out: dhRec, aOffset: t * G, lda: T * G });
  }

  // Over all steps at once: dx = dG W_ih, dW_ih = dG^T x, dW_hh = dG^T hPrev (split-K takes the long
  // N*T reductions when the outputs are few).
  const dx = matmul(gpu, dG, weights.wIh, N * T, G, I, { out: gpu.empty([N, T, I]) });
  const dWih = matmul(gpu, dG, x, G, N * T, I, { transA: true, out: gpu.empty([G, I]) });
  const hPrev = gpu.empty([N, T, H]);
  gpu.run({
    op: 'lstmShift',
    key: 's',
    code: lstmShiftShader,
    buffers: [forward.h, h0 ?? forward.h, hPrev],
    uniforms: [N, T, H, h0 ? 1 : 0],
    workgroups: grid(Math.ceil((N * T * H) / LSTM_WORKGROUP)),
  });
  const dWhh = matmul(gpu, dG, hPrev, G, N * T, H, { transA: true, out: gpu.empty([G, H]) });
  hPrev.release();
  const dbIh = gpu.empty([G]);
  const dbHh = gpu.empty([G]);
  gpu.run({
    op: 'lstmBiasGrad',
    key: 'db',
    code: lstmBiasGradShader,
    buffers: [dG, dbIh, dbHh],
    uniforms: [N * T, G],
    workgroups: grid(Math.ceil(G / LSTM_WORKGROUP)),
  });
  dG.release();
  return { dx, dWih, dWhh, dbIh, dbHh, dh0: dhRec, dc0: dc };
}

/**
 * FLOPs of the GEMMs (2 * multiply-adds; the element-wise gate kernels are not counted), for benchmarks.
 * forward: input projection 2*N*T*4H*I plus T recurrent products 2*N*H*4H (T-1 of them run when h0 is
 * absent; counted as T). backward: the recurrent dh 2*N*T*4H*H, dx 2*N*T*4H*I, dW_ih 2*4H*N*T*I and dW_hh
 * 2*4H*N*T*H, i.e. twice the forward.
 */
export function lstmFlops(N: number, T: number, I: number, H: number): { forward: number; backward: number } {
  const forward = 2 * N * T * 4 * H * (I + H);
  return { forward, backward: 2 * forward };
}
