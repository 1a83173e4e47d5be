// The page: picks a model, a query and a target, runs an attack in its worker and shows it live; a search tab
// encodes a drawn or picked image and ranks the database by Hamming distance. The automation contract (URL
// query, body[data-state], #dhta-error, #dhta-result) is in README.md.
import { type AttackMethod, pickP2pAnchors } from '@dhta/attack';
import { RetrievalDatabase } from '@dhta/eval';
import { readNpy } from '@dhta/kernels/hamming';
import { MANIFEST_FILE, PAGE_DEFAULTS, type WebDataset, type WebManifest, type WebModel } from './format.js';
import type { AttackSettings, EngineChoice, FromWorker, ToWorker } from './messages.js';
import {
  anchorFrom,
  bytesToPixels,
  drawTargetObjects,
  gatherCodes,
  hammingDistance,
  labelOf,
  oneHotLabel,
  unpackFaissBytes,
} from './protocol.js';

const DATA = 'data/';
const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};

// ---- the worker ----------------------------------------------------------------------------------------
class WorkerClient {
  private readonly worker = new Worker(new URL('worker.js', document.baseURI), { type: 'module' });
  private next = 1;
  private readonly pending = new Map<
    number,
    { ok: (m: FromWorker) => void; fail: (e: Error) => void; progress?: (m: FromWorker) => void }
  >();
  constructor() {
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const m = event.data;
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') return p.progress?.(m);
      this.pending.delete(m.id);
      if (m.type === 'error') p.fail(new Error(m.message));
      else p.ok(m);
    };
    this.worker.onerror = (event) => {
      const e = new Error(`the worker failed: ${event.message || 'could not start'}`);
      for (const p of this.pending.values()) p.fail(e);
      this.pending.clear();
    };
  }
  request<T extends FromWorker['type']>(
    message: DistributiveOmit<ToWorker, 'id'>,
    progress?: (m: Extract<FromWorker, { type: 'progress' }>) => void,
    transfer: Transferable[] = [],
  ): Promise<Extract<FromWorker, { type: T }>> {
    const id = this.next++;
    return new Promise((ok, fail) => {
      this.pending.set(id, {
        ok: ok as (m: FromWorker) => void,
        fail,
        progress: progress as ((m: FromWorker) => void) | undefined,
      });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }
}
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

// ---- data ----------------------------------------------------------------------------------------------
async function fetchBytes(path: string): Promise<Uint8Array> {
  const r = await fetch(DATA + path);
  if (!r.ok)
    throw new Error(
      `${DATA}${path}: HTTP ${r.status}. Serve the page with \`dhta serve\`, which prepares the data it needs.`,
    );
  return new Uint8Array(await r.arrayBuffer());
}

async function fetchNpy(path: string) {
  return readNpy(await fetchBytes(path), path);
}

/** The pixels of one split, fetched whole (queries) or per item with range requests (the database). */
class SplitPixels {
  private whole: Uint8Array | Float32Array | null = null;
  private readonly cache = new Map<number, Float32Array>();
  constructor(
    readonly split: WebDataset['query'],
    readonly itemSize: number,
  ) {}
  async loadAll(): Promise<void> {
    const a = await fetchNpy(this.split.pixels);
    this.whole = a.data as Uint8Array | Float32Array;
  }
  private decode(raw: Uint8Array | Float32Array): Float32Array {
    return raw instanceof Float32Array ? raw.slice() : bytesToPixels(raw);
  }
  /** Item i's pixels, if already here. */
  cached(i: number): Float32Array | null {
    if (this.whole) return this.decode(this.whole.subarray(i * this.itemSize, (i + 1) * this.itemSize));
    return this.cache.get(i) ?? null;
  }
  async item(i: number): Promise<Float32Array> {
    const have = this.cached(i);
    if (have) return have;
    const bytesPer = this.split.pixelFormat === 'u8' ? 1 : 4;
    const start = this.split.pixelsOffset + i * this.itemSize * bytesPer;
    const end = start + this.itemSize * bytesPer - 1;
    const r = await fetch(DATA + this.split.pixels, { headers: { Range: `bytes=${start}-${end}` } });
    if (!r.ok) throw new Error(`${DATA}${this.split.pixels}: HTTP ${r.status}`);
    let bytes = new Uint8Array(await r.arrayBuffer());
    if (r.status === 200) {
      // A server without range requests sent the whole file: keep it.
      const a = readNpy(bytes, this.split.pixels);
      this.whole = a.data as Uint8Array | Float32Array;
      return this.cached(i)!;
    }
    if (bytesPer === 4) bytes = bytes.slice();
    const raw = bytesPer === 4 ? new Float32Array(bytes.buffer, 0, this.itemSize) : bytes;
    const px = this.decode(raw);
    this.cache.set(i, px);
    return px;
  }
}

interface Loaded {
  model: WebModel;
  dataset: WebDataset;
  itemSize: number;
  queries: SplitPixels;
  database: SplitPixels;
  queryLabels: Uint8Array;
  databaseLabels: Uint8Array;
  /** ±1 database codes (count x bits). */
  databaseCodes: Int8Array;
  retrieval: RetrievalDatabase;
}

// ---- drawing -------------------------------------------------------------------------------------------
/** Draws a CHW image with values in [0, 1] (or a signed map when `signed`: 0 is mid grey) into a canvas. */
function drawImage(canvas: HTMLCanvasElement, pixels: Float32Array, shape: number[], scale = 1): void {
  const [C, H, W] = shape;
  const small = document.createElement('canvas');
  small.width = W;
  small.height = H;
  const ctx = small.getContext('2d')!;
  const img = ctx.createImageData(W, H);
  for (let p = 0; p < H * W; p++) {
    for (let k = 0; k < 3; k++) {
      const v = pixels[(C === 3 ? k : 0) * H * W + p] * scale;
      img.data[p * 4 + k] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const out = canvas.getContext('2d')!;
  out.imageSmoothingEnabled = false;
  out.clearRect(0, 0, canvas.width, canvas.height);
  out.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function drawChart(svg: SVGSVGElement, points: [number, number][], iterations: number, bits: number): void {
  const W = 320;
  const H = 140;
  const x = (it: number) => 34 + (it / Math.max(1, iterations)) * (W - 44);
  const y = (d: number) => 10 + (1 - d / bits) * (H - 34);
  const ticks = [0, bits / 4, bits / 2, (3 * bits) / 4, bits].map(
    (d) =>
      `<line x1="32" x2="${W - 8}" y1="${y(d)}" y2="${y(d)}" stroke="#e4e6e9"/>` +
      `<text x="28" y="${y(d) + 4}" font-size="10" text-anchor="end" fill="#6b717b">${d}</text>`,
  );
  const line = points.map(([it, d]) => `${x(it).toFixed(1)},${y(d).toFixed(1)}`).join(' ');
  svg.innerHTML =
    ticks.join('') +
    `<text x="${W - 8}" y="${H - 6}" font-size="10" text-anchor="end" fill="#6b717b">${iterations} it.</text>` +
    `<text x="34" y="${H - 6}" font-size="10" fill="#6b717b">0</text>` +
    (points.length ? `<polyline points="${line}" fill="none" stroke="#1f5fbf" stroke-width="2"/>` : '') +
    points
      .map(([it, d]) => `<circle cx="${x(it)}" cy="${y(d)}" r="1.8" fill="#1f5fbf"/>`)
      .slice(-1)
      .join('');
}

// ---- the page ------------------------------------------------------------------------------------------
const params = new URLSearchParams(location.search);
const worker = new WorkerClient();
let manifest: WebManifest;
let loaded: Loaded | null = null;
let engineKind: 'webgpu' | 'wasm' | null = null;
let openedFor = '';
let running: { stop: Int32Array } | null = null;

function setState(state: 'loading' | 'ready' | 'running' | 'done' | 'error'): void {
  document.body.dataset['state'] = state;
}

function showError(message: string): void {
  const box = $('dhta-error');
  box.textContent = message;
  box.hidden = false;
  setState('error');
}

function clearError(): void {
  const box = $('dhta-error');
  box.textContent = '';
  box.hidden = true;
}

function writeResult(result: unknown): void {
  let el = document.getElementById('dhta-result');
  if (!el) {
    el = document.createElement('script');
    el.id = 'dhta-result';
    el.setAttribute('type', 'application/json');
    document.body.appendChild(el);
  }
  el.textContent = JSON.stringify(result);
}

/** A whole number from a form field or the URL, checked. */
function intValue(name: string, v: string, min: number, max: number): number {
  const n = /^\s*[0-9]+\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new Error(`${name} must be an integer from ${min} to ${max}, found "${v}"`);
  return n;
}

function numberValue(name: string, v: string, max: number): number {
  const n = /^\s*([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!(n > 0 && n <= max)) throw new Error(`${name} must be a number > 0 and <= ${max}, found "${v}"`);
  return n;
}

async function loadModel(name: string): Promise<Loaded> {
  const model = manifest.models.find((m) => m.name === name);
  if (!model)
    throw new Error(
      `model "${name}" is not prepared here (prepared: ${manifest.models.map((m) => m.name).join(', ') || 'none'}); ` +
        `run \`dhta serve --models ${name}\``,
    );
  const dataset = manifest.datasets.find((d) => d.key === model.dataset);
  if (!dataset)
    throw new Error(`the manifest names data set ${model.dataset} for ${name} but does not list it`);
  const itemSize = dataset.itemShape.reduce((a, b) => a * b, 1);
  const same = loaded?.dataset.key === dataset.key ? loaded : null;
  const queries = same?.queries ?? new SplitPixels(dataset.query, itemSize);
  const database = same?.database ?? new SplitPixels(dataset.database, itemSize);
  const [, ql, dl, dc] = await Promise.all([
    same ? Promise.resolve() : queries.loadAll(),
    same
      ? Promise.resolve(same.queryLabels)
      : fetchNpy(dataset.query.labels).then((a) => a.data as Uint8Array),
    same
      ? Promise.resolve(same.databaseLabels)
      : fetchNpy(dataset.database.labels).then((a) => a.data as Uint8Array),
    fetchNpy(model.databaseCodes),
  ]);
  const databaseCodes = unpackFaissBytes(dc.data as Uint8Array, model.bits);
  const retrieval = new RetrievalDatabase(model.bits, databaseCodes, dl);
  return {
    model,
    dataset,
    itemSize,
    queries,
    database,
    queryLabels: ql,
    databaseLabels: dl,
    databaseCodes,
    retrieval,
  };
}

/** Opens the model in the worker on the chosen engine (again only when model or engine changed). */
async function openNetwork(): Promise<void> {
  if (!loaded) throw new Error('no model loaded');
  const choice = $<HTMLSelectElement>('engine').value as EngineChoice;
  const threads = params.get('threads');
  const key = `${loaded.model.name}|${choice}|${threads}`;
  if (key === openedFor) return;
  $('engine-info').textContent = 'starting the engine…';
  const r = await worker.request<'opened'>({
    type: 'open',
    specUrl: new URL(DATA + loaded.model.spec, document.baseURI).href,
    weightsUrl: new URL(DATA + loaded.model.weights, document.baseURI).href,
    engine: choice,
    threads: threads === null ? null : intValue('threads', threads, 1, 64),
  });
  engineKind = r.engine;
  openedFor = key;
  $('engine-info').textContent = `${r.engine === 'webgpu' ? 'WebGPU' : 'WebAssembly'}: ${r.description}`;
}

function fillTargets(): void {
  if (!loaded) return;
  const sel = $<HTMLSelectElement>('target');
  const keep = sel.value;
  sel.innerHTML = loaded.dataset.classNames
    .map((_, c) => `<option value="${c}">${escapeHtml(className(c))}</option>`)
    .join('');
  if (keep) sel.value = keep;
}

/** A class name short enough for a thumbnail caption. */
function shortName(c: number): string {
  const name = loaded?.dataset.classNames[c] ?? String(c);
  return name.length > 9 ? `${name.slice(0, 8)}…` : name;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A class as shown: its index, and its name where that says more (Fashion-MNIST's "Trouser"). */
function className(c: number): string {
  const name = loaded?.dataset.classNames[c];
  return name === undefined || name === String(c) ? String(c) : `${c} (${name})`;
}

async function showQuery(): Promise<void> {
  if (!loaded) return;
  const n = loaded.dataset.query.count;
  const q = intValue('query', $<HTMLInputElement>('query').value, 0, n - 1);
  const px = await loaded.queries.item(q);
  drawImage($<HTMLCanvasElement>('benign'), px, loaded.dataset.itemShape);
  const label = labelOf(loaded.queryLabels, q, loaded.dataset.classes);
  $('query-label').textContent = `${q}, label ${className(label)}`;
  const target = $<HTMLSelectElement>('target');
  if (Number(target.value) === label) target.value = String((label + 1) % loaded.dataset.classes);
}

/** The top-k list: thumbnails, ids, distances; framed green where the item has `highlight`'s label. */
/** The least time between two redraws of the running attack's chart and figures (ms). */
const DRAW_EVERY_MS = 250;
/** The least time between two top-10 lists while an attack runs (ms). */
const RANK_EVERY_MS = 1000;

async function showTop(
  list: HTMLElement,
  code: Int8Array,
  highlight: number | null,
  k = 10,
): Promise<Int32Array> {
  if (!loaded) return new Int32Array(0);
  const r = await loaded.retrieval.rank(code, k);
  const { classes, itemShape } = loaded.dataset;
  const items = Array.from(r.ids.subarray(0, r.k), (id, j) => ({ id, d: r.distances[j] }));
  list.innerHTML = items
    .map(({ id, d }) => {
      const label = labelOf(loaded!.databaseLabels, id, classes);
      const hit = highlight !== null && label === highlight;
      return (
        `<li class="${hit ? 'hit' : ''}" data-id="${id}" data-label="${label}" title="${escapeHtml(className(label))}">` +
        `<canvas width="56" height="56"></canvas>#${id}<br>d ${d} · ${escapeHtml(shortName(label))}</li>`
      );
    })
    .join('');
  const canvases = list.querySelectorAll('canvas');
  await Promise.all(
    items.map(async ({ id }, j) => {
      const px = await loaded!.database.item(id);
      drawImage(canvases[j] as HTMLCanvasElement, px, itemShape);
    }),
  );
  return r.ids.slice(0, r.k);
}

function signs(features: Float32Array): Int8Array {
  return Int8Array.from(features, (v) => (v >= 0 ? 1 : -1));
}

interface AttackRequest {
  query: number;
  target: number;
  method: AttackMethod;
  iters: number;
  eps: number;
  epsSpace: 'normalized' | 'pixel';
  seed: number;
  batch: number;
}

function readForm(): AttackRequest {
  if (!loaded) throw new Error('no model loaded');
  const method = $<HTMLSelectElement>('method').value as AttackMethod;
  const epsSpace = $<HTMLSelectElement>('eps-space').value as 'normalized' | 'pixel';
  return {
    query: intValue('query', $<HTMLInputElement>('query').value, 0, loaded.dataset.query.count - 1),
    target: intValue('target', $<HTMLSelectElement>('target').value, 0, loaded.dataset.classes - 1),
    method,
    iters: intValue('iterations', $<HTMLInputElement>('iters').value, 1, 1_000_000),
    eps: numberValue('eps', $<HTMLInputElement>('eps').value, epsSpace === 'pixel' ? 1 : 100),
    epsSpace,
    seed: intValue('seed', $<HTMLInputElement>('seed').value, 0, 2 ** 32 - 1),
    batch: params.has('batch') ? intValue('batch', params.get('batch')!, 1, 1000) : 1,
  };
}

function setRunning(on: boolean): void {
  $<HTMLButtonElement>('run').disabled = on;
  $<HTMLButtonElement>('stop').disabled = !on;
  for (const id of ['model', 'engine', 'search-run']) $<HTMLButtonElement>(id).disabled = on;
}

function fmtAp(v: number | null): string {
  return v === null ? '– (no hit)' : v.toFixed(3);
}

async function runAttack(): Promise<Record<string, unknown> | null> {
  if (!loaded) throw new Error('no model loaded');
  const req = readForm();
  const { model, dataset } = loaded;
  const bits = model.bits;
  const C = dataset.classes;
  const queryLabel = labelOf(loaded.queryLabels, req.query, C);
  if (req.target === queryLabel && (req.method === 'dhta' || req.method === 'p2p'))
    throw new Error(`the target label must differ from the query's own label (${className(queryLabel)})`);
  setRunning(true);
  setState('running');
  await openNetwork();
  const x = await loaded.queries.item(req.query);
  drawImage($<HTMLCanvasElement>('benign'), x, dataset.itemShape);
  const benign = await worker.request<'encoded'>({ type: 'encode', pixels: x.slice(), n: 1 });
  // The anchor: DHTA votes the n_t drawn objects' codes; P2P takes one of them (pickP2pAnchors, as the CLI's
  // file mode does with (n, n_t, bits) targets); HAG pushes from the benign code; Noise has none.
  const targetIds = drawTargetObjects(
    loaded.databaseLabels,
    C,
    req.target,
    req.query,
    req.seed,
    PAGE_DEFAULTS.nT,
  );
  let anchor: Int8Array | null = null;
  if (req.method === 'dhta') anchor = anchorFrom(loaded.databaseCodes, targetIds, bits);
  else if (req.method === 'p2p')
    anchor = pickP2pAnchors(
      gatherCodes(loaded.databaseCodes, targetIds, bits),
      PAGE_DEFAULTS.nT,
      bits,
      req.seed,
      [req.query],
    ).anchors;
  const reference = anchor ?? benign.codes;
  const highlight = req.method === 'dhta' || req.method === 'p2p' ? req.target : queryLabel;
  const points: [number, number][] = [];
  const chart = $('chart') as unknown as SVGSVGElement;
  drawChart(chart, points, req.iters, bits);
  const metrics = $('metrics');
  const benignT = await loaded.retrieval.targetedMap(benign.codes, oneHotLabel(C, req.target));
  const benignAp = await loaded.retrieval.map(benign.codes, oneHotLabel(C, queryLabel));
  const head =
    `target ${className(req.target)} · ${req.method.toUpperCase()} · eps ${req.eps} (${req.epsSpace})<br>` +
    `before: t-AP <b>${fmtAp(benignT.map)}</b>, AP <b>${fmtAp(benignAp.map)}</b>, ` +
    `d(anchor) <b>${hammingDistance(benign.codes, reference)}</b><br>`;
  metrics.innerHTML = `${head}running…`;
  await showTop($('top'), benign.codes, highlight);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  running = { stop };
  let ranking = false;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let lastRank = Number.NEGATIVE_INFINITY;
  const settings: AttackSettings = {
    method: req.method,
    iterations: req.iters,
    eps: req.eps,
    epsSpace: req.epsSpace,
    seed: req.seed,
    progressEvery: Math.max(1, Math.min(50, Math.round(req.iters / 60))),
  };
  try {
    // batch=B (a benchmark parameter): B copies of the query attacked at once, as `dhta bench attack` times a
    // batch; each row's arithmetic is its own, so the first copy's result is the query's.
    const B = req.batch;
    const pixels = new Float32Array(B * x.length);
    for (let b = 0; b < B; b++) pixels.set(x, b * x.length);
    let anchors: Int8Array | null = null;
    if (anchor) {
      anchors = new Int8Array(B * bits);
      for (let b = 0; b < B; b++) anchors.set(anchor, b * bits);
    }
    const out = await worker
      .request<'attacked' | 'stopped'>(
        {
          type: 'attack',
          pixels,
          n: B,
          queryIds: new Array<number>(B).fill(req.query),
          anchors,
          settings,
          stop,
        },
        (p) => {
          const code = signs(p.features);
          const d = hammingDistance(code, reference);
          points.push([p.iteration, d]);
          // The page's drawing takes the cores from the attack's threads (drawing at every report halved the
          // attack's rate on 2 cores): at most DRAW_EVERY_MS between redraws of the chart and the figures,
          // RANK_EVERY_MS between top-10 lists. Every report stays in the curve, drawn in full at the end.
          const now = performance.now();
          if (now - lastDraw >= DRAW_EVERY_MS) {
            lastDraw = now;
            drawChart(chart, points, req.iters, bits);
            metrics.innerHTML =
              `${head}iteration <b>${p.iteration}</b> / ${p.iterations}: d(anchor) <b>${d}</b>, ` +
              `<b>${p.queryIterationsPerSecond.toFixed(0)}</b> query-it/s`;
          }
          if (!ranking && now - lastRank >= RANK_EVERY_MS) {
            lastRank = now;
            ranking = true;
            void showTop($('top'), code, highlight).finally(() => {
              ranking = false;
            });
          }
        },
      )
      .then((m) => m as Extract<FromWorker, { type: 'attacked' | 'stopped' }>);
    if (out.type === 'stopped') {
      metrics.innerHTML = `${head}stopped`;
      return null;
    }
    const code = out.codes.slice(0, bits);
    const adversarial = out.adversarial.slice(0, x.length);
    drawImage($<HTMLCanvasElement>('adversarial'), adversarial, dataset.itemShape);
    const diff = Float32Array.from(adversarial, (v, i) => v - x[i]);
    let maxAbs = 0;
    for (const v of diff) maxAbs = Math.max(maxAbs, Math.abs(v));
    const gain = maxAbs > 0 ? 0.5 / maxAbs : 1;
    drawImage(
      $<HTMLCanvasElement>('perturbation'),
      Float32Array.from(diff, (v) => 0.5 + v * gain),
      dataset.itemShape,
    );
    $('perturbation-caption').textContent =
      `perturbation ×${gain.toFixed(1)} (grey = 0, max |δ| ${maxAbs.toFixed(4)})`;
    const t = await loaded.retrieval.targetedMap(code, oneHotLabel(C, req.target));
    const a = await loaded.retrieval.map(code, oneHotLabel(C, queryLabel));
    const top = await showTop($('top'), code, highlight);
    const d = hammingDistance(code, reference);
    if (points.at(-1)?.[0] !== out.iterations) points.push([out.iterations, d]);
    drawChart(chart, points, req.iters, bits);
    const qps = out.iterations ? (B * out.iterations) / out.seconds : null;
    metrics.innerHTML =
      `${head}after ${out.iterations} iterations (${out.seconds.toFixed(2)} s${qps ? `, ${qps.toFixed(0)} query-it/s` : ''}):<br>` +
      `t-AP <b>${fmtAp(t.map)}</b>, AP <b>${fmtAp(a.map)}</b>, d(anchor) <b>${d}</b><br>` +
      `<span class="code">anchor ${Array.from(reference, (b) => (b > 0 ? '1' : '0')).join('')}<br>` +
      `code&nbsp;&nbsp; ${Array.from(code, (b) => (b > 0 ? '1' : '0')).join('')}</span>`;
    return {
      model: model.name,
      dataset: dataset.name,
      query: req.query,
      queryLabel,
      target: req.target,
      method: req.method,
      engine: engineKind,
      iters: req.iters,
      eps: req.eps,
      epsSpace: req.epsSpace,
      seed: req.seed,
      nT: PAGE_DEFAULTS.nT,
      targetIds: Array.from(targetIds),
      batch: B,
      anchor: Array.from(out.anchors.subarray(0, out.anchors.length / B)),
      benignCode: Array.from(benign.codes),
      code: Array.from(code),
      adversarial: Array.from(adversarial),
      distances: points,
      top: Array.from(top),
      tAP: t.map,
      AP: a.map,
      R: t.R,
      databaseCodesEngine: model.codesEngine,
      seconds: out.seconds,
      queryIterationsPerSecond: qps,
    };
  } finally {
    running = null;
    setRunning(false);
  }
}

// ---- search tab ----------------------------------------------------------------------------------------
let searchPixels: Float32Array | null = null;
let searchLabel: number | null = null;

function setupDrawing(): void {
  const canvas = $<HTMLCanvasElement>('draw');
  const ctx = canvas.getContext('2d')!;
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    searchPixels = null;
    searchLabel = null;
  };
  clear();
  let down = false;
  let last: [number, number] | null = null;
  const at = (e: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [
      ((e.clientX - r.left) * canvas.width) / r.width,
      ((e.clientY - r.top) * canvas.height) / r.height,
    ];
  };
  canvas.addEventListener('pointerdown', (e) => {
    down = true;
    last = at(e);
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!down || !last) return;
    const p = at(e);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = canvas.width / 12;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
    searchPixels = null;
    searchLabel = null;
  });
  const up = () => {
    down = false;
    last = null;
  };
  canvas.addEventListener('pointerup', up);
  canvas.addEventListener('pointercancel', up);
  $('draw-clear').addEventListener('click', clear);
}

/** The drawing at the model's input size (grey levels in [0, 1], as a 28x28 digit). */
function drawnPixels(): Float32Array {
  if (!loaded) throw new Error('no model loaded');
  const [C, H, W] = loaded.dataset.itemShape;
  const small = document.createElement('canvas');
  small.width = W;
  small.height = H;
  const ctx = small.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage($<HTMLCanvasElement>('draw'), 0, 0, W, H);
  const img = ctx.getImageData(0, 0, W, H).data;
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++)
    for (let p = 0; p < H * W; p++) out[c * H * W + p] = img[p * 4 + (C === 3 ? c : 0)] / 255;
  return out;
}

async function pickSearchQuery(id: number): Promise<void> {
  if (!loaded) return;
  searchPixels = await loaded.queries.item(id);
  searchLabel = labelOf(loaded.queryLabels, id, loaded.dataset.classes);
  drawImage($<HTMLCanvasElement>('draw'), searchPixels, loaded.dataset.itemShape);
}

async function runSearch(k: number = PAGE_DEFAULTS.top): Promise<Record<string, unknown>> {
  if (!loaded) throw new Error('no model loaded');
  await openNetwork();
  const pixels = searchPixels ?? drawnPixels();
  const enc = await worker.request<'encoded'>({ type: 'encode', pixels: pixels.slice(), n: 1 });
  const t0 = performance.now();
  const ids = await showTop($('search-top'), enc.codes, searchLabel, k);
  const r = await loaded.retrieval.rank(enc.codes, k);
  const seconds = (performance.now() - t0) / 1000;
  $('search-info').textContent =
    `code ${Array.from(enc.codes, (b) => (b > 0 ? '1' : '0')).join('')} · encoded in ${(enc.seconds * 1000).toFixed(0)} ms`;
  return {
    tab: 'search',
    model: loaded.model.name,
    engine: engineKind,
    k: r.k,
    code: Array.from(enc.codes),
    ids: Array.from(ids),
    distances: Array.from(r.distances.subarray(0, r.k)),
    seconds,
  };
}

// ---- wiring --------------------------------------------------------------------------------------------
function showTab(tab: 'attack' | 'search'): void {
  $('attack-tab').hidden = tab !== 'attack';
  $('search-tab').hidden = tab !== 'search';
  $('tab-attack').classList.toggle('active', tab === 'attack');
  $('tab-search').classList.toggle('active', tab === 'search');
}

async function guarded<T>(fn: () => Promise<T>): Promise<T | undefined> {
  clearError();
  try {
    return await fn();
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

async function selectModel(name: string): Promise<void> {
  setState('loading');
  $('engine-info').textContent = `loading ${name}…`;
  loaded = await loadModel(name);
  fillTargets();
  await showQuery();
  await openNetwork();
}

/** URL parameters of the automation contract, applied to the form (checked when the run reads the form). */
function applyParams(): void {
  const set = (id: string, key: string) => {
    const v = params.get(key);
    if (v !== null) ($(id) as HTMLInputElement).value = v;
  };
  set('query', 'query');
  set('target', 'target');
  set('method', 'method');
  set('iters', 'iters');
  set('eps', 'eps');
  set('eps-space', 'epsSpace');
  set('seed', 'seed');
  set('search-query', 'query');
  for (const [id, key, allowed] of [
    ['method', 'method', ['dhta', 'p2p', 'hag', 'noise']],
    ['eps-space', 'epsSpace', ['pixel', 'normalized']],
    ['engine', 'engine', ['auto', 'webgpu', 'wasm']],
  ] as const) {
    const v = params.get(key);
    if (v !== null && !(allowed as readonly string[]).includes(v))
      throw new Error(`${key} must be one of ${allowed.join(', ')}, found "${v}"`);
    if (v !== null) ($(id) as HTMLSelectElement).value = v;
  }
}

async function main(): Promise<void> {
  setupDrawing();
  const r = await fetch(DATA + MANIFEST_FILE);
  if (!r.ok)
    throw new Error(
      `no prepared data at ${DATA}${MANIFEST_FILE} (HTTP ${r.status}): serve the page with \`dhta serve\`, which prepares it`,
    );
  manifest = (await r.json()) as WebManifest;
  if (manifest.models.length === 0)
    throw new Error('no model is prepared: run `dhta serve --models mnist-32`');
  const sel = $<HTMLSelectElement>('model');
  sel.innerHTML = manifest.models
    .map((m) => `<option value="${m.name}">${m.name} (${m.bits} bits)</option>`)
    .join('');
  const wanted = params.get('model') ?? manifest.models[0].name;
  sel.value = wanted;
  $<HTMLSelectElement>('engine').value = PAGE_DEFAULTS.engine;
  applyParams();
  await selectModel(wanted);
  applyParams(); // the target list exists now
  await showQuery();

  sel.addEventListener(
    'change',
    () => void guarded(async () => selectModel(sel.value)).then(() => setState('ready')),
  );
  $('engine').addEventListener('change', () => void guarded(openNetwork));
  $('query').addEventListener('change', () => void guarded(showQuery));
  $('query-random').addEventListener('click', () => {
    if (!loaded) return;
    $<HTMLInputElement>('query').value = String(Math.floor(Math.random() * loaded.dataset.query.count));
    void guarded(showQuery);
  });
  $('run').addEventListener('click', () => {
    void guarded(async () => {
      const result = await runAttack();
      if (result) writeResult(result);
      setState(result ? 'done' : 'ready');
    });
  });
  $('stop').addEventListener('click', () => {
    if (running) Atomics.store(running.stop, 0, 1);
  });
  $('tab-attack').addEventListener('click', () => showTab('attack'));
  $('tab-search').addEventListener('click', () => showTab('search'));
  $('search-pick').addEventListener('click', () => {
    void guarded(async () => {
      if (!loaded) return;
      await pickSearchQuery(
        intValue('query', $<HTMLInputElement>('search-query').value, 0, loaded.dataset.query.count - 1),
      );
    });
  });
  $('search-run').addEventListener('click', () => {
    void guarded(async () => {
      writeResult(await runSearch());
      setState('done');
    });
  });

  const tab = params.get('tab') === 'search' ? 'search' : 'attack';
  showTab(tab);
  setState('ready');
  if (params.get('run') === '1') {
    if (tab === 'search') {
      const k = params.get('k');
      if (params.get('query') !== null)
        await pickSearchQuery(
          intValue('query', params.get('query')!, 0, (loaded as Loaded).dataset.query.count - 1),
        );
      writeResult(await runSearch(k === null ? PAGE_DEFAULTS.top : intValue('k', k, 1, 1_000_000)));
      setState('done');
    } else {
      const result = await runAttack();
      if (!result) throw new Error('the run was stopped');
      writeResult(result);
      setState('done');
    }
  }
}

main().catch((e: unknown) => {
  console.warn(e);
  showError(e instanceof Error ? e.message : String(e));
});
