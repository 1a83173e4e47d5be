// `dhta reproduce <experiment>`: the paper's tables and figures as series of protocol runs, one output folder
// per cell group (each resumable and shardable like `dhta attack --data`), and a summary table beside the
// paper's numbers.

import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseName } from '@dhta/data';
import type { Gpu } from '@dhta/kernels';
import type { Command } from 'commander';
import {
  type AttackSettingFlags,
  addAttackSettings,
  attackSettingsOf,
  decimalInt,
  positiveInt,
  shardOption,
} from './attack.js';
import { zooDir } from './demo.js';
import { CliError } from './errors.js';
import { fmt, type Method, type ProtocolOptions, type ProtocolResult, runProtocol } from './experiment.js';
import { makeDir, removeIfEmpty } from './files.js';
import { backendOption, withOptionalGpu } from './gpu.js';
import { formatTable, printJson } from './output.js';
import { createProgress } from './progress.js';
import type { NtPoint } from './report/charts.js';
import { type PaperColumns, type PaperSetting, paperColumnsFor } from './report/paper.js';
import { type WrittenFigure, writeCurveFigures, writeNtFigure } from './reproduce-figures.js';
import { writeAtomic } from './results.js';

/** One protocol run of an experiment: its folder name and what differs from the defaults. */
interface Cell {
  name: string;
  bits: number;
  methods: Method[];
  nT?: number;
  /** The largest n_t of the sweep the cell belongs to: target labels must occur more often than that. */
  eligibleNt?: number;
  iterations?: number;
}

/** A summary row: `key` matches the paper's rows (report/paper.ts), `label` is what the table shows. */
interface Row {
  key: string;
  label: string;
  values: (number | null)[];
}

/** What the experiment's sweep runs over, when it sweeps: the paper's values, and the ones this run uses. */
interface Sweep {
  param: 'iterations' | 'nT';
  paper: number[];
  values: number[];
}

interface Experiment {
  description: string;
  video: boolean;
  /** Targets from the model's held-out classes (its card's heldOutClasses: dhta train --held-out). */
  openSet?: boolean;
  /** The iteration count or n_t values it sweeps (the paper's). */
  sweep?: { param: 'iterations' | 'nT'; values: number[] };
  methods?: Method[];
  /** Rows of the summary: how to read them from the cells' results. */
  rows: 'methods-tMap' | 'methods-map';
  /** The figure it draws from the cells' outputs. */
  figure?: 'curves' | 'nt';
}

const TARGETED: Method[] = ['original', 'noise', 'p2p', 'dhta'];
const ALL: Method[] = ['original', 'noise', 'p2p', 'hag', 'dhta'];

function metric(r: ProtocolResult | undefined, method: Method, key: 'tMap' | 'map'): number | null {
  return r?.metrics.find((m) => m.method === method)?.[key] ?? null;
}

const EXPERIMENTS: Record<string, Experiment> = {
  table1: {
    description: 't-MAP of Original, Noise, P2P and DHTA (and MAP of Original) per code length, image data',
    video: false,
    methods: TARGETED,
    rows: 'methods-tMap',
  },
  table2: {
    description: 'the same as table1 on video data',
    video: true,
    methods: TARGETED,
    rows: 'methods-tMap',
  },
  table3: {
    description: 'DHTA t-MAP after 100, 500, 1000, 1500 and 2000 iterations, image data',
    video: false,
    sweep: { param: 'iterations', values: [100, 500, 1000, 1500, 2000] },
    rows: 'methods-tMap',
  },
  table4: {
    description: 'DHTA t-MAP after 10, 50, 100 and 500 iterations, video data',
    video: true,
    sweep: { param: 'iterations', values: [10, 50, 100, 500] },
    rows: 'methods-tMap',
  },
  table5: {
    description: 'MAP (the non-targeted effect) of Original, Noise, P2P, HAG and DHTA per code length',
    video: false,
    methods: ALL,
    rows: 'methods-map',
  },
  fig3: {
    description:
      'precision-recall and precision@N curves at 48 bits, image data (figures beside the summary)',
    video: false,
    methods: ['original', 'p2p', 'dhta'],
    rows: 'methods-tMap',
    figure: 'curves',
  },
  fig5: {
    description: 'precision-recall and precision@N curves, video data (figures beside the summary)',
    video: true,
    methods: ['original', 'p2p', 'dhta'],
    rows: 'methods-tMap',
    figure: 'curves',
  },
  table6: {
    description:
      'open set: DHTA t-MAP with target labels from classes the model never saw, n_t in 5, 7, 9, 11',
    video: false,
    openSet: true,
    sweep: { param: 'nT', values: [5, 7, 9, 11] },
    rows: 'methods-tMap',
  },
  fig7: {
    description: 'DHTA t-MAP for n_t in 1, 3, 5, 7, 9, 11, 13 (and MAP of Original), with the figure',
    video: false,
    sweep: { param: 'nT', values: [1, 3, 5, 7, 9, 11, 13] },
    rows: 'methods-tMap',
    figure: 'nt',
  },
};

