import { DataError } from './errors.js';

export type DatasetKind = 'image' | 'video';

/** What describes every item of a data set (all items share one shape). */
export interface DatasetMeta {
  name: string;
  kind: DatasetKind;
  channels: number;
  height: number;
  width: number;
  /** Frames per item: 1 for images. */
  frames: number;
  classNames: readonly string[];
  /** The per-channel normalisation a model of this data applies: x_model = (x - mean) / std, x in [0, 1]. */
  mean: readonly number[];
  std: readonly number[];
}

/**
 * An indexable, lazily loaded collection of (tensor, multi-hot label vector). Pixels come out in [0, 1] as
 * Float32Array, NCHW for images and NTCHW for video (item i occupies itemSize values starting at i * itemSize).
 */
export interface Dataset extends Readonly<DatasetMeta> {
  readonly classes: number;
  readonly length: number;
  /** channels * height * width * frames. */
  readonly itemSize: number;
  /** All label vectors, length * classes bytes (0 or 1), item-major. */
  labels(): Uint8Array;
  /** The label vector of one item (classes bytes). */
  label(i: number): Uint8Array;
  /** Decodes the given items into one batch. */
  load(indices: readonly number[]): Promise<Float32Array>;
  /** Decodes the given items into `out` starting at `out[offset]`. */
  loadInto(indices: readonly number[], out: Float32Array, offset?: number): Promise<void>;
  /** The tensor shape of a batch of n items: [n, C, H, W] or [n, T, C, H, W]. */
  batchShape(n: number): number[];
  /** A view of some items (indices into this data set), optionally keeping only some label columns. */
  subset(indices: readonly number[], options?: SubsetOptions): Dataset;
}

export interface SubsetOptions {
  name?: string;
  /** Label columns to keep, in this order (class names follow). */
  columns?: readonly number[];
}

export abstract class BaseDataset implements Dataset {
  readonly name: string;
  readonly kind: DatasetKind;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly frames: number;
  readonly classNames: readonly string[];
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly classes: number;
  readonly length: number;
  readonly itemSize: number;
  protected readonly labelBytes: Uint8Array;

  /** labelBytes: length * classes multi-hot bytes. */
  constructor(meta: DatasetMeta, labelBytes: Uint8Array) {
    this.name = meta.name;
    this.kind = meta.kind;
    this.channels = meta.channels;
    this.height = meta.height;
    this.width = meta.width;
    this.frames = meta.frames;
    this.classNames = meta.classNames;
    this.mean = meta.mean;
    this.std = meta.std;
    this.classes = meta.classNames.length;
    this.itemSize = meta.channels * meta.height * meta.width * meta.frames;
    if (this.classes < 1 || labelBytes.length % this.classes !== 0)
      throw new Error(`internal: ${labelBytes.length} label bytes for ${this.classes} classes`);
    this.labelBytes = labelBytes;
    this.length = labelBytes.length / this.classes;
  }

  meta(): DatasetMeta {
    return {
      name: this.name,
      kind: this.kind,
      channels: this.channels,
      height: this.height,
      width: this.width,
      frames: this.frames,
      classNames: this.classNames,
      mean: this.mean,
      std: this.std,
    };
  }

  labels(): Uint8Array {
    return this.labelBytes;
  }

  label(i: number): Uint8Array {
    this.checkIndex(i);
    return this.labelBytes.subarray(i * this.classes, (i + 1) * this.classes);
  }

  batchShape(n: number): number[] {
    return this.kind === 'video'
      ? [n, this.frames, this.channels, this.height, this.width]
      : [n, this.channels, this.height, this.width];
  }

  async load(indices: readonly number[]): Promise<Float32Array> {
    const out = new Float32Array(indices.length * this.itemSize);
    await this.loadInto(indices, out, 0);
    return out;
  }

  async loadInto(indices: readonly number[], out: Float32Array, offset = 0): Promise<void> {
    for (const i of indices) this.checkIndex(i);
    if (offset < 0 || offset + indices.length * this.itemSize > out.length) {
      throw new DataError(
        'BAD_OPTION',
        `${this.name}: loadInto needs ${indices.length * this.itemSize} values from offset ${offset}, the output holds ${out.length}`,
      );
    }
    if (indices.length === 0) return;
    await this.decode(indices, out, offset);
  }

  /** Fills out[offset + k * itemSize ...] with item indices[k]; indices are already checked. */
  protected abstract decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void>;

  subset(indices: readonly number[], options: SubsetOptions = {}): Dataset {
    return new SubsetDataset(this, indices, options);
  }

  protected checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new DataError('BAD_INDEX', `${this.name}: item index ${i} is outside 0..${this.length - 1}`, {
        hint: 'indices are integers from 0 to length - 1',
      });
    }
  }
}

/** Items of a parent data set, by index; with `columns`, only those label columns. */
export class SubsetDataset extends BaseDataset {
  readonly parent: Dataset;
  /** Index in the parent of each item of this view. */
  readonly parentIndices: Int32Array;

  constructor(parent: Dataset, indices: readonly number[], options: SubsetOptions = {}) {
    const columns = options.columns;
    if (columns) {
      for (const c of columns) {
        if (!Number.isInteger(c) || c < 0 || c >= parent.classes)
          throw new DataError(
            'BAD_OPTION',
            `${parent.name}: label column ${c} is outside 0..${parent.classes - 1}`,
          );
      }
    }
    const classes = columns ? columns.length : parent.classes;
    const all = parent.labels();
    const labels = new Uint8Array(indices.length * classes);
    indices.forEach((p, k) => {
      if (!Number.isInteger(p) || p < 0 || p >= parent.length)
        throw new DataError(
          'BAD_INDEX',
          `${parent.name}: subset index ${p} is outside 0..${parent.length - 1}`,
        );
      if (columns)
        for (let c = 0; c < classes; c++) labels[k * classes + c] = all[p * parent.classes + columns[c]];
      else labels.set(all.subarray(p * parent.classes, (p + 1) * parent.classes), k * classes);
    });
    super(
      {
        name: options.name ?? parent.name,
        kind: parent.kind,
        channels: parent.channels,
        height: parent.height,
        width: parent.width,
        frames: parent.frames,
        classNames: columns ? columns.map((c) => parent.classNames[c]) : parent.classNames,
        mean: parent.mean,
        std: parent.std,
      },
      labels,
    );
    this.parent = parent;
    this.parentIndices = Int32Array.from(indices);
  }

  protected decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void> {
    return this.parent.loadInto(
      indices.map((i) => this.parentIndices[i]),
      out,
      offset,
    );
  }
}

/** The first positive label of each item (-1 when none): the class of single-label data. */
export function firstLabels(ds: Dataset): Int32Array {
  const l = ds.labels();
  const c = ds.classes;
  const out = new Int32Array(ds.length).fill(-1);
  for (let i = 0; i < ds.length; i++) {
    for (let j = 0; j < c; j++) {
      if (l[i * c + j]) {
        out[i] = j;
        break;
      }
    }
  }
  return out;
}

/** One-hot label bytes from class indices. */
export function oneHot(classIndex: ArrayLike<number>, classes: number): Uint8Array {
  const out = new Uint8Array(classIndex.length * classes);
  for (let i = 0; i < classIndex.length; i++) out[i * classes + classIndex[i]] = 1;
  return out;
}

/** Runs fn over items with at most `limit` in flight, keeping order of side effects per item independent. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, k: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const k = next++;
      await fn(items[k], k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
