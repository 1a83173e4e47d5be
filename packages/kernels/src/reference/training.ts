// Reductions, optimiser steps and the attack's update/projection, in float64.
import { argError } from '../errors.js';
import { checkLength, checkNonNegativeInt } from './check.js';

export function sumAll(x: Float64Array): number {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i];
  return acc;
}

/** Column sums of x[rows, cols] -> [cols] (bias gradients are these sums over the batch). */
export function sumRows(x: Float64Array, rows: number, cols: number): Float64Array {
  const op = 'sumRows';
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'cols', cols);
  checkLength(op, 'x', x, rows * cols);
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c] += x[r * cols + c];
  return out;
}

/** Euclidean norm of each row of x[rows, cols] -> [rows]. */
export function l2NormRows(x: Float64Array, rows: number, cols: number): Float64Array {
  const op = 'l2NormRows';
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'cols', cols);
  checkLength(op, 'x', x, rows * cols);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let c = 0; c < cols; c++) acc += x[r * cols + c] * x[r * cols + c];
    out[r] = Math.sqrt(acc);
  }
  return out;
}

/** y + alpha * x, as a new array (y is not modified). */
export function axpy(alpha: number, x: Float64Array, y: Float64Array): Float64Array {
  checkLength('axpy', 'y', y, x.length);
  const out = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = y[i] + alpha * x[i];
  return out;
}

export interface SgdParams {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * One step of torch.optim.SGD with momentum (dampening 0, no Nesterov):
 *   g' = g + weightDecay * w;  v = momentum * v + g';  w = w - lr * v.
 * PyTorch sets the buffer to g' on the first step; starting from v = 0 gives exactly that.
 * Returns new arrays; the inputs are not modified.
 */
export function sgdMomentumStep(
  w: Float64Array,
  g: Float64Array,
  v: Float64Array,
  params: SgdParams,
): { w: Float64Array; v: Float64Array } {
  const op = 'sgdMomentumStep';
  checkLength(op, 'g', g, w.length);
  checkLength(op, 'v', v, w.length);
  const wOut = new Float64Array(w.length);
  const vOut = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const gi = g[i] + params.weightDecay * w[i];
    vOut[i] = params.momentum * v[i] + gi;
    wOut[i] = w[i] - params.lr * vOut[i];
  }
  return { w: wOut, v: vOut };
}

export type AttackStepMode = 'l2' | 'sign' | 'raw';

export interface AttackStepParams {
  mode: AttackStepMode;
  lr: number;
}

/**
 * One descent step on delta[rows, cols], each row (one query) on its own:
 *   l2:   delta - lr * g / ||g_row||_2  (a row whose gradient norm is 0 is left unchanged)
 *   sign: delta - lr * sign(g)          (sign(0) = 0 here, unlike the code bits)
 *   raw:  delta - lr * g
 */
export function attackStep(
  delta: Float64Array,
  g: Float64Array,
  rows: number,
  cols: number,
  params: AttackStepParams,
): Float64Array {
  const op = 'attackStep';
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'cols', cols);
  checkLength(op, 'delta', delta, rows * cols);
  checkLength(op, 'g', g, rows * cols);
  const { mode, lr } = params;
  if (mode !== 'l2' && mode !== 'sign' && mode !== 'raw') {
    throw argError(op, `mode must be 'l2', 'sign' or 'raw', found '${String(mode)}'`);
  }
  const norms = mode === 'l2' ? l2NormRows(g, rows, cols) : null;
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      let step: number;
      if (mode === 'l2') {
        const norm = norms![r];
        step = norm > 0 ? g[i] / norm : 0;
      } else if (mode === 'sign') {
        step = Math.sign(g[i]);
      } else {
        step = g[i];
      }
      out[i] = delta[i] - lr * step;
    }
  }
  return out;
}

/** min(max(x, lo), hi), element-wise, as a new array. */
export function clampBox(x: Float64Array, lo: number, hi: number): Float64Array {
  if (!(lo <= hi)) throw argError('clampBox', `lo (${lo}) must not exceed hi (${hi})`);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.min(Math.max(x[i], lo), hi);
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}

/**
 * The attack's projection, in the model's normalised input space, in this order (PROTOCOL.md):
 * (1) the image xn + delta is clamped to the valid box [lo[c], hi[c]] of its channel (the pixel box [0, 1]
 * mapped through the normalisation), (2) the resulting delta is clamped to [-eps, eps]:
 *   delta' = clamp(clamp(xn + delta, lo[c], hi[c]) - xn, -eps, eps)
 * Layout of delta and xn: [rows, channels, planeSize].
 */