/** Data sets whose items are clips (the video protocol, the video zoo model). */
const VIDEO_SCHEMES = new Set(['moving-mnist', 'moving-fashion-mnist', 'frames']);

function isVideoData(data: string): boolean {
  try {
    return VIDEO_SCHEMES.has(parseName(data).scheme);
  } catch {
    return false; // a bad name: runProtocol says what is wrong with it
  }
}

/**
 * Default code lengths: the paper's 16, 32, 48 and 64 (the zoo has image and video models at each); Fig. 3 and 5
 * are at 48 bits in the paper.
 */
function defaultBits(name: string): number[] {
  if (name === 'fig3' || name === 'fig5') return [48];
  return [16, 32, 48, 64];
}

/**
 * The zoo's name of a data set: a built-in name as it is (mnist, moving-mnist, ...), a path source by its
 * folder's name (idx:/data/digits -> digits).
 */
export function zooDataName(data: string): string {
  try {
    const p = parseName(data);
    if (p.path === undefined || p.path === '') return p.scheme;
    return basename(p.path.replace(/[/\\]+$/, '')) || p.scheme;
  } catch {
    return data.replace(/[^A-Za-z0-9_-]+/g, '_');
  }
}

/**
 * The sweep's values for this run. table3/table4 sweep the iteration count themselves: --iters N makes N the
 * largest count and scales the others proportionally (rounded, at least 1); N too small to keep them apart is
 * an error that names the smallest N that does.
 */
function sweepOf(name: string, exp: Experiment, iters: number | undefined): Sweep | undefined {
  if (!exp.sweep) return undefined;
  const paper = exp.sweep.values;
  if (exp.sweep.param !== 'iterations' || iters === undefined) return { ...exp.sweep, paper };
  const max = paper[paper.length - 1];
  const scaled = (n: number) => paper.map((v) => Math.max(1, Math.round((v * n) / max)));
  const distinct = (n: number) => new Set(scaled(n)).size === paper.length;
  if (!distinct(iters)) {
    let least = iters + 1;
    while (!distinct(least)) least++;
    throw new CliError(
      `${name} sweeps the iteration count itself (${paper.join(', ')}): --iters ${iters} would scale it to ` +
        `${scaled(iters).join(', ')}, which repeats counts`,
      `give --iters ${least} or more (the largest count of the scaled sweep), or leave --iters out for the paper's counts`,
    );
  }
  return { param: 'iterations', paper, values: scaled(iters) };
}

function cellsOf(exp: Experiment, bits: number[], sweep: Sweep | undefined): Cell[] {
  if (!sweep) return bits.map((b) => ({ name: `bits${b}`, bits: b, methods: exp.methods ?? TARGETED }));
  const eligibleNt = sweep.param === 'nT' ? Math.max(...sweep.values) : undefined;
  return bits.flatMap((b) =>
    sweep.values.map((v) => ({
      name: `bits${b}-${sweep.param}${v}`,
      bits: b,
      methods: ['original', 'dhta'] as Method[],
      [sweep.param]: v,
      eligibleNt,
    })),
  );
}

