import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openDataset } from '@dhta/data';
import { Command } from 'commander';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prefixSvgIds } from '../src/report/charts.js';
import { shownFrames } from '../src/report/images.js';
import { registerReport, writeReport } from '../src/report.js';
import { type Fixture, makeRunFolder } from './report-fixture.js';

const CHROMIUM = process.env['DHTA_CHROMIUM'] ?? '/usr/bin/chromium';
const root = mkdtempSync(join(tmpdir(), 'dhta-report-'));
let image: Fixture;
let video: Fixture;
let browser: Browser;

/** Grid images: per query, benign + P2P + DHTA rows of 1 query + 10 results; examples: 3 per query per attack. */
function expectedImages(f: Fixture): number {
  const gridRows = 1 + f.attacked.filter((m) => m === 'p2p' || m === 'dhta').length;
  return f.queries * gridRows * (1 + f.top) + f.attacked.length * f.queries * 3;
}

// The page's DOM, typed just enough for the checks run inside it (the project compiles without lib "dom").
interface DomElement {
  id: string;
  getBoundingClientRect(): { width: number; height: number };
  checkVisibility(options: { opacityProperty: boolean; visibilityProperty: boolean }): boolean;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): { length: number };
}
interface DomImage extends DomElement {
  alt: string;
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
  decode(): Promise<void>;
}
declare const document: {
  querySelectorAll(selector: string): Iterable<DomElement>;
  images: Iterable<DomImage>;
};

interface Inspection {
  problems: string[];
  charts: number;
  images: number;
  requests: string[];
}

/**
 * Opens a report in Chromium and lists what is wrong: a chart without a visible SVG with marks, an image not
 * decoded or not visible, a console error or page error, any request other than the file itself.
 */
