import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, writeNpyFile } from '@dhta/kernels/hamming';
import { beforeAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '../dist/dhta.mjs');

function dhta(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('dhta CLI', () => {
  beforeAll(async () => {
    const { bundle } = await import('../build.mjs');
    await bundle();
  });

  it('explains its commands', () => {
    const r = dhta('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/doctor/);
    expect(r.stdout).toMatch(/bench/);
    const b = dhta('bench', 'kernels', '--help');
    expect(b.stdout).toMatch(/--groups/);
    expect(b.stdout).toMatch(/--json/);
  });

  it('doctor --json reports the adapter and exits cleanly', () => {
    const r = dhta('doctor', '--json');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
    expect(typeof report.adapter.description).toBe('string');
    expect(typeof report.adapter.isSoftware).toBe('boolean');
    expect(report.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(Array.isArray(report.features)).toBe(true);
    // The WebAssembly engine works here, and auto picks it for image models on this software adapter.
    expect(report.cpuEngine).toMatchObject({
      available: true,
      autoEngine: report.adapter.isSoftware ? 'wasm' : 'webgpu',
    });
    expect(report.cpuEngine.threads).toBeGreaterThanOrEqual(1);
  });

  it('bench kernels --json prints one line of rows with gflops and ms', () => {
    const r = dhta('bench', 'kernels', '--groups', 'small-cnn', '--reps', '1', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim());
    expect(out.rows).toHaveLength(9);
    for (const row of out.rows) {
      expect(row.gflops).toBeGreaterThan(0);
      expect(row.ms).toBeGreaterThan(0);
      expect(['forward', 'backward-input', 'backward-weight']).toContain(row.direction);
    }
  });

  it('bad input gets one clear line and a nonzero exit code', () => {
    const r = dhta('bench', 'kernels', '--groups', 'nope');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown group "nope"/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    const u = dhta('frobnicate');
    expect(u.code).not.toBe(0);
    expect(u.stderr).toMatch(/unknown command/);
  });

  it('search writes distances and ids equal to brute force, ties by id, k > n clipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-cli-search-'));
    const bits = 12; // two bytes per code, 4 unused high bits
    const n = 40;
    const nq = 3;
    let s = 12345;
    const rnd = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s >>> 16;
    };
    // Few distinct codes so that many ties occur.
    const db = new Uint8Array(n * 2).map((_, i) => (i % 2 ? rnd() & 0x03 : rnd() & 0x0f));
    const q = new Uint8Array(nq * 2).map((_, i) => (i % 2 ? rnd() & 0x03 : rnd() & 0x0f));
    await writeNpyFile(join(dir, 'db.npy'), db, [n, 2]);
    await writeNpyFile(join(dir, 'q.npy'), q, [nq, 2]);
    for (const [k, backend] of [
      [5, 'cpu'],
      [100, 'cpu'],
      [5, 'gpu'],
      [100, 'auto'],
    ] as const) {
      const out = join(dir, `out${k}${backend}`);
      const r = dhta(
        'search',
        '--backend',
        backend,
        '--bits',
        '12',
        '--db',
        join(dir, 'db.npy'),
        '--queries',
        join(dir, 'q.npy'),
        '--k',
        String(k),
        '--out-dir',
        out,
        '--json',
      );
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim());
      const kk = Math.min(k, n);
      expect(summary).toMatchObject({ n, bits, queries: nq, k: kk });
      const d = readNpy(readFileSync(join(out, 'distances.npy')));
      const ids = readNpy(readFileSync(join(out, 'ids.npy')));
      expect(d.dtype).toBe('int32');
      expect(ids.shape).toEqual([nq, kk]);
      for (let i = 0; i < nq; i++) {
        const brute = Array.from({ length: n }, (_, j) => {
          const x = (q[2 * i] ^ db[2 * j]) | ((q[2 * i + 1] ^ db[2 * j + 1]) << 8);
          let c = 0;
          for (let b = 0; b < 12; b++) c += (x >> b) & 1;
          return [c, j];
        }).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        expect(Array.from((d.data as Int32Array).slice(i * kk, (i + 1) * kk))).toEqual(
          brute.slice(0, kk).map((e) => e[0]),
        );
        expect(Array.from((ids.data as Int32Array).slice(i * kk, (i + 1) * kk))).toEqual(
          brute.slice(0, kk).map((e) => e[1]),
        );
      }
    }
  });

  it('search refuses codes of the wrong width and writes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-cli-search-'));
    await writeNpyFile(join(dir, 'db.npy'), new Uint8Array(8), [2, 4]);
    await writeNpyFile(join(dir, 'q.npy'), new Uint8Array(8), [1, 8]);
    const r = dhta(
      'search',
      '--bits',
      '64',
      '--db',
      join(dir, 'db.npy'),
      '--queries',
      join(dir, 'q.npy'),
      '--k',
      '1',
      '--out-dir',
      join(dir, 'out'),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/expected a uint8 array of shape \(n, 8\).*found uint8 \(2, 4\)/);
    expect(existsSync(join(dir, 'out', 'ids.npy'))).toBe(false);
    const k0 = dhta(
      'search',
      '--bits',
      '64',
      '--db',
      join(dir, 'q.npy'),
      '--queries',
      join(dir, 'q.npy'),
      '--k',
      '0',
      '--out-dir',
      join(dir, 'out'),
    );
    expect(k0.code).not.toBe(0);
    expect(k0.stderr).toMatch(/--k must be an integer from 1 to 1000000000, found "0"/);
  });
});
