export * from './cpu.wat.js';
export * from './ops.js';
export * from './runtime.js';
