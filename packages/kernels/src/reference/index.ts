// Float64 CPU references of every kernel: what the GPU kernels are tested against.
export * from './conv2d.js';
export * from './dropout.js';
export * from './elementwise.js';
export * from './extra.js';
export * from './linear.js';
export * from './lstm.js';
export * from './pool.js';
export * from './random.js';
export * from './training.js';
