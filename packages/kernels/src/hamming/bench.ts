/**
 * Benchmarks of the Hamming search (programs, not timed tests): random codes from a seeded generator,
 * median of a few timed searches after two untimed warm-ups (compiling the WebAssembly, starting worker
 * threads, letting the JIT optimise). `benchHammingWithPeer` also times FAISS IndexBinaryFlat on the same data, in the same
 * run, through bench/faiss_bench.py, and checks that both return the same distances.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpuBackendFactory, type SearchResult } from './backend.ts';
import { type Codes, fromWords, toFaissBytes } from './codes.ts';
import { HammingError } from './errors.ts';
import { disableGpuHamming, enableGpuHamming } from './gpu.ts';
import { HammingIndex, type HammingIndexOptions } from './hamming-index.ts';
import { readNpy, writeNpyFile } from './npy.ts';
import { createRng, randomWords } from './random.ts';

export interface BenchOptions extends HammingIndexOptions {
  /** Database codes. */
  n: number;
  bits: number;
  /** Number of queries. */
  queries: number;
  k: number;
  seed?: number;
  /** Timed searches (median reported); default 3. */
  repeats?: number;
}

export interface BenchResult {
  n: number;
  bits: number;
  queries: number;
  k: number;
  backend: string;
  /** What ran the search, e.g. 'cpu: wasm x 2 threads'. */
  device: string;
  /** Median of the timed searches. */
  seconds: number;
  secondsAll: number[];
  /** n x queries / seconds. */
  comparisonsPerSecond: number;
  /** Time to build the index from packed words (not included in `seconds`). */
  buildSeconds: number;
}

export function benchData(options: BenchOptions): { db: Codes; queries: Codes } {
  const rng = createRng(options.seed ?? 1);
  const db = fromWords(options.bits, randomWords(rng, options.bits, options.n));
  const queries = fromWords(options.bits, randomWords(rng, options.bits, options.queries));
  return { db, queries };
}

function checkBenchOptions(o: BenchOptions): void {
  const ok = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!ok(o.n, 1) || !ok(o.queries, 1) || !ok(o.k, 1) || !ok(o.repeats ?? 3, 1)) {
    throw new HammingError(
      'BAD_OPTION',
      `bench: expected integers n >= 1, queries >= 1, k >= 1, repeats >= 1, found n=${o.n}, ` +
        `queries=${o.queries}, k=${o.k}, repeats=${String(o.repeats)}.`,
    );
  }
}

async function timeOurs(
  db: Codes,
  queries: Codes,
  options: BenchOptions,
): Promise<{ result: BenchResult; last: SearchResult }> {
  // backend 'gpu' without a registered GPU backend: register the default one for this run only.
  const ownGpu = options.backend === 'gpu' && !getGpuBackendFactory();
  if (ownGpu) enableGpuHamming();
  try {
    return await timeIndex(db, queries, options);
  } finally {
    if (ownGpu) await disableGpuHamming();
  }
}

async function timeIndex(
  db: Codes,
  queries: Codes,
  options: BenchOptions,
): Promise<{ result: BenchResult; last: SearchResult }> {
  const t0 = performance.now();
  const index = HammingIndex.fromCodes(db, options);
  const buildSeconds = (performance.now() - t0) / 1000;
  // Two untimed runs: the first compiles the WebAssembly and starts the workers, the second lets the
  // JavaScript engine optimise the selection code.
  let last = await index.search(queries, options.k);
  last = await index.search(queries, options.k);
  const secondsAll: number[] = [];
  for (let r = 0; r < (options.repeats ?? 3); r++) {
    const t = performance.now();
    last = await index.search(queries, options.k);
    secondsAll.push((performance.now() - t) / 1000);
  }
  await index.dispose();
  const seconds = median(secondsAll);
  return {
    last,
    result: {
      n: options.n,
      bits: options.bits,
      queries: options.queries,
      k: options.k,
      backend: options.backend ?? 'auto',
      device: index.lastDevice ?? 'unknown',
      seconds,
      secondsAll,
      comparisonsPerSecond: (options.n * options.queries) / seconds,
      buildSeconds,
    },
  };
}

