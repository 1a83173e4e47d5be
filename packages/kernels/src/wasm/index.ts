export * from './cpu.wat.js';
export { heapSizeClass, WasmEngine, type WasmEngineOptions, WasmTensor } from './engine.js';
export * from './ops.js';
export * from './runtime.js';