async function inspect(page: Page, url: string): Promise<Inspection> {
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (r.url() !== url && !r.url().startsWith('data:')) requests.push(r.url());
  });
  // Nothing leaves the browser: every request but the report itself (and data: URIs) is aborted.
  await page.route('**/*', (route) =>
    route.request().url() === url ? route.continue() : route.abort('blockedbyclient'),
  );
  await page.goto(url, { waitUntil: 'load' });
  const found = await page.evaluate(async () => {
    const out: string[] = [];
    const visible = (el: DomElement) => {
      const r = el.getBoundingClientRect();
      return (
        r.width > 0 && r.height > 0 && el.checkVisibility({ opacityProperty: true, visibilityProperty: true })
      );
    };
    const charts = [...document.querySelectorAll('figure.chart')];
    for (const c of charts) {
      const svg = c.querySelector('svg');
      if (!svg) out.push(`chart ${c.id}: no svg`);
      else if (!visible(svg)) out.push(`chart ${c.id}: not visible`);
      else if (svg.querySelectorAll('path, rect, line').length < 5) out.push(`chart ${c.id}: no marks`);
    }
    const images = [...document.images];
    await Promise.all(images.map((img) => img.decode().catch(() => undefined)));
    for (const [i, img] of images.entries()) {
      if (!img.complete || img.naturalWidth === 0 || img.naturalHeight === 0)
        out.push(`image ${i} (${img.alt}): not decoded`);
      else if (!visible(img)) out.push(`image ${i} (${img.alt}): not visible`);
    }
    return { out, charts: charts.length, images: images.length };
  });
  problems.push(...found.out);
  if (requests.length) problems.push(`requests: ${requests.join(', ')}`);
  return { problems, charts: found.charts, images: found.images, requests };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `no Chromium at ${CHROMIUM}: install it (apt-get install chromium, or bash scripts/setup.sh)`,
    );
  [image, video] = await Promise.all([
    makeRunFolder(join(root, 'image')),
    makeRunFolder(join(root, 'video'), {
      data: 'moving-mnist',
      queries: 2,
      methods: ['original', 'p2p', 'dhta'],
    }),
  ]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('dhta report', () => {
  it('writes report.html, report.md and the PNG figures, and leaves metrics.json as it was', async () => {
    const before = readFileSync(join(image.dir, 'metrics.json'));
    const r = await writeReport(image.dir);
    expect(readFileSync(join(image.dir, 'metrics.json')).equals(before)).toBe(true);
    expect(r.missing).toEqual([]);
    const names = readdirSync(join(image.dir, 'figures')).sort();
    expect(names).toEqual(
      [
        'examples-dhta.png',
        'examples-noise.png',
        'examples-p2p.png',
        'precision-at-n.png',
        'precision-recall.png',
        'retrieval.png',
        't-map.png',
      ].sort(),
    );
    expect(r.figures).toHaveLength(names.length);
    for (const n of names) {
      const meta = await sharp(join(image.dir, 'figures', n)).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(200);
      expect(meta.height).toBeGreaterThan(100);
      // Not a blank page: the figure has dark pixels (text, lines, digits).
      const stats = await sharp(join(image.dir, 'figures', n)).stats();
      expect(stats.channels[0].min).toBeLessThan(80);
    }
    // Atomic writes leave no temporaries behind.
    const all = [...readdirSync(image.dir), ...names];
    expect(all.filter((n) => n.includes('.tmp-'))).toEqual([]);

    const md = readFileSync(r.markdown, 'utf8');
    for (const n of names) expect(md).toContain(`](figures/${n})`);
    expect(md).toMatch(/\| DHTA \| 76\.50 \| 23\.24 \|/); // fixture: t-MAP 0.9 * 0.85, MAP 0.83 * (1 - 0.72)
    expect(md).toMatch(/paper t-MAP % \(ImageNet, VGG-11, 32 bits\)/);
    expect(md).toMatch(/\| DHTA \| 62\.68 \| 77\.70 \| 82\.81 \| 83\.10 \|/);
    expect(md).toMatch(/yes: DHTA t-MAP > P2P t-MAP/);

    const html = readFileSync(r.html, 'utf8');
    // Self-contained: no URL but the SVG namespace (an identifier, never fetched).
    const urls = html.replace(/data:[^"')\s]+/g, '').match(/([a-z]+:)?\/\/[^\s"')<]+/g) ?? [];
    expect(urls.filter((u) => !u.startsWith('http://www.w3.org/'))).toEqual([]);
    expect(html).not.toMatch(/<(script|link)\b/);
    expect(html).toContain('77.70'); // the paper's DHTA t-MAP at 32 bits beside the run's
    // Every result tile is marked hit or miss as retrieval.json says.
    const retrieval = JSON.parse(readFileSync(join(image.dir, 'retrieval.json'), 'utf8'));
    const hits = ['benign', 'p2p', 'dhta'].flatMap((m) =>
      retrieval.top[m].flat().map((i: { hasTarget: boolean }) => i.hasTarget),
    );
    expect((html.match(/class="tile hit"/g) ?? []).length).toBe(hits.filter(Boolean).length);
    expect((html.match(/class="tile miss"/g) ?? []).length).toBe(hits.filter((h: boolean) => !h).length);
    // The first result tile shows that database item's pixels (28 x 28 shown 3x, nearest neighbour).
    const tile = html.match(
      /<figure class="tile (?:hit|miss)"><img alt="database item (\d+),[^"]*"[^>]* src="data:image\/png;base64,([^"]+)"/,
    );
    expect(tile).not.toBeNull();
    const id = Number(tile?.[1]);
    expect(id).toBe(retrieval.top.benign[0][0].id);
    const { data, info } = await sharp(Buffer.from(tile?.[2] ?? '', 'base64'))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([84, 84]);
    const db = await (await openDataset('mnist', { seed: 1 })).database.load([id]);
    let worst = 0;
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++)
        worst = Math.max(
          worst,
          Math.abs(data[(3 * y * 84 + 3 * x) * info.channels] - Math.round(255 * db[y * 28 + x])),
        );
    expect(worst).toBe(0);
  });

  it('report.html renders in headless Chromium: every chart and image visible, no errors, no requests', async () => {
    if (!existsSync(join(image.dir, 'report.html'))) await writeReport(image.dir);
    const page = await browser.newPage();
    try {
      const url = pathToFileURL(join(image.dir, 'report.html')).href;
      const seen = await inspect(page, url);
      expect(seen.problems).toEqual([]);
      expect(seen.charts).toBe(3);
      expect(seen.images).toBe(expectedImages(image));
    } finally {
      await page.close();
    }
  });

  it('the browser checks catch a broken image, a hidden chart, a console error and a request', async () => {
    if (!existsSync(join(image.dir, 'report.html'))) await writeReport(image.dir);
    const html = readFileSync(join(image.dir, 'report.html'), 'utf8');
    const broken = html
      .replace('src="data:image/png;base64,', 'src="data:image/png;base64,AAAA')
      .replace('<figure class="chart"', '<figure style="display:none" class="chart"')
      .replace(
        '</body>',
        '<img alt="remote" src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body>',
      );
    const path = join(image.dir, 'sabotaged.html');
    writeFileSync(path, broken);
    const page = await browser.newPage();
    try {
      const seen = await inspect(page, pathToFileURL(path).href);
      const text = seen.problems.join('\n');
      expect(text).toMatch(/image 0 .*not decoded/);
      expect(text).toMatch(/chart chart-t-map: not visible/);
      expect(text).toMatch(/console error: boom/);
      expect(seen.requests).toContain('http://127.0.0.1:9/x.png');
    } finally {
      await page.close();
      rmSync(path);
    }
  });

  it('video runs: middle frames in the grids, frame strips in the examples, the paper video figures', async () => {
    const r = await writeReport(video.dir, { queries: 1 });
    expect(r.missing).toEqual([]);
    const md = readFileSync(r.markdown, 'utf8');
    expect(md).toMatch(/JHMDB/);
    expect(md).toMatch(/\| DHTA \| 76\.50 \| .* \| 62\.04 \|/);
    // Examples of a 10-frame clip: strips of 8 frames of 32 px shown 2x (64 px) with 2 px gaps (scaled alike),
    // benign, adversarial and perturbation stacked.
    const ex = await sharp(join(video.dir, 'figures', 'examples-dhta.png')).metadata();
    expect(ex.width).toBeGreaterThan(8 * 64);
    expect(ex.height).toBeGreaterThan(3 * 64);
    const page = await browser.newPage();
    try {
      const seen = await inspect(page, pathToFileURL(r.html).href);
      expect(seen.problems).toEqual([]);
      expect(seen.charts).toBe(3);
      expect(seen.images).toBe(1 * 3 * (1 + video.top) + 2 * 1 * 3);
      const widths = await page.$$eval('.example-row img', (imgs) =>
        imgs.map((i) => (i as unknown as DomImage).naturalWidth),
      );
      for (const w of widths) expect(w).toBe(8 * 64 + 7 * 2 * 2);
    } finally {
      await page.close();
    }
  });

  it('a folder with only metrics.json gets the tables, and says what it left out', async () => {
    const dir = join(root, 'bare');
    await makeRunFolder(dir, { queries: 1 });
    for (const f of ['curves.json', 'retrieval.json', 'examples']) rmSync(join(dir, f), { recursive: true });
    const r = await writeReport(dir);
    expect(r.missing.join('\n')).toMatch(/curves\.json[\s\S]*retrieval\.json[\s\S]*benign\.npy/);
    expect(readdirSync(join(dir, 'figures'))).toEqual(['t-map.png']);
    const md = readFileSync(r.markdown, 'utf8');
    expect(md).toMatch(/\| P2P \| 51\.00 \|/);
    expect(md).toMatch(/Retrieval grids left out: no retrieval\.json/);
  });

  it('the command: --json prints the paths; a wrong folder is one clear error', async () => {
    const run = async (...args: string[]) => {
      const program = new Command().exitOverride();
      registerReport(program);
      const out: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((s: string) => {
        out.push(String(s));
        return true;
      }) as typeof process.stdout.write;
      try {
        await program.parseAsync(['node', 'dhta', 'report', ...args]);
      } finally {
        process.stdout.write = write;
      }
      return out.join('');
    };
    const line = (await run(image.dir, '--json', '--queries', '2')).trim().split('\n').at(-1) ?? '';
    const r = JSON.parse(line);
    expect(r.html).toBe(join(image.dir, 'report.html'));
    expect(r.figures).toHaveLength(7);
    expect((readFileSync(r.html, 'utf8').match(/<div class="grid-block">/g) ?? []).length).toBe(2);

    await expect(run(join(root, 'nowhere'))).rejects.toThrow(/no metrics\.json in .*nowhere/);
    const bad = join(root, 'bad');
    await makeRunFolder(bad, { queries: 1 });
    writeFileSync(join(bad, 'metrics.json'), '{"metrics": [{"method": "dhta", "tMap": "high"}]}');
    await expect(run(bad)).rejects.toThrow(/metrics\[0\]\.tMap: expected a number or null, found "high"/);
    writeFileSync(join(bad, 'metrics.json'), '{"metrics": [');
    await expect(run(bad)).rejects.toThrow(/metrics\.json: not readable JSON/);
    expect(existsSync(join(bad, 'report.html'))).toBe(false);
  });

  it('helpers: frame choice for strips, ids prefixed per inlined SVG', () => {
    expect(shownFrames(5, 8)).toEqual([0, 1, 2, 3, 4]);
    expect(shownFrames(40, 8)).toEqual([0, 6, 11, 17, 22, 28, 33, 39]);
    expect(prefixSvgIds('<clipPath id="clip1"/><g clip-path="url(#clip1)"/><use href="#clip1"/>', 'a')).toBe(
      '<clipPath id="a-clip1"/><g clip-path="url(#a-clip1)"/><use href="#a-clip1"/>',
    );
  });
});