function rowsOf(
  exp: Experiment,
  results: Map<string, ProtocolResult>,
  bits: number[],
  sweep: Sweep | undefined,
): Row[] {
  if (sweep) {
    const what = sweep.param === 'nT' ? 'n_t' : 'iterations';
    const scaled = sweep.values.some((v, i) => v !== sweep.paper[i]);
    return [
      ...sweep.values.map((v, i) => ({
        key: `${what} ${sweep.paper[i]}`,
        label: `DHTA t-MAP, ${what} ${v}${scaled ? ` (paper: ${sweep.paper[i]})` : ''}`,
        values: bits.map((b) => metric(results.get(`bits${b}-${sweep.param}${v}`), 'dhta', 'tMap')),
      })),
      {
        key: 'MAP original',
        label: 'MAP original',
        values: bits.map((b) =>
          metric(results.get(`bits${b}-${sweep.param}${sweep.values[0]}`), 'original', 'map'),
        ),
      },
    ];
  }
  const methods = exp.methods ?? TARGETED;
  const cell = (b: number) => results.get(`bits${b}`);
  if (exp.rows === 'methods-map') {
    return methods.map((m) => ({
      key: `MAP ${m}`,
      label: `MAP ${m}`,
      values: bits.map((b) => metric(cell(b), m, 'map')),
    }));
  }
  return [
    ...methods.map((m) => ({
      key: `t-MAP ${m}`,
      label: `t-MAP ${m}`,
      values: bits.map((b) => metric(cell(b), m, 'tMap')),
    })),
    {
      key: 'MAP original',
      label: 'MAP original',
      values: bits.map((b) => metric(cell(b), 'original', 'map')),
    },
  ];
}

interface ReproduceFlags extends AttackSettingFlags {
  data?: string;
  model?: string;
  zoo?: string;
  bits?: string;
  queries: number;
  outDir?: string;
  resume?: boolean;
  shard?: { index: number; count: number };
  json?: boolean;
}

function bitsList(v: string | undefined, fallback: number[]): number[] {
  if (v === undefined) return fallback;
  const list = v.split(',').map(decimalInt);
  if (list.some((b) => Number.isNaN(b) || b < 1 || b > 4096))
    throw new CliError(`--bits must be a comma-separated list of code lengths from 1 to 4096, found "${v}"`);
  return list;
}

/** The classes a model was trained without (its card's heldOutClasses), or [] when none. */
function heldOutClassesOf(modelDir: string): number[] {
  const card = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8')).card ?? {};
  return Array.isArray(card.heldOutClasses) ? card.heldOutClasses : [];
}

const pct = (v: number | null) => (v === null ? '-' : v.toFixed(2));

