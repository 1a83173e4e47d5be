// @dhta/models: public API (see README.md).
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
export { type PairwiseLossInput, pairwiseLoss, similar, softplus } from './loss.js';
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
export {
  learningRateAt,
  loadCheckpoint,
  resolveTrainOptions,
  type TrainingData,
  type TrainOptions,
  type TrainProgress,
  type TrainResult,
  trainHashingNetwork,
} from './train.js';
export type * from './types.js';
