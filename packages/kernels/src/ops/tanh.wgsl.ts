import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP, STABLE_TANH } from '../gpu/wgsl.js';

export const TANH_WORKGROUP = 256;

/**
 * y = tanh(alpha x) (forward) or dx = dy * alpha * (1 - tanh(alpha x)^2) (backward), one element per
 * invocation. The backward writes 1 - tanh^2 as 4e / (1 + e)^2 with e = exp(-2|t|): no cancellation near
 * saturation, and exactly 0 (not NaN) once e underflows.
 */
export function tanhScaledShader(direction: 'forward' | 'backward'): string {
  const buffers =
    direction === 'forward'
      ? declareBindings(
          [
            { name: 'x', access: 'read', type: 'f32' },
            { name: 'y', access: 'read_write', type: 'f32' },
          ],
          [
            { name: 'n', type: 'u32' },
            { name: 'alpha', type: 'f32' },
          ],
        )
      : declareBindings(
          [
            { name: 'dy', access: 'read', type: 'f32' },
            { name: 'x', access: 'read', type: 'f32' },
            { name: 'dx', access: 'read_write', type: 'f32' },
          ],
          [
            { name: 'n', type: 'u32' },
            { name: 'alpha', type: 'f32' },
          ],
        );
  const body =
    direction === 'forward'
      ? 'y[i] = tanh_accurate(u.alpha * x[i]);'
      : `let e = exp(-2.0 * abs(u.alpha * x[i]));
  let one_plus = 1.0 + e;
  dx[i] = dy[i] * u.alpha * (4.0 * e / (one_plus * one_plus));`;
  return `
${buffers}
${STABLE_TANH}
// stable_tanh loses relative accuracy for tiny |t| ((1 - e) cancels); there the odd series is exact in f32
// (the first omitted term is below 1e-10 relative for |t| < 1/16).
fn tanh_accurate(t: f32) -> f32 {
  let t2 = t * t;
  let series = t * (1.0 + t2 * (-1.0 / 3.0 + t2 * (2.0 / 15.0 + t2 * (-17.0 / 315.0))));
  return select(stable_tanh(t), series, abs(t) < 0.0625);
}
@compute @workgroup_size(${TANH_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${TANH_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  ${body}
}`;
}
