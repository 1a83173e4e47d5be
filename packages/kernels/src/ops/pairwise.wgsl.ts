import { PAIRWISE_CHUNK } from '../engine.js';
import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.js';

/** Invocations per workgroup of the count kernel (one workgroup per row). */
export const PAIRWISE_COUNT_WORKGROUP = 64;

/**
 * pairwiseTerms, pass 1: n_sim of each row (the count of sim > 0), one workgroup per row: each invocation
 * counts a strided slice, then a tree adds the 64 counts (integers: exact in any order below 2^24).
 */
export function pairwiseCountShader(): string {
  return `
${declareBindings(
  [
    { name: 'sim', access: 'read', type: 'f32' },
    { name: 'n_sim', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'rows', type: 'u32' },
    { name: 'cols', type: 'u32' },
  ],
)}
var<workgroup> partial: array<f32, ${PAIRWISE_COUNT_WORKGROUP}>;
@compute @workgroup_size(${PAIRWISE_COUNT_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  if (wg_linear >= u.rows) { return; }
  let row = wg_linear * u.cols;
  var n = 0.0;
  for (var j = lid; j < u.cols; j += ${PAIRWISE_COUNT_WORKGROUP}u) {
    n += select(0.0, 1.0, sim[row + j] > 0.0);
  }
  partial[lid] = n;
  workgroupBarrier();
  for (var half = ${PAIRWISE_COUNT_WORKGROUP / 2}u; half > 0u; half >>= 1u) {
    if (lid < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) { n_sim[wg_linear] = partial[0]; }
}`;
}

/**
 * pairwiseTerms, pass 2: workgroup (i, c) writes coef for the columns of chunk c of row i and the chunk's
 * likelihood partial, its ${PAIRWISE_CHUNK} terms added as a pairwise tree. softplus(t) = max(t, 0) +
 * log(1 + e) and sigmoid(t) = 1 / (1 + e) or e / (1 + e) from one e = exp(-|t|) (no overflow).
 */
export function pairwiseTermsShader(): string {
  return `
${declareBindings(
  [
    { name: 'theta', access: 'read', type: 'f32' },
    { name: 'sim', access: 'read', type: 'f32' },
    { name: 'n_sim', access: 'read', type: 'f32' },
    { name: 'coef', access: 'read_write', type: 'f32' },
    { name: 'likelihood', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'rows', type: 'u32' },
    { name: 'cols', type: 'u32' },
    { name: 'chunks', type: 'u32' },
    { name: 'balance', type: 'u32' },
    { name: 'theta_scale', type: 'f32' },
    { name: 'scale', type: 'f32' },
  ],
)}
var<workgroup> partial: array<f32, ${PAIRWISE_CHUNK}>;
@compute @workgroup_size(${PAIRWISE_CHUNK})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  if (wg_linear >= u.rows * u.chunks) { return; }
  let i = wg_linear / u.chunks;
  let c = wg_linear - i * u.chunks;
  let j = c * ${PAIRWISE_CHUNK}u + lid;
  let n = f32(u.cols);
  let ns = n_sim[i];
  var w_sim = 1.0;
  var w_dis = 1.0;
  if (u.balance != 0u && ns > 0.0 && ns < n) {
    w_sim = n / (2.0 * ns);
    w_dis = n / (2.0 * (n - ns));
  }
  var term = 0.0;
  if (j < u.cols) {
    let at = i * u.cols + j;
    let t = u.theta_scale * theta[at];
    let similar = sim[at] > 0.0;
    let s = select(0.0, 1.0, similar);
    let w = select(w_dis, w_sim, similar);
    let e = exp(-abs(t));
    let q = 1.0 + e;
    let sigmoid = select(e / q, 1.0 / q, t >= 0.0);
    coef[at] = u.scale * (w * (s - sigmoid));
    term = w * (s * t - (max(t, 0.0) + log(q)));
  }
  partial[lid] = term;
  workgroupBarrier();
  for (var half = ${PAIRWISE_CHUNK / 2}u; half > 0u; half >>= 1u) {
    if (lid < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) { likelihood[wg_linear] = partial[0]; }
}`;
}
