// The prepared data a page reads (written by `dhta serve`, which prepares what is missing, and served under
// /data/): one manifest, and per data set and per model plain .npy files, so that each can also be opened
// with NumPy or given to `dhta search`. Shared by the CLI (writer) and the page (reader); no DOM, no Node.

export const WEB_DATA_FORMAT = 'dhta-web-data/1';
export const MANIFEST_FILE = 'manifest.json';

/** A split of a data set as the page sees it: pixels and multi-hot labels, both uint8 or float32 .npy. */
export interface WebSplit {
  count: number;
  /** Path of the pixels .npy under the data root: (count, C, H, W). */
  pixels: string;
  /** 'u8': byte v stands for the float32 pixel v * (1 / 255), exactly as the data set decodes it. */
  pixelFormat: 'u8' | 'f32';
  /** Byte offset of the first item in the pixels file (the .npy header's length), for range requests. */
  pixelsOffset: number;
  /** Path of the labels .npy: uint8 (count, classes). */
  labels: string;
}

export interface WebDataset {
  /** Folder name under datasets/: the data set and how it was split. */
  key: string;
  /** The name `dhta data` takes (mnist, fashion-mnist, ...). */
  name: string;
  seed: number;
  trainPerClass: number | null;
  heldOutClasses: number[];
  classes: number;
  classNames: string[];
  /** Shape of one item (C, H, W). */
  itemShape: number[];
  /** The query split, numbered as `dhta data export NAME --split query` numbers it. */
  query: WebSplit;
  database: WebSplit;
}

export interface WebModel {
  /** The zoo name (mnist-32, ...). */
  name: string;
  /** WebDataset.key of the data it was trained for. */
  dataset: string;
  bits: number;
  /** Paths under the data root of the bundle's two files. */
  spec: string;
  weights: string;
  /** Database codes: uint8 (count, ceil(bits / 8)), FAISS's layout (LSB first), as `dhta encode --packed`. */
  databaseCodes: string;
  /** The engine that encoded the database (codes from the two engines can differ in a rare bit). */
  codesEngine: 'webgpu' | 'wasm';
  /** The card's clean MAP, when it has one. */
  cleanMap: number | null;
}

export interface WebManifest {
  format: typeof WEB_DATA_FORMAT;
  models: WebModel[];
  datasets: WebDataset[];
}

/** The page's defaults where the URL says nothing (those of `dhta demo`: the paper's eps moves no code here). */
export const PAGE_DEFAULTS = {
  method: 'dhta',
  iters: 300,
  eps: 0.1,
  epsSpace: 'pixel',
  engine: 'auto',
  seed: 0,
  nT: 9,
  top: 10,
} as const;