export function attackProject(
  delta: Float64Array,
  xn: Float64Array,
  rows: number,
  channels: number,
  planeSize: number,
  lo: Float64Array,
  hi: Float64Array,
  eps: number | ArrayLike<number>,
): Float64Array {
  const op = 'attackProject';
  const epsOf = (c: number): number => (typeof eps === 'number' ? eps : eps[c]);
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'channels', channels);
  checkNonNegativeInt(op, 'planeSize', planeSize);
  const n = rows * channels * planeSize;
  checkLength(op, 'delta', delta, n);
  checkLength(op, 'xn', xn, n);
  checkLength(op, 'lo', lo, channels);
  checkLength(op, 'hi', hi, channels);
  if (typeof eps !== 'number') checkLength(op, 'eps', eps, channels);
  for (let c = 0; c < channels; c++) {
    if (!(epsOf(c) >= 0)) throw argError(op, `eps must be >= 0, found ${epsOf(c)}`);
    if (!(lo[c] <= hi[c])) throw argError(op, `lo[${c}] (${lo[c]}) must not exceed hi[${c}] (${hi[c]})`);
  }
  const out = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < planeSize; p++) {
        const i = (r * channels + c) * planeSize + p;
        const image = clamp(xn[i] + delta[i], lo[c], hi[c]);
        out[i] = clamp(image - xn[i], -epsOf(c), epsOf(c));
      }
    }
  }
  return out;
}

/**
 * One fused L2 attack update: attackStep (l2), then attackProject, then the next input xn + delta.
 * Layout of delta, g and xn: [rows, channels, planeSize].
 */
export function attackStepProject(
  delta: Float64Array,
  g: Float64Array,
  xn: Float64Array,
  rows: number,
  channels: number,
  planeSize: number,
  lo: Float64Array,
  hi: Float64Array,
  eps: number | ArrayLike<number>,
  lr: number,
): { delta: Float64Array; xAdv: Float64Array } {
  const cols = channels * planeSize;
  const stepped = attackStep(delta, g, rows, cols, { mode: 'l2', lr });
  const projected = attackProject(stepped, xn, rows, channels, planeSize, lo, hi, eps);
  return { delta: projected, xAdv: projected.map((d, i) => xn[i] + d) };
}

export interface PairwiseTermsParams {
  /** theta_ij = thetaScale * theta[i, j] (e.g. 1/2 when theta holds u_i . bank_j). */
  thetaScale: number;
  /** Multiplies every coefficient (e.g. -1 / (2 B N)). */
  scale: number;
  /** Weight similar and dissimilar pairs of each row so that both sets count equally. */
  balance: boolean;
  /** Columns per likelihood partial sum. */
  chunk: number;
}

/**
 * The pair terms of the pairwise (DPSH) likelihood of rows i < rows against columns j < cols, from
 * theta[i, j] (times thetaScale) and sim[i, j] (the pair is similar, s_ij = 1, when sim > 0):
 *   w_ij = 1, or with balance N / (2 n_sim_i) (similar) and N / (2 (N - n_sim_i)) (dissimilar), where
 *          n_sim_i counts row i's similar pairs (weights stay 1 when it is 0 or N);
 *   coef[i, j] = scale * w_ij * (s_ij - sigmoid(theta_ij));
 *   likelihood[i, c] = sum of w_ij * (s_ij theta_ij - softplus(theta_ij)) over the columns of chunk c
 *          (columns c*chunk up to the next chunk; ceil(cols / chunk) chunks per row).
 */
export function pairwiseTerms(
  theta: Float64Array,
  sim: Float64Array,
  rows: number,
  cols: number,
  params: PairwiseTermsParams,
): { coef: Float64Array; likelihood: Float64Array } {
  const op = 'pairwiseTerms';
  checkNonNegativeInt(op, 'rows', rows);
  checkNonNegativeInt(op, 'cols', cols);
  checkLength(op, 'theta', theta, rows * cols);
  checkLength(op, 'sim', sim, rows * cols);
  const { thetaScale, scale, balance, chunk } = params;
  if (!Number.isInteger(chunk) || chunk < 1)
    throw argError(op, `chunk must be an integer >= 1, found ${chunk}`);
  const chunks = Math.ceil(cols / chunk);
  const coef = new Float64Array(rows * cols);
  const likelihood = new Float64Array(rows * chunks);
  for (let i = 0; i < rows; i++) {
    let nSim = 0;
    for (let j = 0; j < cols; j++) if (sim[i * cols + j] > 0) nSim++;
    let wSim = 1;
    let wDis = 1;
    if (balance && nSim > 0 && nSim < cols) {
      wSim = cols / (2 * nSim);
      wDis = cols / (2 * (cols - nSim));
    }
    for (let j = 0; j < cols; j++) {
      const t = thetaScale * theta[i * cols + j];
      const s = sim[i * cols + j] > 0 ? 1 : 0;
      const w = s ? wSim : wDis;
      const e = Math.exp(-Math.abs(t));
      const softplus = Math.max(t, 0) + Math.log1p(e);
      const sigmoid = t >= 0 ? 1 / (1 + e) : e / (1 + e);
      coef[i * cols + j] = scale * w * (s - sigmoid);
      likelihood[i * chunks + Math.floor(j / chunk)] += w * (s * t - softplus);
    }
  }
  return { coef, likelihood };
}
