import { describe, expect, it } from 'vitest';
import {
  benchData,
  benchHamming,
  CpuBackend,
  HammingError,
  MIN_PARALLEL_WORK,
} from '../src/hamming/index.ts';

describe('benchHamming (a program, not a timed test: only its bookkeeping is checked)', () => {
  it('reports a consistent result on tiny inputs', async () => {
    const r = await benchHamming({ n: 3000, bits: 64, queries: 3, k: 10, seed: 5, repeats: 2, threads: 1 });
    expect(r).toMatchObject({
      n: 3000,
      bits: 64,
      queries: 3,
      k: 10,
      backend: 'auto',
      device: 'cpu: wasm x 1 thread',
    });
    expect(r.secondsAll).toHaveLength(2);
    expect(r.seconds).toBeGreaterThan(0);
    expect(r.comparisonsPerSecond).toBeCloseTo((3000 * 3) / r.seconds, 0);
  });

  it('generates the same data for the same seed', () => {
    const a = benchData({ n: 10, bits: 48, queries: 2, k: 1, seed: 9 });
    const b = benchData({ n: 10, bits: 48, queries: 2, k: 1, seed: 9 });
    const c = benchData({ n: 10, bits: 48, queries: 2, k: 1, seed: 10 });
    expect(a.db.words).toEqual(b.db.words);
    expect(a.queries.words).toEqual(b.queries.words);
    expect(a.db.words).not.toEqual(c.db.words);
    // Padding bits of 48-bit codes are clear.
    for (let i = 1; i < a.db.words.length; i += 2) expect(a.db.words[i] >>> 16).toBe(0);
  });

  it('rejects bad sizes', async () => {
    await expect(benchHamming({ n: 0, bits: 64, queries: 1, k: 1 })).rejects.toBeInstanceOf(HammingError);
  });
});

describe("threads 'auto'", () => {
  it('stays on the calling thread for one query or little work, else one thread per core and query', () => {
    const cpu = new CpuBackend({ threads: 'auto' });
    expect(cpu.threadsFor(1 << 24, 1, 64)).toBe(1);
    expect(cpu.threadsFor(1000, 10, 64)).toBe(1);
    const big = cpu.threadsFor(MIN_PARALLEL_WORK, 2, 32);
    expect(big).toBe(Math.min(2, cpu.maxThreads));
    expect(new CpuBackend({ threads: 3 }).threadsFor(10, 1, 8)).toBe(3);
    expect(new CpuBackend({ threads: 1 }).threadsFor(1 << 30, 100, 64)).toBe(1);
  });
});
