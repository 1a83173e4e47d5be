// `dhta reproduce <experiment>`: the paper's tables and figures as series of protocol runs, one output folder
// per cell group (each resumable and shardable like `dhta attack --data`), and a summary table beside the
// paper's numbers.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '@dhta/kernels';
import type { Command } from 'commander';
import {
  type AttackSettingFlags,
  addAttackSettings,
  attackSettingsOf,
  positiveInt,
  shardOption,
} from './attack.js';
import { zooDir } from './demo.js';
import { CliError } from './errors.js';
import { fmt, type Method, type ProtocolResult, runProtocol } from './experiment.js';
import { backendOption, withOptionalGpu } from './gpu.js';
import { formatTable, printJson } from './output.js';
import { createProgress } from './progress.js';
import { PAPER_IMAGE, PAPER_VIDEO } from './report/paper.js';
import { writeAtomic } from './results.js';

/** One protocol run of an experiment: its folder name and what differs from the defaults. */
interface Cell {
  name: string;
  bits: number;
  methods: Method[];
  nT?: number;
  iterations?: number;
}

interface Experiment {
  description: string;
  video: boolean;
  /** Targets from the model's held-out classes (its card's heldOutClasses: dhta train --held-out). */
  openSet?: boolean;
  cells(bits: number[]): Cell[];
  /** Rows of the summary: label and how to read a value from a cell's result. */
  rows(results: Map<string, ProtocolResult>, bits: number[]): { label: string; values: (number | null)[] }[];
}

const TARGETED: Method[] = ['original', 'noise', 'p2p', 'dhta'];
const ALL: Method[] = ['original', 'noise', 'p2p', 'hag', 'dhta'];

function metric(r: ProtocolResult | undefined, method: Method, key: 'tMap' | 'map'): number | null {
  return r?.metrics.find((m) => m.method === method)?.[key] ?? null;
}

function methodsTable(methods: Method[], key: 'tMap' | 'map', prefix: string) {
  return (results: Map<string, ProtocolResult>, bits: number[]) => [
    ...methods.map((m) => ({
      label: `${prefix} ${m}`,
      values: bits.map((b) => metric(results.get(`bits${b}`), m, key)),
    })),
    ...(key === 'tMap'
      ? [
          {
            label: 'MAP original',
            values: bits.map((b) => metric(results.get(`bits${b}`), 'original', 'map')),
          },
        ]
      : []),
  ];
}

function sweep(param: 'iterations' | 'nT', values: number[]): Pick<Experiment, 'cells' | 'rows'> {
  return {
    cells: (bits) =>
      bits.flatMap((b) =>
        values.map((v) => ({
          name: `bits${b}-${param}${v}`,
          bits: b,
          methods: ['original', 'dhta'] as Method[],
          [param]: v,
        })),
      ),
    rows: (results, bits) => [
      ...values.map((v) => ({
        label: `DHTA t-MAP, ${param === 'nT' ? 'n_t' : 'iterations'} ${v}`,
        values: bits.map((b) => metric(results.get(`bits${b}-${param}${v}`), 'dhta', 'tMap')),
      })),
      {
        label: 'MAP original',
        values: bits.map((b) => metric(results.get(`bits${b}-${param}${values[0]}`), 'original', 'map')),
      },
    ],
  };
}

