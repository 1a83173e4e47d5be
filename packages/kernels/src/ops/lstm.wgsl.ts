// WGSL kernels of the LSTM besides its GEMMs: the fused gate kernels (forward and BPTT), the shifted copy of
// the hidden states that the recurrent weight gradient multiplies, and the bias-gradient column sums.
// Layouts are batch-first as in PyTorch: states [N, T, H], gates [N, T, 4H] with rows i, f, g, o.
import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP, STABLE_TANH } from '../gpu/wgsl.js';

export const LSTM_WORKGROUP = 64;

const STEP_UNIFORMS = [
  { name: 'N', type: 'u32' as const },
  { name: 'T', type: 'u32' as const },
  { name: 'H', type: 'u32' as const },
  { name: 't', type: 'u32' as const },
  { name: 'hasC0', type: 'u32' as const },
];

/** Index of invocation (n, j) of one step; returns early past N*H. */
const STEP_PROLOGUE = `
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${LSTM_WORKGROUP}u + lid;
  if (i >= u.N * u.H) { return; }
  let j = i % u.H;
  let row = (i / u.H) * u.T + u.t;
  let s = row * u.H + j;
  let g = row * 4u * u.H + j;
  var cPrev = 0.0;
  if (u.t > 0u) { cPrev = c[s - u.H]; } else if (u.hasC0 != 0u) { cPrev = c0[i]; }`;

/**
 * One forward step for every (n, j): the pre-activations of step t (input projection + recurrent GEMM, b_ih
 * already added) get b_hh, the gates are activated in place (the buffer becomes the saved gates), and
 * c_t, h_t (and hT, cT at the last step) are written.
 */
export function lstmGateForwardShader(): string {
  return `
${declareBindings(
  [
    { name: 'gates', access: 'read_write', type: 'f32' },
    { name: 'bHh', access: 'read', type: 'f32' },
    { name: 'c0', access: 'read', type: 'f32' },
    { name: 'h', access: 'read_write', type: 'f32' },
    { name: 'c', access: 'read_write', type: 'f32' },
    { name: 'hT', access: 'read_write', type: 'f32' },
    { name: 'cT', access: 'read_write', type: 'f32' },
  ],
  STEP_UNIFORMS,
)}
${STABLE_TANH}
@compute @workgroup_size(${LSTM_WORKGROUP})
fn main(${GRID_BUILTINS}) {
${STEP_PROLOGUE}
  let ig = stable_sigmoid(gates[g] + bHh[j]);
  let fg = stable_sigmoid(gates[g + u.H] + bHh[j + u.H]);
  let gg = stable_tanh(gates[g + 2u * u.H] + bHh[j + 2u * u.H]);
  let og = stable_sigmoid(gates[g + 3u * u.H] + bHh[j + 3u * u.H]);
  let cNew = fg * cPrev + ig * gg;
  let hNew = og * stable_tanh(cNew);
  gates[g] = ig;
  gates[g + u.H] = fg;
  gates[g + 2u * u.H] = gg;
  gates[g + 3u * u.H] = og;
  c[s] = cNew;
  h[s] = hNew;
  if (u.t + 1u == u.T) {
    hT[i] = hNew;
    cT[i] = cNew;
  }
}`;
}

/**
 * One BPTT step for every (n, j): from dh_t (output gradient plus the recurrent one from step t+1), the
 * running dc, the saved gates and c_t, c_{t-1}, writes the pre-activation gradients dG_t and replaces dc by
 * dc_{t-1} = dc_t * f.
 */
export function lstmGateBackwardShader(): string {
  return `
${declareBindings(
  [
    { name: 'dh', access: 'read', type: 'f32' },
    { name: 'dhRec', access: 'read', type: 'f32' },
    { name: 'dc', access: 'read_write', type: 'f32' },
    { name: 'gates', access: 'read', type: 'f32' },
    { name: 'c', access: 'read', type: 'f32' },
    { name: 'c0', access: 'read', type: 'f32' },
    { name: 'dG', access: 'read_write', type: 'f32' },
  ],
  STEP_UNIFORMS,
)}
${STABLE_TANH}
@compute @workgroup_size(${LSTM_WORKGROUP})
fn main(${GRID_BUILTINS}) {
${STEP_PROLOGUE}
  let ig = gates[g];
  let fg = gates[g + u.H];
  let gg = gates[g + 2u * u.H];
  let og = gates[g + 3u * u.H];
  let tc = stable_tanh(c[s]);
  let dht = dh[s] + dhRec[i];
  let dct = dc[i] + dht * og * (1.0 - tc * tc);
  dG[g] = dct * gg * ig * (1.0 - ig);
  dG[g + u.H] = dct * cPrev * fg * (1.0 - fg);
  dG[g + 2u * u.H] = dct * ig * (1.0 - gg * gg);
  dG[g + 3u * u.H] = dht * tc * og * (1.0 - og);
  dc[i] = dct * fg;
}`;
}

/** hPrev[n, t] = h[n, t-1], with h0 (or zeros) as step -1: the operand of dW_hh = sum_t dG_t^T h_{t-1}. */
export function lstmShiftShader(): string {
  return `
${declareBindings(
  [
    { name: 'h', access: 'read', type: 'f32' },
    { name: 'h0', access: 'read', type: 'f32' },
    { name: 'hPrev', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'N', type: 'u32' },
    { name: 'T', type: 'u32' },
    { name: 'H', type: 'u32' },
    { name: 'hasH0', type: 'u32' },
  ],
)}
@compute @workgroup_size(${LSTM_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${LSTM_WORKGROUP}u + lid;
  if (i >= u.N * u.T * u.H) { return; }
  let j = i % u.H;
  let row = i / u.H;
  let t = row % u.T;
  var v = 0.0;
  if (t > 0u) { v = h[i - u.H]; } else if (u.hasH0 != 0u) { v = h0[(row / u.T) * u.H + j]; }
  hPrev[i] = v;
}`;
}

/**
 * Column sums of dG [R, C] into both bias gradients (they are equal: both biases enter the pre-activation the
 * same way). One invocation per column; neighbouring lanes read neighbouring addresses.
 */
export function lstmBiasGradShader(): string {
  return `
${declareBindings(
  [
    { name: 'dG', access: 'read', type: 'f32' },
    { name: 'dbIh', access: 'read_write', type: 'f32' },
    { name: 'dbHh', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'R', type: 'u32' },
    { name: 'C', type: 'u32' },
  ],
)}
@compute @workgroup_size(${LSTM_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let col = wg_linear * ${LSTM_WORKGROUP}u + lid;
  if (col >= u.C) { return; }
  // Four interleaved partial sums: shorter dependency chains and a smaller rounding error than one.
  var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  var s3 = 0.0;
  var r = 0u;
  for (; r + 4u <= u.R; r += 4u) {
    s0 += dG[r * u.C + col];
    s1 += dG[(r + 1u) * u.C + col];
    s2 += dG[(r + 2u) * u.C + col];
    s3 += dG[(r + 3u) * u.C + col];
  }
  for (; r < u.R; r++) { s0 += dG[r * u.C + col]; }
  let total = (s0 + s1) + (s2 + s3);
  dbIh[col] = total;
  dbHh[col] = total;
}`;
}