async function reproduce(gpu: Gpu | null, name: string, f: ReproduceFlags): Promise<Record<string, unknown>> {
  const exp = EXPERIMENTS[name];
  const data = f.data ?? (exp.video ? 'moving-mnist' : 'mnist');
  const video = isVideoData(data);
  const setting: PaperSetting = video ? 'video' : 'image';
  const bits = bitsList(f.bits, defaultBits(name));
  const sweep = sweepOf(name, exp, f.iters);
  const outDir = f.outDir ?? `dhta-${name}-${data.replace(/[^A-Za-z0-9_-]+/g, '_')}`;
  const zoo = f.zoo ?? zooDir();
  // The open set's zoo models: zoo/<data>-<bits>-open, trained without some classes (their cards say which).
  const zooModel = (b: number) => join(zoo, `${zooDataName(data)}-${b}${exp.openSet ? '-open' : ''}`);
  const modelFor = (b: number) => (f.model ? f.model.replaceAll('{bits}', String(b)) : zooModel(b));
  for (const b of bits) {
    if (existsSync(join(modelFor(b), 'model.json'))) continue;
    if (exp.openSet && !f.model) {
      throw new CliError(
        `${name} needs a ${b}-bit model trained without some classes; none at ${modelFor(b)}`,
        `train it: pnpm dhta train --data ${data} --preset ${video ? 'video' : 'small-cnn'} --bits ${b} ` +
          `--epochs 12 --held-out 7,8,9 --out ${modelFor(b)} (or pass such models with --model DIR-{bits})`,
      );
    }
    throw new CliError(
      `no ${b}-bit model at ${modelFor(b)}`,
      'give --model with {bits} in the path (e.g. models/vgg11-{bits}), or train it with dhta train',
    );
  }
  const heldOut = new Map<number, number[]>();
  if (exp.openSet) {
    for (const b of bits) {
      const classes = heldOutClassesOf(modelFor(b));
      if (classes.length === 0) {
        throw new CliError(
          `${name} needs models trained without some classes; ${modelFor(b)} lists no heldOutClasses in its card`,
          `train them with dhta train ... --held-out 7,8,9 (the zoo's are ${join(zoo, `${zooDataName(data)}-{bits}-open`)}) ` +
            'and pass --model with {bits}',
        );
      }
      heldOut.set(b, classes);
    }
  }
  const createdOutDir = makeDir(outDir);
  const progress = createProgress({ quiet: f.json });
  const results = new Map<string, ProtocolResult>();
  const cells = cellsOf(exp, bits, sweep);
  for (const [i, cell] of cells.entries()) {
    // A run that fails before its first cell wrote anything leaves no empty folder behind.
    if (i === 0 && createdOutDir) process.once('exit', () => removeIfEmpty(outDir));
    progress.log(`== ${name} ${i + 1}/${cells.length}: ${cell.name} (${cell.methods.join(', ')})`);
    const settings = attackSettingsOf(f);
    if (cell.iterations !== undefined) settings.iterations = cell.iterations;
    // maxTargetsPerQuery: the sweep's largest n_t decides which target labels are eligible, so that every
    // cell of an n_t sweep draws the same queries and target labels (a paired sweep). runProtocol passes it
    // on to sampleAttack once ProtocolOptions has it (an object, not a literal, until then).
    const options: ProtocolOptions & { maxTargetsPerQuery?: number } = {
      modelDir: modelFor(cell.bits),
      data,
      seed: f.seed,
      queries: f.queries,
      nT: cell.nT ?? 9,
      maxTargetsPerQuery: cell.eligibleNt,
      methods: cell.methods,
      attack: settings,
      zeroHits: 'skip',
      outDir: join(outDir, cell.name),
      resume: f.resume,
      shard: f.shard,
      targetClasses: heldOut.get(cell.bits),
      engine: f.engine,
      cpuThreads: f.cpuThreads,
      log: (l) => progress.log(l),
      progress: (phase, done, total, extra) => progress.update(phase, done, total, extra),
    };
    const result = await runProtocol(gpu, options);
    results.set(cell.name, result);
  }
  progress.stop();

  const rows = rowsOf(exp, results, bits, sweep);
  const paper: PaperColumns[] = paperColumnsFor(name, setting);
  const paperValues = (c: PaperColumns, key: string) => bits.map((b) => c.rows[key]?.[b] ?? null);
  const figures: WrittenFigure[] = [];
  if (exp.figure === 'curves') {
    for (const b of bits) {
      figures.push(
        ...(await writeCurveFigures(
          outDir,
          join(outDir, `bits${b}`),
          `${name}-${b}bits`,
          `${b} bits, ${data}`,
        )),
      );
    }
  } else if (exp.figure === 'nt' && sweep) {
    const points: NtPoint[] = [];
    for (const b of bits) {
      for (const v of sweep.values) {
        const r = results.get(`bits${b}-nT${v}`);
        const t = metric(r, 'dhta', 'tMap');
        const m = metric(r, 'original', 'map');
        if (t !== null) points.push({ nT: v, bits: b, series: 'DHTA t-MAP', value: 100 * t });
        if (m !== null) points.push({ nT: v, bits: b, series: 'Original MAP', value: 100 * m });
      }
    }
    figures.push(...(await writeNtFigure(outDir, name, points, `${data}, ${f.queries} queries per cell`)));
  }
  const summary = {
    experiment: name,
    description: exp.description,
    data,
    setting,
    bits,
    queries: f.queries,
    ...(sweep ? { sweep: { param: sweep.param, values: sweep.values, paper: sweep.paper } } : {}),
    shard: f.shard ? `${f.shard.index}/${f.shard.count}` : null,
    rows: rows.map((r) => ({
      ...r,
      // The first of the paper's data sets for this experiment and setting (null where it has no figure).
      paper: paper.length && Object.hasOwn(paper[0].rows, r.key) ? paperValues(paper[0], r.key) : null,
      // One entry per paperSources entry.
      papers: paper.map((c) => paperValues(c, r.key)),
    })),
    paperSource: paper[0]?.source ?? null,
    paperSources: paper.map((c) => ({ source: c.source, tables: c.tables })),
    figures: figures.map((x) => x.png),
    runs: [...results.keys()],
  };
  const header = [
    'row',
    ...bits.map((b) => `${b} bits`),
    ...paper.flatMap((c) => bits.map((b) => `paper ${c.source.split(',')[0]} ${b}`)),
  ];
  const cellsOfRow = (r: (typeof summary.rows)[number]) => [
    r.label,
    ...r.values.map(fmt),
    ...r.papers.flatMap((vs) => vs.map(pct)),
  ];
  const table = formatTable(header, summary.rows.map(cellsOfRow));
  const paperNote = paper.length
    ? `The paper's columns, for orientation (other data sets and models): ${paper
        .map((c) => `${c.source} (${c.tables})`)
        .join('; ')}; "-" where the paper has no figure.`
    : `The paper has no figures for ${name} on ${setting} data.`;
  const sweepNote = sweep?.values.some((v, i) => v !== sweep.paper[i])
    ? `\n\nThe iteration counts are the paper's (${sweep.paper.join(', ')}) scaled to --iters ${f.iters}; ` +
      "the paper's columns are its rows at the unscaled counts."
    : '';
  const figuresMd = figures.length
    ? `\n\n## Figures\n\n${figures
        .map((x) => `![${x.caption}](${x.png})\n\n${x.caption} ([SVG](${x.svg}))`)
        .join('\n\n')}`
    : '';
  const md =
    `# ${name}: ${exp.description}\n\nData ${data} (${setting}), ${f.queries} queries per cell, seed ${f.seed}; ` +
    `values in %. ${paperNote}${sweepNote}\n\n` +
    `| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n` +
    summary.rows.map((r) => `| ${cellsOfRow(r).join(' | ')} |`).join('\n') +
    figuresMd +
    `\n\nPer-cell outputs (results.jsonl, metrics.json, curves, grids): ${summary.runs.map((r) => `\`${r}/\``).join(', ')}; ` +
    'render any of them with `dhta report`.\n';
  writeAtomic(join(outDir, `${name}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  writeAtomic(join(outDir, `${name}.md`), md);
  return { ...summary, table, outDir };
}

