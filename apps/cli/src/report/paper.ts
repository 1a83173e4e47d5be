// The paper's headline figures (PROTOCOL.md, from Bai et al., ECCV 2020), shown beside a run's numbers for
// orientation only: they were measured on other data sets (ImageNet / JHMDB) with other models (VGG-11, AlexNet
// features + LSTM).

export const PAPER_BITS = [16, 32, 48, 64] as const;

export interface PaperReference {
  /** What the numbers were measured on, said next to them wherever they appear. */
  source: string;
  /** t-MAP in percent per method and code length; methods the paper did not report are absent. */
  tMap: Record<string, Record<number, number>>;
  /** Perceptibility of the DHTA examples on that data set. */
  perceptibility: number;
}

export const PAPER_IMAGE: PaperReference = {
  source: 'ImageNet, VGG-11',
  tMap: {
    original: { 16: 3.8, 32: 1.36, 48: 1.64, 64: 1.98 },
    noise: { 16: 3.29, 32: 1.24, 48: 1.89, 64: 2.1 },
    p2p: { 16: 44.35, 32: 58.32, 48: 62.5, 64: 65.61 },
    dhta: { 16: 62.68, 32: 77.7, 48: 82.81, 64: 83.1 },
  },
  perceptibility: 8.35e-3,
};

export const PAPER_VIDEO: PaperReference = {
  source: 'JHMDB, AlexNet features + LSTM',
  tMap: {
    p2p: { 16: 39.67, 32: 42.37, 48: 44.78, 64: 44.38 },
    dhta: { 16: 56.47, 32: 62.04, 48: 63.02, 64: 66.06 },
  },
  perceptibility: 5.81e-3,
};

/** Perceptibility the paper reports on each of its data sets (DHTA). */
export const PAPER_PERCEPTIBILITY: Array<[string, number]> = [
  ['ImageNet', 8.35e-3],
  ['NUS-WIDE', 9.07e-3],
  ['JHMDB', 5.81e-3],
  ['UCF-101', 7.72e-3],
];

export const METHOD_NAMES: Record<string, string> = {
  original: 'Original',
  noise: 'Noise',
  p2p: 'P2P',
  dhta: 'DHTA',
  hag: 'HAG',
};

export function methodName(m: string): string {
  return METHOD_NAMES[m] ?? m;
}
