// `dhta serve`: the web app (apps/web) on a local http server, with the data its pages read. What a page needs
// and the CLI can compute once (a data set's query images and labels, the database's labels, images and codes
// under each model) is prepared into a data folder first, each part written whole or not at all, then served
// under /data/. Every response carries COOP/COEP headers: the page is cross-origin isolated, which
// WebAssembly threads (SharedArrayBuffer) need. No file outside the app and the data folder is served.

import { spawn } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openDataset } from '@dhta/data';
import { bytesPerCode, fromPm1, toFaissBytes, writeNpy } from '@dhta/kernels/hamming';
import { loadSpec, type ModelSpec } from '@dhta/models';
import {
  MANIFEST_FILE,
  WEB_DATA_FORMAT,
  type WebDataset,
  type WebManifest,
  type WebModel,
  type WebSplit,
} from '@dhta/web/format';
import type { Command } from 'commander';
import { intInRange, positiveInt } from './attack.js';
import { zooDir } from './demo.js';
import { CliError } from './errors.js';
import { cacheCodes, cacheDir, codesCacheFile, encodeDataset } from './experiment.js';
import { fsReason, makeDir, writeAtomic } from './files.js';
import {
  backendOption,
  ENGINE_HELP,
  type Engine,
  engineOption,
  openNetwork,
  withOptionalGpu,
} from './gpu.js';
import { printJson } from './output.js';
import { createProgress, type Progress } from './progress.js';

/** The models served when --models is not given. */
export const DEFAULT_WEB_MODELS = ['mnist-32', 'fashion-mnist-32'];

/** The repository's apps/web folder, from the bundle (apps/cli/dist) or the sources (apps/cli/src). */
export function webAppDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../web');
}

/** Where prepared data goes by default: beside the database-codes cache. */
export function defaultWebDataDir(): string {
  return join(cacheDir(), 'web');
}

// ---- preparing the data ----------------------------------------------------------------------------------

export interface PrepareOptions {
  dataDir: string;
  models: string[];
  engine?: Engine;
  cpuThreads?: number;
  backend?: string;
  adapter?: string;
  progress: Progress;
}

/** A model given by zoo name (mnist-32) or folder: its folder and the name it is served under. */
function modelLocation(name: string): { dir: string; name: string } {
  const isPath = name.includes('/') || name.includes(sep) || name.startsWith('.');
  const dir = isPath ? resolve(name) : join(zooDir(), name);
  return { dir, name: basename(dir) };
}

function zooNames(): string[] {
  try {
    return readdirNames(zooDir()).filter((n) => existsSync(join(zooDir(), n, 'model.json')));
  } catch {
    return [];
  }
}

function readdirNames(dir: string): string[] {
  return readdirSync(dir).sort();
}

function readManifest(dataDir: string): WebManifest {
  const path = join(dataDir, MANIFEST_FILE);
  if (!existsSync(path)) return { format: WEB_DATA_FORMAT, models: [], datasets: [] };
  let m: WebManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as WebManifest;
  } catch (e) {
    throw new CliError(
      `${path}: not a manifest of prepared web data (${(e as Error).message})`,
      `remove the folder ${dataDir} and run dhta serve again`,
    );
  }
  if (m.format !== WEB_DATA_FORMAT)
    throw new CliError(
      `${path}: format ${String(m.format)}, expected ${WEB_DATA_FORMAT}`,
      `remove the folder ${dataDir} and run dhta serve again`,
    );
  return m;
}

