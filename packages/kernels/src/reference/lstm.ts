// One-layer, batch-first LSTM exactly as PyTorch's nn.LSTM (gate order i, f, g, o), forward and
// backpropagation through time, in float64.
//   a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh            (a: [4H], rows i, f, g, o)
//   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
import { checkLength, checkNonNegativeInt, checkPositiveInt } from './check.js';
import { stableTanh } from './elementwise.js';

export interface LstmDims {
  /** batch */
  N: number;
  /** time steps */
  T: number;
  /** input features */
  I: number;
  /** hidden size */
  H: number;
}

export interface LstmWeights {
  /** weight_ih_l0: [4H, I] */
  wIh: Float64Array;
  /** weight_hh_l0: [4H, H] */
  wHh: Float64Array;
  /** bias_ih_l0: [4H] */
  bIh: Float64Array;
  /** bias_hh_l0: [4H] */
  bHh: Float64Array;
}

export interface LstmForwardResult {
  /** every hidden state h_1..h_T: [N, T, H] (PyTorch's output) */
  h: Float64Array;
  /** every cell state c_1..c_T: [N, T, H] */
  c: Float64Array;
  /** post-activation gates (sigmoid i, sigmoid f, tanh g, sigmoid o): [N, T, 4H] */
  gates: Float64Array;
  /** final hidden state: [N, H] */
  hT: Float64Array;
  /** final cell state: [N, H] */
  cT: Float64Array;
}

export interface LstmGradients {
  dx: Float64Array;
  dWih: Float64Array;
  dWhh: Float64Array;
  dbIh: Float64Array;
  /** equals dbIh: both biases enter the pre-activation the same way */
  dbHh: Float64Array;
  dh0: Float64Array;
  dc0: Float64Array;
}

function sigmoid(a: number): number {
  return 1 / (1 + Math.exp(-a));
}

function checkLstm(
  op: string,
  x: Float64Array,
  dims: LstmDims,
  weights: LstmWeights,
  h0: Float64Array | null,
  c0: Float64Array | null,
): void {
  const { N, T, I, H } = dims;
  checkNonNegativeInt(op, 'N', N);
  checkNonNegativeInt(op, 'T', T);
  checkNonNegativeInt(op, 'I', I);
  checkPositiveInt(op, 'H', H);
  checkLength(op, 'x', x, N * T * I);
  checkLength(op, 'wIh', weights.wIh, 4 * H * I);
  checkLength(op, 'wHh', weights.wHh, 4 * H * H);
  checkLength(op, 'bIh', weights.bIh, 4 * H);
  checkLength(op, 'bHh', weights.bHh, 4 * H);
  if (h0 !== null) checkLength(op, 'h0', h0, N * H);
  if (c0 !== null) checkLength(op, 'c0', c0, N * H);
}

/** Runs the LSTM over all T steps; h0/c0 null means zeros (PyTorch's default). */
export function lstmForward(
  x: Float64Array,
  dims: LstmDims,
  weights: LstmWeights,
  h0: Float64Array | null,
  c0: Float64Array | null,
): LstmForwardResult {
  checkLstm('lstmForward', x, dims, weights, h0, c0);
  const { N, T, I, H } = dims;
  const { wIh, wHh, bIh, bHh } = weights;
  const h = new Float64Array(N * T * H);
  const c = new Float64Array(N * T * H);
  const gates = new Float64Array(N * T * 4 * H);
  const hT = new Float64Array(N * H);
  const cT = new Float64Array(N * H);
  const a = new Float64Array(4 * H);
  for (let n = 0; n < N; n++) {
    // The running state of this sequence, starting from h0/c0.
    const hPrev = h0 === null ? new Float64Array(H) : h0.slice(n * H, (n + 1) * H);
    const cPrev = c0 === null ? new Float64Array(H) : c0.slice(n * H, (n + 1) * H);
    for (let t = 0; t < T; t++) {
      const xBase = (n * T + t) * I;
      for (let r = 0; r < 4 * H; r++) {
        let acc = bIh[r] + bHh[r];
        for (let k = 0; k < I; k++) acc += wIh[r * I + k] * x[xBase + k];
        for (let k = 0; k < H; k++) acc += wHh[r * H + k] * hPrev[k];
        a[r] = acc;
      }
      const gBase = (n * T + t) * 4 * H;
      const sBase = (n * T + t) * H;
      for (let j = 0; j < H; j++) {
        const ig = sigmoid(a[j]);
        const fg = sigmoid(a[H + j]);
        const gg = stableTanh(a[2 * H + j]);
        const og = sigmoid(a[3 * H + j]);
        const cNew = fg * cPrev[j] + ig * gg;
        const hNew = og * stableTanh(cNew);
        gates[gBase + j] = ig;
        gates[gBase + H + j] = fg;
        gates[gBase + 2 * H + j] = gg;
        gates[gBase + 3 * H + j] = og;
        c[sBase + j] = cNew;
        h[sBase + j] = hNew;
      }
      // Update the running state only after every unit has read the previous one.
      for (let j = 0; j < H; j++) {
        hPrev[j] = h[sBase + j];
        cPrev[j] = c[sBase + j];
      }
    }
    hT.set(hPrev, n * H);
    cT.set(cPrev, n * H);
  }
  return { h, c, gates, hT, cT };
}