/** Times `HammingIndex.search` on random codes. */
export async function benchHamming(options: BenchOptions): Promise<BenchResult> {
  checkBenchOptions(options);
  const { db, queries } = benchData(options);
  return (await timeOurs(db, queries, options)).result;
}

export interface PeerOptions {
  /** Python with FAISS; default /usr/bin/python3 (Debian's python3-faiss) where it exists. */
  python?: string;
  /** Path of bench/faiss_bench.py; default: found from this module's location in the repository. */
  script?: string;
}

export interface PeerResult {
  ours: BenchResult;
  peer: {
    name: 'faiss';
    version: string;
    index: string;
    threads: number;
    seconds: number;
    secondsAll: number[];
    comparisonsPerSecond: number;
  };
  /** ours.comparisonsPerSecond / peer.comparisonsPerSecond. */
  ratio: number;
  /** Both returned exactly the same distance matrix. */
  distancesEqual: boolean;
  /** Rows whose ids are identical too (the rest differ only in how ties are broken, when distances agree). */
  identicalIdRows: number;
}

/** Like benchHamming, plus FAISS IndexBinaryFlat on the same data in the same run. */
export async function benchHammingWithPeer(options: BenchOptions & PeerOptions): Promise<PeerResult> {
  checkBenchOptions(options);
  const { db, queries } = benchData(options);
  const dir = await mkdtemp(join(tmpdir(), 'dhta-hamming-bench-'));
  try {
    const B = Math.ceil(options.bits / 8);
    const dbPath = join(dir, 'db.npy');
    const qPath = join(dir, 'queries.npy');
    await writeNpyFile(dbPath, toFaissBytes(db), [db.count, B]);
    await writeNpyFile(qPath, toFaissBytes(queries), [queries.count, B]);
    const { result: ours, last } = await timeOurs(db, queries, options);

    const python = options.python ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
    const script =
      options.script ?? fileURLToPath(new URL('../../../../bench/faiss_bench.py', import.meta.url));
    const env = { ...process.env };
    // Debian's OpenBLAS settings from the environment slow FAISS down on this host.
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const args = [script, '--db', dbPath, '--queries', qPath, '--k', String(options.k)];
    args.push('--repeats', String(options.repeats ?? 3), '--out-dir', dir);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(python, args, { env, maxBuffer: 1 << 20 }, (err, out, errText) => {
        if (err) {
          reject(
            new HammingError(
              'BAD_OPTION',
              `bench --peer faiss: expected ${python} ${script} to run FAISS, found: ${errText || err.message}; ` +
                'install Debian python3-faiss (apt-get install python3-faiss python3-numpy) or pass python.',
              { cause: err },
            ),
          );
        } else resolve(out);
      });
    });
    const lines = stdout.trim().split('\n');
    const peerJson = JSON.parse(lines[lines.length - 1]) as {
      version: string;
      index: string;
      threads: number;
      seconds: number;
      seconds_all: number[];
    };
    const fd = readNpy(await readFile(join(dir, 'distances.npy'))).data as Int32Array;
    const fi = readNpy(await readFile(join(dir, 'ids.npy'))).data as BigInt64Array;
    const kk = last.k;
    let distancesEqual = fd.length === last.distances.length;
    for (let i = 0; distancesEqual && i < fd.length; i++) distancesEqual = fd[i] === last.distances[i];
    let identicalIdRows = 0;
    for (let r = 0; r < queries.count; r++) {
      let same = true;
      for (let c = 0; same && c < kk; c++) same = Number(fi[r * kk + c]) === last.ids[r * kk + c];
      if (same) identicalIdRows++;
    }
    const peerCps = (options.n * options.queries) / peerJson.seconds;
    return {
      ours,
      peer: {
        name: 'faiss',
        version: peerJson.version,
        index: peerJson.index,
        threads: peerJson.threads,
        seconds: peerJson.seconds,
        secondsAll: peerJson.seconds_all,
        comparisonsPerSecond: peerCps,
      },
      ratio: ours.comparisonsPerSecond / peerCps,
      distancesEqual,
      identicalIdRows,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
