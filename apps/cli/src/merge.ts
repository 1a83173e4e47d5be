// `dhta merge`: the shards of one protocol run combined into the result of the unsharded run.

import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { printProtocolTable } from './attack.js';
import { CliError } from './errors.js';
import { type ProtocolResult, readSessions, writeRunOutputs } from './experiment.js';
import { lockOutDir, makeDir, removeIfEmpty } from './files.js';
import { printJson } from './output.js';
import { mergeResults, type QueryResult, type RunHeader, summarizeRun, writeResultsFile } from './results.js';

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description(
      'Combines the output folders of the shards of one run (dhta attack --data ... --shard i/n) into OUT: ' +
        'results.jsonl and metrics.json identical to an unsharded run (figures are summarised from the ' +
        'per-query lines in query order). Refuses shards of different runs and incomplete sets.',
    )
    .argument('<dirs...>', "the shards' output folders")
    .requiredOption('--out-dir <DIR>', 'where the merged results go')
    .option('--json', 'print the merged result as one JSON line')
    .action(async (dirs: string[], f: { outDir: string; json?: boolean }) => {
      for (const dir of dirs) checkShardFolder(dir);
      const { header, lines } = mergeResults(dirs);
      for (const name of ['results.jsonl', 'metrics.json', 'timing.json', 'curves.json']) {
        const target = join(f.outDir, name);
        if (existsSync(target) && statSync(target).isDirectory())
          throw new CliError(`cannot write ${target}: is a folder, not a file`, 'choose another --out-dir');
      }
      const created = makeDir(f.outDir);
      const unlock = lockOutDir(f.outDir);
      try {
        writeMerged(f.outDir, dirs, header, lines, f.json);
      } catch (e) {
        unlock();
        // A folder this run made holds only what it wrote: nothing of a failed merge is left behind.
        if (created) {
          for (const name of readdirSync(f.outDir))
            rmSync(join(f.outDir, name), { recursive: true, force: true });
          removeIfEmpty(f.outDir);
        }
        throw e;
      }
      unlock();
    });
}

/** A shard's folder as merge needs it: a folder holding a results.jsonl file; else a line saying which. */
function checkShardFolder(dir: string): void {
  const hint = 'give the --out-dir folders of the shards (dhta attack --data ... --shard i/n --out-dir DIR)';
  if (!existsSync(dir)) throw new CliError(`${dir}: no such folder`, hint);
  if (!statSync(dir).isDirectory()) throw new CliError(`${dir} is a file; expected a shard's folder`, hint);
  const results = join(dir, 'results.jsonl');
  if (!existsSync(results)) throw new CliError(`no results.jsonl in ${dir}`, hint);
  if (!statSync(results).isFile()) throw new CliError(`${results} is not a file`, hint);
}

function writeMerged(
  outDir: string,
  dirs: string[],
  header: RunHeader,
  lines: QueryResult[],
  json?: boolean,
): void {
  writeResultsFile(join(outDir, 'results.jsonl'), header, lines);
  const { curves, ...summary } = summarizeRun(lines, header);
  const result: ProtocolResult = {
    ...summary,
    R: header.R,
    zeroHits: header.zeroHits,
    databaseSize: header.databaseSize,
    nT: header.nT,
    bits: header.bits,
    seed: header.seed,
    data: header.data,
    model: header.model,
    shard: null,
    seconds: { encode: 0, total: summary.metrics.reduce((s, m) => s + m.seconds, 0) },
    databaseCached: true,
    engine: header.engine,
  };
  writeRunOutputs(
    outDir,
    result,
    curves,
    header.attack,
    { data: header.data, seed: header.seed, queries: [] },
    dirs.flatMap((d) => readSessions(d)),
  );
  if (json) printJson(result);
  else printProtocolTable(result);
}