/**
 * Backpropagation through time. dh: [N, T, H], the gradient w.r.t. every output h_t (zeros where a step's
 * output is unused); dhT/dcT: gradients w.r.t. the final states (null = zero). Since h_T is both the last
 * output and hT, their gradients add, as in autograd.
 */
export function lstmBackward(
  x: Float64Array,
  dims: LstmDims,
  weights: LstmWeights,
  h0: Float64Array | null,
  c0: Float64Array | null,
  forward: LstmForwardResult,
  dh: Float64Array,
  dhT: Float64Array | null,
  dcT: Float64Array | null,
): LstmGradients {
  const op = 'lstmBackward';
  checkLstm(op, x, dims, weights, h0, c0);
  const { N, T, I, H } = dims;
  const { wIh, wHh } = weights;
  checkLength(op, 'forward.h', forward.h, N * T * H);
  checkLength(op, 'forward.c', forward.c, N * T * H);
  checkLength(op, 'forward.gates', forward.gates, N * T * 4 * H);
  checkLength(op, 'dh', dh, N * T * H);
  if (dhT !== null) checkLength(op, 'dhT', dhT, N * H);
  if (dcT !== null) checkLength(op, 'dcT', dcT, N * H);

  const dx = new Float64Array(N * T * I);
  const dWih = new Float64Array(4 * H * I);
  const dWhh = new Float64Array(4 * H * H);
  const db = new Float64Array(4 * H);
  const dh0 = new Float64Array(N * H);
  const dc0 = new Float64Array(N * H);
  const da = new Float64Array(4 * H); // gradient w.r.t. the pre-activations of one step

  for (let n = 0; n < N; n++) {
    // Gradients flowing into h_t and c_t from step t+1 (or from dhT/dcT at the last step).
    const dhNext = dhT === null ? new Float64Array(H) : dhT.slice(n * H, (n + 1) * H);
    const dcNext = dcT === null ? new Float64Array(H) : dcT.slice(n * H, (n + 1) * H);
    for (let t = T - 1; t >= 0; t--) {
      const sBase = (n * T + t) * H;
      const gBase = (n * T + t) * 4 * H;
      const prevBase = (n * T + t - 1) * H;
      for (let j = 0; j < H; j++) {
        const ig = forward.gates[gBase + j];
        const fg = forward.gates[gBase + H + j];
        const gg = forward.gates[gBase + 2 * H + j];
        const og = forward.gates[gBase + 3 * H + j];
        const tc = stableTanh(forward.c[sBase + j]);
        const cPrev = t > 0 ? forward.c[prevBase + j] : c0 === null ? 0 : c0[n * H + j];
        const dht = dh[sBase + j] + dhNext[j];
        const dct = dcNext[j] + dht * og * (1 - tc * tc);
        da[j] = dct * gg * ig * (1 - ig);
        da[H + j] = dct * cPrev * fg * (1 - fg);
        da[2 * H + j] = dct * ig * (1 - gg * gg);
        da[3 * H + j] = dht * tc * og * (1 - og);
        dcNext[j] = dct * fg; // becomes dc_{t-1}
      }
      // Parameter gradients, input gradient, and dh_{t-1} = W_hh^T da.
      const xBase = (n * T + t) * I;
      for (let r = 0; r < 4 * H; r++) {
        db[r] += da[r];
        for (let k = 0; k < I; k++) dWih[r * I + k] += da[r] * x[xBase + k];
        for (let k = 0; k < H; k++) {
          const hPrev = t > 0 ? forward.h[prevBase + k] : h0 === null ? 0 : h0[n * H + k];
          dWhh[r * H + k] += da[r] * hPrev;
        }
      }
      for (let k = 0; k < I; k++) {
        let acc = 0;
        for (let r = 0; r < 4 * H; r++) acc += da[r] * wIh[r * I + k];
        dx[xBase + k] = acc;
      }
      for (let k = 0; k < H; k++) {
        let acc = 0;
        for (let r = 0; r < 4 * H; r++) acc += da[r] * wHh[r * H + k];
        dhNext[k] = acc;
      }
    }
    dh0.set(dhNext, n * H);
    dc0.set(dcNext, n * H);
  }
  return { dx, dWih, dWhh, dbIh: db, dbHh: db.slice(), dh0, dc0 };
}
