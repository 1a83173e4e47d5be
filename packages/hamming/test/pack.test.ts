// The package as others get it: `pnpm pack` builds the tarball (prepack), then
// - its contents: compiled JavaScript and .d.ts only (no .ts sources, no tests), no runtime dependency;
// - a plain Node project (no TypeScript, no workspace) installs it with `npm install <tarball> --offline` and
//   runs a k-NN search through `import` and through `require`, with worker threads and files;
// - a TypeScript project type-checks against its declarations (browser settings: no Node types);
// - a browser page bundled by esbuild from that installed copy runs the search in Debian's Chromium.
// Every result is compared with a brute-force reference computed here, and the browser's with Node's.
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..');
const NAME = '@dhta/hamming';
const CHROMIUM = process.env['DHTA_CHROMIUM'] ?? '/usr/bin/chromium';

/** One search problem: a database and queries as packed u32 words. */
interface Case {
  bits: number;
  k: number;
  db: number[];
  queries: number[];
}
interface Knn {
  ids: number[];
  distances: number[];
}

/** Deterministic codes (an LCG), with a few exact duplicates so that ties at distance 0 occur too. */
function makeCase(bits: number, n: number, nq: number, k: number, seed: number): Case {
  const W = (bits + 31) >>> 5;
  const mask = bits % 32 === 0 ? 0xffffffff : 2 ** (bits % 32) - 1;
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  const code = () => Array.from({ length: W }, (_, w) => (w === W - 1 ? next() & mask : next()) >>> 0);
  const db: number[] = [];
  for (let i = 0; i < n; i++) db.push(...(i % 97 === 5 ? db.slice(0, W) : code()));
  const queries: number[] = [];
  for (let q = 0; q < nq; q++) queries.push(...(q === 0 ? db.slice(0, W) : code()));
  return { bits, k, db, queries };
}

