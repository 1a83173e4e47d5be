import { argError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDistinct, checkDType, checkRank, checkSameSize } from './check.js';
import { packBitsShader, SIGN_WORKGROUP, signPm1Shader } from './sign.wgsl.js';

/** y = +1 where x >= 0, else -1, as f32 (sign(0) = +1: the code-bit convention of PROTOCOL.md). */
export function signPm1(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  const op = 'signPm1';
  checkDType(op, 'x', x, 'f32');
  const y = out ?? gpu.empty(x.shape);
  checkDType(op, 'out', y, 'f32');
  checkSameSize(op, ['x', x], ['out', y]);
  checkDistinct(op, ['out', y], ['x', x]);
  gpu.run({
    op,
    key: 'sign',
    code: signPm1Shader,
    buffers: [x, y],
    uniforms: [x.size],
    workgroups: grid(Math.ceil(x.size / SIGN_WORKGROUP)),
  });
  return y;
}

/** Number of u32 words that hold one row of `bits` bits. */
export function packedWords(bits: number): number {
  return Math.ceil(bits / 32);
}

/**
 * Packs the signs of x [rows, bits] into a u32 tensor [rows, ceil(bits / 32)]: bit j of a row is bit
 * (j & 31) of word (j >> 5), set where x >= 0 (least-significant bit first, the FAISS layout), any bits.
 */
export function packBits(gpu: Gpu, x: Tensor): Tensor {
  const op = 'packBits';
  checkRank(op, 'x', x, 2);
  const [rows, bits] = x.shape;
  if (bits === 0) throw argError(op, 'x [rows, bits] has 0 bits per row; codes need at least one bit');
  const wpr = packedWords(bits);
  const words = gpu.empty([rows, wpr], 'u32');
  gpu.run({
    op,
    key: 'pack',
    code: packBitsShader,
    buffers: [x, words],
    uniforms: [words.size, bits, wpr],
    workgroups: grid(Math.ceil(words.size / SIGN_WORKGROUP)),
  });
  return words;
}
