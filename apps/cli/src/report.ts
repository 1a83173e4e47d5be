// `dhta report OUT_DIR`: a protocol run's folder turned into something people look at: report.html (one
// self-contained file: inline SVG charts, base64 PNG tiles, no external URL), report.md (tables and links to
// figures/*.png) and the PNG figures. metrics.json and the other inputs are left as they are.

import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type OpenedDataset, openDataset } from '@dhta/data';
import type { Command } from 'commander';
import { positiveInt } from './attack.js';
import { makeDir, removeIfEmpty, writeAtomic } from './files.js';
import { printJson } from './output.js';
import {
  paperHasBits,
  precisionAtNSpec,
  precisionRecallSpec,
  prefixSvgIds,
  renderSvg,
  tMapSpec,
  type VegaLiteSpec,
} from './report/charts.js';
import {
  composeFigure,
  type FigureBlock,
  type FigureCell,
  geometry,
  itemPicture,
  magnifiedPerturbation,
  type Rgb,
  svgToPng,
  toPng,
} from './report/images.js';
import {
  type Examples,
  type RunFolder,
  type RunMetrics,
  type RunTiming,
  readRunFolder,
} from './report/inputs.js';
import {
  methodName,
  PAPER_BITS,
  PAPER_IMAGE,
  PAPER_PERCEPTIBILITY,
  PAPER_VIDEO,
  type PaperReference,
} from './report/paper.js';

export interface ReportOptions {
  /** Queries shown in the retrieval grids and the examples (default: all the run kept, at most 8). */
  queries?: number;
  /** Larger side of one image tile in pixels (default 84: MNIST's 28 x 28 shown 3x). */
  tileSize?: number;
  /** The run's data set, already open (the demo has it); else opened from retrieval.json's name and seed. */
  dataset?: OpenedDataset;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface ReportResult {
  html: string;
  markdown: string;
  /** The PNG figures written, absolute paths. */
  figures: string[];
  /** Parts of the report left out, and why. */
  missing: string[];
  seconds: number;
}

/** Methods whose adversarial queries get a row in the retrieval grids, in the order shown (after benign). */
const GRID_METHODS = ['p2p', 'dhta'];
/** Methods whose examples are shown, in this order; others found in the folder follow. */
const EXAMPLE_ORDER = ['dhta', 'p2p', 'hag', 'noise'];
const HIT = '#2ca02c';
const MISS = '#d62728';
const QUERY = '#333333';

function esc(s: string | number): string {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : (100 * v).toFixed(2));
const sci = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toExponential(2));

interface Table {
  headers: string[];
  rows: string[][];
}

function htmlTable(t: Table, cls: string): string {
  // The paper's columns are set apart (grey), so that nobody reads them as this run's.
  const paperCol = t.headers.map((h) => h.startsWith('paper '));
  const td = (c: string, i: number) =>
    paperCol[i] ? `<td class="paper">${esc(c)}</td>` : `<td>${esc(c)}</td>`;
  const head = t.headers
    .map((h, i) => (paperCol[i] ? `<th class="paper">${esc(h)}</th>` : `<th>${esc(h)}</th>`))
    .join('');
  const body = t.rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n');
  return `<table class="${cls}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Text for Markdown: HTML and the characters that make links, code, emphasis or table cells escaped (names come from files). */
function mdEsc(s: string | number): string {
  return String(s)
    .replace(/[\\`*_[\]|~<>&]/g, (c) =>
      c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : `\\${c}`,
    )
    .replace(/\r?\n/g, ' ');
}

