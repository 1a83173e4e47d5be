import { argError } from '../errors.js';
import { type Gpu, grid, type UniformValue } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { CHANNEL_WORKGROUP, channelAffineShader } from './channel.wgsl.js';
import { checkDistinct, checkDType, checkFinite, checkSameSize, shapeString } from './check.js';

/** Most channels channelAffine takes (the coefficients live in a uniform array). */
export const MAX_AFFINE_CHANNELS = 1024;

export interface ChannelAffineOptions {
  channels: number;
  /** Elements per channel plane (H*W); the tensor is [rows, channels, planeSize]. */
  planeSize: number;
  /** One per channel. */
  scale: readonly number[];
  /** One per channel. */
  shift: readonly number[];
  out?: Tensor;
}

/**
 * y = x * scale[c] + shift[c] per channel c of x [rows, channels, planeSize]: input normalisation
 * ((x - mean) / std is scale 1/std, shift -mean/std), its inverse, or a gradient's change of space
 * (g_pixel = g_norm / std). Returns a new tensor (or `out`).
 */
export function channelAffine(gpu: Gpu, x: Tensor, options: ChannelAffineOptions): Tensor {
  const op = 'channelAffine';
  checkDType(op, 'x', x, 'f32');
  const { channels, planeSize, scale, shift } = options;
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_AFFINE_CHANNELS) {
    throw argError(op, `channels must be an integer in 1..${MAX_AFFINE_CHANNELS}, found ${channels}`);
  }
  if (!Number.isInteger(planeSize) || planeSize < 1) {
    throw argError(op, `planeSize must be a positive integer, found ${planeSize}`);
  }
  if (x.size % (channels * planeSize) !== 0) {
    throw argError(
      op,
      `x's ${x.size} elements (shape ${shapeString(x.shape)}) are not rows of channels * planeSize = ${channels} * ${planeSize}`,
    );
  }
  if (scale.length !== channels || shift.length !== channels) {
    throw argError(
      op,
      `scale and shift need one value per channel (${channels}), found ${scale.length} and ${shift.length}`,
    );
  }
  for (let c = 0; c < channels; c++) {
    checkFinite(op, `scale[${c}]`, scale[c]);
    checkFinite(op, `shift[${c}]`, shift[c]);
  }
  const out = options.out ?? gpu.empty(x.shape);
  checkDType(op, 'out', out, 'f32');
  checkSameSize(op, ['x', x], ['out', out]);
  checkDistinct(op, ['out', out], ['x', x]);
  const uniforms: UniformValue[] = [x.size, channels, planeSize, 0];
  for (let c = 0; c < channels; c++)
    uniforms.push({ f32: scale[c] }, { f32: shift[c] }, { f32: 0 }, { f32: 0 });
  gpu.run({
    op,
    key: String(channels),
    code: () => channelAffineShader(channels),
    buffers: [x, out],
    uniforms,
    workgroups: grid(Math.ceil(x.size / CHANNEL_WORKGROUP)),
  });
  return out;
}
