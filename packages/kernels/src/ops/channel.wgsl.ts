import { GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.js';

export const CHANNEL_WORKGROUP = 256;

/**
 * y[i] = x[i] * scale[c] + shift[c] with c = (i / plane) % channels, i.e. per channel of a tensor laid out
 * [rows, channels, plane] (NCHW, or [N, T, C, H*W] for video). The per-channel pairs live in a uniform array
 * of vec4 (scale, shift, -, -) sized by the channel count, the only thing in the cache key.
 */
export function channelAffineShader(channels: number): string {
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out_: array<f32>;
struct U { n: u32, channels: u32, plane: u32, pad: u32, coef: array<vec4<f32>, ${channels}> }
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${CHANNEL_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let i = wg_linear * ${CHANNEL_WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  let k = u.coef[(i / u.plane) % u.channels];
  out_[i] = x[i] * k.x + k.y;
}`;
}
