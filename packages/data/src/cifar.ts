import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BaseDataset, type DatasetMeta, oneHot } from './dataset.js';
import { DataError } from './errors.js';
import { readExactly, statOrThrow, withFile } from './files.js';

export const CIFAR10_CLASS_NAMES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];
/** CIFAR-10's per-channel mean and standard deviation over the training set. */
export const CIFAR10_NORMALISATION = { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] };
const RECORD = 1 + 3 * 32 * 32;

/** Records of CIFAR-10 binary batches (1 label byte, then 1024 R, 1024 G, 1024 B bytes), read lazily. */
export class CifarDataset extends BaseDataset {
  /** Per item: which batch file and which record in it. */
  private readonly files: readonly string[];
  private readonly fileOf: Uint8Array;
  private readonly recordOf: Int32Array;

  constructor(
    meta: DatasetMeta,
    files: readonly string[],
    fileOf: Uint8Array,
    recordOf: Int32Array,
    labels: Uint8Array,
  ) {
    super(meta, labels);
    this.files = files;
    this.fileOf = fileOf;
    this.recordOf = recordOf;
  }

  protected async decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void> {
    const buf = new Uint8Array(RECORD);
    const s = 1 / 255;
    const byFile = new Map<number, number[]>();
    indices.forEach((i, k) => {
      const f = this.fileOf[i];
      const list = byFile.get(f) ?? [];
      list.push(k);
      byFile.set(f, list);
    });
    for (const [f, ks] of byFile) {
      const file = this.files[f];
      withFile(file, (fd) => {
        for (const k of ks) {
          readExactly(fd, file, buf, RECORD, this.recordOf[indices[k]] * RECORD);
          const o = offset + k * this.itemSize;
          for (let p = 0; p < RECORD - 1; p++) out[o + p] = buf[p + 1] * s;
        }
      });
    }
  }
}

/** Reads the label bytes of one batch file, checking its size and labels, without keeping the pixels. */
function scanBatch(file: string): Uint8Array {
  const st = statOrThrow(file, 'a CIFAR-10 binary batch', 'download cifar-10-binary.tar.gz and unpack it');
  if (st.size === 0 || st.size % RECORD !== 0)
    throw new DataError(
      st.size % RECORD !== 0 ? 'TRUNCATED' : 'BAD_CIFAR',
      `expected a whole number of ${RECORD}-byte records, found ${st.size} bytes (${(st.size / RECORD).toFixed(2)} records)`,
      { file },
    );
  const n = st.size / RECORD;
  const labels = new Uint8Array(n);
  const chunk = 1024;
  const buf = new Uint8Array(chunk * RECORD);
  withFile(file, (fd) => {
    for (let r = 0; r < n; r += chunk) {
      const m = Math.min(chunk, n - r);
      readExactly(fd, file, buf, m * RECORD, r * RECORD);
      for (let q = 0; q < m; q++) {
        const v = buf[q * RECORD];
        if (v > 9)
          throw new DataError('BAD_CIFAR', `record ${r + q} has label ${v}, expected 0..9`, { file });
        labels[r + q] = v;
      }
    }
  });
  return labels;
}

/** CIFAR-10 from the binary version: data_batch_1..5.bin and test_batch.bin (in dir or dir/cifar-10-batches-bin). */
export function openCifar10(dir: string, name: string): { train: CifarDataset; test: CifarDataset } {
  statOrThrow(dir, 'a folder with CIFAR-10 binary batches');
  const base = existsSync(join(dir, 'cifar-10-batches-bin')) ? join(dir, 'cifar-10-batches-bin') : dir;
  let classNames = CIFAR10_CLASS_NAMES;
  const metaFile = join(base, 'batches.meta.txt');
  if (existsSync(metaFile)) {
    const names = readFileSync(metaFile, 'utf8')
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    if (names.length === 10) classNames = names;
  }
  const meta = (split: string): DatasetMeta => ({
    name: `${name}/${split}`,
    kind: 'image',
    channels: 3,
    height: 32,
    width: 32,
    frames: 1,
    classNames,
    ...CIFAR10_NORMALISATION,
  });
  const make = (files: string[], split: string) => {
    const parts = files.map(scanBatch);
    const n = parts.reduce((a, p) => a + p.length, 0);
    const fileOf = new Uint8Array(n);
    const recordOf = new Int32Array(n);
    const labels = new Uint8Array(n);
    let at = 0;
    parts.forEach((p, f) => {
      for (let r = 0; r < p.length; r++) {
        fileOf[at] = f;
        recordOf[at] = r;
        labels[at] = p[r];
        at++;
      }
    });
    return new CifarDataset(meta(split), files, fileOf, recordOf, oneHot(labels, 10));
  };
  const trainFiles = [1, 2, 3, 4, 5].map((i) => join(base, `data_batch_${i}.bin`));
  return { train: make(trainFiles, 'train'), test: make([join(base, 'test_batch.bin')], 'test') };
}