function mdTable(t: Table): string {
  const cell = mdEsc;
  return [
    `| ${t.headers.map(cell).join(' | ')} |`,
    `|${t.headers.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** The run's numbers, with the paper's for the same method and code length beside them. */
function resultsTable(m: RunMetrics, paper: PaperReference, timing: RunTiming | null): Table {
  const bits = m.bits;
  // Seconds per method: timing.json (all sessions of a resumed run); older folders kept them in metrics.json.
  const seconds: Record<string, number> = {};
  for (const e of m.metrics) if (e.seconds !== undefined) seconds[e.method] = e.seconds;
  for (const e of timing?.methods ?? []) seconds[e.method] = e.seconds;
  const paperCol = `paper t-MAP % (${paper.source}${paperHasBits(bits) ? `, ${bits} bits` : ''})`;
  return {
    headers: [
      'method',
      't-MAP %',
      'MAP %',
      'perceptibility',
      'd(anchor)',
      'seconds',
      paperCol,
      `paper perceptibility (${paper.source})`,
    ],
    rows: m.metrics.map((e) => [
      methodName(e.method),
      pct(e.tMap),
      pct(e.map),
      sci(e.perceptibility),
      e.anchorDistance === undefined ? '–' : e.anchorDistance.toFixed(2),
      seconds[e.method] === undefined ? '–' : seconds[e.method].toFixed(1),
      paperHasBits(bits) && paper.tMap[e.method]?.[bits as number] !== undefined
        ? paper.tMap[e.method][bits as number].toFixed(2)
        : '–',
      e.method === 'dhta' ? sci(paper.perceptibility) : '–',
    ]),
  };
}

function paperTable(paper: PaperReference): Table {
  return {
    headers: ['method', ...PAPER_BITS.map((b) => `${b} bits`)],
    rows: Object.entries(paper.tMap).map(([m, row]) => [
      methodName(m),
      ...PAPER_BITS.map((b) => row[b].toFixed(2)),
    ]),
  };
}

/** PROTOCOL.md's qualitative claims, checked on this run where it has the methods. */
function claims(m: RunMetrics): Array<{ claim: string; holds: boolean; detail: string }> {
  const get = (name: string) => m.metrics.find((e) => e.method === name);
  const out: Array<{ claim: string; holds: boolean; detail: string }> = [];
  const dhta = get('dhta');
  const p2p = get('p2p');
  const original = get('original');
  const noise = get('noise');
  if (dhta?.tMap != null && p2p?.tMap != null)
    out.push({
      claim: 'DHTA t-MAP > P2P t-MAP',
      holds: dhta.tMap > p2p.tMap,
      detail: `${pct(dhta.tMap)} vs ${pct(p2p.tMap)}`,
    });
  const floor = [original?.tMap, noise?.tMap].filter((v): v is number => v != null);
  if (p2p?.tMap != null && floor.length)
    out.push({
      claim: 'P2P t-MAP well above Original and Noise',
      holds: p2p.tMap > 2 * Math.max(...floor),
      detail: `${pct(p2p.tMap)} vs ${floor.map(pct).join(', ')}`,
    });
  if (dhta?.map != null && original?.map != null)
    out.push({
      claim: "DHTA cuts the query's own MAP by more than half",
      holds: dhta.map < original.map / 2,
      detail: `${pct(dhta.map)} vs ${pct(original.map)}`,
    });
  if (dhta?.tMap != null && original?.map != null)
    out.push({
      claim: "DHTA t-MAP exceeds the clean model's MAP (the paper sees this on some sets)",
      holds: dhta.tMap > original.map,
      detail: `${pct(dhta.tMap)} vs ${pct(original.map)}`,
    });
  return out;
}

function settingsList(m: RunMetrics, timing: RunTiming | null): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['data', m.data ?? '–'],
    ['model', m.model ?? '–'],
    ['code length', m.bits === undefined ? '–' : `${m.bits} bits`],
    ['queries', String(m.queries ?? '–')],
    ['n_t (objects voted into each anchor)', String(m.nT ?? '–')],
    ['attack iterations', String(m.iterations ?? '–')],
    ['database size', String(m.databaseSize ?? '–')],
    [
      'MAP@R',
      `R = ${m.R ?? '–'}; queries with no relevant object in the top R ${
        m.zeroHits === 'count' ? 'counted as 0' : m.zeroHits === 'skip' ? 'left out of the mean' : '–'
      }`,
    ],
    ['seed', String(m.seed ?? '–')],
  ];
  if (m.attack)
    rows.push([
      'attack settings',
      Object.entries(m.attack)
        .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
        .join(', '),
    ]);
  const time = timing?.seconds ?? m.seconds;
  if (time?.total !== undefined) {
    const sessions = timing?.sessions ?? 1;
    rows.push([
      'time',
      `${time.total.toFixed(0)} s in all (database encoding ${(time.encode ?? 0).toFixed(0)} s)` +
        (sessions > 1 ? `, over ${sessions} sessions (resumed or merged)` : ''),
    ]);
  }
  return rows;
}

interface Tile {
  png: Buffer;
  width: number;
  height: number;
  /** hit: has the target label; miss: has not; query: the query itself. */
  kind: 'hit' | 'miss' | 'query' | 'plain';
  caption: string;
  title: string;
}

function tileHtml(t: Tile): string {
  return (
    `<figure class="tile ${t.kind}"><img alt="${esc(t.title)}" title="${esc(t.title)}" width="${t.width}" ` +
    `height="${t.height}" src="data:image/png;base64,${t.png.toString('base64')}"><figcaption>${esc(t.caption)}</figcaption></figure>`
  );
}

function figureCell(t: Tile): FigureCell {
  const border = t.kind === 'hit' ? HIT : t.kind === 'miss' ? MISS : t.kind === 'query' ? QUERY : undefined;
  return { png: t.png, width: t.width, height: t.height, border, caption: t.caption };
}

interface Section {
  html: string;
  md: string;
}

interface Ctx {
  run: RunFolder;
  outDir: string;
  figuresDir: string;
  figures: string[];
  missing: string[];
  tileSize: number;
  shown: number;
  classNames: string[] | null;
  log: (line: string) => void;
}

function labelText(ctx: Ctx, labels: number[]): string {
  if (labels.length === 0) return 'none';
  return labels.map((l) => ctx.classNames?.[l] ?? String(l)).join('+');
}

async function tileOf(ctx: Ctx, pic: Rgb, kind: Tile['kind'], caption: string, title: string): Promise<Tile> {
  const p = await toPng(pic, ctx.tileSize);
  return { ...p, kind, caption, title };
}

async function writeFigure(ctx: Ctx, name: string, png: Buffer): Promise<string> {
  const path = join(ctx.figuresDir, name);
  writeAtomic(path, png);
  ctx.figures.push(path);
  return `figures/${name}`;
}

async function chartsSection(ctx: Ctx, paper: PaperReference): Promise<Section> {
  const { run } = ctx;
  const charts: Array<{ id: string; file: string; caption: string; spec: VegaLiteSpec }> = [];
  charts.push({
    id: 't-map',
    file: 't-map.png',
    caption: `t-MAP per method, this run beside the paper's ${paper.source} figures (for orientation: another data set and model).`,
    spec: tMapSpec(run.metrics.metrics, run.metrics.bits, paper),
  });
  if (run.curves) {
    const ref = run.curves.reference ?? 'target labels';
    charts.push({
      id: 'precision-recall',
      file: 'precision-recall.png',
      caption: `Precision against recall at every Hamming radius 0..K (the paper's Fig. 3); relevant = shares the ${ref}.`,
      spec: precisionRecallSpec(run.curves.curves, ref),
    });
    charts.push({
      id: 'precision-at-n',
      file: 'precision-at-n.png',
      caption: `Precision of the top N results (the paper's Fig. 5); relevant = shares the ${ref}.`,
      spec: precisionAtNSpec(run.curves.curves, ref),
    });
  }
  let html = '<section id="charts"><h2>Charts</h2>\n';
  let md = '## Charts\n\n';
  for (const c of charts) {
    const svg = await renderSvg(c.spec);
    const link = await writeFigure(ctx, c.file, await svgToPng(svg));
    html += `<figure class="chart" id="chart-${c.id}">${prefixSvgIds(svg, c.id)}<figcaption>${esc(c.caption)}</figcaption></figure>\n`;
    md += `![${mdEsc(c.caption)}](${link})\n\n${mdEsc(c.caption)}\n\n`;
  }
  if (!run.curves) {
    html +=
      '<p class="missing">No curves.json in this folder: precision-recall and precision@N charts left out.</p>\n';
    md += 'No curves.json in this folder: precision-recall and precision@N charts left out.\n\n';
  }
  return { html: `${html}</section>`, md };
}