/** The data set a model was trained for, from its card, and the folder name it gets. */
function datasetOf(spec: ModelSpec, dir: string) {
  const card = (spec.card ?? {}) as {
    data?: unknown;
    split?: { seed?: unknown; trainPerClass?: unknown };
    heldOutClasses?: unknown;
  };
  if (typeof card.data !== 'string')
    throw new CliError(
      `${dir}/model.json: the model card names no data set (card.data)`,
      'the web app serves models trained by dhta train, whose card says which data set they take',
    );
  const seed = typeof card.split?.seed === 'number' ? card.split.seed : 0;
  const trainPerClass = typeof card.split?.trainPerClass === 'number' ? card.split.trainPerClass : null;
  const heldOut = Array.isArray(card.heldOutClasses) ? (card.heldOutClasses as number[]) : [];
  const key =
    `${card.data.replace(/[^A-Za-z0-9_.-]+/g, '_')}-seed${seed}` +
    (trainPerClass === null ? '' : `-train${trainPerClass}`) +
    (heldOut.length ? `-heldout${heldOut.join('.')}` : '');
  return { name: card.data, seed, trainPerClass, heldOut, key };
}

/** A split's pixels as .npy: uint8 when every pixel is exactly byte * (1 / 255) in float32, else float32. */
function pixelsNpy(
  pixels: Float32Array,
  shape: number[],
): { bytes: Uint8Array; format: 'u8' | 'f32'; offset: number } {
  const scale = 1 / 255;
  const u8 = new Uint8Array(pixels.length);
  let exact = true;
  for (let i = 0; i < pixels.length; i++) {
    const b = Math.round(pixels[i] * 255);
    if (Math.fround(b * scale) !== pixels[i]) {
      exact = false;
      break;
    }
    u8[i] = b;
  }
  const data = exact ? u8 : pixels;
  const bytes = writeNpy(data, shape);
  return { bytes, format: exact ? 'u8' : 'f32', offset: bytes.length - data.byteLength };
}

