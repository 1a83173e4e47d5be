// `dhta merge`: the shards of one protocol run combined into the result of the unsharded run.

import { join } from 'node:path';
import type { Command } from 'commander';
import { printProtocolTable } from './attack.js';
import { type ProtocolResult, readSessions, writeRunOutputs } from './experiment.js';
import { lockOutDir, makeDir } from './files.js';
import { printJson } from './output.js';
import { mergeResults, summarizeRun, writeResultsFile } from './results.js';

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
      const { header, lines } = mergeResults(dirs);
      makeDir(f.outDir);
      lockOutDir(f.outDir);
      writeResultsFile(join(f.outDir, 'results.jsonl'), header, lines);
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
        f.outDir,
        result,
        curves,
        header.attack,
        { data: header.data, seed: header.seed, queries: [] },
        dirs.flatMap((d) => readSessions(d)),
      );
      if (f.json) printJson(result);
      else printProtocolTable(result);
    });
}
