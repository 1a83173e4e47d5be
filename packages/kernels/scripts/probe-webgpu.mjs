// Exit 0 when dawn.node finds a WebGPU adapter, 2 when it finds none, 3 when dawn.node cannot load.
let mod;
try {
  mod = await import('webgpu');
} catch (err) {
  console.error(`dawn.node (npm webgpu) cannot be loaded: ${err.message}`);
  process.exit(3);
}
Object.assign(globalThis, mod.globals);
const adapter = await mod.create([]).requestAdapter();
if (!adapter) process.exit(2);
console.log(adapter.info.description || adapter.info.device || 'adapter');
process.exit(0);
