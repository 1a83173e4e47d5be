import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP, type UniformDecl } from '../gpu/wgsl.js';

export const TRAINING_WORKGROUP = 256;

export type ElementwiseUpdate =
  | 'axpy'
  | 'scaleInPlace'
  | 'scaleOut'
  | 'sgdMomentum'
  | 'stepSign'
  | 'stepRaw'
  | 'clampInPlace'
  | 'clampOut';

interface UpdateSpec {
  buffers: { name: string; access: 'read' | 'read_write' }[];
  uniforms: UniformDecl[];
  body: string;
}

const N: UniformDecl = { name: 'n', type: 'u32' };

/** The element-wise optimiser and attack updates: buffers, uniforms (n first) and the body for element i. */
const UPDATES: Record<ElementwiseUpdate, UpdateSpec> = {
  // y += alpha * x
  axpy: {
    buffers: [
      { name: 'x', access: 'read' },
      { name: 'y', access: 'read_write' },
    ],
    uniforms: [N, { name: 'alpha', type: 'f32' }],
    body: 'y[i] = y[i] + u.alpha * x[i];',
  },
  scaleInPlace: {
    buffers: [{ name: 'x', access: 'read_write' }],
    uniforms: [N, { name: 'alpha', type: 'f32' }],
    body: 'x[i] = u.alpha * x[i];',
  },
  scaleOut: {
    buffers: [
      { name: 'x', access: 'read' },
      { name: 'y', access: 'read_write' },
    ],
    uniforms: [N, { name: 'alpha', type: 'f32' }],
    body: 'y[i] = u.alpha * x[i];',
  },
  // torch.optim.SGD (dampening 0, no Nesterov): g' = g + wd w; v = m v + g'; w -= lr v.
  sgdMomentum: {
    buffers: [
      { name: 'w', access: 'read_write' },
      { name: 'g', access: 'read' },
      { name: 'v', access: 'read_write' },
    ],
    uniforms: [
      N,
      { name: 'lr', type: 'f32' },
      { name: 'momentum', type: 'f32' },
      { name: 'weight_decay', type: 'f32' },
    ],
    body: `let wi = w[i];
  let gi = g[i] + u.weight_decay * wi;
  let vi = u.momentum * v[i] + gi;
  v[i] = vi;
  w[i] = wi - u.lr * vi;`,
  },
  // sign(0) = 0 here (WGSL's sign), as in the reference's attack step.
  stepSign: {
    buffers: [
      { name: 'delta', access: 'read_write' },
      { name: 'g', access: 'read' },
    ],
    uniforms: [N, { name: 'lr', type: 'f32' }],
    body: 'delta[i] = delta[i] - u.lr * sign(g[i]);',
  },
  stepRaw: {
    buffers: [
      { name: 'delta', access: 'read_write' },
      { name: 'g', access: 'read' },
    ],
    uniforms: [N, { name: 'lr', type: 'f32' }],
    body: 'delta[i] = delta[i] - u.lr * g[i];',
  },
  clampInPlace: {
    buffers: [{ name: 'x', access: 'read_write' }],
    uniforms: [N, { name: 'lo', type: 'f32' }, { name: 'hi', type: 'f32' }],
    body: 'x[i] = min(max(x[i], u.lo), u.hi);',
  },
  clampOut: {
    buffers: [
      { name: 'x', access: 'read' },
      { name: 'y', access: 'read_write' },
    ],
    uniforms: [N, { name: 'lo', type: 'f32' }, { name: 'hi', type: 'f32' }],
    body: 'y[i] = min(max(x[i], u.lo), u.hi);',
  },
};

/** One element per invocation. */
export function elementwiseUpdateShader(kind: ElementwiseUpdate): string {
  const spec = UPDATES[kind];
  return `
${declareBindings(
  spec.buffers.map((b) => ({ ...b, type: 'f32' as const })),
  spec.uniforms,
)}
@compute @workgroup_size(${TRAINING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${TRAINING_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  ${spec.body}
}`;
}

/** A workgroup tree reduction over red[] (every lane ends at a barrier). */
function tree(op: string): string {
  return `workgroupBarrier();
  for (var half = ${TRAINING_WORKGROUP / 2}u; half > 0u; half >>= 1u) {
    if (lid < half) { red[lid] = ${op}; }
    workgroupBarrier();
  }`;
}

/**
 * A row's L2 norm, overflow-safe: the max |g| first, then the norm of g / max (one workgroup per row, rows of
 * u.cols from u.rows); defines base, gmax, scale and scaled_norm (||g|| = scale * scaled_norm).
 */
const ROW_L2_NORM = `let base = wg_linear * u.cols;
  var m = 0.0;
  for (var c = lid; c < u.cols; c += ${TRAINING_WORKGROUP}u) { m = max(m, abs(g[base + c])); }
  red[lid] = m;
  ${tree('max(red[lid], red[lid + half])')}
  let gmax = red[0];
  workgroupBarrier();
  let scale = select(1.0, gmax, gmax > 0.0);
  var acc = 0.0;
  for (var c = lid; c < u.cols; c += ${TRAINING_WORKGROUP}u) {
    let q = g[base + c] / scale;
    acc += q * q;
  }
  red[lid] = acc;
  ${tree('red[lid] + red[lid + half]')}
  let scaled_norm = sqrt(red[0]);`;

