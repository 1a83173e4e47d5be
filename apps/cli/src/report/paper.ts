// The paper's figures (Bai et al., ECCV 2020: Tables 1-6, and PROTOCOL.md's headline table), shown beside a
// run's numbers for orientation only: they were measured on other data sets (ImageNet / NUS-WIDE with VGG-11,
// JHMDB / UCF-101 with AlexNet features + LSTM).

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
    original: { 16: 6.73, 32: 6.26, 48: 6.48, 64: 6.89 },
    noise: { 16: 6.67, 32: 6.13, 48: 6.5, 64: 6.94 },
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

// ---------------------------------------------------------------------------------------------------------
// Every number of the paper's Tables 1-6 (in percent), per table and data set, as printed. Rows are keyed the
// way `dhta reproduce` keys its summary rows: 't-MAP <method>' and 'MAP <method>' (methods as in METHODS),
// 'iterations <N>' (DHTA t-MAP after N iterations) and 'n_t <N>' (DHTA t-MAP with n_t = N).

export type PaperSetting = 'image' | 'video';

/** One data set's block of a table. */
export interface PaperBlock {
  /** The data set, e.g. 'ImageNet'. */
  data: string;
  /** The threat model, e.g. 'VGG-11'. */
  model: string;
  setting: PaperSetting;
  /** Per row key, per code length. */
  rows: Record<string, Record<number, number>>;
}

export interface PaperTable {
  /** 'Table 1' ... */
  name: string;
  caption: string;
  blocks: PaperBlock[];
}

const IMAGE_MODEL = 'VGG-11';
const VIDEO_MODEL = 'AlexNet features + LSTM';

/** Four values at 16, 32, 48 and 64 bits. */
function perBits(values: [number, number, number, number]): Record<number, number> {
  return Object.fromEntries(PAPER_BITS.map((b, i) => [b, values[i]]));
}

export const PAPER_TABLES: Record<
  'table1' | 'table2' | 'table3' | 'table4' | 'table5' | 'table6',
  PaperTable
