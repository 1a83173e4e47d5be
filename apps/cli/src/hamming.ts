import { constants } from 'node:buffer';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
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
  writeNpy,
} from '@dhta/kernels/hamming';
import type { Command } from 'commander';
import { intInRange, nonNegativeInt, positiveInt } from './attack.js';
import { CliError } from './errors.js';
import { fsReason, makeDir, removeIfEmpty, writeAtomic } from './files.js';
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

const bitsOption = intInRange('--bits', 8, 4096);

/**
 * The largest code array this process can hold: a typed array's limit, and half the machine's memory (the
 * search needs room beside the codes).
 */
function maxCodeBytes(): number {
  return Math.min(constants.MAX_LENGTH, Math.floor(totalmem() / 2));
}

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 0)} GiB`;

/** Reads an (n, ceil(bits/8)) uint8 array of codes in FAISS's layout, or says precisely what is wrong. */
async function readCodes(path: string, bits: number, what: string): Promise<Uint8Array> {
  if (existsSync(path) && statSync(path).isDirectory())
    throw new CliError(`${what} ${path}: is a folder; expected a .npy file of codes`);
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

/**
 * Writes the search's files into DIR: both appear together or not at all (written into a fresh folder inside
 * DIR, then moved in); DIR is made only now, and removed again if nothing could be written.
 */
function writeResults(dir: string, files: Array<[string, Uint8Array]>): void {
  for (const [name] of files) {
    const target = join(dir, name);
    if (existsSync(target) && statSync(target).isDirectory())
      throw new CliError(`cannot write ${target}: is a folder, not a file`, 'choose another --out-dir');
  }
  const created = makeDir(dir);
  const tmp = join(dir, `.dhta-search-${process.pid}`);
  try {
    mkdirSync(tmp);
    for (const [name, bytes] of files) writeAtomic(join(tmp, name), bytes);
    for (const [name] of files) {
      try {
        renameSync(join(tmp, name), join(dir, name));
      } catch (e) {
        throw new CliError(`cannot write ${join(dir, name)}: ${fsReason(e)}`);
      }
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot write into ${dir}: ${fsReason(e)}`, 'choose a folder you can write to');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    if (created) removeIfEmpty(dir);
  }
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
        writeResults(o.outDir, [
          ['distances.npy', writeNpy(r.distances, [nq, r.k])],
          ['ids.npy', writeNpy(r.ids, [nq, r.k])],
        ]);
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
    .option(
      '--repeats <R>',
      'timed searches, 1 to 1000; the median is reported',
      positiveInt('--repeats', 1000),
      3,
    )
    .option('--seed <S>', 'seed of the random codes, 0 to 4294967295', nonNegativeInt('--seed'), 1)
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
        // The random database and queries are made in memory first: refuse sizes that cannot fit.
        const bytes = (o.n + o.queries) * Math.ceil(o.bits / 8);
        if (bytes > maxCodeBytes())
          throw new CliError(
            `--n ${o.n} codes of ${o.bits} bits take ${gb(bytes)}, more than this process can hold (${gb(maxCodeBytes())})`,
            'choose a smaller --n or --bits',
          );
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
