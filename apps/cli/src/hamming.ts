import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BackendChoice,
  benchHamming,
  benchHammingWithPeer,
  disableGpuHamming,
  disposeHammingWorkers,
  enableGpuHamming,
  HammingIndex,
  readNpyFile,
  writeNpyFile,
} from '@dhta/kernels/hamming';
import type { Command } from 'commander';
import { positiveInt } from './attack.js';
import { CliError } from './errors.js';
import { formatTable, printJson } from './output.js';

const BACKENDS = ['auto', 'cpu', 'gpu'];

function backendChoice(v: string): BackendChoice {
  if (!BACKENDS.includes(v))
    throw new CliError(`--backend must be one of ${BACKENDS.join(', ')}, found "${v}"`);
  return v as BackendChoice;
}

/** Plugs in the GPU backend for 'gpu' and 'auto' ('auto' then picks whichever is faster for the call). */
function useBackend(choice: BackendChoice): void {
  if (choice !== 'cpu') enableGpuHamming();
}

async function releaseBackends(): Promise<void> {
  await disableGpuHamming();
  await disposeHammingWorkers();
}

function bitsOption(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 8 || n > 4096)
    throw new CliError(`--bits must be an integer from 8 to 4096, found "${v}"`);
  return n;
}

/** Reads an (n, ceil(bits/8)) uint8 array of codes in FAISS's layout, or says precisely what is wrong. */
async function readCodes(path: string, bits: number, what: string): Promise<Uint8Array> {
  const arr = await readNpyFile(path);
  const bytes = Math.ceil(bits / 8);
  const shape = `(${arr.shape.join(', ')})`;
  if (arr.dtype !== 'uint8' || arr.shape.length !== 2 || arr.shape[1] !== bytes) {
    throw new CliError(
      `${what} ${path}: expected a uint8 array of shape (n, ${bytes}) for ${bits}-bit codes, found ${arr.dtype} ${shape}`,
      'codes are packed 8 bits per byte, least-significant bit first, as FAISS stores binary vectors',
    );
  }
  if (arr.shape[0] < 1) throw new CliError(`${what} ${path}: the array holds no codes`);
  return arr.data as Uint8Array;
}

/** The location of bench/faiss_bench.py, from the bundle (apps/cli/dist) or the sources (apps/cli/src). */
function faissScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '../../../bench/faiss_bench.py');
}