const EXPERIMENTS: Record<string, Experiment> = {
  table1: {
    description: 't-MAP of Original, Noise, P2P and DHTA (and MAP of Original) per code length, image data',
    video: false,
    cells: (bits) => bits.map((b) => ({ name: `bits${b}`, bits: b, methods: TARGETED })),
    rows: methodsTable(TARGETED, 'tMap', 't-MAP'),
  },
  table2: {
    description: 'the same as table1 on video data',
    video: true,
    cells: (bits) => bits.map((b) => ({ name: `bits${b}`, bits: b, methods: TARGETED })),
    rows: methodsTable(TARGETED, 'tMap', 't-MAP'),
  },
  table3: {
    description: 'DHTA t-MAP after 100, 500, 1000, 1500 and 2000 iterations, image data',
    video: false,
    ...sweep('iterations', [100, 500, 1000, 1500, 2000]),
  },
  table4: {
    description: 'DHTA t-MAP after 10, 50, 100 and 500 iterations, video data',
    video: true,
    ...sweep('iterations', [10, 50, 100, 500]),
  },
  table5: {
    description: 'MAP (the non-targeted effect) of Original, Noise, P2P, HAG and DHTA per code length',
    video: false,
    cells: (bits) => bits.map((b) => ({ name: `bits${b}`, bits: b, methods: ALL })),
    rows: methodsTable(ALL, 'map', 'MAP'),
  },
  fig3: {
    description: 'precision-recall and precision@N curves at 48 bits, image data (see the report of the run)',
    video: false,
    cells: (bits) =>
      bits.map((b) => ({ name: `bits${b}`, bits: b, methods: ['original', 'p2p', 'dhta'] as Method[] })),
    rows: methodsTable(['original', 'p2p', 'dhta'], 'tMap', 't-MAP'),
  },
  fig5: {
    description: 'precision-recall and precision@N curves, video data (see the report of the run)',
    video: true,
    cells: (bits) =>
      bits.map((b) => ({ name: `bits${b}`, bits: b, methods: ['original', 'p2p', 'dhta'] as Method[] })),
    rows: methodsTable(['original', 'p2p', 'dhta'], 'tMap', 't-MAP'),
  },
  table6: {
    description:
      'open set: DHTA t-MAP with target labels from classes the model never saw, n_t in 5, 7, 9, 11',
    video: false,
    openSet: true,
    ...sweep('nT', [5, 7, 9, 11]),
  },
  fig7: {
    description: 'DHTA t-MAP for n_t in 1, 3, 5, 7, 9, 11, 13 (and MAP of Original)',
    video: false,
    ...sweep('nT', [1, 3, 5, 7, 9, 11, 13]),
  },
};

const DEFAULT_BITS: Record<string, number[]> = { fig3: [48], fig5: [32] };

interface ReproduceFlags extends AttackSettingFlags {
  data?: string;
  model?: string;
  bits?: string;
  queries: number;
  outDir?: string;
  resume?: boolean;
  shard?: { index: number; count: number };
  json?: boolean;
}

function bitsList(v: string | undefined, fallback: number[]): number[] {
  if (v === undefined) return fallback;
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.some((b) => !Number.isInteger(b) || b < 1))
    throw new CliError(`--bits must be a comma-separated list of code lengths, found "${v}"`);
  return list;
}

