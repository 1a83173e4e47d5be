// The op checks of engine-ops.test.ts in a real browser: a page bundled for the browser (esbuild) runs them
// on headless Chromium's WebGPU adapter (SwiftShader here) through WebGpuEngine, and on the WebAssembly engine
// with two Web Worker threads sharing its memory (the page is served cross-origin isolated), against the
// float64 references computed in the page. The project's setup installs Debian's chromium for these tests.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from './browser/bundle.js';
import { OPS, type OpResult } from './browser/op-checks.js';
import type { PageState } from './browser/page.js';
import { serve, type TestServer } from './browser/server.js';
import { CONV_CASES } from './engine-cases.js';

const CHROMIUM = process.env['DHTA_CHROMIUM'] ?? '/usr/bin/chromium';
/**
 * One page per engine and op, so that an op that hangs the browser's GPU process (a pipeline that SwiftShader
 * does not finish compiling) fails alone: after this long the op fails as timed out and Chromium is started
 * afresh. The slowest ops that finish took 13-27 s (matmul, 63 cases) on the shared 2-core development
 * machine, but conv2d's cases (large unrolled pipelines to compile) took over 60 s there at load 6 with another
 * test file beside them: 4 minutes per page leaves room without hiding a hang.
 */
const OP_TIMEOUT_MS = 240_000;
const ENGINES = ['webgpu', 'wasm'] as const;

let browser: Browser | undefined;
let server: TestServer | undefined;
let crossOriginIsolated: boolean | undefined;
/** Results per engine and op; a string where the page did not deliver (why). */
const outcome = new Map<string, OpResult[] | string>();
const pageLog: string[] = [];

const HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>dhta kernels in the browser</title></head>
<body><script type="module" src="/page.js"></script></body></html>`;

async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
}

/** Runs one op's checks on one engine in a new page. */
async function runInPage(engine: string, op: string): Promise<void> {
  if (!browser || !server) throw new Error('no browser');
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  const key = `${engine} ${op}`;
  try {
    await page.goto(`${server.url}/?engines=${engine}&ops=${op}`);
    await page.waitForFunction(
      () => (globalThis as { __dhta?: PageState }).__dhta?.done === true,
      undefined,
      {
        timeout: OP_TIMEOUT_MS,
        polling: 200,
      },
    );
    const state = (await page.evaluate(() => (globalThis as { __dhta?: PageState }).__dhta)) as PageState;
    crossOriginIsolated ??= state.crossOriginIsolated;
    const run = state.engines[engine];
    if (!run) outcome.set(key, 'the page did not run the engine');
    else if (run.error) outcome.set(key, `the engine did not start in the page: ${run.error}`);
    else outcome.set(key, run.results);
    pageLog.push(
      `${key}: ${run?.description ?? ''}, ${run?.results.length ?? 0} cases in ${run?.ms.toFixed(0)} ms`,
    );
    await page.close();
  } catch (err) {
    // What the page got through before it hung: the cases that ended, and the one it was in.
    const state = (await Promise.race([
      page.evaluate(() => (globalThis as { __dhta?: PageState }).__dhta).catch(() => undefined),
      new Promise<undefined>((ok) => setTimeout(() => ok(undefined), 5000)),
    ])) as PageState | undefined;
    const done = state?.engines[engine]?.results ?? [];
    const passed = done.filter((r) => r.ok).map((r) => r.name);
    const failed = done.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);
    outcome.set(
      key,
      `no result within ${OP_TIMEOUT_MS / 1000} s (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ` +
        `last started: ${state?.log.at(-1) ?? 'nothing'}; ended before it: ${passed.length} passed (${passed.join('; ')})` +
        `${failed.length ? `, ${failed.length} failed (${failed.join('; ')})` : ''}; console errors: ${errors.join(' | ') || 'none'}`,
    );
    pageLog.push(`${key}: timed out; Chromium restarted`);
    // A GPU process stuck in a pipeline compilation stays stuck: start over with a new browser.
    await browser.close().catch(() => {});
    browser = await launch();
  }
}

beforeAll(
  async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: install it (apt-get install chromium, or bash scripts/setup.sh), or set DHTA_CHROMIUM`,
      );
    }
    const bundle = await build({
      entryPoints: [join(PACKAGE_ROOT, 'test/browser/page.ts')],
      absWorkingDir: PACKAGE_ROOT,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      write: false,
      outfile: join(PACKAGE_ROOT, 'page.js'),
      logLevel: 'silent',
    });
    server = await serve({
      '/': { type: 'text/html; charset=utf-8', body: HTML },
      '/page.js': { type: 'text/javascript; charset=utf-8', body: bundle.outputFiles[0].text },
    });
    browser = await launch();
    for (const engine of ENGINES) for (const op of OPS) await runInPage(engine, op);
    console.log(`browser pages:\n  ${pageLog.join('\n  ')}`);
  },
  2 * OPS.length * (OP_TIMEOUT_MS + 15_000),
);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the page', () => {
  it('is cross-origin isolated and fetched only what the server has', () => {
    expect(crossOriginIsolated).toBe(true);
    expect(server?.missing).toEqual([]);
  });
});

for (const engine of ENGINES) {
  describe(`${engine} engine in Chromium, against the float64 references`, () => {
    for (const op of OPS) {
      it(op, () => {
        const results = outcome.get(`${engine} ${op}`);
        if (typeof results === 'string' || results === undefined) {
          expect.fail(`${engine} ${op}: ${results ?? 'not run'}`);
        }
        expect(results.length, `no ${op} checks ran`).toBeGreaterThan(0);
        // Every conv case runs on every engine, those at stride > 1 with kernels larger than 1x1 included (the
        // general kernel, which once did not finish compiling on SwiftShader): their names, in order.
        if (op.startsWith('conv2d')) {
          expect(results.map((r) => r.name)).toEqual(
            CONV_CASES.map(
              ([N, C, H, W, O, K, stride, padding]) =>
                `x [${N},${C},${H},${W}] w [${O},${C},${K},${K}] stride ${stride} padding ${padding}`,
            ),
          );
        }
        const failed = results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);
        expect(
          failed,
          `${failed.length} of ${results.length} ${op} cases failed:\n${failed.join('\n')}`,
        ).toEqual([]);
      });
    }
  });
}
