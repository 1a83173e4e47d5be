import type { Gpu } from '../gpu/context.js';
import { grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDistinct, checkDType, checkFinite, checkSameSize } from './check.js';
import { TANH_WORKGROUP, tanhScaledShader } from './tanh.wgsl.js';

/** y = tanh(alpha * x), element-wise; stable for any |alpha x| (the hashing layer's relaxed sign). */
export function tanhScaled(gpu: Gpu, x: Tensor, alpha: number, out?: Tensor): Tensor {
  const op = 'tanhScaled';
  checkDType(op, 'x', x, 'f32');
  checkFinite(op, 'alpha', alpha);
  const y = out ?? gpu.empty(x.shape);
  checkDType(op, 'out', y, 'f32');
  checkSameSize(op, ['x', x], ['out', y]);
  checkDistinct(op, ['out', y], ['x', x]);
  gpu.run({
    op,
    key: 'forward',
    code: () => tanhScaledShader('forward'),
    buffers: [x, y],
    uniforms: [x.size, { f32: alpha }],
    workgroups: grid(Math.ceil(x.size / TANH_WORKGROUP)),
  });
  return y;
}

/** dx = dy * alpha * (1 - tanh(alpha x)^2), from the forward's input x. */
export function tanhScaledBackward(gpu: Gpu, dy: Tensor, x: Tensor, alpha: number, out?: Tensor): Tensor {
  const op = 'tanhScaledBackward';
  checkDType(op, 'dy', dy, 'f32');
  checkDType(op, 'x', x, 'f32');
  checkFinite(op, 'alpha', alpha);
  checkSameSize(op, ['dy', dy], ['x', x]);
  const dx = out ?? gpu.empty(x.shape);
  checkDType(op, 'out', dx, 'f32');
  checkSameSize(op, ['x', x], ['out', dx]);
  checkDistinct(op, ['out', dx], ['dy', dy], ['x', x]);
  gpu.run({
    op,
    key: 'backward',
    code: () => tanhScaledShader('backward'),
    buffers: [dy, x, dx],
    uniforms: [x.size, { f32: alpha }],
    workgroups: grid(Math.ceil(x.size / TANH_WORKGROUP)),
  });
  return dx;
}