async function openData(ctx: Ctx, given: OpenedDataset | undefined): Promise<OpenedDataset | null> {
  const r = ctx.run.retrieval;
  if (!r) return null;
  if (given) return given;
  try {
    return await openDataset(r.data, { seed: r.seed });
  } catch (e) {
    ctx.missing.push(`database images of ${r.data} (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

async function gridSection(ctx: Ctx, data: OpenedDataset | null): Promise<Section> {
  const { run } = ctx;
  const r = run.retrieval;
  const benign = run.examples['benign'];
  const title = '<section id="retrieval"><h2>Retrieval (the paper\'s Fig. 4)</h2>\n';
  if (!r || !benign || !data) {
    const why = !r
      ? 'no retrieval.json in this folder'
      : !benign
        ? 'no examples/benign.npy in this folder'
        : `the database images of ${r.data} could not be opened`;
    return {
      html: `${title}<p class="missing">Retrieval grids left out: ${esc(why)}.</p></section>`,
      md: `## Retrieval (the paper's Fig. 4)\n\nRetrieval grids left out: ${why}.\n\n`,
    };
  }
  const shown = Math.min(ctx.shown, r.queries.length, geometry(benign.shape).items);
  const methods = ['benign', ...GRID_METHODS.filter((m) => r.top[m] && (run.examples[m] || m === 'benign'))];
  // Every database item shown, loaded in one call.
  const ids = [
    ...new Set(methods.flatMap((m) => r.top[m].slice(0, shown).flatMap((row) => row.map((i) => i.id)))),
  ];
  const dbLength = data.database.length;
  const bad = ids.find((id) => id >= dbLength);
  if (bad !== undefined) {
    const why = `retrieval.json names database item ${bad}, but ${r.data} (seed ${r.seed}) has ${dbLength}`;
    ctx.missing.push(why);
    return {
      html: `${title}<p class="missing">Retrieval grids left out: ${esc(why)}.</p></section>`,
      md: `## Retrieval (the paper's Fig. 4)\n\nRetrieval grids left out: ${why}.\n\n`,
    };
  }
  const pixels = ids.length ? await data.database.load(ids) : new Float32Array(0);
  const db: Examples = { shape: data.database.batchShape(ids.length), data: pixels };
  const row = new Map(ids.map((id, i) => [id, i]));
  const blocks: FigureBlock[] = [];
  let html = title;
  html +=
    '<p class="legend">Per query: the benign query (dark frame) and its top results, then the adversarial query of ' +
    `each attack and its top results. <span class="key hit">green</span>: the result has the target label; ` +
    '<span class="key miss">red</span>: it has not. Under each result: its label and its Hamming distance to the query.</p>\n';
  for (let q = 0; q < shown; q++) {
    const info = r.queries[q];
    const heading = `query ${info.query} (label ${labelText(ctx, info.label)}), target label ${labelText(ctx, info.target)}`;
    const block: FigureBlock = { title: heading, rows: [] };
    html += `<div class="grid-block"><h3>${esc(heading)}</h3>\n`;
    for (const m of methods) {
      const queryPic = itemPicture(m === 'benign' ? benign : run.examples[m], q, 'middle');
      const tiles: Tile[] = [
        await tileOf(
          ctx,
          queryPic,
          'query',
          m === 'benign' ? 'query' : `${methodName(m)} query`,
          `query ${info.query}`,
        ),
      ];
      for (const item of r.top[m][q]) {
        const pic = itemPicture(db, row.get(item.id) as number, 'middle');
        tiles.push(
          await tileOf(
            ctx,
            pic,
            item.hasTarget ? 'hit' : 'miss',
            `${labelText(ctx, item.label)} d=${item.distance}`,
            `database item ${item.id}, label ${labelText(ctx, item.label)}, Hamming distance ${item.distance}, ` +
              (item.hasTarget ? 'has the target label' : 'does not have the target label'),
          ),
        );
      }
      const rowLabel = m === 'benign' ? 'benign' : methodName(m);
      const hits = r.top[m][q].filter((i) => i.hasTarget).length;
      html += `<div class="grid-row" data-method="${esc(m)}"><div class="row-label">${esc(rowLabel)}<br><small>${hits}/${r.top[m][q].length} target</small></div>${tiles.map(tileHtml).join('')}</div>\n`;
      block.rows.push({ label: `${rowLabel} (${hits}/${r.top[m][q].length})`, cells: tiles.map(figureCell) });
    }
    html += '</div>\n';
    blocks.push(block);
  }
  const fig = composeFigure(
    blocks,
    'green frame: has the target label; red: has not; caption: label and Hamming distance',
  );
  const link = await writeFigure(ctx, 'retrieval.png', await svgToPng(fig.svg, 1));
  const md =
    "## Retrieval (the paper's Fig. 4)\n\n" +
    `Per shown query (${shown}): the benign query and its top ${r.top['benign'][0]?.length ?? 0}, then the adversarial query of ` +
    `${methods.slice(1).map(methodName).join(' and ') || 'no attack'} and its top results; a green frame marks a result with ` +
    'the target label, a red frame one without; under each: label and Hamming distance.\n\n' +
    `![Retrieval grids](${link})\n\n`;
  return { html: `${html}</section>`, md };
}

