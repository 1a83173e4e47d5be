// `dhta demo`: the shipped MNIST model attacked end to end on this machine, in minutes.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import {
  type AttackSettingFlags,
  addAttackSettings,
  attackSettingsOf,
  printProtocolTable,
} from './attack.js';
import { CliError } from './errors.js';
import { runProtocol } from './experiment.js';
import { backendOption, withOptionalGpu } from './gpu.js';
import { printJson } from './output.js';
import { createProgress } from './progress.js';
import { writeReport } from './report.js';

/** The repository's zoo folder, from the bundle (apps/cli/dist) or the sources (apps/cli/src). */
export function zooDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '../../../zoo');
}

interface DemoFlags extends AttackSettingFlags {
  outDir?: string;
  model?: string;
  data: string;
  queries?: number;
  nT: number;
  full?: boolean;
  json?: boolean;
}

/**
 * The demo's quick settings, or the paper's with --full. The quick run takes eps = 0.1 in pixel space: the
 * paper's eps (0.032 in the normalised space, about 2.5/255 in MNIST pixels) was calibrated for ImageNet and
 * barely moves a small MNIST CNN's codes (measured on zoo/mnist-32, 10 queries, 300 iterations: the mean
 * Hamming distance to the anchor went from 17.8 to 17.3 and t-MAP stayed at the Original's).
 */
export const DEMO_QUICK = { queries: 20, iterations: 300, eps: 0.1, epsSpace: 'pixel' as const };

export function registerDemo(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      `Attacks the shipped 32-bit MNIST model (zoo/mnist-32) on MNIST: the database encoded (cached after the first ` +
        `run), ${DEMO_QUICK.queries} queries attacked with Original, Noise, P2P and DHTA (${DEMO_QUICK.iterations} iterations, eps ${DEMO_QUICK.eps} in pixels, the paper's other ` +
        'settings), t-MAP / MAP table printed; writes OUT/results.jsonl, metrics.json, report.html, report.md and figures/. --full runs the ' +
        "paper's settings (100 queries, 2000 iterations).",
    )
    .option(
      '--out-dir <DIR>',
      'where the outputs go (default dhta-demo, dhta-demo-full with --full); a finished demo there is reused, an interrupted one continued',
    )
    .option('--model <DIR>', 'model bundle (default: the zoo model for --data at 32 bits)')
    .option('--data <NAME>', 'mnist or fashion-mnist', 'mnist')
    .option('--queries <N>', `queries (default ${DEMO_QUICK.queries}; 100 with --full)`, (v) => Number(v))
    .option('--n-t <N>', 'objects voted into each anchor', (v) => Number(v), 9)
    .option('--full', "the paper's settings: 100 queries, 2000 iterations")
    .option('--json', 'print the table as one JSON line (the last line of output)')
    .option('--backend <B>', 'WebGPU backend (vulkan, metal, d3d12, ...)', backendOption)
    .option('--adapter <NAME>', 'adapter name substring');
  addAttackSettings(cmd).action(async (f: DemoFlags) => {
    const model = f.model ?? join(zooDir(), `${f.data}-32`);
    if (!existsSync(join(model, 'model.json'))) {
      throw new CliError(`no model at ${model}`, 'give --model DIR, or train one: bash scripts/train-zoo.sh');
    }
    const queries = f.queries ?? (f.full ? 100 : DEMO_QUICK.queries);
    if (!Number.isInteger(queries) || queries < 1)
      throw new CliError(`--queries must be an integer >= 1, found ${f.queries}`);
    const outDir = f.outDir ?? (f.full ? 'dhta-demo-full' : 'dhta-demo');
    const progress = createProgress({ quiet: f.json });
    const settings = attackSettingsOf(f);
    settings.iterations = f.iters ?? (f.full ? 2000 : DEMO_QUICK.iterations);
    if (!f.full && f.eps === undefined && f.epsSpace === undefined) {
      settings.eps = DEMO_QUICK.eps;
      settings.epsSpace = DEMO_QUICK.epsSpace;
    }
    const result = await withOptionalGpu(f, (gpu) =>
      runProtocol(gpu, {
        modelDir: model,
        data: f.data,
        seed: f.seed,
        queries,
        nT: f.nT,
        methods: ['original', 'noise', 'p2p', 'dhta'],
        attack: settings,
        zeroHits: 'skip',
        outDir,
        // Running the demo again reuses (or continues) the same run's results instead of refusing them.
        resume: existsSync(join(outDir, 'results.jsonl')),
        engine: f.engine,
        cpuThreads: f.cpuThreads,
        log: (l) => progress.log(l),
        progress: (phase, done, total, extra) => progress.update(phase, done, total, extra),
      }),
    );
    progress.stop();
    const report = await writeReport(outDir);
    if (f.json) {
      printJson({
        data: result.data,
        bits: result.bits,
        queries: result.queries,
        iterations: result.iterations,
        methods: Object.fromEntries(
          result.metrics.map((m) => [
            m.method,
            { tMap: m.tMap, map: m.map, perceptibility: m.perceptibility },
          ]),
        ),
      });
    } else {
      printProtocolTable(result);
      process.stdout.write(`report: ${report.html} (also ${report.markdown})\n`);
    }
  });
}
