// @dhta/models in a browser (package.json "exports", condition "browser"): the public API of index.ts but
// training (train.ts reads and writes checkpoints on disk). Bundle folders cannot be read from a page: fetch
// model.json and weights.safetensors, then parseSpec, parseSafetensors and createNetwork.
export {
  loadBundle,
  loadSpec,
  type ModelBundle,
  parseSpec,
  replaceDirAtomic,
  SPEC_FILE,
  saveBundle,
  WEIGHTS_FILE,
} from './bundle.js';
export { ModelError, type ModelErrorCode } from './errors.js';
export { type InitOptions, initWeights } from './init.js';
export {
  type EngineBank,
  type PairwiseLossInput,
  type PairwiseLossResult,
  pairwiseLoss,
  pairwiseLossOnEngine,
  similar,
  softplus,
} from './loss.js';
export { createNetwork, loadNetwork, Network, type NetworkOptions } from './network.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  MNIST_MEAN,
  MNIST_STD,
  PRESET_NAMES,
  type PresetName,
  preset,
  smallCnn,
  vgg11,
  videoNet,
} from './presets.js';
export {
  entryToFloat32,
  MAX_HEADER_BYTES,
  parseSafetensors,
  readSafetensors,
  type SafetensorsDtype,
  type SafetensorsEntry,
  type SafetensorsFile,
  writeSafetensors,
} from './safetensors.js';
export {
  expectedWeights,
  inferShapes,
  inputSizeOf,
  LAYER_TYPES,
  type LayerInfo,
  MODEL_FORMAT,
  type ShapeInfo,
  validateSpec,
  validateWeights,
} from './spec.js';
export type * from './types.js';