export function registerHamming(program: Command, bench: Command): void {
  program
    .command('search')
    .description(
      'Exact Hamming k-NN: each query against every database code; rows sorted by distance, then id ascending. ' +
        'Writes DIR/distances.npy and DIR/ids.npy (int32, queries x k; k > n gives n columns).',
    )
    .requiredOption('--bits <B>', 'code length in bits (8..4096)', bitsOption)
    .requiredOption('--db <DB.npy>', 'database codes: uint8 array (n, ceil(B/8)), FAISS layout (LSB first)')
    .requiredOption('--queries <Q.npy>', 'query codes: uint8 array (nq, ceil(B/8))')
    .requiredOption('--k <K>', 'neighbours per query', positiveInt('--k'))
    .requiredOption('--out-dir <DIR>', 'where distances.npy and ids.npy are written')
    .option(
      '--backend <name>',
      'auto (fastest for the input on this host), cpu or gpu',
      backendChoice,
      'auto',
    )
    .option('--json', 'print one line: {n, bits, queries, k, backend, device, seconds}')
    .action(
      async (o: {
        bits: number;
        db: string;
        queries: string;
        k: number;
        outDir: string;
        backend: BackendChoice;
        json?: boolean;
      }) => {
        const db = await readCodes(o.db, o.bits, 'database');
        const q = await readCodes(o.queries, o.bits, 'queries');
        useBackend(o.backend);
        const index = HammingIndex.fromFaissBytes(o.bits, db, { backend: o.backend });
        const nq = q.length / Math.ceil(o.bits / 8);
        const t0 = performance.now();
        const r = await index.search(q, o.k);
        const seconds = (performance.now() - t0) / 1000;
        // Both files appear together or not at all: write into a fresh folder beside DIR, then move them in.
        mkdirSync(o.outDir, { recursive: true });
        const tmp = join(o.outDir, `.dhta-search-${process.pid}`);
        mkdirSync(tmp, { recursive: true });
        try {
          await writeNpyFile(join(tmp, 'distances.npy'), r.distances, [nq, r.k]);
          await writeNpyFile(join(tmp, 'ids.npy'), r.ids, [nq, r.k]);
          renameSync(join(tmp, 'distances.npy'), join(o.outDir, 'distances.npy'));
          renameSync(join(tmp, 'ids.npy'), join(o.outDir, 'ids.npy'));
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
        const summary = {
          n: index.count,
          bits: o.bits,
          queries: nq,
          k: r.k,
          backend: o.backend,
          device: index.lastDevice,
          seconds,
        };
        await index.dispose();
        await releaseBackends();
        if (o.json) return printJson(summary);
        console.log(
          `searched ${nq} queries against ${index.count} codes of ${o.bits} bits (k = ${r.k}) in ${seconds.toFixed(3)} s on ${summary.device}`,
        );
        console.log(`wrote ${join(o.outDir, 'distances.npy')} and ${join(o.outDir, 'ids.npy')}`);
      },
    );

  bench
    .command('hamming')
    .description(
      'Exact Hamming k-NN throughput (code comparisons per second) on random codes; with --peer faiss, also ' +
        "FAISS IndexBinaryFlat on the same data in the same run (Debian's python3-faiss), after checking that " +
        'both return the same distances, and the ratio.',
    )
    .option('--n <N>', 'database codes', positiveInt('--n'), 1 << 20)
    .option('--bits <B>', 'code length in bits', bitsOption, 64)
    .option('--queries <Q>', 'queries', positiveInt('--queries'), 100)
    .option('--k <K>', 'neighbours per query', positiveInt('--k'), 1000)
    .option('--backend <name>', 'auto, cpu or gpu', backendChoice, 'auto')
    .option('--repeats <R>', 'timed searches; the median is reported', positiveInt('--repeats'), 3)
    .option('--seed <S>', 'seed of the random codes', positiveInt('--seed'), 1)
    .option('--peer <name>', 'also time a peer on the same data: faiss')
    .option('--python <path>', 'Python with FAISS for --peer faiss (default /usr/bin/python3)')
    .option('--json', 'print one JSON line')
    .action(
      async (o: {
        n: number;
        bits: number;
        queries: number;
        k: number;
        backend: BackendChoice;
        repeats: number;
        seed: number;
        peer?: string;
        python?: string;
        json?: boolean;
      }) => {
        if (o.peer !== undefined && o.peer !== 'faiss')
          throw new CliError(`--peer must be faiss, found "${o.peer}"`);
        const opts = {
          n: o.n,
          bits: o.bits,
          queries: o.queries,
          k: o.k,
          backend: o.backend,
          repeats: o.repeats,
          seed: o.seed,
        };
        useBackend(o.backend);
        try {
          if (!o.peer) {
            const r = await benchHamming(opts);
            if (o.json) return printJson(r);
            console.log(
              formatTable(
                ['engine', 'device', 'n', 'bits', 'queries', 'k', 'seconds', 'M comparisons/s'],
                [['dhta', r.device, r.n, r.bits, r.queries, r.k, r.seconds, r.comparisonsPerSecond / 1e6]],
              ),
            );
            return;
          }
          const r = await benchHammingWithPeer({ ...opts, python: o.python, script: faissScript() });
          if (!r.distancesEqual) {
            throw new CliError(
              'dhta and FAISS returned different distances on the same data: the comparison is void',
              'this is a bug; please report it with the command line',
            );
          }
          if (o.json) return printJson(r);
          const p = r.peer;
          console.log(
            formatTable(
              ['engine', 'device', 'n', 'bits', 'queries', 'k', 'seconds', 'M comparisons/s'],
              [
                [
                  'dhta',
                  r.ours.device,
                  o.n,
                  o.bits,
                  o.queries,
                  o.k,
                  r.ours.seconds,
                  r.ours.comparisonsPerSecond / 1e6,
                ],
                [
                  `faiss ${p.version}`,
                  `${p.index}, ${p.threads} threads`,
                  o.n,
                  o.bits,
                  o.queries,
                  o.k,
                  p.seconds,
                  p.comparisonsPerSecond / 1e6,
                ],
              ],
            ),
          );
          console.log(
            `\nratio dhta / faiss: ${r.ratio.toFixed(2)}x  (same distances: yes; identical id rows: ${r.identicalIdRows}/${o.queries})`,
          );
        } finally {
          await releaseBackends();
        }
      },
    );
}