async function examplesSection(ctx: Ctx): Promise<Section> {
  const { run } = ctx;
  const benign = run.examples['benign'];
  const methods = Object.keys(run.examples)
    .filter((m) => m !== 'benign')
    .sort((a, b) => {
      const ia = EXAMPLE_ORDER.indexOf(a);
      const ib = EXAMPLE_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
  let html = '<section id="examples"><h2>Adversarial examples (the paper\'s Fig. 8)</h2>\n';
  let md = "## Adversarial examples (the paper's Fig. 8)\n\n";
  if (!benign || methods.length === 0) {
    const why = !benign ? 'no examples/benign.npy in this folder' : 'no adversarial examples in this folder';
    return { html: `${html}<p class="missing">${esc(why)}.</p></section>`, md: `${md}${why}.\n\n` };
  }
  const g = geometry(benign.shape);
  const shown = Math.min(ctx.shown, g.items);
  const video = g.frames > 1;
  const legend =
    `Per example: benign, adversarial, and the perturbation |x' − x| magnified (divided by its largest value, so it ` +
    `fills black to white)${video ? '; video: evenly spaced frames' : ''}. Under the perturbation: its RMS ` +
    '(the perceptibility, pixels in [0, 1]) and its largest value.';
  html += `<p class="legend">${esc(legend)}</p>\n`;
  md += `${legend}\n\n`;
  const queryIds = run.retrieval?.queries.map((q) => q.query);
  for (const m of methods) {
    const adv = run.examples[m];
    const block: FigureBlock = { title: methodName(m), rows: [] };
    html += `<div class="examples-block" data-method="${esc(m)}"><h3>${esc(methodName(m))}</h3>\n`;
    for (let i = 0; i < shown; i++) {
      const { pixels, max } = magnifiedPerturbation(adv, benign, i);
      const size = g.frames * g.c * g.h * g.w;
      let sq = 0;
      for (let p = i * size; p < (i + 1) * size; p++) sq += (adv.data[p] - benign.data[p]) ** 2;
      const rms = Math.sqrt(sq / size);
      const name = queryIds?.[i] !== undefined ? `query ${queryIds[i]}` : `example ${i}`;
      const tiles = [
        await tileOf(ctx, itemPicture(benign, i, 'strip'), 'plain', 'benign', `${name}, benign`),
        await tileOf(
          ctx,
          itemPicture(adv, i, 'strip'),
          'plain',
          methodName(m),
          `${name}, ${methodName(m)} adversarial`,
        ),
        await tileOf(
          ctx,
          itemPicture(pixels, 0, 'strip'),
          'plain',
          `rms ${rms.toExponential(2)} max ${max.toFixed(3)}`,
          `${name}, |x' - x| magnified ${max > 0 ? (1 / max).toFixed(1) : '–'}x`,
        ),
      ];
      // A video's strips are wide: stacked, one under another, rather than side by side.
      html += `<div class="example-row${video ? ' video' : ''}"><div class="row-label">${esc(name)}</div>${tiles.map(tileHtml).join('')}</div>\n`;
      if (video)
        for (const [k, t] of tiles.entries())
          block.rows.push({ label: k === 0 ? name : '', cells: [{ ...figureCell(t), caption: t.caption }] });
      else block.rows.push({ label: name, cells: tiles.map(figureCell) });
    }
    html += '</div>\n';
    const fig = composeFigure([block]);
    const link = await writeFigure(ctx, `examples-${m}.png`, await svgToPng(fig.svg, 1));
    md += `![${methodName(m)} examples](${link})\n\n`;
  }
  return { html: `${html}</section>`, md };
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#111;max-width:1500px}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.paper th,.paper td,th.paper,td.paper{color:#555;background:#f7f7f7}.note{color:#555;font-size:.9em}
dl.settings{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dl.settings dt{color:#555}dl.settings dd{margin:0}
figure.chart{display:inline-block;margin:0 16px 16px 0;vertical-align:top}figure.chart figcaption{max-width:460px;font-size:.85em;color:#444}
.grid-row,.example-row{display:flex;align-items:flex-start;gap:4px;margin:2px 0}
.row-label{width:96px;flex:none;font-size:.85em;padding-top:8px}
.example-row.video{flex-direction:column}.example-row.video .row-label{width:auto}
figure.tile{margin:0;text-align:center;font-size:10px;color:#333}
figure.tile img{display:block;border:3px solid #fff;image-rendering:pixelated}
figure.tile.hit img{border-color:${HIT}}figure.tile.miss img{border-color:${MISS}}figure.tile.query img{border-color:${QUERY}}
.key{padding:0 4px;color:#fff}.key.hit{background:${HIT}}.key.miss{background:${MISS}}
.claims li.holds::marker{content:"✓ ";color:${HIT}}.claims li.fails::marker{content:"✗ ";color:${MISS}}
.missing{color:${MISS}}
`;

/**
 * Writes OUT/report.html, OUT/report.md and OUT/figures/*.png from a protocol run's folder (metrics.json,
 * curves.json, retrieval.json, examples/*.npy). Every file is written to a temporary name, then renamed.
 */
export async function writeReport(outDir: string, options: ReportOptions = {}): Promise<ReportResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const run = await readRunFolder(outDir);
  const figuresDir = join(outDir, 'figures');
  const createdFigures = makeDir(figuresDir, 'the figures folder');
  const ctx: Ctx = {
    run,
    outDir,
    figuresDir,
    figures: [],
    missing: [...run.missing],
    tileSize: options.tileSize ?? 84,
    shown: options.queries ?? 8,
    classNames: null,
    log,
  };
  try {
    return await writeReportFiles(ctx, outDir, options, started);
  } catch (e) {
    // A report that fails half-way leaves no figures folder of its own behind (older figures stay).
    if (createdFigures) {
      for (const f of ctx.figures) rmSync(f, { force: true });
      removeIfEmpty(figuresDir);
    }
    throw e;
  }
}

async function writeReportFiles(
  ctx: Ctx,
  outDir: string,
  options: ReportOptions,
  started: number,
): Promise<ReportResult> {
  const { run } = ctx;
  const data = await openData(ctx, options.dataset);
  ctx.classNames = data?.info.classNames ?? null;
  const benign = run.examples['benign'];
  const isVideo = (benign && geometry(benign.shape).frames > 1) || data?.info.kind === 'video';
  const paper = isVideo ? PAPER_VIDEO : PAPER_IMAGE;
  const m = run.metrics;

  const title = `DHTA report: ${m.data ?? 'run'}${m.bits ? `, ${m.bits}-bit model` : ''}`;
  const results = resultsTable(m, paper, run.timing);
  const paperRef = paperTable(paper);
  const checks = claims(m);
  const settings = settingsList(m, run.timing);
  const paperNote =
    `The paper's columns are its ${paper.source} figures (PROTOCOL.md, "The paper's headline figures"): another data ` +
    'set and model, shown for orientation, not as numbers this run should match.';
  const percNote = `The paper's DHTA perceptibility: ${PAPER_PERCEPTIBILITY.map(([d, v]) => `${d} ${v.toExponential(2)}`).join(', ')}.`;

  ctx.log('report: charts');
  const charts = await chartsSection(ctx, paper);
  ctx.log('report: retrieval grids');
  const grids = await gridSection(ctx, data);
  ctx.log('report: examples');
  const examples = await examplesSection(ctx);

  const claimsHtml = checks.length
    ? `<ul class="claims">${checks.map((c) => `<li class="${c.holds ? 'holds' : 'fails'}">${esc(c.claim)}: ${c.holds ? 'yes' : 'no'} (${esc(c.detail)})</li>`).join('')}</ul>`
    : '';
  const claimsMd = checks.length
    ? `${checks.map((c) => `- ${c.holds ? 'yes' : 'no'}: ${c.claim} (${c.detail})`).join('\n')}\n\n`
    : '';
  const missingHtml = ctx.missing.length
    ? `<p class="missing">Left out: ${esc(ctx.missing.join('; '))}.</p>`
    : '';
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="note">Written by <code>dhta report</code> from the run folder's metrics.json, curves.json, retrieval.json and examples/. t-MAP: relevant = shares the target label; MAP: relevant = shares the query's own label.</p>
${missingHtml}
<dl class="settings">${settings.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>
<section id="tables"><h2>Results</h2>
${htmlTable(results, 'results')}
<p class="note">${esc(paperNote)} ${esc(percNote)}</p>
<h3>The paper's t-MAP % (${esc(paper.source)}), per code length</h3>
${htmlTable(paperRef, 'paper')}
${checks.length ? `<h3>The paper's qualitative claims on this run</h3>${claimsHtml}` : ''}
</section>
${charts.html}
${grids.html}
${examples.html}
</body></html>
`;
  const md =
    `# ${mdEsc(title)}\n\n` +
    'Written by `dhta report`; open report.html for the same with inline charts and images.\n\n' +
    (ctx.missing.length ? `Left out: ${mdEsc(ctx.missing.join('; '))}.\n\n` : '') +
    `${settings.map(([k, v]) => `- ${k}: ${mdEsc(v)}`).join('\n')}\n\n` +
    `## Results\n\n${mdTable(results)}\n\n${paperNote} ${percNote}\n\n` +
    `### The paper's t-MAP % (${paper.source}), per code length\n\n${mdTable(paperRef)}\n\n` +
    (checks.length ? `### The paper's qualitative claims on this run\n\n${claimsMd}` : '') +
    charts.md +
    grids.md +
    examples.md;
  const htmlPath = join(outDir, 'report.html');
  const mdPath = join(outDir, 'report.md');
  writeAtomic(mdPath, md);
  writeAtomic(htmlPath, html);
  return {
    html: resolve(htmlPath),
    markdown: resolve(mdPath),
    figures: ctx.figures.map((f) => resolve(f)),
    missing: ctx.missing,
    seconds: (performance.now() - started) / 1000,
  };
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      'Writes OUT_DIR/report.html (self-contained: opens offline), report.md and figures/*.png from a protocol ' +
        'run folder (dhta attack --data ... --out-dir OUT_DIR, or dhta demo): the t-MAP / MAP / perceptibility ' +
        "table beside the paper's figures, precision-recall and precision@N curves, retrieval grids (Fig. 4) and " +
        'adversarial examples with the perturbation magnified (Fig. 8). metrics.json is left as it is.',
    )
    .argument('<OUT_DIR>', 'the run folder (holds metrics.json)')
    .option(
      '--queries <N>',
      'queries shown in the retrieval grids and examples, 1 to 1000',
      positiveInt('--queries', 1000),
      8,
    )
    .option('--json', 'print the written paths as one JSON line')
    .action(async (outDir: string, f: { queries: number; json?: boolean }) => {
      const r = await writeReport(outDir, {
        queries: f.queries,
        log: f.json ? undefined : (l) => process.stderr.write(`${l}\n`),
      });
      if (f.json) {
        printJson(r);
      } else {
        for (const m of r.missing) process.stdout.write(`left out: ${m}\n`);
        process.stdout.write(
          `report: ${r.html}\nmarkdown: ${r.markdown}\nfigures: ${r.figures.length} in ${join(resolve(outDir), 'figures')}\n`,
        );
      }
    });
}
