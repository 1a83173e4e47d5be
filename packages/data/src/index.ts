// @dhta/data: public API (see README.md). Imports nothing of ours.
export { CIFAR10_CLASS_NAMES, CIFAR10_NORMALISATION, CifarDataset, openCifar10 } from './cifar.js';
export {
  BaseDataset,
  type Dataset,
  type DatasetKind,
  type DatasetMeta,
  firstLabels,
  oneHot,
  SubsetDataset,
  type SubsetOptions,
} from './dataset.js';
export { DataError, type DataErrorCode } from './errors.js';
export { writeFileAtomic } from './files.js';
export {
  FrameFoldersDataset,
  type FrameSampling,
  ImageFilesDataset,
  parseListFile,
  sampleFrames,
  scanFrameFolders,
  scanImageFolder,
} from './files-dataset.js';
export {
  DEFAULT_MAX_IDX_BYTES,
  defaultCacheDir,
  IdxFile,
  type IdxHeader,
  type IdxOpenOptions,
  parseIdxHeader,
  readIdxUint8,
} from './idx.js';
export {
  cropOrigin,
  decodeFile,
  IMAGENET_NORMALISATION,
  IMAGENET_PREPROCESS,
  loadImageInto,
  loadSharp,
  type Preprocess,
  resizeBicubicPil,
} from './image.js';
export {
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_DEFAULT_DIR,
  FASHION_MNIST_NORMALISATION,
  IdxImageDataset,
  MNIST_CLASS_NAMES,
  MNIST_NORMALISATION,
  mnistDefaultDir,
  openIdxFolder,
  openIdxPair,
} from './mnist.js';
export {
  type ClipParams,
  clipParams,
  MOTIONS,
  MOVING,
  MOVING_FASHION_MNIST_NORMALISATION,
  MOVING_MNIST_NORMALISATION,
  MovingItemsDataset,
  pose,
  renderFrame,
} from './moving.js';
export {
  BUILTIN_DATASETS,
  type DatasetInfo,
  DEFAULT_TRAIN_PER_CLASS,
  type Layout,
  type OpenedDataset,
  type OpenOptions,
  openDataset,
  PATH_SOURCES,
  type ParsedName,
  type Protocol,
  parseName,
} from './open.js';
export { mixSeed, Rng } from './rng.js';
export { imagenetStyle, nusWideStyle, type Splits, samplePerClass, videoStyle } from './splits.js';