async function reproduce(gpu: Gpu | null, name: string, f: ReproduceFlags): Promise<Record<string, unknown>> {
  const exp = EXPERIMENTS[name];
  const data = f.data ?? (exp.video ? 'moving-mnist' : 'mnist');
  const bits = bitsList(f.bits, DEFAULT_BITS[name] ?? (exp.video ? [32] : [16, 32, 48, 64]));
  const outDir = f.outDir ?? `dhta-${name}-${data.replace(/[^A-Za-z0-9_-]+/g, '_')}`;
  const modelFor = (b: number) =>
    f.model ? f.model.replaceAll('{bits}', String(b)) : join(zooDir(), `${data}-${b}`);
  for (const b of bits) {
    if (!existsSync(join(modelFor(b), 'model.json'))) {
      throw new CliError(
        `no ${b}-bit model at ${modelFor(b)}`,
        'give --model with {bits} in the path (e.g. models/vgg11-{bits}), or train it with dhta train',
      );
    }
  }
  const heldOut = new Map<number, number[]>();
  if (exp.openSet) {
    for (const b of bits) {
      const card = JSON.parse(readFileSync(join(modelFor(b), 'model.json'), 'utf8')).card ?? {};
      const classes: number[] = card.heldOutClasses ?? [];
      if (classes.length === 0) {
        throw new CliError(
          `${name} needs models trained without some classes; ${modelFor(b)} lists no heldOutClasses in its card`,
          'train them with dhta train ... --held-out 7,8,9 and pass --model with {bits}',
        );
      }
      heldOut.set(b, classes);
    }
  }
  mkdirSync(outDir, { recursive: true });
  const progress = createProgress({ quiet: f.json });
  const results = new Map<string, ProtocolResult>();
  const cells = exp.cells(bits);
  for (const [i, cell] of cells.entries()) {
    progress.log(`== ${name} ${i + 1}/${cells.length}: ${cell.name} (${cell.methods.join(', ')})`);
    const settings = attackSettingsOf(f);
    if (cell.iterations !== undefined) settings.iterations = cell.iterations;
    const result = await runProtocol(gpu, {
      modelDir: modelFor(cell.bits),
      data,
      seed: f.seed,
      queries: f.queries,
      nT: cell.nT ?? 9,
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
    });
    results.set(cell.name, result);
  }
  progress.stop();
  const rows = exp.rows(results, bits);
  const paper = exp.video ? PAPER_VIDEO : PAPER_IMAGE;
  const paperRow = (label: string) => {
    const m = /^t-MAP (\w+)$/.exec(label);
    const ref = m ? paper.tMap[m[1]] : undefined;
    return ref ? bits.map((b) => ref[b] ?? null) : null;
  };
  const summary = {
    experiment: name,
    description: exp.description,
    data,
    bits,
    queries: f.queries,
    shard: f.shard ? `${f.shard.index}/${f.shard.count}` : null,
    rows: rows.map((r) => ({ ...r, paper: paperRow(r.label) })),
    paperSource: paper.source,
    runs: [...results.keys()],
  };
  const header = ['row', ...bits.map((b) => `${b} bits`), ...bits.map((b) => `paper ${b}`)];
  const table = formatTable(
    header,
    summary.rows.map((r) => [
      r.label,
      ...r.values.map(fmt),
      ...(r.paper ?? bits.map(() => null)).map((v) => (v === null ? '-' : v.toFixed(2))),
    ]),
  );
  const md =
    `# ${name}: ${exp.description}\n\nData ${data}, ${f.queries} queries per cell, seed ${f.seed}; values in %; ` +
    `"paper" columns: ${paper.source} (another data set and model, for orientation).\n\n` +
    `| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n` +
    summary.rows
      .map(
        (r) =>
          `| ${[r.label, ...r.values.map(fmt), ...(r.paper ?? bits.map(() => null)).map((v) => (v === null ? '-' : v.toFixed(2)))].join(' | ')} |`,
      )
      .join('\n') +
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
        '\nDefaults: the shipped zoo models (zoo/<data>-<bits>) and data (mnist; moving-mnist for video). ' +
        'table6 (open set) needs models trained with held-out classes (dhta train --held-out 7,8,9; pass them ' +
        'with --model DIR-{bits}); its targets come from those classes.',
    )
    .argument('<experiment>', Object.keys(EXPERIMENTS).join(' | '))
    .option('--data <NAME>', 'data set (default mnist, or moving-mnist for video experiments)')
    .option(
      '--model <DIR>',
      'model folder per code length, with {bits} in the path (default zoo/<data>-{bits})',
    )
    .option('--bits <LIST>', 'code lengths (default 16,32,48,64; 48 for fig3; 32 for video)')
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
    const summary = await withOptionalGpu(f, (gpu) => reproduce(gpu, name, f));
    if (f.json) {
      const { table: _table, ...rest } = summary;
      printJson(rest);
    } else
      process.stdout.write(`${summary['table']}\nwrote ${join(String(summary['outDir']), `${name}.md`)}\n`);
  });
}
