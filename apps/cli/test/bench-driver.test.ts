import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DRIVER_PROBES } from '@dhta/kernels';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { registerBench } from '../src/bench.js';

function program(): Command {
  const p = new Command().exitOverride();
  registerBench(p);
  return p;
}

describe('dhta bench driver', () => {
  it('--quick --json prints one line with a finite positive rate for every probe; --out writes the same JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-driver-'));
    const out = join(dir, 'd.json');
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      await program().parseAsync(['bench', 'driver', '--quick', '--json', '--out', out], { from: 'user' });
    } finally {
      spy.mockRestore();
    }
    const json = lines.filter((l) => l.trim().startsWith('{'));
    expect(json).toHaveLength(1);
    const r = JSON.parse(json[0]);
    expect(r).toMatchObject({ quick: true, reps: 3 });
    expect(typeof r.device).toBe('string');
    for (const probe of DRIVER_PROBES) {
      const rows = r.rows.filter((row: { probe: string }) => row.probe === probe);
      expect(rows.length, probe).toBeGreaterThan(0);
      for (const row of rows) {
        expect(Number.isFinite(row.rate) && row.rate > 0, `${probe} ${row.variant}: ${row.rate}`).toBe(true);
        expect(row.ms, `${probe} ${row.variant}`).toBeGreaterThan(0);
        expect(typeof row.unit).toBe('string');
      }
    }
    expect(r.rows.map((row: { probe: string }) => row.probe)).toEqual(
      expect.arrayContaining([
        'fma',
        'load-f32',
        'load-vec4',
        'load-uniform',
        'load-workgroup',
        'barrier',
        'dispatch',
      ]),
    );
    for (const v of Object.values(r.summary)) expect(Number.isFinite(v) && (v as number) > 0).toBe(true);
    expect(['clamped', 'zero', 'other']).toContain(r.robustness.behaviour);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(r);
    expect(readdirSync(dir)).toEqual(['d.json']); // no temporary file left behind
  });

  it('refuses a bad --reps with one clear message', async () => {
    await expect(program().parseAsync(['bench', 'driver', '--reps', '0'], { from: 'user' })).rejects.toThrow(
      /--reps must be an integer from 1 to 1000, found "0"/,
    );
  });
});