function popcount(x: number): number {
  let v = x >>> 0;
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** The k nearest codes of each query by sorting all of them by (distance, id). */
function bruteForce(c: Case): Knn {
  const W = (c.bits + 31) >>> 5;
  const n = c.db.length / W;
  const out: Knn = { ids: [], distances: [] };
  for (let q = 0; q < c.queries.length / W; q++) {
    const all = Array.from({ length: n }, (_, j) => {
      let d = 0;
      for (let w = 0; w < W; w++) d += popcount(c.db[j * W + w] ^ c.queries[q * W + w]);
      return { j, d };
    });
    all.sort((a, b) => a.d - b.d || a.j - b.j);
    for (const { j, d } of all.slice(0, Math.min(c.k, n))) {
      out.ids.push(j);
      out.distances.push(d);
    }
  }
  return out;
}

const CASES = [makeCase(64, 3000, 6, 25, 1), makeCase(100, 1500, 4, 40, 2), makeCase(8, 700, 3, 300, 3)];
const EXPECTED = CASES.map(bruteForce);

let root = '';
let tarball = '';
let entries: { path: string; size: number }[] = [];
let manifest: Record<string, unknown> = {};
let consumer = '';
let nodeResults: { esm: NodeRun; cjs: NodeRun } | null = null;
let browser: Browser | undefined;

interface NodeRun {
  results: (Knn & { device: string })[];
  [key: string]: unknown;
}

/** The Node program of the consumer project (plain JavaScript, ESM). */
const ESM_PROGRAM = `
import { readFileSync } from 'node:fs';
import { HammingIndex } from '${NAME}';
import { readNpyFile, writeNpyFile, disposeHammingWorkers } from '${NAME}/node';

const cases = JSON.parse(readFileSync('cases.json', 'utf8'));
const results = [];
for (const c of cases) {
  // Two worker threads: the compiled worker source must run from the installed package.
  const index = HammingIndex.fromWords(c.bits, Uint32Array.from(c.db), { threads: 2 });
  const r = await index.search(Uint32Array.from(c.queries), c.k);
  results.push({ ids: Array.from(r.ids), distances: Array.from(r.distances), device: index.lastDevice });
}
const c = cases[0];
const W = (c.bits + 31) >>> 5;
await writeNpyFile('db.npy', Uint32Array.from(c.db), [c.db.length / W, W]);
const npy = await readNpyFile('db.npy');
const index = HammingIndex.fromWords(c.bits, npy.data);
await index.save('db.dhi');
const loaded = await HammingIndex.load('db.dhi', { expectedBits: c.bits });
const again = loaded.searchSync(Uint32Array.from(c.queries), c.k);
await disposeHammingWorkers();
console.log(JSON.stringify({
  results,
  npyShape: npy.shape,
  npyDtype: npy.dtype,
  loadedCount: loaded.count,
  afterLoad: { ids: Array.from(again.ids), distances: Array.from(again.distances) },
}));
`;

/** The same search through require() (CommonJS), on the calling thread. */
const CJS_PROGRAM = `
const { readFileSync } = require('node:fs');
const { HammingIndex, HammingError } = require('${NAME}');
const cases = JSON.parse(readFileSync('cases.json', 'utf8'));
const results = cases.map((c) => {
  const index = HammingIndex.fromWords(c.bits, Uint32Array.from(c.db), { threads: 1 });
  const r = index.searchSync(Uint32Array.from(c.queries), c.k);
  return { ids: Array.from(r.ids), distances: Array.from(r.distances), device: 'sync' };
});
let badK = null;
try {
  HammingIndex.fromWords(8, Uint32Array.of(1)).searchSync(Uint32Array.of(1), 0);
} catch (e) {
  badK = e instanceof HammingError ? e.code : String(e);
}
console.log(JSON.stringify({ results, badK }));
`;

/** A program bundled for Node: the "node" condition of "." must bring Node's threads along. */
const BUNDLED_PROGRAM = `
import { readFileSync } from 'node:fs';
import { HammingIndex } from '${NAME}';
const [c] = JSON.parse(readFileSync('cases.json', 'utf8'));
const index = HammingIndex.fromWords(c.bits, Uint32Array.from(c.db), { threads: 2 });
const r = await index.search(Uint32Array.from(c.queries), c.k);
console.log(JSON.stringify({ ids: Array.from(r.ids), distances: Array.from(r.distances), device: index.lastDevice }));
process.exit(0);
`;

/** The browser page's script: bundled by esbuild from the consumer's node_modules. */
const PAGE_PROGRAM = `
import { HammingIndex, readNpy, writeNpy } from '${NAME}';
import cases from './cases.json';

async function main() {
  const out = { sharedArrayBuffer: typeof SharedArrayBuffer, wasm: [], js: [] };
  for (const kernel of ['wasm', 'js']) {
    for (const c of cases) {
      const index = HammingIndex.fromWords(c.bits, Uint32Array.from(c.db), { kernel });
      const r = await index.search(Uint32Array.from(c.queries), c.k);
      out[kernel].push({ ids: Array.from(r.ids), distances: Array.from(r.distances), device: index.lastDevice });
    }
  }
  const c = cases[0];
  const W = (c.bits + 31) >>> 5;
  const index = HammingIndex.fromWords(c.bits, readNpy(writeNpy(Uint32Array.from(c.db), [c.db.length / W, W])).data);
  const again = HammingIndex.fromBytes(index.toBytes(), { expectedBits: c.bits });
  const r = again.searchSync(Uint32Array.from(c.queries), c.k);
  out.roundTrip = { ids: Array.from(r.ids), distances: Array.from(r.distances) };
  try {
    await index.save('db.dhi');
    out.saveError = 'none';
  } catch (e) {
    out.saveError = e.code;
  }
  return out;
}
main().then(
  (r) => { window.hammingResult = r; },
  (e) => { window.hammingError = String((e && e.stack) || e); },
);
`;

/** A TypeScript file checked against the package's declarations. */
const TS_PROGRAM = `
import { HammingError, HammingIndex, type SearchResult, fromPm1, readNpy } from '${NAME}';
import { readNpyFile } from '${NAME}/node';

const codes = fromPm1(8, Float32Array.of(1, -1, 1, -1, 1, -1, 1, -1));
const index: HammingIndex = HammingIndex.fromCodes(codes, { backend: 'cpu', threads: 1 });
const result: SearchResult = index.searchSync(codes, 1);
const ids: Int32Array = result.ids;
const code: string = new HammingError('BAD_K', 'x').code;
export const used = [ids, code, readNpy, readNpyFile];
`;

async function sh(file: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, maxBuffer: 64 << 20, env: { ...process.env } });
    return stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${file} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`,
    );
  }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'dhta-hamming-pack-'));
  await sh('pnpm', ['pack', '--pack-destination', root], PACKAGE);
  const tgz = readdirSync(root).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toHaveLength(1);
  tarball = join(root, tgz[0]);
  // GNU tar's verbose listing: mode owner size date time path.
  entries = (await sh('tar', ['-tvzf', tarball], root))
    .trim()
    .split('\n')
    .map((line) => {
      const f = line.trim().split(/\s+/);
      return { path: f.slice(5).join(' '), size: Number(f[2]) };
    });
  manifest = JSON.parse(await sh('tar', ['-xzOf', tarball, 'package/package.json'], root));

  consumer = join(root, 'consumer');
  mkdirSync(consumer);
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2),
  );
  await sh(
    'npm',
    ['install', tarball, '--offline', '--no-audit', '--no-fund', '--cache', join(root, 'npm-cache')],
    consumer,
  );
  writeFileSync(join(consumer, 'cases.json'), JSON.stringify(CASES));
}, 300_000);

afterAll(async () => {
  await browser?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the tarball', () => {
  it('holds compiled JavaScript, declarations and the README: no .ts sources, no tests', () => {
    const paths = entries.map((e) => e.path);
    expect(paths.every((p) => p.startsWith('package/'))).toBe(true);
    const sources = paths.filter((p) => /\.[cm]?tsx?$/.test(p) && !/\.d\.[cm]?ts$/.test(p));
    expect(sources, `TypeScript sources in the tarball: ${sources.join(', ')}`).toEqual([]);
    const tests = paths.filter((p) =>
      /(^|\/)(test|tests|__tests__|scripts)\/|\.(test|spec)\.|vitest|tsconfig/.test(p),
    );
    expect(tests, `test or build files in the tarball: ${tests.join(', ')}`).toEqual([]);
    for (const p of [
      'package/package.json',
      'package/README.md',
      'package/dist/lib.js',
      'package/dist/node.js',
    ]) {
      expect(paths).toContain(p);
    }
    // Every module has its declarations, and nothing else is shipped.
    for (const p of paths.filter((q) => q.startsWith('package/dist/'))) {
      expect(p).toMatch(/\.(js|d\.ts)$/);
      if (p.endsWith('.js')) expect(paths).toContain(p.replace(/\.js$/, '.d.ts'));
    }
  });

  it('has a package.json without dependencies whose exports all exist', () => {
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundledDependencies']) {
      expect(manifest[field], field).toBeUndefined();
    }
    expect(manifest['bundleDependencies']).toBeUndefined();
    expect(JSON.stringify(manifest)).not.toMatch(/workspace:/);
    expect(manifest['name']).toBe(NAME);
    const targets = JSON.stringify(manifest['exports']).match(/"\.\/[^"]+"/g) ?? [];
    expect(targets.length).toBeGreaterThan(4);
    for (const t of targets) {
      const path = t.slice(3, -1);
      if (path.includes('/') || path === 'package.json')
        expect(entries.map((e) => e.path)).toContain(`package/${path}`);
    }
  });

  it('imports no other package, and Node modules only in its Node entry point', () => {
    const dist = join(consumer, 'node_modules', NAME, 'dist');
    for (const file of readdirSync(dist).filter((f) => f.endsWith('.js'))) {
      const text = readFileSync(join(dist, file), 'utf8');
      const specs = [...text.matchAll(/^(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm)].map(
        (m) => m[1],
      );
      for (const spec of specs) {
        if (file === 'node.js' && spec.startsWith('node:')) continue;
        expect(spec, `${file} imports ${spec}`).toMatch(/^\.\/[\w.-]+\.js$/);
      }
    }
  });
});

describe('a plain Node project', () => {
  it('imports it (ESM), searches on two worker threads, writes and reads files: results equal brute force', async () => {
    writeFileSync(join(consumer, 'main.mjs'), ESM_PROGRAM);
    const out = JSON.parse(await sh(process.execPath, ['main.mjs'], consumer)) as NodeRun & {
      npyShape: number[];
      npyDtype: string;
      loadedCount: number;
      afterLoad: Knn;
    };
    CASES.forEach((_, i) => {
      expect(out.results[i].ids, `case ${i}`).toEqual(EXPECTED[i].ids);
      expect(out.results[i].distances, `case ${i}`).toEqual(EXPECTED[i].distances);
      expect(out.results[i].device).toBe('cpu: wasm x 2 threads');
    });
    expect(out.npyDtype).toBe('uint32');
    expect(out.npyShape).toEqual([3000, 2]);
    expect(out.loadedCount).toBe(3000);
    expect(out.afterLoad).toEqual(EXPECTED[0]);
    nodeResults = { esm: out, cjs: nodeResults?.cjs ?? { results: [] } };
  });

  it('requires it (CommonJS)', async () => {
    writeFileSync(join(consumer, 'main.cjs'), CJS_PROGRAM);
    const out = JSON.parse(await sh(process.execPath, ['main.cjs'], consumer)) as NodeRun & { badK: string };
    CASES.forEach((_, i) => {
      expect(out.results[i].ids, `case ${i}`).toEqual(EXPECTED[i].ids);
      expect(out.results[i].distances, `case ${i}`).toEqual(EXPECTED[i].distances);
    });
    expect(out.badK).toBe('BAD_K');
  });

  it('bundled for Node by esbuild, still runs on worker threads (dist/node.js keeps its side effect)', async () => {
    writeFileSync(join(consumer, 'bundled.mjs'), BUNDLED_PROGRAM);
    await build({
      absWorkingDir: consumer,
      entryPoints: ['bundled.mjs'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: join(consumer, 'bundled.out.mjs'),
      logLevel: 'silent',
    });
    const out = JSON.parse(await sh(process.execPath, ['bundled.out.mjs'], consumer)) as Knn & {
      device: string;
    };
    expect(out.device).toBe('cpu: wasm x 2 threads');
    expect({ ids: out.ids, distances: out.distances }).toEqual(EXPECTED[0]);
  });
});

describe('a TypeScript project', () => {
  it('type-checks against the declarations, with no Node types for the portable entry point', async () => {
    const dir = join(consumer, 'ts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'use.ts'), TS_PROGRAM);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022', 'DOM'],
          types: [],
          skipLibCheck: false,
        },
        files: ['use.ts'],
      }),
    );
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    await sh(process.execPath, [tsc, '-p', dir], dir);
  });
});

describe('a browser page', () => {
  it('bundled by esbuild from the installed package, runs the search in Chromium: results equal Node and brute force', async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: install it (apt-get install chromium, or bash scripts/setup.sh)`,
      );
    }
    writeFileSync(join(consumer, 'page.mjs'), PAGE_PROGRAM);
    const bundle = await build({
      absWorkingDir: consumer,
      entryPoints: ['page.mjs'],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      target: 'es2022',
      outfile: join(consumer, 'page.js'),
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(bundle.metafile.inputs).sort();
    const fromPackage = inputs.filter((p) => p.startsWith(`node_modules/${NAME}/dist/`));
    expect(inputs.filter((p) => !fromPackage.includes(p))).toEqual(['cases.json', 'page.mjs']);
    expect(fromPackage).toContain(`node_modules/${NAME}/dist/lib.js`);
    expect(fromPackage).not.toContain(`node_modules/${NAME}/dist/node.js`);
    writeFileSync(
      join(consumer, 'index.html'),
      '<!doctype html><html><head><meta charset="utf-8"><script src="page.js"></script></head><body></body></html>',
    );

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(pathToFileURL(join(consumer, 'index.html')).href);
    await page.waitForFunction(
      () => {
        const w = globalThis as unknown as { hammingResult?: unknown; hammingError?: unknown };
        return w.hammingResult !== undefined || w.hammingError !== undefined;
      },
      undefined,
      { timeout: 60_000 },
    );
    const { result, error } = await page.evaluate(() => {
      const w = globalThis as unknown as { hammingResult?: unknown; hammingError?: string };
      return { result: w.hammingResult, error: w.hammingError };
    });
    expect(error).toBeUndefined();
    expect(errors).toEqual([]);
    const r = result as {
      sharedArrayBuffer: string;
      wasm: (Knn & { device: string })[];
      js: (Knn & { device: string })[];
      roundTrip: Knn;
      saveError: string;
    };
    // A page that is not cross-origin isolated has no SharedArrayBuffer: the index must do without.
    expect(r.sharedArrayBuffer).toBe('undefined');
    CASES.forEach((_, i) => {
      for (const kernel of ['wasm', 'js'] as const) {
        expect(r[kernel][i].ids, `${kernel}, case ${i}`).toEqual(EXPECTED[i].ids);
        expect(r[kernel][i].distances, `${kernel}, case ${i}`).toEqual(EXPECTED[i].distances);
        expect(r[kernel][i].device).toBe(`cpu: ${kernel} x 1 thread`);
      }
      if (nodeResults) {
        expect(r.wasm[i].ids).toEqual(nodeResults.esm.results[i].ids);
        expect(r.wasm[i].distances).toEqual(nodeResults.esm.results[i].distances);
      }
    });
    expect(
      nodeResults,
      'the Node run (earlier in this file) produced results to compare with',
    ).not.toBeNull();
    expect(r.roundTrip).toEqual(EXPECTED[0]);
    expect(r.saveError).toBe('NO_FILE_SYSTEM');
  });
});
