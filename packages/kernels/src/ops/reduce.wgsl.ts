import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.js';

/** Invocations per workgroup of both reduction kernels. */
export const REDUCE_WORKGROUP = 256;
/** Elements one workgroup of the segment kernel reduces (16 per invocation, then a tree of 256). */
export const REDUCE_SEGMENT = REDUCE_WORKGROUP * 16;
/** Rows one invocation of the column kernel adds serially before the next pass combines the partials. */
export const REDUCE_COLUMN_CHUNK = 64;

export interface ReduceVariant {
  /** What is summed: the elements or their squares. */
  map: 'identity' | 'square';
  /** Applied to the final sum (only in the last pass). */
  finalize: 'none' | 'sqrt';
}

function mapExpr(map: ReduceVariant['map'], v: string): string {
  return map === 'square' ? `${v} * ${v}` : v;
}

function finalizeExpr(finalize: ReduceVariant['finalize'], v: string): string {
  return finalize === 'sqrt' ? `sqrt(${v})` : v;
}

/**
 * Segment reduction of x viewed as [A, R, B]: output r sums the A*B elements x[a, r, b], taken in the
 * flattened order t = a*B + b. Workgroup (r, s) reduces the segment t in [s*seg, (s+1)*seg): each
 * invocation accumulates a strided slice serially, then the workgroup adds the 256 partial sums as a
 * pairwise tree, so the rounding error grows with log(length), not length. out[r*S + s] is one partial
 * (S segments per output; S = 1 in the last pass). `strided` = A > 1 (else the index is r*B + t).
 */
export function reduceSegmentsShader(variant: ReduceVariant & { strided: boolean }): string {
  const index = variant.strided
    ? 'let a = t / u.inner;\n    let idx = a * u.stride_a + r * u.inner + (t - a * u.inner);'
    : 'let idx = r * u.len + t;';
  return `
${declareBindings(
  [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'out_', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'len', type: 'u32' },
    { name: 'outputs', type: 'u32' },
    { name: 'inner', type: 'u32' },
    { name: 'segments', type: 'u32' },
    { name: 'seg_len', type: 'u32' },
    { name: 'stride_a', type: 'u32' },
  ],
)}
var<workgroup> partial: array<f32, ${REDUCE_WORKGROUP}>;
@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  // grid() may launch a few workgroups past the end; they leave together, before any barrier.
  if (wg_linear >= u.outputs * u.segments) { return; }
  let r = wg_linear / u.segments;
  let s = wg_linear - r * u.segments;
  let start = s * u.seg_len;
  let end = min(start + u.seg_len, u.len);
  var acc = 0.0;
  for (var t = start + lid; t < end; t += ${REDUCE_WORKGROUP}u) {
    ${index}
    let v = x[idx];
    acc += ${mapExpr(variant.map, 'v')};
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var half = ${REDUCE_WORKGROUP / 2}u; half > 0u; half >>= 1u) {
    if (lid < half) { partial[lid] += partial[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out_[wg_linear] = ${finalizeExpr(variant.finalize, 'partial[0]')}; }
}`;
}

/**
 * Column reduction of x [A, R] (rows A, columns R): invocation (s, r) adds rows s*chunk .. (s+1)*chunk - 1
 * of column r serially (adjacent invocations read adjacent columns) and writes out[s*R + r]; the next pass
 * reduces those [S, R] partials the same way, until S = 1.
 */
export function reduceColumnsShader(variant: ReduceVariant): string {
  return `
${declareBindings(
  [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'out_', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'rows', type: 'u32' },
    { name: 'cols', type: 'u32' },
    { name: 'segments', type: 'u32' },
    { name: 'chunk', type: 'u32' },
  ],
)}
@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${REDUCE_WORKGROUP}u + lid;
  if (i >= u.cols * u.segments) { return; }
  let s = i / u.cols;
  let c = i - s * u.cols;
  let start = s * u.chunk;
  let end = min(start + u.chunk, u.rows);
  var acc = 0.0;
  for (var a = start; a < end; a++) {
    let v = x[a * u.cols + c];
    acc += ${mapExpr(variant.map, 'v')};
  }
  out_[i] = ${finalizeExpr(variant.finalize, 'acc')};
}`;
}
