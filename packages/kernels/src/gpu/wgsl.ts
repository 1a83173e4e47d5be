/** Small helpers shared by the `.wgsl.ts` shader generators. */

export interface BindingDecl {
  name: string;
  access: 'read' | 'read_write';
  /** Element type of the runtime-sized array. */
  type: 'f32' | 'u32' | 'i32' | 'vec4<f32>' | 'vec4<u32>' | 'atomic<u32>';
}

export interface UniformDecl {
  name: string;
  type: 'u32' | 'f32' | 'i32';
}

/**
 * Declares storage bindings 0..n-1 in order and, when there are uniforms, a struct `U` bound at n as `u`.
 * The order must match the `buffers` / `uniforms` arrays of the dispatch.
 */
export function declareBindings(buffers: BindingDecl[], uniforms: UniformDecl[] = []): string {
  const lines = buffers.map(
    (b, i) => `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`,
  );
  if (uniforms.length > 0) {
    lines.push(`struct U { ${uniforms.map((u) => `${u.name}: ${u.type}`).join(', ')} }`);
    lines.push(`@group(0) @binding(${buffers.length}) var<uniform> u: U;`);
  }
  return lines.join('\n');
}

/** The linear workgroup index of a dispatch split by `grid()` over x and y. */
export const LINEAR_WORKGROUP = 'let wg_linear = wid.x + wid.y * nwg.x;';

/** Builtins for a 1-D kernel dispatched with `grid()`. */
export const GRID_BUILTINS =
  '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';

/** tanh, stable for any x: the builtin is undefined for large |x| on some drivers. */
export const STABLE_TANH = `
fn stable_tanh(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
fn stable_sigmoid(x: f32) -> f32 {
  // Evaluate exp on a non-positive argument only, so it never overflows.
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}`;

/** Formats a number as a WGSL f32 literal. */
export function f32Literal(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`f32Literal: ${x} is not finite`);
  const s = String(x);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}

/**
 * ReLU of a WGSL f32 (or vec4<f32>) expression that keeps NaN, as PyTorch and the references do: WGSL's
 * `max(NaN, 0.0)` may return 0 (llvmpipe does), and a `v != v` test may be folded away by a compiler that
 * assumes finite math, so NaN is recognised by its bits.
 */
export function reluKeepNan(v: string, vec4 = false): string {
  if (!vec4) return `select(max(${v}, 0.0), ${v}, (bitcast<u32>(${v}) & 0x7fffffffu) > 0x7f800000u)`;
  return (
    `select(max(${v}, vec4<f32>(0.0)), ${v}, ` +
    `(bitcast<vec4<u32>>(${v}) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u))`
  );
}

/**
 * The conjunction of WGSL bool expressions, evaluated without short-circuit: `(a) & (b) & (c)`. WGSL's `&&`
 * short-circuits, so each one is a branch in the compiled code; for terms without side effects (bounds
 * tests) `&` means the same. Chromium's SwiftShader compiles branchy unrolled kernels very slowly: the
 * general conv2d kernel at 3x3 taps, with two `&&` per tap and pixel, did not finish compiling in 90 s, and
 * compiles in 0.5 s with `&`.
 */
export function allOf(...terms: string[]): string {
  return terms.length === 1 ? terms[0] : terms.map((t) => `(${t})`).join(' & ');
}