/** Fills a folder under a temporary name beside `dir`, then renames it into place (nothing half-written). */
async function writeDirAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  makeDir(tmp, 'a temporary folder');
  try {
    await fill(tmp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

async function prepareDataset(o: PrepareOptions, d: ReturnType<typeof datasetOf>): Promise<WebDataset> {
  const opened = await openDataset(d.name, {
    seed: d.seed,
    trainPerClass: d.trainPerClass ?? undefined,
    openSet: d.heldOut.length ? { heldOutClasses: d.heldOut } : undefined,
  });
  if (opened.info.kind !== 'image')
    throw new CliError(
      `${d.name} is a video data set; the web app shows image models only`,
      'serve an image model (mnist-32, fashion-mnist-32, ...)',
    );
  const rel = join('datasets', d.key);
  const splits: Partial<Record<'query' | 'database', WebSplit>> = {};
  await writeDirAtomic(join(o.dataDir, rel), async (tmp) => {
    for (const which of ['query', 'database'] as const) {
      const ds = opened[which];
      const pixels = new Float32Array(ds.length * ds.itemSize);
      const chunk = 5000;
      for (let s = 0; s < ds.length; s += chunk) {
        const idx = Array.from({ length: Math.min(chunk, ds.length - s) }, (_, k) => s + k);
        await ds.loadInto(idx, pixels, s * ds.itemSize);
        o.progress.update(`read ${which}`, s + idx.length, ds.length);
      }
      const px = pixelsNpy(pixels, ds.batchShape(ds.length));
      writeAtomic(join(tmp, `${which}-pixels.npy`), px.bytes);
      writeAtomic(join(tmp, `${which}-labels.npy`), writeNpy(ds.labels(), [ds.length, ds.classes]));
      splits[which] = {
        count: ds.length,
        pixels: `${rel}/${which}-pixels.npy`,
        pixelFormat: px.format,
        pixelsOffset: px.offset,
        labels: `${rel}/${which}-labels.npy`,
      };
    }
  });
  return {
    key: d.key,
    name: d.name,
    seed: d.seed,
    trainPerClass: d.trainPerClass,
    heldOutClasses: d.heldOut,
    classes: opened.info.classes,
    classNames: opened.info.classNames,
    itemShape: [opened.info.channels, opened.info.height, opened.info.width],
    query: splits.query!,
    database: splits.database!,
  };
}

async function prepareModel(
  o: PrepareOptions,
  loc: { dir: string; name: string },
  spec: ModelSpec,
  d: ReturnType<typeof datasetOf>,
): Promise<WebModel> {
  const rel = join('models', loc.name);
  const weights = readFileSync(join(loc.dir, 'weights.safetensors'));
  let engine: 'webgpu' | 'wasm' = 'wasm';
  await writeDirAtomic(join(o.dataDir, rel), async (tmp) => {
    const opened = await openDataset(d.name, {
      seed: d.seed,
      trainPerClass: d.trainPerClass ?? undefined,
      openSet: d.heldOut.length ? { heldOutClasses: d.heldOut } : undefined,
    });
    const codes = await withOptionalGpu(o, async (gpu) => {
      const net = await openNetwork(gpu, loc.dir, o.engine, o.cpuThreads);
      try {
        engine = net.engine.kind;
        if (net.inputSize !== opened.database.itemSize)
          throw new CliError(
            `the model ${loc.dir} takes inputs of ${net.inputSize} values, but ${d.name} items hold ${opened.database.itemSize}`,
          );
        // The protocol's cache of database codes (the same entry `dhta attack --data` reads and fills).
        const file = codesCacheFile(spec, weights, d.name, opened.info.seed, opened.database.length, engine);
        if (existsSync(file) && statSync(file).size === opened.database.length * net.bits) {
          const b = readFileSync(file);
          o.progress.log(`${loc.name}: database codes from the cache (${engine})`);
          return new Int8Array(b.buffer, b.byteOffset, b.length);
        }
        const c = await encodeDataset(net, opened.database, (done, total) =>
          o.progress.update(`encode ${loc.name}`, done, total),
        );
        try {
          cacheCodes(file, c);
        } catch {
          // a cache that cannot be written costs time next time, not this result
        }
        return c;
      } finally {
        net.destroy();
      }
    });
    writeAtomic(join(tmp, 'model.json'), readFileSync(join(loc.dir, 'model.json')));
    writeAtomic(join(tmp, 'weights.safetensors'), weights);
    const packed = toFaissBytes(fromPm1(spec.bits, codes));
    writeAtomic(
      join(tmp, 'database-codes.npy'),
      writeNpy(packed, [packed.length / bytesPerCode(spec.bits), bytesPerCode(spec.bits)]),
    );
  });
  const card = (spec.card ?? {}) as { cleanMap?: unknown };
  return {
    name: loc.name,
    dataset: d.key,
    bits: spec.bits,
    spec: `${rel}/model.json`,
    weights: `${rel}/weights.safetensors`,
    databaseCodes: `${rel}/database-codes.npy`,
    codesEngine: engine,
    cleanMap: typeof card.cleanMap === 'number' ? card.cleanMap : null,
  };
}

/** Checks the models and says what is missing, before any work. */
async function checkModels(names: string[]) {
  const out: { loc: { dir: string; name: string }; spec: ModelSpec; data: ReturnType<typeof datasetOf> }[] =
    [];
  for (const n of names) {
    const loc = modelLocation(n);
    if (!existsSync(join(loc.dir, 'model.json')) || !existsSync(join(loc.dir, 'weights.safetensors'))) {
      throw new CliError(
        `no model bundle at ${loc.dir} (model.json and weights.safetensors)`,
        `zoo models: ${zooNames().join(', ') || 'none found'}; or give a bundle folder made by dhta train`,
      );
    }
    const spec = await loadSpec(loc.dir);
    if (spec.task !== 'image')
      throw new CliError(
        `${n} is a video model; the web app shows image models only`,
        'serve an image model (mnist-32, fashion-mnist-32, ...)',
      );
    if (out.some((m) => m.loc.name === loc.name)) throw new CliError(`--models names ${loc.name} twice`);
    out.push({ loc, spec, data: datasetOf(spec, loc.dir) });
  }
  return out;
}

/** Whether a model's prepared files are there and come from these model files. */
function isPrepared(dataDir: string, m: WebModel | undefined, modelDir: string): boolean {
  if (!m) return false;
  const files = [m.spec, m.weights, m.databaseCodes].map((f) => join(dataDir, f));
  if (!files.every((f) => existsSync(f))) return false;
  return (
    readFileSync(files[0]).equals(readFileSync(join(modelDir, 'model.json'))) &&
    readFileSync(files[1]).equals(readFileSync(join(modelDir, 'weights.safetensors')))
  );
}

function datasetPresent(dataDir: string, d: WebDataset | undefined): boolean {
  return (
    !!d &&
    [d.query.pixels, d.query.labels, d.database.pixels, d.database.labels].every((f) =>
      existsSync(join(dataDir, f)),
    )
  );
}

/**
 * Prepares what the models need and is not in the data folder yet (prepare = true), or only checks that it is
 * there (prepare = false: a CliError saying what to run). Returns the manifest, written atomically.
 */
export async function prepareWebData(o: PrepareOptions, prepare: boolean): Promise<WebManifest> {
  const wanted = await checkModels(o.models);
  const manifest = readManifest(o.dataDir);
  const todo = wanted.filter(
    (w) =>
      !isPrepared(
        o.dataDir,
        manifest.models.find((m) => m.name === w.loc.name),
        w.loc.dir,
      ) ||
      !datasetPresent(
        o.dataDir,
        manifest.datasets.find((d) => d.key === w.data.key),
      ),
  );
  if (todo.length && !prepare) {
    throw new CliError(
      `no prepared data for ${todo.map((t) => t.loc.name).join(', ')} in ${o.dataDir}`,
      `run dhta serve --models ${o.models.join(',')}${o.dataDir === defaultWebDataDir() ? '' : ` --data-dir ${o.dataDir}`} ` +
        '(without --no-prepare), which prepares it once (reads the data set and encodes its database)',
    );
  }
  if (todo.length) makeDir(o.dataDir, 'the web data folder');
  for (const t of todo) {
    o.progress.log(`preparing ${t.loc.name} (data ${t.data.name}) in ${o.dataDir}`);
    if (
      !datasetPresent(
        o.dataDir,
        manifest.datasets.find((d) => d.key === t.data.key),
      )
    ) {
      const ds = await prepareDataset(o, t.data);
      manifest.datasets = [...manifest.datasets.filter((d) => d.key !== ds.key), ds];
    }
    const m = await prepareModel(o, t.loc, t.spec, t.data);
    manifest.models = [...manifest.models.filter((x) => x.name !== m.name), m];
    // The manifest after each model: an interrupted run keeps what it finished.
    writeAtomic(join(o.dataDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
  }
  // Served: the models asked for, in the order asked.
  return {
    format: WEB_DATA_FORMAT,
    models: wanted.map((w) => manifest.models.find((m) => m.name === w.loc.name)!),
    datasets: manifest.datasets.filter((d) => wanted.some((w) => w.data.key === d.key)),
  };
}

// ---- the web app ---------------------------------------------------------------------------------------

/** The built app (apps/web/dist), built first when it is missing or older than its sources. */
export async function webAppDist(log: (line: string) => void): Promise<string> {
  const app = webAppDir();
  const dist = join(app, 'dist');
  const script = join(app, 'build.mjs');
  if (existsSync(script)) {
    try {
      const b = (await import(pathToFileURL(script).href)) as {
        isStale(): boolean;
        buildWeb(): Promise<unknown>;
      };
      if (b.isStale()) {
        log('building the web app (apps/web)');
        await b.buildWeb();
      }
    } catch (e) {
      if (!existsSync(join(dist, 'index.html')))
        throw new CliError(
          `the web app is not built and could not be built: ${(e as Error).message}`,
          'install the workspace (pnpm install), then run pnpm --filter @dhta/web build',
        );
    }
  }
  for (const f of ['index.html', 'app.js', 'worker.js', 'app.css']) {
    if (!existsSync(join(dist, f)))
      throw new CliError(
        `the web app is not built: ${join(dist, f)} is missing`,
        'run pnpm --filter @dhta/web build (esbuild, from the workspace install)',
      );
  }
  return dist;
}

// ---- the server ----------------------------------------------------------------------------------------

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.npy': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

/** The headers of every response: cross-origin isolation (COOP/COEP), same-origin resources only. */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' blob:; worker-src 'self' blob:; " +
    "img-src 'self' data: blob:; style-src 'self'; connect-src 'self'",
  'Cache-Control': 'no-cache',
};

/** A file under `root` for a URL path, or null (outside it, a folder, not there). */
function fileUnder(root: string, urlPath: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  const full = resolve(root, `.${path.startsWith('/') ? path : `/${path}`}`);
  if (full !== root && !full.startsWith(root + sep)) return null;
  try {
    return statSync(full).isFile() ? full : null;
  } catch {
    return null;
  }
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { ...ISOLATION_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

function serveFile(req: IncomingMessage, res: ServerResponse, file: string): void {
  const size = statSync(file).size;
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  const headers = { ...ISOLATION_HEADERS, 'Content-Type': type, 'Accept-Ranges': 'bytes' };
  const range = req.headers.range;
  let start = 0;
  let end = size - 1;
  let status = 200;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === '' && m[2] === '')) {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` }).end();
      return;
    }
    if (m[1] === '') {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
    if (start > end || start >= size) {
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${size}` }).end();
      return;
    }
    status = 206;
    Object.assign(headers, { 'Content-Range': `bytes ${start}-${end}/${size}` });
  }
  res.writeHead(status, { ...headers, 'Content-Length': String(end - start + 1) });
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  createReadStream(file, { start, end })
    .on('error', () => res.destroy())
    .pipe(res);
}

