import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { BaseDataset, type DatasetMeta, forEachLimited } from './dataset.js';
import { DataError, messageOf } from './errors.js';
import { statOrThrow } from './files.js';
import { loadImageInto, type Preprocess } from './image.js';

/** How many files are decoded at once (sharp decodes on libuv's thread pool). */
const DECODE_CONCURRENCY = 4;

/** Images named by path, decoded and preprocessed on each load. */
export class ImageFilesDataset extends BaseDataset {
  readonly paths: readonly string[];
  readonly preprocess: Preprocess;

  constructor(meta: DatasetMeta, paths: readonly string[], labelBytes: Uint8Array, preprocess: Preprocess) {
    super(meta, labelBytes);
    this.paths = paths;
    this.preprocess = preprocess;
  }

  protected async decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void> {
    await forEachLimited(indices, DECODE_CONCURRENCY, (i, k) =>
      loadImageInto(this.paths[i], this.preprocess, out, offset + k * this.itemSize, [
        this.height,
        this.width,
      ]),
    );
  }
}

/** How clips become a fixed number of frames T. */
export interface FrameSampling {
  /** 'first': frames 0..T-1; 'every3': frames 0, 3, 6, ... (at most T). */
  mode: 'first' | 'every3';
  /** T: frames per clip in the tensor (40 in the paper). Shorter clips repeat their last sampled frame. */
  frames: number;
}

/** The frame numbers (positions in the sorted frame list) a clip of n frames contributes, padded to T. */
export function sampleFrames(n: number, s: FrameSampling): number[] {
  const step = s.mode === 'every3' ? 3 : 1;
  const picked: number[] = [];
  for (let f = 0; f < n && picked.length < s.frames; f += step) picked.push(f);
  while (picked.length < s.frames) picked.push(picked[picked.length - 1]);
  return picked;
}

/** Video clips as folders of frame images; each frame preprocessed like an image. NTCHW. */
export class FrameFoldersDataset extends BaseDataset {
  readonly clips: readonly (readonly string[])[];
  readonly preprocess: Preprocess;
  readonly sampling: FrameSampling;

  constructor(
    meta: DatasetMeta,
    clips: readonly (readonly string[])[],
    labelBytes: Uint8Array,
    preprocess: Preprocess,
    sampling: FrameSampling,
  ) {
    super(meta, labelBytes);
    this.clips = clips;
    this.preprocess = preprocess;
    this.sampling = sampling;
  }

  protected async decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void> {
    const frameSize = this.channels * this.height * this.width;
    const jobs: Array<{ path: string; at: number }> = [];
    indices.forEach((i, k) => {
      const frames = this.clips[i];
      sampleFrames(frames.length, this.sampling).forEach((f, t) => {
        jobs.push({ path: frames[f], at: offset + k * this.itemSize + t * frameSize });
      });
    });
    await forEachLimited(jobs, DECODE_CONCURRENCY, (j) =>
      loadImageInto(j.path, this.preprocess, out, j.at, [this.height, this.width]),
    );
  }
}

export const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|bmp|tiff?|gif)$/i;
const naturally = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

function listDir(dir: string, what: string): import('node:fs').Dirent[] {
  statOrThrow(dir, what);
  try {
    return readdirSync(dir, { withFileTypes: true }).sort((a, b) => naturally(a.name, b.name));
  } catch (e) {
    throw new DataError('MISSING_FILE', `expected ${what}, cannot read it: ${messageOf(e)}`, {
      file: dir,
      cause: e,
    });
  }
}

/** Class folders of root (sorted naturally, hidden ones ignored), or NO_CLASSES. */
export function classFolders(root: string, layout: string): string[] {
  const classes = listDir(root, `a folder of class folders (${layout})`)
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name);
  if (classes.length === 0)
    throw new DataError('NO_CLASSES', `expected class folders (${layout}), found none`, { file: root });
  return classes;
}

/** root/<class>/<image>: paths and class indices. A class folder without images is an error. */
export function scanImageFolder(root: string): {
  classNames: string[];
  paths: string[];
  classIndex: number[];
} {
  const layout = 'root/<class>/<image>';
  const classNames = classFolders(root, layout);
  const paths: string[] = [];
  const classIndex: number[] = [];
  classNames.forEach((name, c) => {
    const dir = join(root, name);
    const files = listDir(dir, 'a class folder').filter((d) => d.isFile() && IMAGE_EXTENSIONS.test(d.name));
    if (files.length === 0)
      throw new DataError('NO_CLASSES', `class "${name}" holds no images (.jpg, .png, ...)`, { file: dir });
    for (const f of files) {
      paths.push(join(dir, f.name));
      classIndex.push(c);
    }
  });
  return { classNames, paths, classIndex };
}

