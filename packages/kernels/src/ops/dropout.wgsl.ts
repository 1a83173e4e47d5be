import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.js';

export const DROPOUT_WORKGROUP = 256;

/**
 * Inverted dropout with a counter-based mask (nothing stored): element i is kept when
 * uniformAt(seed, offset + i) >= p (the recipe of reference/random.ts) and then scaled by 1 / (1 - p). The
 * backward applies the same mask and scale to dy, so it only needs the seed.
 */
export function dropoutShader(): string {
  return `
${declareBindings(
  [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'out_', access: 'read_write', type: 'f32' },
  ],
  [
    { name: 'n', type: 'u32' },
    { name: 'seed', type: 'u32' },
    { name: 'offset', type: 'u32' },
    { name: 'p', type: 'f32' },
    { name: 'scale', type: 'f32' },
  ],
)}
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
@compute @workgroup_size(${DROPOUT_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${DROPOUT_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  let h = pcg_hash((u.offset + i) ^ pcg_hash(u.seed));
  let unit = f32(h >> 8u) * (1.0 / 16777216.0);
  out_[i] = select(0.0, x[i] * u.scale, unit >= u.p);
}`;
}
