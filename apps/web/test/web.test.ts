// The web app end to end: `dhta serve` (the bundled CLI) prepares mnist-32's data and serves the built app;
// headless Chromium (Debian's, driven by playwright-core, WebGPU through SwiftShader) opens it. The page must
// load with no console error and no request outside the server, run the automation contract, and give what the
// CLI gives for the same query, anchor and settings: the same code, and adversarial pixels within 1e-5, on
// WebAssembly and on WebGPU; its search tab must return `dhta search`'s ids. Screenshots of the page before and
// after a run go to apps/web/test-screenshots/.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb } from '../build.mjs';
import type { WebManifest } from '../src/format.js';
import { anchorFrom, drawTargetObjects, labelOf, unpackFaissBytes } from '../src/protocol.js';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '../../..');
const CLI = join(REPO, 'apps/cli/dist/dhta.mjs');
const MODEL = join(REPO, 'zoo/mnist-32');
const CHROMIUM = process.env['DHTA_CHROMIUM'] ?? '/usr/bin/chromium';
// The page's DOM, typed just enough for the checks run inside it (the tests compile without lib "dom").
declare const document: {
  body: { dataset: Record<string, string | undefined> };
  getElementById(id: string): { textContent: string | null } | null;
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
};

/** Where the screenshots go (README.md, "Web app"). */
export const SCREENSHOTS = join(here, '../test-screenshots');

const root = mkdtempSync(join(tmpdir(), 'dhta-web-'));
const env = { ...process.env, DHTA_CACHE: join(root, 'cache') };
let server: ChildProcess | undefined;
let url = '';
let dataDir = '';
let manifest: WebManifest;
let browser: Browser;

