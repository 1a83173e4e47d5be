import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.js';

export const POOL_WORKGROUP = 256;
/** Per-plane scatter: one invocation per (n, c) plane, so a small workgroup. */
export const POOL_PLANE_WORKGROUP = 64;

/**
 * Max-pool forward: one output per invocation; the window is scanned row-major with a strict '>', so the
 * first maximum wins, and a NaN wins over numbers (the first NaN), as in the reference and PyTorch.
 * argmax is h*W + w inside the input plane.
 */
export function maxPool2dShader(): string {
  return `
${declareBindings(
  [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'y', access: 'read_write', type: 'f32' },
    { name: 'argmax', access: 'read_write', type: 'u32' },
  ],
  [
    { name: 'total', type: 'u32' },
    { name: 'h', type: 'u32' },
    { name: 'w', type: 'u32' },
    { name: 'oh', type: 'u32' },
    { name: 'ow', type: 'u32' },
    { name: 'kernel', type: 'u32' },
    { name: 'stride', type: 'u32' },
  ],
)}
// NaN tested on the bits: drivers may compile 'v != v' as false (no-NaN fast math).
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
@compute @workgroup_size(${POOL_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${POOL_WORKGROUP}u + lid;
  if (i >= u.total) { return; }
  let plane_out = u.oh * u.ow;
  let nc = i / plane_out;
  let rem = i - nc * plane_out;
  let oh = rem / u.ow;
  let ow = rem - oh * u.ow;
  let base = nc * u.h * u.w;
  let h0 = oh * u.stride;
  let w0 = ow * u.stride;
  var best_index = h0 * u.w + w0;
  var best = x[base + best_index];
  for (var kh = 0u; kh < u.kernel; kh++) {
    let row = (h0 + kh) * u.w + w0;
    for (var kw = 0u; kw < u.kernel; kw++) {
      let index = row + kw;
      let v = x[base + index];
      if (!is_nan(best) && (v > best || is_nan(v))) {
        best = v;
        best_index = index;
      }
    }
  }
  y[i] = best;
  argmax[i] = best_index;
}`;
}

/**
 * Max-pool backward without atomics.
 * - 'window': non-overlapping windows (stride = kernel), one invocation per cell of the plane cut into
 *   kernel x kernel cells (the partial cells past the last window included): it writes its whole cell, dy at
 *   the argmax and 0 elsewhere. Each input element is written once, with no search and 1/kernel^2 of the
 *   invocations of 'gather'.
 * - 'gather': one input element per invocation; it loops over the windows that contain it (in output order,
 *   as the reference accumulates) and sums the dy of those whose argmax is this element. Correct for
 *   overlapping windows; needs kernel and stride.
 * - 'plane': one (n, c) plane per invocation: zero the plane, then scatter dy in output order. Needs only
 *   argmax, so it works without the pooling parameters, but a plane is serial work.
 * With `masked` ('window' and 'gather'), a fourth buffer y (the pool's output) gates dy: it flows only
 * where y > 0, which is the ReLU backward of a ReLU right before the pool, fused.
 */
export function maxPool2dBackwardShader(variant: 'window' | 'gather' | 'plane', masked = false): string {
  const bindings = [
    { name: 'dy', access: 'read' as const, type: 'f32' as const },
    { name: 'argmax', access: 'read' as const, type: 'u32' as const },
    { name: 'dx', access: 'read_write' as const, type: 'f32' as const },
  ];
  if (masked && variant !== 'plane') bindings.push({ name: 'ymask', access: 'read', type: 'f32' });
  const buffers = declareBindings(bindings, [
    { name: 'total', type: 'u32' },
    { name: 'h', type: 'u32' },
    { name: 'w', type: 'u32' },
    { name: 'oh', type: 'u32' },
    { name: 'ow', type: 'u32' },
    { name: 'kernel', type: 'u32' },
    { name: 'stride', type: 'u32' },
  ]);
  const gate = (o: string) => (masked ? ` && ymask[${o}] > 0.0` : '');
  if (variant === 'window') {
    // total = planes * cells; cells per row: ceil(w / kernel), per column: ceil(h / kernel).
    return `
${buffers}
@compute @workgroup_size(${POOL_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${POOL_WORKGROUP}u + lid;
  if (i >= u.total) { return; }
  let k = u.kernel;
  let cw = (u.w + k - 1u) / k;
  let ch = (u.h + k - 1u) / k;
  let nc = i / (ch * cw);
  let rem = i - nc * ch * cw;
  let oh = rem / cw;
  let ow = rem - oh * cw;
  let base = nc * u.h * u.w;
  var v = 0.0;
  var at = 0xffffffffu;
  if (oh < u.oh && ow < u.ow) {
    let o = (nc * u.oh + oh) * u.ow + ow;
    at = argmax[o];
    if (true${gate('o')}) { v = dy[o]; }
  }
  let h0 = oh * k;
  let w0 = ow * k;
  let h1 = min(h0 + k, u.h);
  let w1 = min(w0 + k, u.w);
  for (var h = h0; h < h1; h++) {
    for (var w = w0; w < w1; w++) {
      let me = h * u.w + w;
      dx[base + me] = select(0.0, v, me == at);
    }
  }
}`;
  }
  if (variant === 'plane') {
    // total = number of planes; kernel and stride are unused.
    return `
${buffers}
@compute @workgroup_size(${POOL_PLANE_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let nc = wg_linear * ${POOL_PLANE_WORKGROUP}u + lid;
  if (nc >= u.total) { return; }
  let plane = u.h * u.w;
  let plane_out = u.oh * u.ow;
  let base = nc * plane;
  let obase = nc * plane_out;
  for (var p = 0u; p < plane; p++) { dx[base + p] = 0.0; }
  for (var o = 0u; o < plane_out; o++) {
    let index = argmax[obase + o];
    // An index outside the plane (not produced by maxPool2d) is ignored rather than written out of bounds.
    if (index < plane) { dx[base + index] += dy[obase + o]; }
  }
}`;
  }
  return `
${buffers}
@compute @workgroup_size(${POOL_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${POOL_WORKGROUP}u + lid;
  if (i >= u.total) { return; }
  let plane = u.h * u.w;
  let nc = i / plane;
  let me = i - nc * plane;
  let h = me / u.w;
  let w = me - h * u.w;
  let k = u.kernel;
  let s = u.stride;
  // Windows oh with oh*s <= h < oh*s + k: oh from ceil((h - k + 1) / s) (0 when h < k - 1) to floor(h / s).
  let oh_lo = select(0u, (h + s - k) / s, h + 1u >= k);
  let ow_lo = select(0u, (w + s - k) / s, w + 1u >= k);
  let oh_hi = min(h / s, u.oh - 1u);
  let ow_hi = min(w / s, u.ow - 1u);
  let obase = nc * u.oh * u.ow;
  var acc = 0.0;
  for (var oh = oh_lo; oh <= oh_hi; oh++) {
    for (var ow = ow_lo; ow <= ow_hi; ow++) {
      let o = obase + oh * u.ow + ow;
      if (argmax[o] == me${gate('o')}) { acc += dy[o]; }
    }
  }
  dx[i] = acc;
}`;
}
