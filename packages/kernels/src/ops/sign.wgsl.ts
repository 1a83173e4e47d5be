import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.js';

export const SIGN_WORKGROUP = 256;

/** y = +1 where x >= 0, else -1 (sign(0) = +1, the code-bit convention; NaN gives -1). */
export function signPm1Shader(): string {
  return `
${declareBindings(
  [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'y', access: 'read_write', type: 'f32' },
  ],
  [{ name: 'n', type: 'u32' }],
)}
@compute @workgroup_size(${SIGN_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${SIGN_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  y[i] = select(-1.0, 1.0, x[i] >= 0.0);
}`;
}

/**
 * One u32 word per invocation: bit b of word w of row r is set where x[r, 32w + b] >= 0 (least-significant
 * bit first); the unused high bits of a row's last word stay 0.
 */
export function packBitsShader(): string {
  return `
${declareBindings(
  [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'words', access: 'read_write', type: 'u32' },
  ],
  [
    { name: 'total', type: 'u32' },
    { name: 'bits', type: 'u32' },
    { name: 'words_per_row', type: 'u32' },
  ],
)}
@compute @workgroup_size(${SIGN_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${SIGN_WORKGROUP}u + lid;
  if (i >= u.total) { return; }
  let r = i / u.words_per_row;
  let w = i - r * u.words_per_row;
  let first = w * 32u;
  let count = min(32u, u.bits - first);
  let base = r * u.bits + first;
  var word = 0u;
  for (var b = 0u; b < count; b++) {
    word |= select(0u, 1u << b, x[base + b] >= 0.0);
  }
  words[i] = word;
}`;
}