> = {
  table1: {
    name: 'Table 1',
    caption:
      't-MAP (%) of targeted attack methods and MAP (%) of query with benign objects (Original) on two image data sets',
    blocks: [
      {
        data: 'ImageNet',
        model: IMAGE_MODEL,
        setting: 'image',
        rows: {
          't-MAP original': perBits([3.8, 1.36, 1.64, 1.98]),
          't-MAP noise': perBits([3.29, 1.24, 1.89, 2.1]),
          't-MAP p2p': perBits([44.35, 58.32, 62.5, 65.61]),
          't-MAP dhta': perBits([62.68, 77.7, 82.81, 83.1]),
        },
      },
      {
        data: 'NUS-WIDE',
        model: IMAGE_MODEL,
        setting: 'image',
        rows: {
          't-MAP original': perBits([37.62, 36.03, 38.32, 38.69]),
          't-MAP noise': perBits([37.34, 36.15, 38.25, 38.57]),
          't-MAP p2p': perBits([75.45, 78.59, 81.4, 81.28]),
          't-MAP dhta': perBits([82.85, 85.6, 88.8, 88.84]),
        },
      },
    ],
  },
  table2: {
    name: 'Table 2',
    caption:
      't-MAP (%) of targeted attack methods and MAP (%) of query with benign objects (Original) on two video data sets',
    blocks: [
      {
        data: 'JHMDB',
        model: VIDEO_MODEL,
        setting: 'video',
        rows: {
          't-MAP original': perBits([6.73, 6.26, 6.48, 6.89]),
          't-MAP noise': perBits([6.67, 6.13, 6.5, 6.94]),
          't-MAP p2p': perBits([39.67, 42.37, 44.78, 44.38]),
          't-MAP dhta': perBits([56.47, 62.04, 63.02, 66.06]),
          'MAP original': perBits([35.18, 42.46, 45.8, 45.5]),
        },
      },
      {
        data: 'UCF-101',
        model: VIDEO_MODEL,
        setting: 'video',
        rows: {
          't-MAP original': perBits([1.69, 1.67, 1.79, 1.86]),
          't-MAP noise': perBits([1.69, 1.72, 1.87, 1.85]),
          't-MAP p2p': perBits([55.57, 53.49, 55.27, 51.88]),
          't-MAP dhta': perBits([67.84, 66.18, 69.72, 67.83]),
          'MAP original': perBits([55.16, 55.25, 56.56, 56.79]),
        },
      },
    ],
  },
  table3: {
    name: 'Table 3',
    caption: 't-MAP (%) of DHTA with different iterations on ImageNet',
    blocks: [
      {
        data: 'ImageNet',
        model: IMAGE_MODEL,
        setting: 'image',
        rows: {
          'iterations 100': perBits([52.99, 66.29, 70.65, 72.43]),
          'iterations 500': perBits([55.18, 68.3, 74.47, 76.15]),
          'iterations 1000': perBits([56.96, 68.36, 75.03, 76.25]),
          'iterations 1500': perBits([62.81, 74.11, 79.28, 78.71]),
          'iterations 2000': perBits([63.68, 77.76, 82.31, 82.1]),
        },
      },
    ],
  },
  table4: {
    name: 'Table 4',
    caption: 't-MAP (%) of DHTA with different iterations on JHMDB',
    blocks: [
      {
        data: 'JHMDB',
        model: VIDEO_MODEL,
        setting: 'video',
        rows: {
          'iterations 10': perBits([28.51, 23.88, 22.84, 23.21]),
          'iterations 50': perBits([48.69, 48.18, 47.01, 48.97]),
          'iterations 100': perBits([53.21, 54.91, 55.94, 58.28]),
          'iterations 500': perBits([56.47, 62.04, 63.02, 66.06]),
        },
      },
    ],
  },
  table5: {
    name: 'Table 5',
    caption:
      'MAP (%) of different methods on ImageNet and JHMDB (the non-targeted effect: lower is stronger)',
    blocks: [
      {
        data: 'ImageNet',
        model: IMAGE_MODEL,
        setting: 'image',
        rows: {
          'MAP original': perBits([51.02, 62.7, 67.8, 70.11]),
          'MAP noise': perBits([50.94, 62.52, 66.69, 69.85]),
          'MAP p2p': perBits([3.36, 2.48, 2.45, 3.93]),
          'MAP hag': perBits([1.88, 4.96, 3.89, 2.34]),
          'MAP dhta': perBits([0.54, 5.64, 2.3, 1.7]),
        },
      },
      {
        data: 'JHMDB',
        model: VIDEO_MODEL,
        setting: 'video',
        rows: {
          'MAP original': perBits([35.18, 42.46, 45.8, 45.5]),
          'MAP noise': perBits([35.04, 42.15, 45.67, 45.63]),
          'MAP p2p': perBits([7.71, 8.2, 8.14, 10.19]),
          'MAP hag': perBits([3.52, 3.58, 3.42, 3.34]),
          'MAP dhta': perBits([6.76, 7.23, 6.56, 7.55]),
        },
      },
    ],
  },
  table6: {
    name: 'Table 6',
    caption: 't-MAP (%) of DHTA with out-of-sample target labels (open set) on ImageNet',
    blocks: [
      {
        data: 'ImageNet',
        model: IMAGE_MODEL,
        setting: 'image',
        rows: {
          'n_t 5': perBits([33.67, 46.34, 48.91, 48.27]),
          'n_t 7': perBits([34.77, 50.92, 51.68, 49.18]),
          'n_t 9': perBits([37.34, 54.13, 55.12, 52.17]),
          'n_t 11': perBits([38.0, 54.05, 56.93, 54.12]),
        },
      },
    ],
  },
};