/** The settings every attack of this file runs: enough for the code to move at eps 0.2 (pixels). */
const RUN = { query: 3, target: 5, method: 'dhta', iters: 60, eps: 0.2, epsSpace: 'pixel', seed: 7 } as const;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 600_000 });
  if (r.status !== 0) throw new Error(`dhta ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Starts `dhta serve --json` and resolves with its first stdout line (the JSON summary). */
function startServer(args: string[]): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((ok, fail) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) ok({ child, line: out.slice(0, nl) });
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code) => fail(new Error(`dhta serve exited (${code}) before serving: ${err}`)));
  });
}

interface PageRun {
  state: string;
  error: string;
  result: Record<string, unknown> | null;
  consoleErrors: string[];
  outside: string[];
}

/** Opens the page at `query`, waits for done or error, and reports what it saw. */
async function openPage(query: string, wait: 'ready' | 'done', shot?: string): Promise<PageRun> {
  const page: Page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  const consoleErrors: string[] = [];
  const outside: string[] = [];
  const origin = new URL(url).origin;
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  // Every request must go to the server (blob: and data: URLs stay in the page); any other is aborted.
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(`${origin}/`) || u.startsWith('blob:') || u.startsWith('data:')) return route.continue();
    outside.push(u);
    return route.abort('blockedbyclient');
  });
  try {
    await page.goto(`${url}${query}`);
    const states = wait === 'ready' ? ['ready', 'done', 'error'] : ['done', 'error'];
    await page.waitForFunction((s) => s.includes(document.body.dataset['state'] ?? ''), states, {
      timeout: 480_000,
      polling: 250,
    });
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    const got = await page.evaluate(() => ({
      state: document.body.dataset['state'] ?? '',
      error: document.getElementById('dhta-error')?.textContent ?? '',
      result: document.getElementById('dhta-result')?.textContent ?? null,
    }));
    return {
      state: got.state,
      error: got.error,
      result: got.result ? (JSON.parse(got.result) as Record<string, unknown>) : null,
      consoleErrors,
      outside,
    };
  } finally {
    await page.close();
  }
}

function contract(engine: 'wasm' | 'webgpu'): string {
  return (
    `?model=mnist-32&query=${RUN.query}&target=${RUN.target}&method=${RUN.method}&iters=${RUN.iters}` +
    `&eps=${RUN.eps}&epsSpace=${RUN.epsSpace}&engine=${engine}&seed=${RUN.seed}&run=1`
  );
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `no Chromium at ${CHROMIUM}: install it (apt-get install chromium, or bash scripts/setup.sh), or set DHTA_CHROMIUM`,
    );
  const { bundle } = await import('../../cli/build.mjs');
  await bundle();
  await buildWeb();
  mkdirSync(SCREENSHOTS, { recursive: true });
  dataDir = join(root, 'web');
  const s = await startServer(['--models', 'mnist-32', '--port', '0', '--data-dir', dataDir, '--json']);
  server = s.child;
  const info = JSON.parse(s.line) as { url: string; models: string[] };
  url = info.url;
  expect(info.models).toEqual(['mnist-32']);
  manifest = JSON.parse(readFileSync(join(dataDir, 'manifest.json'), 'utf8')) as WebManifest;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--enable-unsafe-webgpu'],
  });
});

afterAll(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  rmSync(root, { recursive: true, force: true });
});

/** The label of the one row of a (1, classes) uint8 labels .npy. */
function labels(path: string): number {
  const bytes = readFileSync(path);
  const a = readNpy(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  return labelOf(a.data as Uint8Array, 0, a.shape[1]);
}

/** The query's pixels as `dhta data export` writes them, and its label. */
function exportQuery(dir: string): { x: string; label: number } {
  const x = join(dir, 'query.npy');
  const l = join(dir, 'query-labels.npy');
  cli(
    'data',
    'export',
    'mnist',
    '--seed',
    '0',
    '--train-per-class',
    '200',
    '--split',
    'query',
    '--offset',
    String(RUN.query),
    '--limit',
    '1',
    '--out',
    x,
    '--labels',
    l,
  );
  return { x, label: labels(l) };
}

async function preparedArrays() {
  const model = manifest.models.find((m) => m.name === 'mnist-32')!;
  const dataset = manifest.datasets.find((d) => d.key === model.dataset)!;
  const labels = (await readNpyFile(join(dataDir, dataset.database.labels))).data as Uint8Array;
  const codes = (await readNpyFile(join(dataDir, model.databaseCodes))).data as Uint8Array;
  return { model, dataset, labels, codes: unpackFaissBytes(codes, model.bits) };
}

describe('dhta serve and the page', () => {
  it('loads with no console error and no request outside the server (screenshot before a run)', async () => {
    const run = await openPage('', 'ready', join(SCREENSHOTS, 'before-run.png'));
    expect(run.error).toBe('');
    expect(run.state).toBe('ready');
    expect(run.consoleErrors).toEqual([]);
    expect(run.outside).toEqual([]);
    expect(statSync(join(SCREENSHOTS, 'before-run.png')).size).toBeGreaterThan(5000);
  });

  for (const engine of ['wasm', 'webgpu'] as const) {
    it(`runs the automation contract on ${engine} and equals dhta attack --engine ${engine}`, async () => {
      const shot = join(SCREENSHOTS, `after-run-${engine}.png`);
      const run = await openPage(contract(engine), 'done', shot);
      expect(run.error).toBe('');
      expect(run.state).toBe('done');
      expect(run.consoleErrors).toEqual([]);
      expect(run.outside).toEqual([]);
      expect(statSync(shot).size).toBeGreaterThan(5000);
      const r = run.result!;
      expect(r['engine']).toBe(engine);
      expect([r['query'], r['target'], r['method'], r['iters']]).toEqual([
        RUN.query,
        RUN.target,
        RUN.method,
        RUN.iters,
      ]);
      for (const k of ['tAP', 'AP', 'seconds', 'queryIterationsPerSecond'])
        expect(typeof r[k]).toBe('number');
      // Every report is in the distance curve (the page redraws at most a few times a second, and keeps all):
      // at RUN.iters / 60 = 1 iteration apart, iterations 0 to RUN.iters.
      const curve = r['distances'] as [number, number][];
      expect(curve.map(([i]) => i)).toEqual(Array.from({ length: RUN.iters + 1 }, (_, i) => i));

      // The query as `dhta data export --split query` numbers it; its label as the page says.
      const dir = join(root, `cli-${engine}`);
      mkdirSync(dir, { recursive: true });
      const q = exportQuery(dir);
      expect(r['queryLabel']).toBe(q.label);
      // The n_t = 9 target objects: the protocol's draw (attack package) over the database labels, all of the
      // target label; the anchor: their database codes voted.
      const { labels, codes, model } = await preparedArrays();
      const ids = Array.from(drawTargetObjects(labels, 10, RUN.target, RUN.query, RUN.seed, 9));
      expect(r['targetIds']).toEqual(ids);
      expect(ids.every((id) => labelOf(labels, id, 10) === RUN.target)).toBe(true);
      const anchor = anchorFrom(codes, ids, model.bits);
      expect(r['anchor']).toEqual(Array.from(anchor));

      // The CLI's file mode on the same query, anchor and settings, on the same engine kind.
      await writeNpyFile(join(dir, 'anchors.npy'), anchor, [1, model.bits]);
      const out = join(dir, 'out');
      cli(
        'attack',
        '--model',
        MODEL,
        '--input',
        q.x,
        '--targets',
        join(dir, 'anchors.npy'),
        '--method',
        RUN.method,
        '--iters',
        String(RUN.iters),
        '--eps',
        String(RUN.eps),
        '--eps-space',
        RUN.epsSpace,
        '--seed',
        String(RUN.seed),
        '--query-ids',
        String(RUN.query),
        '--engine',
        engine,
        '--out-dir',
        out,
        '--json',
      );
      const cliCode = Array.from((await readNpyFile(join(out, 'codes.npy'))).data as Int8Array);
      const cliAdv = (await readNpyFile(join(out, 'adversarial.npy'))).data as Float32Array;
      // The attack moved the code (else the comparison would show little).
      expect(r['code']).not.toEqual(r['benignCode']);
      expect(r['code']).toEqual(cliCode);
      const adv = r['adversarial'] as number[];
      expect(adv.length).toBe(cliAdv.length);
      let worst = 0;
      for (let i = 0; i < adv.length; i++) worst = Math.max(worst, Math.abs(adv[i] - cliAdv[i]));
      console.log(
        `${engine}: page code = CLI code; adversarial pixels: largest difference ${worst.toExponential(2)}; ` +
          `page ${(r['queryIterationsPerSecond'] as number).toFixed(1)} query-it/s; t-AP ${(r['tAP'] as number).toFixed(3)}, AP ${(r['AP'] as number).toFixed(3)}`,
      );
      expect(worst).toBeLessThanOrEqual(1e-5);
    });
  }

  it("searches in the page and returns dhta search's ids", async () => {
    const run = await openPage(
      `?model=mnist-32&tab=search&query=${RUN.query}&k=10&engine=wasm&run=1`,
      'done',
    );
    expect(run.error).toBe('');
    expect(run.consoleErrors).toEqual([]);
    const r = run.result!;
    const dir = join(root, 'cli-search');
    mkdirSync(dir, { recursive: true });
    const q = exportQuery(dir);
    // The page's code is the CLI's (same engine kind), and the ranking is `dhta search`'s over the same codes.
    cli(
      'encode',
      '--model',
      MODEL,
      '--input',
      q.x,
      '--out',
      join(dir, 'code.npy'),
      '--packed',
      '--engine',
      'wasm',
    );
    cli('encode', '--model', MODEL, '--input', q.x, '--out', join(dir, 'pm1.npy'), '--engine', 'wasm');
    expect(r['code']).toEqual(Array.from((await readNpyFile(join(dir, 'pm1.npy'))).data as Int8Array));
    const { model } = await preparedArrays();
    cli(
      'search',
      '--bits',
      String(model.bits),
      '--db',
      join(dataDir, model.databaseCodes),
      '--queries',
      join(dir, 'code.npy'),
      '--k',
      '10',
      '--out-dir',
      join(dir, 'search'),
    );
    const ids = Array.from((await readNpyFile(join(dir, 'search/ids.npy'))).data as Int32Array);
    const distances = Array.from((await readNpyFile(join(dir, 'search/distances.npy'))).data as Int32Array);
    expect(r['ids']).toEqual(ids);
    expect(r['distances']).toEqual(distances);
  });

  it('stops a run on Stop, and runs again afterwards', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(
        `${url}?model=mnist-32&query=${RUN.query}&target=${RUN.target}&iters=1000000&engine=wasm`,
      );
      await page.waitForFunction(() => document.body.dataset['state'] === 'ready', undefined, {
        timeout: 120_000,
      });
      await page.click('#run');
      // Running, and some reports in (the chart's line has points).
      await page.waitForFunction(
        () =>
          document.body.dataset['state'] === 'running' &&
          (document.querySelector('#chart polyline')?.getAttribute('points') ?? '').split(' ').length > 3,
        undefined,
        { timeout: 120_000, polling: 100 },
      );
      await page.click('#stop');
      await page.waitForFunction(() => document.body.dataset['state'] === 'ready', undefined, {
        timeout: 60_000,
      });
      expect(await page.textContent('#metrics')).toMatch(/stopped/);
      expect(await page.$('#dhta-result')).toBeNull();
      await page.fill('#iters', '5');
      await page.click('#run');
      await page.waitForFunction(
        () => ['done', 'error'].includes(document.body.dataset['state'] ?? ''),
        undefined,
        {
          timeout: 120_000,
        },
      );
      const r = JSON.parse((await page.textContent('#dhta-result')) ?? 'null') as Record<string, unknown>;
      expect(r['iters']).toBe(5);
      expect(r['engine']).toBe('wasm');
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('encodes a drawn digit and lists the nearest database items', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${url}?model=mnist-32&tab=search&engine=wasm`);
      await page.waitForFunction(() => document.body.dataset['state'] === 'ready', undefined, {
        timeout: 120_000,
      });
      const box = (await page.locator('#draw').boundingBox())!;
      // A vertical stroke: a "1".
      await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.15);
      await page.mouse.down();
      for (let i = 1; i <= 10; i++)
        await page.mouse.move(box.x + box.width / 2, box.y + box.height * (0.15 + 0.07 * i));
      await page.mouse.up();
      await page.click('#search-run');
      await page.waitForFunction(
        () => ['done', 'error'].includes(document.body.dataset['state'] ?? ''),
        undefined,
        {
          timeout: 120_000,
        },
      );
      const r = JSON.parse((await page.textContent('#dhta-result')) ?? 'null') as {
        ids: number[];
        distances: number[];
      };
      expect(r.ids.length).toBe(10);
      expect([...r.distances].sort((a, b) => a - b)).toEqual(r.distances);
      expect(await page.locator('#search-top li').count()).toBe(10);
    } finally {
      await page.close();
    }
  });

  it('says what went wrong in #dhta-error for a bad URL parameter', async () => {
    const run = await openPage('?model=mnist-32&query=999999&target=5&run=1', 'done');
    expect(run.state).toBe('error');
    expect(run.error).toMatch(/query must be an integer from 0 to 9999/);
    expect(run.result).toBeNull();
  });
});
