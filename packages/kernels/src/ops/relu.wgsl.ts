import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP, reluKeepNan } from '../gpu/wgsl.js';

export const RELU_WORKGROUP = 256;

/** y = max(x, 0), NaN kept (forward) or dx = dy where y > 0 (backward), one element per invocation. */
export function reluShader(direction: 'forward' | 'backward'): string {
  const body =
    direction === 'forward'
      ? `let v = a[i]; out_[i] = ${reluKeepNan('v')};`
      : // a = dy, b = y: the gradient flows where the forward output was positive.
        'out_[i] = select(0.0, a[i], b[i] > 0.0);';
  const buffers =
    direction === 'forward'
      ? [
          { name: 'a', access: 'read' as const, type: 'f32' as const },
          { name: 'out_', access: 'read_write' as const, type: 'f32' as const },
        ]
      : [
          { name: 'a', access: 'read' as const, type: 'f32' as const },
          { name: 'b', access: 'read' as const, type: 'f32' as const },
          { name: 'out_', access: 'read_write' as const, type: 'f32' as const },
        ];
  return `
${declareBindings(buffers, [{ name: 'n', type: 'u32' }])}
@compute @workgroup_size(${RELU_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${RELU_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  ${body}
}`;
}
