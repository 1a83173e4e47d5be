import { dirname } from 'node:path';
import { benchKernels, type KernelBenchRow } from '@dhta/kernels';
import type { Command } from 'commander';
import { positiveInt } from './attack.js';
import { registerBenchDriver } from './bench-driver.js';
import { registerBenchEncode } from './bench-encode.js';
import { registerBenchTrain } from './bench-train.js';
import { CliError } from './errors.js';
import { makeDir, prepareOutFile, writeAtomic as writeFileAtomic } from './files.js';
import { backendOption, type GpuFlags, withGpu } from './gpu.js';
import { formatTable, printJson } from './output.js';

const GROUPS = ['small-cnn', 'vgg11', 'fc', 'lstm'];

/** Writes a benchmark's JSON atomically (its folder made first), nothing half-written left on failure. */
export function writeAtomic(path: string, text: string): void {
  makeDir(dirname(path), `the folder of ${path}`);
  writeFileAtomic(path, text);
}

/**
 * For a benchmark whose JSON goes to `out` (when given): checks the path and makes its folder before the (long)
 * run, so that a path that cannot be written fails in seconds. Returns the handler for the run's failure
 * (`.catch`): it removes that folder again when it made it, and rethrows.
 */
export function outFileReady(out: string | undefined, option = '--out'): (e: unknown) => never {
  const cleanup = out === undefined ? () => {} : prepareOutFile(out, option);
  return (e) => {
    cleanup();
    throw e;
  };
}

export function registerBench(program: Command): Command {
  const bench = program
    .command('bench')
    .description('Benchmark programs: print a table, optionally write JSON');
  bench
    .command('kernels')
    .description(
      "GFLOP/s of each kernel and direction at the shapes of the paper's models: the small 28x28 CNN " +
        '(conv 32-64-128, batch 100), VGG-11 convolutions at 224x224 (batch 1), fc6/fc7 (batch 4), the LSTM ' +
        '(hidden 256, 40 steps). GPU time by timestamp queries where the device has them.',
    )
    .option('--groups <list>', `comma-separated subset of ${GROUPS.join(',')}`, (v: string) => {
      const gs = v.split(',').map((s) => s.trim());
      if (gs.every((g) => g === ''))
        throw new CliError('--groups is empty', `use some of ${GROUPS.join(', ')}`);
      for (const g of gs)
        if (!GROUPS.includes(g)) throw new CliError(`unknown group "${g}"`, `use ${GROUPS.join(', ')}`);
      return gs;
    })
    .option(
      '--reps <n>',
      'timed repetitions per case, 1 to 1000; the median is reported',
      positiveInt('--reps', 1000),
      3,
    )
    .option('--out <file>', 'also write the rows as a JSON array to this file')
    .option('--backend <name>', 'Dawn backend', backendOption)
    .option('--adapter <name>', 'adapter name')
    .option('--json', 'print one JSON line: {device, rows: [{op, direction, shape, gflops, ms}]}')
    .action(async (o: GpuFlags & { groups?: string[]; reps: number; out?: string; json?: boolean }) => {
      const failed = outFileReady(o.out);
      await withGpu(o, async (gpu) => {
        if (!o.json)
          console.log(`device: ${gpu.adapter.description}${gpu.adapter.isSoftware ? ' (software)' : ''}\n`);
        const rows = await benchKernels(gpu, {
          groups: o.groups,
          reps: o.reps,
          onRow: (r) => {
            if (!o.json) process.stderr.write(`  ${r.op} ${r.direction}: ${r.gflops.toFixed(2)} GFLOP/s\n`);
          },
        });
        const result = {
          device: gpu.adapter.description,
          software: gpu.adapter.isSoftware,
          date: new Date().toISOString(),
          rows,
        };
        if (o.out) writeAtomic(o.out, `${JSON.stringify(result, null, 2)}\n`);
        if (o.json) return printJson(result);
        console.log(
          formatTable(
            ['op', 'direction', 'shape', 'GFLOP', 'ms', 'GFLOP/s'],
            rows.map((r: KernelBenchRow) => [r.op, r.direction, r.shape, r.flops / 1e9, r.ms, r.gflops]),
          ),
        );
        console.log(`\ntiming: ${rows[0]?.timing ?? '-'}; median of ${o.reps} runs after one warm-up`);
      }).catch(failed);
    });
  registerBenchDriver(bench);
  registerBenchEncode(bench);
  registerBenchTrain(bench);
  return bench;
}
