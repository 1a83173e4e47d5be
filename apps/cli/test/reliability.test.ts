// Runs that cannot lie: resume after a torn line, shards merged, one run per folder, repeats and bad numbers
// refused before any work, examples that do not depend on the batch, and a killed launcher that leaves no
// worker behind.

import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpyFile, writeNpyFile } from '@dhta/kernels/hamming';
import { SeededRandom } from '@dhta/kernels/reference';
import { initWeights, saveBundle, smallCnn } from '@dhta/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cliRunner, lastJson } from './cli-helper.js';
import { writeIdx } from './idx-fixture.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'dhta-reliability-'));
const dhta = cliRunner(join(root, 'cache'));
const model = join(root, 'model');
const bits = 16;
const data = () => `idx:${join(root, 'idx')}`;
// Default batch (100): the shards and the resumed run attack other batches than the whole run.
const common = () => [
  '--model',
  model,
  '--data',
  data(),
  '--queries',
  '6',
  '--n-t',
  '3',
  '--iters',
  '6',
  '--methods',
  'original,noise,p2p,dhta',
  '--json',
];
const rowsOf = (dir: string) =>
  readFileSync(join(dir, 'results.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => ({ ...JSON.parse(l), seconds: 0 }));

describe('runs that cannot lie', () => {
  const whole = join(root, 'whole');
  beforeAll(async () => {
    await buildCli();
    const spec = smallCnn(bits);
    await saveBundle(model, { spec, weights: initWeights(spec, 3) });
    writeIdx(join(root, 'idx'), new SeededRandom(5));
    const r = dhta('attack', ...common(), '--out-dir', whole);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
  }, 300_000);

  it('a resumed run after a torn last line equals the uninterrupted one, byte for byte, each query once', () => {
    const cut = join(root, 'cut');
    cpSync(whole, cut, { recursive: true });
    rmSync(join(cut, 'metrics.json'));
    const text = readFileSync(join(cut, 'results.jsonl'), 'utf8');
    // Cut in the middle of the last line (a kill while the last batch's lines were written).
    const last = text.lastIndexOf('\n', text.length - 2);
    writeFileSync(join(cut, 'results.jsonl'), text.slice(0, last + 1 + 30));
    const r = dhta('attack', ...common(), '--out-dir', cut, '--resume');
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(rowsOf(cut)).toHaveLength(6 * 4);
    expect(rowsOf(cut)).toEqual(rowsOf(whole));
    expect(readFileSync(join(cut, 'metrics.json'), 'utf8')).toBe(
      readFileSync(join(whole, 'metrics.json'), 'utf8'),
    );
    // The attack time of every session is counted.
    const timing = JSON.parse(readFileSync(join(cut, 'timing.json'), 'utf8'));
    expect(timing.sessions).toHaveLength(2);
  });

  it('counts a repeated (method, query) line once (files written by older versions)', () => {
    const dup = join(root, 'dup');
    cpSync(whole, dup, { recursive: true });
    const lines = readFileSync(join(dup, 'results.jsonl'), 'utf8').trim().split('\n');
    const row = JSON.parse(lines[lines.length - 1]);
    // The same key again with other figures: the first line written for a key is the one counted.
    lines.push(JSON.stringify({ ...row, tap: 0, ap: 0, perceptibility: 1 }));
    writeFileSync(join(dup, 'results.jsonl'), `${lines.join('\n')}\n`);
    rmSync(join(dup, 'metrics.json'));
    const r = dhta('attack', ...common(), '--out-dir', dup, '--resume');
    expect(r.code).toBe(0);
    expect(lastJson(r).queries).toBe(6);
    expect(readFileSync(join(dup, 'metrics.json'), 'utf8')).toBe(
      readFileSync(join(whole, 'metrics.json'), 'utf8'),
    );
  });

  it('shards 0/2 and 1/2 merged give the unsharded metrics.json byte for byte (default batch)', () => {
    for (const i of [0, 1]) {
      const r = dhta('attack', ...common(), '--shard', `${i}/2`, '--out-dir', join(root, `shard${i}`));
      expect(r.stderr).not.toMatch(/error/);
      expect(r.code).toBe(0);
    }
    const merged = join(root, 'merged');
    const m = dhta('merge', join(root, 'shard0'), join(root, 'shard1'), '--out-dir', merged, '--json');
    expect(m.code).toBe(0);
    expect(readFileSync(join(merged, 'metrics.json'), 'utf8')).toBe(
      readFileSync(join(whole, 'metrics.json'), 'utf8'),
    );
    expect(rowsOf(merged)).toEqual(rowsOf(whole));
  });

  it('takes one run per output folder: a live holder is named, a stale lock is taken over', () => {
    const busy = join(root, 'busy');
    mkdirSync(busy, { recursive: true });
    const lock = join(busy, '.dhta.lock');
    // This test's own process is alive on this host: the folder is in use.
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: 'now' }));
    const r = dhta('attack', ...common(), '--out-dir', busy);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`in use by another dhta run \\(pid ${process.pid} on `));
    expect(existsSync(join(busy, 'results.jsonl'))).toBe(false);
    // A lock whose process is gone is stale.
    writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname() }));
    const ok = dhta('attack', ...common(), '--out-dir', busy);
    expect(ok.stderr).not.toMatch(/error/);
    expect(ok.code).toBe(0);
    expect(existsSync(lock)).toBe(false);
  });

  it('refuses repeated methods and out-of-range or non-decimal numbers before any work, creating nothing', () => {
    const cases: [string[], RegExp][] = [
      [['--methods', 'dhta,dhta'], /"dhta" is listed twice/],
      [['--iters', '1e20'], /--iters must be an integer from 1 to 1000000, found "1e20"/],
      [['--iters', '0x10'], /--iters must be an integer/],
      [['--eps', '1e9'], /--eps must be a number > 0 and <= 100/],
      [['--eps', '2', '--eps-space', 'pixel'], /--eps must be at most 1 with --eps-space pixel/],
      [['--seed', '1e300'], /--seed must be an integer from 0 to 4294967295/],
      [['--batch', '-3'], /--batch must be an integer/],
      [['--cpu-threads', '17'], /--cpu-threads must be an integer from 1 to 16/],
    ];
    for (const [args, message] of cases) {
      const out = join(root, `refused-${args.join('')}`);
      const r = dhta('attack', ...common(), ...args, '--out-dir', out);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n').length, args.join(' ')).toBeLessThanOrEqual(2);
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
    // A folder that cannot be made says why, and leaves nothing.
    writeFileSync(join(root, 'a-file'), 'x');
    const r = dhta('attack', ...common(), '--out-dir', join(root, 'a-file', 'out'));
    expect(r.stderr).toMatch(/cannot create the output folder .*a part of the path is a file/);
  });

  it('writes the same examples and report whatever the batch', async () => {
    const small = join(root, 'batch1');
    const r = dhta('attack', ...common(), '--batch', '1', '--out-dir', small);
    expect(r.code).toBe(0);
    for (const m of ['noise', 'p2p', 'dhta']) {
      const a = await readNpyFile(join(small, 'examples', `${m}.npy`));
      const b = await readNpyFile(join(whole, 'examples', `${m}.npy`));
      expect(a.shape).toEqual([6, 1, 28, 28]);
      expect(Buffer.from((a.data as Float32Array).buffer)).toEqual(
        Buffer.from((b.data as Float32Array).buffer),
      );
      expect(readFileSync(join(small, 'examples', `${m}.json`), 'utf8')).toBe(
        readFileSync(join(whole, 'examples', `${m}.json`), 'utf8'),
      );
    }
    expect(readFileSync(join(small, 'metrics.json'), 'utf8')).toBe(
      readFileSync(join(whole, 'metrics.json'), 'utf8'),
    );
    const rep = dhta('report', small);
    expect(rep.stderr).not.toMatch(/error/);
    expect(rep.code).toBe(0);
  });

  it('refuses a damaged results header in merge at once, and bad report inputs with one line', () => {
    const bad = join(root, 'bad-header');
    mkdirSync(bad, { recursive: true });
    const lines = readFileSync(join(whole, 'results.jsonl'), 'utf8').split('\n');
    const head = JSON.parse(lines[0]);
    head.header.queries = 1e9;
    writeFileSync(join(bad, 'results.jsonl'), [JSON.stringify(head), ...lines.slice(1)].join('\n'));
    const t0 = Date.now();
    const m = dhta('merge', bad, '--out-dir', join(root, 'bad-merged'));
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(m.stderr).toMatch(
      /results.jsonl:1: header field "queries": expected an integer in \[1, 10000000\]/,
    );
    // A row with a null where a number belongs.
    const row = JSON.parse(lines[1]);
    writeFileSync(
      join(bad, 'results.jsonl'),
      [lines[0], JSON.stringify({ ...row, precision: null }), ''].join('\n'),
    );
    expect(dhta('merge', bad, '--out-dir', join(root, 'bad-merged')).stderr).toMatch(
      /results.jsonl:2: field "precision": expected 17 numbers or nulls/,
    );
    // Report: a metrics.json with a string where a number belongs; a retrieval.json naming another data set.
    const rep = join(root, 'bad-report');
    cpSync(whole, rep, { recursive: true });
    const metrics = JSON.parse(readFileSync(join(rep, 'metrics.json'), 'utf8'));
    writeFileSync(
      join(rep, 'metrics.json'),
      JSON.stringify({ ...metrics, metrics: [{ ...metrics.metrics[0], anchorDistance: 'x' }] }),
    );
    expect(dhta('report', rep).stderr).toMatch(/metrics\[0\]\.anchorDistance: expected a number, found "x"/);
    writeFileSync(join(rep, 'metrics.json'), JSON.stringify(metrics));
    const retrieval = JSON.parse(readFileSync(join(rep, 'retrieval.json'), 'utf8'));
    writeFileSync(join(rep, 'retrieval.json'), JSON.stringify({ ...retrieval, data: 'mnist' }));
    expect(dhta('report', rep).stderr).toMatch(/retrieval.json: data "mnist" differs from metrics.json's/);
    expect(readdirSync(rep).some((f) => f.includes('.tmp-'))).toBe(false);
  });

  it('file mode: P2P attacks towards one of the n_t codes (drawn per query id), not their vote', async () => {
    const rng = new SeededRandom(8);
    const n = 3;
    const x = Float32Array.from(rng.uniformArray(n * 784, 0, 1));
    const targets = Int8Array.from({ length: n * 5 * bits }, () => (rng.next() < 0.5 ? -1 : 1));
    await writeNpyFile(join(root, 'fx.npy'), x, [n, 1, 28, 28]);
    await writeNpyFile(join(root, 'ft.npy'), targets, [n, 5, bits]);
    const run = (method: string, out: string, ...extra: string[]) => {
      const r = dhta(
        'attack',
        '--model',
        model,
        '--input',
        join(root, 'fx.npy'),
        '--targets',
        join(root, 'ft.npy'),
        '--method',
        method,
        '--iters',
        '3',
        '--out-dir',
        join(root, out),
        ...extra,
      );
      expect(r.stderr).not.toMatch(/error/);
      expect(r.code).toBe(0);
    };
    run('p2p', 'fp2p');
    run('dhta', 'fdhta');
    const p2p = (await readNpyFile(join(root, 'fp2p', 'anchors.npy'))).data as Int8Array;
    const vote = (await readNpyFile(join(root, 'fdhta', 'anchors.npy'))).data as Int8Array;
    expect(Array.from(p2p)).not.toEqual(Array.from(vote));
    for (let q = 0; q < n; q++) {
      const a = Array.from(p2p.subarray(q * bits, (q + 1) * bits));
      const options = Array.from({ length: 5 }, (_, t) =>
        Array.from(targets.subarray((q * 5 + t) * bits, (q * 5 + t + 1) * bits)),
      );
      expect(options).toContainEqual(a);
    }
    // Noise on query 2 alone, from its own file with its id: the same pixels as in the 3-query file.
    run('noise', 'fnoise');
    await writeNpyFile(join(root, 'fx2.npy'), x.slice(2 * 784), [1, 1, 28, 28]);
    const r = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'fx2.npy'),
      '--method',
      'noise',
      '--query-ids',
      '2',
      '--out-dir',
      join(root, 'fnoise2'),
    );
    expect(r.code).toBe(0);
    const all = (await readNpyFile(join(root, 'fnoise', 'adversarial.npy'))).data as Float32Array;
    const one = (await readNpyFile(join(root, 'fnoise2', 'adversarial.npy'))).data as Float32Array;
    expect(Array.from(one)).toEqual(Array.from(all.subarray(2 * 784)));
    // A NaN pixel is named with its file and index.
    const nan = x.slice(0, 784);
    nan[17] = Number.NaN;
    await writeNpyFile(join(root, 'fnan.npy'), nan, [1, 1, 28, 28]);
    const bad = dhta(
      'attack',
      '--model',
      model,
      '--input',
      join(root, 'fnan.npy'),
      '--method',
      'noise',
      '--out-dir',
      join(root, 'fnan'),
    );
    expect(bad.stderr).toMatch(/fnan.npy: expected pixels in \[0, 1\], found NaN at flat index 17/);
  });

  it('a kill of the launcher stops the work: no process left running', async () => {
    const out = join(root, 'killed-run');
    const child = spawn(
      process.execPath,
      [
        join(here, '../run.mjs'),
        'attack',
        ...common().filter((a) => a !== '--json'),
        '--iters',
        '100000',
        '--out-dir',
        out,
      ],
      { env: { ...process.env, DHTA_CACHE: join(root, 'cache') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (d) => {
      err += String(d);
    });
    // Wait until the attack runs (the progress line shows up), then kill what the user started.
    const t0 = Date.now();
    while (!/p2p|noise/.test(err) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 200));
    expect(err).toMatch(/p2p|noise/);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, 500));
    const running = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(out);
        } catch {
          return false;
        }
      });
    expect(running).toEqual([]);
  });
});
