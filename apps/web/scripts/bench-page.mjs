// Query-iterations per second of the attack in the page (BENCHMARKS.md, "In the browser"): opens a running
// `dhta serve` in headless Chromium (Debian's, WebGPU through SwiftShader) and times DHTA on zoo/mnist-32
// through the automation contract, per engine and batch: the first run (cold: engine start, WebAssembly or
// pipeline compilation) and a second Run in the same page (warm). Prints one JSON line per case.
//   node apps/web/scripts/bench-page.mjs http://127.0.0.1:8080/ [wasm:1:200 wasm:100:30 webgpu:1:50 ...]
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';

const require = createRequire(new URL('../package.json', import.meta.url));
const { chromium } = require('playwright-core');
const url = process.argv[2];
if (!url) {
  console.error('usage: node apps/web/scripts/bench-page.mjs URL [engine:batch:iters ...]');
  process.exit(2);
}
const cases = (
  process.argv.length > 3
    ? process.argv.slice(3)
    : ['wasm:1:200', 'wasm:100:30', 'webgpu:1:50', 'webgpu:100:10']
).map((c) => {
  const [engine, batch, iters] = c.split(':');
  return { engine, batch: Number(batch), iters: Number(iters) };
});
const browser = await chromium.launch({
  executablePath: process.env.DHTA_CHROMIUM ?? '/usr/bin/chromium',
  // DHTA_CHROMIUM_ARGS: extra flags, e.g. --js-flags=--no-liftoff (what the CLI sets in Node) to see its effect.
  args: [
    '--no-sandbox',
    '--enable-unsafe-webgpu',
    ...(process.env.DHTA_CHROMIUM_ARGS ?? '').split(' ').filter(Boolean),
  ],
});
const done = (page) =>
  page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), undefined, {
    timeout: 590_000,
    polling: 200,
  });
const result = (page) =>
  page.evaluate(() => ({
    error: document.getElementById('dhta-error').textContent,
    result: JSON.parse(document.getElementById('dhta-result')?.textContent ?? 'null'),
  }));
for (const c of cases) {
  const page = await browser.newPage();
  const q = `?model=mnist-32&query=3&target=5&method=dhta&iters=${c.iters}&eps=0.2&epsSpace=pixel&engine=${c.engine}&seed=7&batch=${c.batch}&run=1`;
  const load = loadavg()[0];
  await page.goto(url + q);
  await done(page);
  const cold = await result(page);
  if (cold.error) throw new Error(`${c.engine} batch ${c.batch}: ${cold.error}`);
  await page.evaluate(() => {
    document.getElementById('dhta-result').remove();
    document.body.dataset.state = 'running';
    document.getElementById('run').click();
  });
  await done(page);
  const warm = await result(page);
  console.log(
    JSON.stringify({
      engine: c.engine,
      batch: c.batch,
      iters: c.iters,
      coldQps: +cold.result.queryIterationsPerSecond.toFixed(1),
      warmQps: +warm.result.queryIterationsPerSecond.toFixed(1),
      warmSeconds: +warm.result.seconds.toFixed(2),
      sameCode: JSON.stringify(cold.result.code) === JSON.stringify(warm.result.code),
      load: [load, loadavg()[0]].map((l) => +l.toFixed(2)),
    }),
  );
  await page.close();
}
await browser.close();