/** root/<class>/<clip>/<frame>: frame paths per clip (sorted naturally) and class indices. */
export function scanFrameFolders(root: string): {
  classNames: string[];
  clips: string[][];
  classIndex: number[];
} {
  const layout = 'root/<class>/<clip>/<frame>.jpg';
  const classNames = classFolders(root, layout);
  const clips: string[][] = [];
  const classIndex: number[] = [];
  classNames.forEach((name, c) => {
    const dir = join(root, name);
    const clipDirs = listDir(dir, 'a class folder').filter((d) => d.isDirectory() && !d.name.startsWith('.'));
    if (clipDirs.length === 0)
      throw new DataError('NO_CLASSES', `class "${name}" holds no clip folders`, { file: dir });
    for (const clip of clipDirs) {
      const cdir = join(dir, clip.name);
      const frames = listDir(cdir, 'a clip folder').filter(
        (d) => d.isFile() && IMAGE_EXTENSIONS.test(d.name),
      );
      if (frames.length === 0)
        throw new DataError('NO_FRAMES', 'the clip holds no frames (.jpg, .png, ...)', { file: cdir });
      clips.push(frames.map((f) => join(cdir, f.name)));
      classIndex.push(c);
    }
  });
  return { classNames, clips, classIndex };
}

/** The length of the longest valid UTF-8 prefix of `bytes`. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let lo = 0;
  let hi = bytes.length;
  // A prefix is valid when decoding it as the start of a stream (an unfinished last character allowed) works.
  const valid = (n: number) => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (valid(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function countLines(bytes: Uint8Array, end: number): number {
  let n = 0;
  for (let i = 0; i < end; i++) if (bytes[i] === 0x0a) n++;
  return n;
}

/**
 * Parses one list file of the authors' format: lines `relative/path l_0 ... l_{C-1}` (labels 0 or 1),
 * paths resolved against root (absolute paths kept). Blank lines are ignored. `classes` fixes C when known.
 */
export function parseListFile(
  file: string,
  root: string,
  classes?: number,
): { paths: string[]; labels: Uint8Array; classes: number } {
  statOrThrow(file, 'a list file (lines: path l_0 ... l_{C-1})');
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new DataError('IO', `cannot read the list file: ${messageOf(e)}`, { file, cause: e });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Paths decoded with replacement characters would name files that do not exist: say where instead.
    const good = firstInvalidUtf8(bytes);
    throw new DataError('BAD_LIST', 'expected UTF-8 text, found bytes that are not UTF-8', {
      file,
      line: countLines(bytes, good) + 1,
      hint: 'save the list file as UTF-8',
    });
  }
  const lines = text.split(/\r?\n/);
  const paths: string[] = [];
  const rows: Uint8Array[] = [];
  let c = classes;
  lines.forEach((raw, k) => {
    const line = raw.trim();
    if (line === '') return;
    const parts = line.split(/\s+/);
    const labels = parts.slice(1);
    if (c === undefined) {
      if (labels.length === 0)
        throw new DataError('BAD_LIST', 'expected "path l_0 ... l_{C-1}", found a path without labels', {
          file,
          line: k + 1,
        });
      c = labels.length;
    }
    if (labels.length !== c)
      throw new DataError(
        'BAD_LIST',
        `expected ${c} labels after the path (as on the first line), found ${labels.length}`,
        {
          file,
          line: k + 1,
        },
      );
    const row = new Uint8Array(c);
    labels.forEach((t, j) => {
      // Exactly the digits 0 and 1 (Number() would also take "0x1", "1e0", "1.0" or "-0").
      if (t !== '0' && t !== '1')
        throw new DataError('BAD_LIST', `label ${j} is "${t}", expected 0 or 1`, { file, line: k + 1 });
      row[j] = t === '1' ? 1 : 0;
    });
    if (parts[0].includes('\0'))
      throw new DataError('BAD_LIST', 'expected a path, found one with a NUL character', {
        file,
        line: k + 1,
      });
    paths.push(isAbsolute(parts[0]) ? parts[0] : resolve(root, parts[0]));
    rows.push(row);
  });
  if (c === undefined || paths.length === 0)
    throw new DataError('BAD_LIST', 'the list file holds no entries', { file });
  const cols: number = c;
  const out = new Uint8Array(rows.length * cols);
  rows.forEach((r, i) => {
    out.set(r, i * cols);
  });
  return { paths, labels: out, classes: cols };
}
