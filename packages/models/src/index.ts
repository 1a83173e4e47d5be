// @dhta/models: public API (see README.md): everything a browser gets (browser.ts), plus training, whose
// checkpoints live on disk.
export * from './browser.js';
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