export function registerReproduce(program: Command): void {
  const cmd = program
    .command('reproduce')
    .description(
      "The paper's experiments as series of protocol runs (one folder per cell, each resumable and shardable), " +
        "summarised beside the paper's figures:\n" +
        Object.entries(EXPERIMENTS)
          .map(([k, e]) => `  ${k.padEnd(7)} ${e.description}`)
          .join('\n') +
        '\nDefaults: the shipped zoo models (zoo/<data>-<bits>) and data (mnist; moving-mnist for video ' +
        'experiments); video data (moving-*, frames:) runs the zoo video models at the same code lengths. ' +
        'table3 and table4 sweep the iteration count themselves: --iters N sets the largest count and scales the ' +
        "others proportionally (table3 --iters 200: 10, 50, 100, 150, 200); without it, the paper's counts. " +
        'fig7 and table6 sweep n_t over the same queries and target labels (paired: the n_t target objects of a ' +
        "smaller n_t are the first of a larger one's). " +
        'table6 (open set) uses zoo/<data>-<bits>-open, models trained without some classes (dhta train ' +
        '--held-out 7,8,9; their cards list them), or --model DIR-{bits}; its targets come from those classes. ' +
        'fig3, fig5 and fig7 also write their figures (PNG and SVG) under OUT/figures.',
    )
    .argument('<experiment>', Object.keys(EXPERIMENTS).join(' | '))
    .option('--data <NAME>', 'data set (default mnist, or moving-mnist for video experiments)')
    .option(
      '--model <DIR>',
      'model folder per code length, with {bits} in the path (default <zoo>/<data>-{bits}, -open for table6)',
    )
    .option('--zoo <DIR>', 'where the default models are (default: the shipped zoo/)')
    .option('--bits <LIST>', 'code lengths (default 16,32,48,64; 48 for fig3 and fig5)')
    .option('--queries <N>', 'queries per cell', positiveInt('--queries'), 100)
    .option('--out-dir <DIR>', 'where the cells and the summary go (default dhta-<experiment>-<data>)')
    .option('--resume', 'continue interrupted cells without redoing finished queries')
    .option(
      '--shard <i/n>',
      "run slice i of n of every cell's queries (merge each cell folder with dhta merge)",
      shardOption,
    )
    .option('--json', 'print the summary as one JSON line')
    .option('--backend <B>', 'WebGPU backend (vulkan, metal, d3d12, ...)', backendOption)
    .option('--adapter <NAME>', 'adapter name substring');
  addAttackSettings(cmd).action(async (name: string, f: ReproduceFlags) => {
    if (!EXPERIMENTS[name]) {
      throw new CliError(
        `unknown experiment "${name}"`,
        `expected one of ${Object.keys(EXPERIMENTS).join(', ')}`,
      );
    }
    sweepOf(name, EXPERIMENTS[name], f.iters); // a bad --iters for a sweep: refused before any GPU is opened
    const summary = await withOptionalGpu(f, (gpu) => reproduce(gpu, name, f));
    if (f.json) {
      const { table: _table, ...rest } = summary;
      printJson(rest);
    } else
      process.stdout.write(`${summary['table']}\nwrote ${join(String(summary['outDir']), `${name}.md`)}\n`);
  });
}