export interface WebServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Serves the app at / and the data folder at /data/. Port 0 takes any free port. */
export async function startWebServer(
  appDir: string,
  dataDir: string,
  port: number,
  host: string,
  manifest?: () => WebManifest | null,
): Promise<WebServer> {
  const app = resolve(appDir);
  const data = resolve(dataDir);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET and HEAD');
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (manifest && path === `/data/${MANIFEST_FILE}`) {
      // The models this server was started for (the folder may hold more); none until they are prepared.
      const m = manifest();
      if (!m) return send(res, 503, 'the data is still being prepared: reload in a moment');
      res.writeHead(200, { ...ISOLATION_HEADERS, 'Content-Type': TYPES['.json'] });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(m));
      return;
    }
    let file: string | null;
    if (path === '/') file = fileUnder(app, '/index.html');
    else if (path.startsWith('/data/')) file = fileUnder(data, path.slice('/data'.length));
    else file = fileUnder(app, path);
    if (!file) return send(res, 404, `not found: ${path}`);
    try {
      serveFile(req, res, file);
    } catch (e) {
      send(res, 500, fsReason(e));
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE')
        fail(
          new CliError(
            `port ${port} on ${host} is in use (another server, or another dhta serve)`,
            'pick another with --port N, or --port 0 for any free port',
          ),
        );
      else if (e.code === 'EACCES')
        fail(
          new CliError(
            `no permission to listen on ${host}:${port}`,
            'ports below 1024 need root: pick a port from 1024 up, e.g. --port 8080',
          ),
        );
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND')
        fail(
          new CliError(`cannot listen on ${host}: no such address on this machine`, 'try --host 127.0.0.1'),
        );
      else fail(new CliError(`cannot listen on ${host}:${port}: ${e.message}`));
    });
    server.listen(port, host, () => ok());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}/`,
    server,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

/** Opens a URL in the desktop's browser (best effort: a line says so when it cannot). */
function openInBrowser(url: string, log: (line: string) => void): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url];
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => log(`could not open a browser (${cmd} failed): open ${url} yourself`));
    child.unref();
  } catch {
    log(`could not open a browser: open ${url} yourself`);
  }
}

interface ServeFlags {
  port: number;
  host: string;
  open?: boolean;
  models: string[];
  dataDir?: string;
  prepare: boolean;
  engine?: Engine;
  cpuThreads?: number;
  backend?: string;
  adapter?: string;
  json?: boolean;
}

function modelList(v: string): string[] {
  const list = v.split(',').map((s) => s.trim());
  if (list.some((s) => s === ''))
    throw new CliError(`--models must be comma-separated model names, found "${v}"`);
  return list;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'Serve the web app: attack a hashing model live in the browser (DHTA, P2P, HAG, Noise on WebGPU or ' +
        'WebAssembly) and search its database by Hamming distance, all in the page. Prepares once what the page ' +
        "reads (the data set's images and labels, the database codes of each model) into --data-dir, then serves " +
        'the app at / and that folder at /data/, cross-origin isolated (COOP/COEP). Ctrl-C stops it.\n' +
        'Automation: /?model=mnist-32&query=ID&target=LABEL&method=dhta&iters=N&eps=E&epsSpace=pixel&engine=webgpu|wasm&seed=S&run=1 ' +
        'runs at once and sets document.body.dataset.state to "done" (result in <script id="dhta-result">) or ' +
        '"error" (message in #dhta-error); see apps/web/README.md.',
    )
    .option(
      '--port <N>',
      'port to listen on, 0 to 65535 (0: any free port)',
      intInRange('--port', 0, 65535),
      8080,
    )
    .option('--host <H>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--open', "open the page in the desktop's browser")
    .option(
      '--models <LIST>',
      `comma-separated zoo names or bundle folders of image models (default ${DEFAULT_WEB_MODELS.join(',')})`,
      modelList,
      DEFAULT_WEB_MODELS,
    )
    .option(
      '--data-dir <DIR>',
      'where the prepared data is kept (default $DHTA_CACHE/web, i.e. ~/.cache/dhta/web)',
    )
    .option(
      '--no-prepare',
      'serve only what is prepared already; stop with what to run if something is missing',
    )
    .option('--engine <E>', `engine that encodes the databases when preparing; ${ENGINE_HELP}`, engineOption)
    .option(
      '--cpu-threads <T>',
      'threads of the WebAssembly engine when preparing, 1 to 16',
      positiveInt('--cpu-threads', 16),
    )
    .option('--backend <B>', 'WebGPU backend when preparing (vulkan, metal, d3d12, ...)', backendOption)
    .option('--adapter <NAME>', 'adapter name substring, when preparing')
    .option('--json', 'print one JSON line {url, models, dataDir, appDir} once serving (then serve on)')
    .action(async (f: ServeFlags) => {
      const progress = createProgress({ quiet: f.json });
      const dataDir = resolve(f.dataDir ?? defaultWebDataDir());
      const appDir = await webAppDist((l) => progress.log(l));
      // Listening first: a port in use is said before any preparing.
      let manifest: WebManifest | null = null;
      const web = await startWebServer(appDir, dataDir, f.port, f.host, () => manifest);
      try {
        manifest = await prepareWebData(
          {
            dataDir,
            models: f.models,
            engine: f.engine,
            cpuThreads: f.cpuThreads,
            backend: f.backend,
            adapter: f.adapter,
            progress,
          },
          f.prepare,
        );
      } catch (e) {
        await web.close();
        throw e;
      } finally {
        progress.stop();
      }
      const names = manifest.models.map((m) => m.name);
      if (f.json) printJson({ url: web.url, models: names, dataDir, appDir });
      else {
        process.stdout.write(
          `serving the web app at ${web.url} (models ${names.join(', ')}; data ${dataDir}); Ctrl-C stops it\n`,
        );
      }
      if (f.open) openInBrowser(web.url, (l) => process.stderr.write(`dhta: ${l}\n`));
      await new Promise<void>((done) => {
        const stop = () => {
          web.server.closeAllConnections?.();
          void web.close().then(done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
