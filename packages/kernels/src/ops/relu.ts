import { shapeError } from '../errors.js';
import { type Gpu, grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { RELU_WORKGROUP, reluShader } from './relu.wgsl.js';

/** y = max(x, 0). Most producers (conv2d, linear) fuse ReLU into their write instead. */
export function relu(gpu: Gpu, x: Tensor, out?: Tensor): Tensor {
  const y = out ?? gpu.empty(x.shape);
  if (y.size !== x.size) throw shapeError('relu', `an output of ${x.size} elements`, `${y.size}`);
  gpu.run({
    op: 'relu',
    key: 'forward',
    code: () => reluShader('forward'),
    buffers: [x, y],
    uniforms: [x.size],
    workgroups: grid(Math.ceil(x.size / RELU_WORKGROUP)),
  });
  return y;
}

/** dx = dy where the forward output y was positive, else 0. */
export function reluBackward(gpu: Gpu, dy: Tensor, y: Tensor, out?: Tensor): Tensor {
  if (dy.size !== y.size)
    throw shapeError('reluBackward', `dy and y of equal size`, `${dy.size} and ${y.size}`);
  const dx = out ?? gpu.empty(dy.shape);
  gpu.run({
    op: 'reluBackward',
    key: 'backward',
    code: () => reluShader('backward'),
    buffers: [dy, y, dx],
    uniforms: [dy.size],
    workgroups: grid(Math.ceil(dy.size / RELU_WORKGROUP)),
  });
  return dx;
}
