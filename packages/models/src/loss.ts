// The training losses. `pairwiseLoss` is the float64 reference on the CPU; `pairwiseLossOnEngine` is what
// training runs: the loss against the memory bank (the whole training set's latest outputs: B x N x K
// multiply-adds for each product, 15 M for a batch of 24 against 5000 objects of 64 bits, and B x N pair terms
// with an exp and a log each) on the engine in float32.

import type { Engine, EngineTensor } from '@dhta/kernels';

/** log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)). */
export function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** 1 when two multi-hot label rows share a positive label. */
export function similar(a: Uint8Array, ai: number, b: Uint8Array, bi: number, classes: number): number {
  for (let c = 0; c < classes; c++) if (a[ai * classes + c] && b[bi * classes + c]) return 1;
  return 0;
}

export interface PairwiseLossInput {
  /** The batch's relaxed codes u (B x K), e.g. tanh(f(x)). */
  u: ArrayLike<number>;
  /** The batch's multi-hot labels (B x C). */
  labels: Uint8Array;
  /** The memory bank (N x K): every training object's latest u, this batch's rows already updated. */
  bank: ArrayLike<number>;
  bankLabels: Uint8Array;
  bits: number;
  classes: number;
  /** Weight of the quantisation term. */
  eta: number;
  /**
   * Weight each batch row's similar and dissimilar pairs so that both sets count equally (w = N / (2 n_sim)
   * and N / (2 n_dis)); off (every pair weight 1) is DPSH's loss. See the package README.
   */
  balance?: boolean;
}

function labelMasks(labels: Uint8Array, n: number, classes: number): Uint32Array {
  const masks = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let c = 0; c < classes; c++) if (labels[i * classes + c]) m |= 1 << c;
    masks[i] = m >>> 0;
  }
  return masks;
}

/**
 * The pairwise (DPSH-style) loss of PROTOCOL.md for a batch U against the memory bank, and dL/du:
 *   theta_ij = u_i . bank_j / 2,  s_ij = 1 when i and j share a label
 *   L = -sum_ij (s_ij theta_ij - log(1 + exp(theta_ij))) / (B N) + eta * sum_i ||sign(u_i) - u_i||^2 / (B N)
 *   dL/du_i = -sum_j (s_ij - sigmoid(theta_ij)) bank_j / (2 B N) + 2 eta (u_i - sign(u_i)) / (B N)
 * The bank is a constant (as in DPSH: gradients flow through the batch's own outputs only); sign(0) = +1.
 * With `balance`, each pair term is weighted by w_ij (N / (2 n_sim) or N / (2 n_dis) for row i).
 */
export function pairwiseLoss(input: PairwiseLossInput): PairwiseLossResult {
  const { u, labels, bank, bankLabels, bits: K, classes: C, eta, balance = false } = input;
  const { B, N } = checkShapes('pairwiseLoss', input);
  const norm = B * N;
  const grad = new Float64Array(B * K);
  // With at most 32 classes a label row is one bit mask, and "shares a label" one AND (the training loop
  // calls this for every batch against the whole bank: N x C comparisons per row otherwise).
  const masks = C <= 32 ? labelMasks(bankLabels, N, C) : null;
  const batchMasks = C <= 32 ? labelMasks(labels, B, C) : null;
  const sim = (i: number, j: number): number =>
    masks && batchMasks ? ((masks[j] & batchMasks[i]) !== 0 ? 1 : 0) : similar(labels, i, bankLabels, j, C);
  let likelihood = 0;
  for (let i = 0; i < B; i++) {
    let wSim = 1;
    let wDis = 1;
    if (balance) {
      let nSim = 0;
      for (let j = 0; j < N; j++) nSim += sim(i, j);
      if (nSim > 0 && nSim < N) {
        wSim = N / (2 * nSim);
        wDis = N / (2 * (N - nSim));
      }
    }
    for (let j = 0; j < N; j++) {
      let dot = 0;
      for (let k = 0; k < K; k++) dot += u[i * K + k] * bank[j * K + k];
      const theta = dot / 2;
      const s = sim(i, j);
      const w = s ? wSim : wDis;
      likelihood += w * (s * theta - softplus(theta));
      const coef = (-w * (s - sigmoid(theta))) / (2 * norm);
      for (let k = 0; k < K; k++) grad[i * K + k] += coef * bank[j * K + k];
    }
  }
  return finish(u, grad, likelihood, eta, norm);
}

