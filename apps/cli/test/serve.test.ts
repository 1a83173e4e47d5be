// `dhta serve`: the server (headers, range requests, nothing outside its two folders) and the command's errors
// (port in use, missing model or data: each says what to run). The page itself: apps/web/test/web.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../src/errors.js';
import { startWebServer, type WebServer } from '../src/serve.js';
import { buildCli, CLI } from './cli-helper.js';

const root = mkdtempSync(join(tmpdir(), 'dhta-serve-'));
const app = join(root, 'app');
const data = join(root, 'data');
const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
let web: WebServer;

beforeAll(async () => {
  mkdirSync(app);
  mkdirSync(join(data, 'sub'), { recursive: true });
  writeFileSync(join(app, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(app, 'app.js'), 'export {};');
  writeFileSync(join(data, 'sub/x.npy'), bytes);
  writeFileSync(join(root, 'secret.txt'), 'not served');
  web = await startWebServer(app, data, 0, '127.0.0.1', () => ({
    format: 'dhta-web-data/1',
    models: [],
    datasets: [],
  }));
  await buildCli();
});

afterAll(async () => {
  await web?.close();
  rmSync(root, { recursive: true, force: true });
});

function serve(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'serve', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, DHTA_CACHE: join(root, 'cache') },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A refused run: exit code 1, one `dhta: error: ...` line and at most a `hint:` line, no stack trace. */
function expectOneError(r: { code: number | null; stderr: string }): void {
  expect(r.code).toBe(1);
  // (A first run may say that it builds the web app before it fails.)
  const all = r.stderr.trim().split('\n');
  const lines = all.slice(all.findIndex((l) => l.startsWith('dhta: ')));
  expect(lines[0], r.stderr).toMatch(/^dhta: error: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
  if (lines[1]) expect(lines[1]).toMatch(/^hint: /);
}

describe('the web server', () => {
  it('serves the app at / and the data at /data/, cross-origin isolated', async () => {
    const r = await fetch(web.url);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('<title>t</title>');
    expect(r.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(r.headers.get('cross-origin-resource-policy')).toBe('same-origin');
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    const js = await fetch(`${web.url}app.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    const d = await fetch(`${web.url}data/sub/x.npy`);
    expect(new Uint8Array(await d.arrayBuffer())).toEqual(bytes);
    const m = await fetch(`${web.url}data/manifest.json`);
    expect(await m.json()).toEqual({ format: 'dhta-web-data/1', models: [], datasets: [] });
  });

  it('answers range requests (the page fetches database images one by one)', async () => {
    const part = await fetch(`${web.url}data/sub/x.npy`, { headers: { Range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 10-19/1000');
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.slice(10, 20));
    const tail = await fetch(`${web.url}data/sub/x.npy`, { headers: { Range: 'bytes=-5' } });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(bytes.slice(995));
    const open = await fetch(`${web.url}data/sub/x.npy`, { headers: { Range: 'bytes=990-' } });
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(bytes.slice(990));
    const past = await fetch(`${web.url}data/sub/x.npy`, { headers: { Range: 'bytes=1000-1010' } });
    expect(past.status).toBe(416);
  });

  it('serves nothing outside its two folders, and only GET and HEAD', async () => {
    for (const p of [
      '../secret.txt',
      '%2e%2e/secret.txt',
      'data/%2e%2e/secret.txt',
      'data/..%2fsecret.txt',
      'data/sub',
      'nope.js',
    ]) {
      const r = await fetch(`${web.url}${p}`);
      expect(r.status, p).toBe(404);
      expect(await r.text()).not.toContain('not served');
    }
    const post = await fetch(web.url, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
  });

  it('says when the port is in use, and what to do', async () => {
    const port = Number(new URL(web.url).port);
    const e = await startWebServer(app, data, port, '127.0.0.1').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).message).toMatch(new RegExp(`port ${port} on 127.0.0.1 is in use`));
    expect((e as CliError).hint).toMatch(/--port/);
  });
});

describe('dhta serve', () => {
  it('documents its options', () => {
    const r = serve('--help');
    expect(r.code).toBe(0);
    for (const o of [
      '--port',
      '--host',
      '--open',
      '--models',
      '--data-dir',
      '--no-prepare',
      'COOP/COEP',
      'run=1',
    ])
      expect(r.stdout).toContain(o);
  });

  it('stops on a port in use before preparing anything', async () => {
    const blocker = createServer();
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = serve('--port', String(port), '--data-dir', join(root, 'unused'));
      expectOneError(r);
      expect(r.stderr).toMatch(new RegExp(`port ${port} on 127.0.0.1 is in use`));
      expect(r.stderr).toMatch(/--port 0/);
      expect(r.stderr).not.toMatch(/preparing/);
    } finally {
      blocker.close();
    }
  });

  it('says what to run when the data is not prepared (--no-prepare), and writes nothing', () => {
    const dir = join(root, 'empty');
    const r = serve('--port', '0', '--no-prepare', '--models', 'mnist-32', '--data-dir', dir);
    expectOneError(r);
    expect(r.stderr).toMatch(/no prepared data for mnist-32/);
    expect(r.stderr).toMatch(/run dhta serve --models mnist-32 --data-dir/);
    expect(spawnSync('ls', [dir]).status).not.toBe(0);
  });

  it('names the zoo models when a model is missing, and refuses video models', () => {
    const r = serve('--port', '0', '--models', 'no-such-model', '--data-dir', join(root, 'x'));
    expectOneError(r);
    expect(r.stderr).toMatch(/no model bundle at .*no-such-model/);
    expect(r.stderr).toMatch(/zoo models: .*mnist-32/);
    const v = serve('--port', '0', '--models', 'moving-mnist-32', '--data-dir', join(root, 'x'));
    expectOneError(v);
    expect(v.stderr).toMatch(/moving-mnist-32 is a video model/);
  });

  it('refuses a bad port', () => {
    const r = serve('--port', '70000');
    expectOneError(r);
    expect(r.stderr).toMatch(/--port must be an integer from 0 to 65535/);
  });
});
