import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
});