export interface PairwiseLossResult {
  loss: number;
  likelihood: number;
  quantization: number;
  grad: Float64Array;
}

function checkShapes(what: string, input: PairwiseLossInput): { B: number; N: number } {
  const { u, labels, bank, bankLabels, bits: K, classes: C } = input;
  const B = u.length / K;
  const N = bank.length / K;
  if (
    !Number.isInteger(B) ||
    !Number.isInteger(N) ||
    labels.length !== B * C ||
    bankLabels.length !== N * C
  ) {
    throw new Error(
      `${what}: shapes disagree (u ${u.length}, bank ${bank.length}, labels ${labels.length}, ` +
        `bank labels ${bankLabels.length}, K ${K}, C ${C})`,
    );
  }
  return { B, N };
}

/** Adds the quantisation term's gradient to `grad` and assembles the result. */
function finish(
  u: ArrayLike<number>,
  grad: Float64Array,
  likelihood: number,
  eta: number,
  norm: number,
): PairwiseLossResult {
  let quantization = 0;
  for (let i = 0; i < grad.length; i++) {
    const v = u[i];
    const b = v >= 0 ? 1 : -1;
    quantization += (b - v) * (b - v);
    grad[i] += (2 * eta * (v - b)) / norm;
  }
  const likelihoodTerm = -likelihood / norm;
  const quantizationTerm = (eta * quantization) / norm;
  return {
    loss: likelihoodTerm + quantizationTerm,
    likelihood: likelihoodTerm,
    quantization: quantizationTerm,
    grad,
  };
}

/** The memory bank on an engine: every training object's latest u [N, K] and its labels [N, C] (0/1). */
export interface EngineBank {
  codes: EngineTensor;
  labels: EngineTensor;
}

/**
 * `pairwiseLoss` on `engine` in float32: theta = U bank^T and the similarity (shared labels, as the label
 * products A bank_labels^T) by the engine's GEMM, the pair terms by its pairwiseTerms op, dL/du's likelihood
 * part as coef bank; the per-chunk likelihood sums and the quantisation term are added here in float64.
 * `bank` must hold `input.bank` and `input.bankLabels` (the caller keeps both: the engine's copy for the
 * products, the host's for checkpoints). Agrees with the reference to float32 rounding.
 */
export async function pairwiseLossOnEngine(
  engine: Engine,
  input: PairwiseLossInput,
  bank: EngineBank,
): Promise<PairwiseLossResult> {
  const { u, labels, bits: K, classes: C, eta, balance = false } = input;
  const { B, N } = checkShapes('pairwiseLossOnEngine', input);
  if (bank.codes.size !== N * K || bank.labels.size !== N * C) {
    throw new Error(
      `pairwiseLossOnEngine: the engine's bank holds ${bank.codes.size} code and ${bank.labels.size} label ` +
        `values, not ${N} x ${K} and ${N} x ${C}`,
    );
  }
  const norm = B * N;
  const held: EngineTensor[] = [];
  const keep = <T extends EngineTensor>(t: T): T => {
    held.push(t);
    return t;
  };
  try {
    const uT = keep(engine.tensor([B, K], Float32Array.from(u)));
    const aT = keep(engine.tensor([B, C], Float32Array.from(labels)));
    const theta = keep(engine.matmul(uT, bank.codes, B, K, N, { transB: true }));
    const sim = keep(engine.matmul(aT, bank.labels, B, C, N, { transB: true }));
    const terms = engine.pairwiseTerms(theta, sim, { thetaScale: 0.5, scale: -1 / (2 * norm), balance });
    keep(terms.coef);
    keep(terms.likelihood);
    const g = keep(engine.matmul(terms.coef, bank.codes, B, N, K));
    const partials = await engine.read(terms.likelihood);
    let likelihood = 0;
    for (const p of partials) likelihood += p;
    return finish(u, Float64Array.from(await engine.read(g)), likelihood, eta, norm);
  } finally {
    for (const t of held) t.release();
  }
}