/** The paper's columns beside one experiment's summary: one data set's figures, and where they come from. */
export interface PaperColumns {
  /** Data set and model, e.g. 'ImageNet, VGG-11'. */
  source: string;
  /** The tables the numbers come from, e.g. 'Table 1; MAP original: Table 5'. */
  tables: string;
  /** Per summary row key, per code length, in percent. */
  rows: Record<string, Record<number, number>>;
}

function block(table: keyof typeof PAPER_TABLES, data: string): PaperBlock {
  const b = PAPER_TABLES[table].blocks.find((x) => x.data === data);
  if (!b) throw new Error(`no ${data} block in ${table}`);
  return b;
}

function columns(
  table: keyof typeof PAPER_TABLES,
  data: string,
  extra: Array<{ table: keyof typeof PAPER_TABLES; rows: Record<string, string> }> = [],
): PaperColumns {
  const b = block(table, data);
  const rows = { ...b.rows };
  const notes = [PAPER_TABLES[table].name];
  for (const e of extra) {
    const from = block(e.table, data);
    const keys: string[] = [];
    for (const [key, fromKey] of Object.entries(e.rows)) {
      if (rows[key] !== undefined) continue;
      rows[key] = from.rows[fromKey];
      keys.push(key);
    }
    if (keys.length) notes.push(`${keys.join(', ')}: ${PAPER_TABLES[e.table].name}`);
  }
  return { source: `${b.data}, ${b.model}`, tables: notes.join('; '), rows };
}

/** MAP of the benign queries is the same measurement in Tables 1, 2 and 5 (the txt of Table 1 lacks it). */
const MAP_ORIGINAL = { table: 'table5' as const, rows: { 'MAP original': 'MAP original' } };

/**
 * The paper's columns for each `dhta reproduce` experiment, by the setting of the data it ran on: the same
 * experiment on video data is set beside the paper's video figures, and an experiment the paper ran on image
 * data only (Table 6) has none there. Fig. 3, 5 and 7 print no numbers: their summary rows (t-MAP at one code
 * length; DHTA at n_t = 1, which is P2P, and n_t = 9, the default) are the settings of Tables 1, 2 and 5.
 */
export function paperColumnsFor(experiment: string, setting: PaperSetting): PaperColumns[] {
  const nt = (table: 'table1' | 'table2', data: string): PaperColumns => {
    const c = columns(table, data, [MAP_ORIGINAL]);
    return {
      source: c.source,
      tables:
        `${PAPER_TABLES[table].name}: n_t 1 = its P2P row, n_t 9 = its DHTA row (Fig. 7 prints no numbers)` +
        `; MAP original: ${table === 'table1' ? 'Table 5' : 'Table 2'}`,
      rows: {
        'n_t 1': c.rows['t-MAP p2p'],
        'n_t 9': c.rows['t-MAP dhta'],
        'MAP original': c.rows['MAP original'],
      },
    };
  };
  const image = setting === 'image';
  switch (experiment) {
    case 'table1':
    case 'table2':
    case 'fig3':
    case 'fig5':
      return image
        ? [columns('table1', 'ImageNet', [MAP_ORIGINAL]), columns('table1', 'NUS-WIDE')]
        : [columns('table2', 'JHMDB'), columns('table2', 'UCF-101')];
    case 'table3':
    case 'table4':
      return image
        ? [columns('table3', 'ImageNet', [MAP_ORIGINAL])]
        : [columns('table4', 'JHMDB', [{ table: 'table2', rows: { 'MAP original': 'MAP original' } }])];
    case 'table5':
      return [columns('table5', image ? 'ImageNet' : 'JHMDB')];
    case 'table6':
      return image ? [columns('table6', 'ImageNet')] : [];
    case 'fig7':
      return [image ? nt('table1', 'ImageNet') : nt('table2', 'JHMDB')];
    default:
      return [];
  }
}
