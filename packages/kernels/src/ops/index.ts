// The GPU kernels: one file pair (host side + WGSL generator) per op family.

export * from './channel.js';
export * from './conv2d.js';
export * from './dropout.js';
export * from './linear.js';
export * from './lstm.js';
export * from './matmul.js';
export * from './pool.js';
export * from './reduce.js';
export * from './relu.js';
export * from './sign.js';
export * from './tanh.js';
export * from './training.js';