/**
 * The attack's L2 step, fused: one workgroup per row computes the row's gradient norm and applies
 * delta -= lr * g / ||g||. The norm is taken as gmax * sqrt(sum((g / gmax)^2)) (as BLAS snrm2 scales), so
 * gradients far below 1e-19 (saturated tanh) do not underflow to a zero norm, nor large ones overflow.
 * Both sums are per-invocation strided slices combined by a pairwise tree. A zero row is left unchanged.
 */
export function attackStepL2Shader(): string {
  return `
${declareBindings(
  [
    { name: 'delta', access: 'read_write', type: 'f32' },
    { name: 'g', access: 'read', type: 'f32' },
  ],
  [
    { name: 'rows', type: 'u32' },
    { name: 'cols', type: 'u32' },
    { name: 'lr', type: 'f32' },
  ],
)}
var<workgroup> red: array<f32, ${TRAINING_WORKGROUP}>;
@compute @workgroup_size(${TRAINING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  if (wg_linear >= u.rows) { return; }
  ${ROW_L2_NORM}
  if (gmax > 0.0) {
    for (var c = lid; c < u.cols; c += ${TRAINING_WORKGROUP}u) {
      let i = base + c;
      delta[i] = delta[i] - u.lr * ((g[i] / scale) / scaled_norm);
    }
  }
}`;
}

/**
 * One whole attack update per query, fused (the L2 step, then the projection, then the next input):
 * a workgroup per row reduces ||g|| as attackStepL2Shader does, then per element
 *   d = delta - lr * g / ||g||  (unchanged when g is all zero)
 *   d = clamp(clamp(xn + d, lo[c], hi[c]) - xn, -eps[c], eps[c]);  delta = d;  xadv = xn + d
 * with the same f32 operations, in the same order, as attackStep, attackProject, then copy + axpy, so the
 * result is the same to the bit. The per-channel box is a uniform array of vec4 (lo, hi, eps, -).
 */
export function attackStepProjectShader(channels: number): string {
  return `
@group(0) @binding(0) var<storage, read_write> delta: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> xn: array<f32>;
@group(0) @binding(3) var<storage, read_write> xadv: array<f32>;
struct U { rows: u32, cols: u32, channels: u32, plane: u32, lr: f32, p0: u32, p1: u32, p2: u32, bounds: array<vec4<f32>, ${channels}> }
@group(0) @binding(4) var<uniform> u: U;
var<workgroup> red: array<f32, ${TRAINING_WORKGROUP}>;
@compute @workgroup_size(${TRAINING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  if (wg_linear >= u.rows) { return; }
  ${ROW_L2_NORM}
  for (var c = lid; c < u.cols; c += ${TRAINING_WORKGROUP}u) {
    let i = base + c;
    var d = delta[i];
    if (gmax > 0.0) { d = d - u.lr * ((g[i] / scale) / scaled_norm); }
    let box_ = u.bounds[(c / u.plane) % u.channels];
    let x = xn[i];
    let image = min(max(x + d, box_.x), box_.y);
    d = min(max(image - x, -box_.z), box_.z);
    delta[i] = d;
    xadv[i] = x + d;
  }
}`;
}

/**
 * The attack's projection, per element of delta [rows, channels, plane]:
 * delta = clamp(clamp(xn + delta, lo[c], hi[c]) - xn, -eps, eps). The per-channel box is a uniform array
 * of vec4 (lo, hi, -, -), sized by the channel count (the only thing in the cache key).
 */
export function attackProjectShader(channels: number): string {
  return `
@group(0) @binding(0) var<storage, read_write> delta: array<f32>;
@group(0) @binding(1) var<storage, read> xn: array<f32>;
struct U { n: u32, channels: u32, plane: u32, pad: u32, bounds: array<vec4<f32>, ${channels}> }
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${TRAINING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${TRAINING_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  let c = (i / u.plane) % u.channels;
  let box_ = u.bounds[c];
  let x = xn[i];
  let image = min(max(x + delta[i], box_.x), box_.y);
  delta[i] = min(max(image - x, -box_.z), box_.z);
}`;
}

/**
 * lo + span * uniformAt(seed, offset + i), with uniformAt the integer recipe of reference/random.ts:
 * (pcg_hash((offset + i) ^ pcg_hash(seed)) >> 8) / 2^24, u32 arithmetic wrapping mod 2^32 as Math.imul.
 */
export function uniformNoiseShader(): string {
  return `
${declareBindings(
  [{ name: 'out_', access: 'read_write', type: 'f32' }],
  [
    { name: 'n', type: 'u32' },
    { name: 'seed', type: 'u32' },
    { name: 'offset', type: 'u32' },
    { name: 'lo', type: 'f32' },
    { name: 'span', type: 'f32' },
  ],
)}
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
@compute @workgroup_size(${TRAINING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${TRAINING_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  let h = pcg_hash((u.offset + i) ^ pcg_hash(u.seed));
  // The top 24 bits: exact in f32, as in the reference.
  let unit = f32(h >> 8u) * (1.0 / 16777216.0);
  out_[i] = u.lo + u.span * unit;
}`;
}
