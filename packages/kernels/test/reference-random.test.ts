import { describe, expect, it } from 'vitest';
import { pcgHash, SeededRandom, uniformArray, uniformAt } from '../src/reference/index.js';

// An independent statement of the hash in BigInt arithmetic, reduced mod 2^32 explicitly.
const MOD = 1n << 32n;
function pcgHashBig(v: bigint): bigint {
  const state = ((v % MOD) * 747796405n + 2891336453n) % MOD;
  const word = (((state >> ((state >> 28n) + 4n)) ^ state) * 277803737n) % MOD;
  return ((word >> 22n) ^ word) % MOD;
}

describe('pcgHash', () => {
  it('matches hand-verified values (computed independently in Python)', () => {
    expect(pcgHash(0)).toBe(129708002);
    expect(pcgHash(1)).toBe(2831084092);
    expect(pcgHash(2)).toBe(2055130248);
    expect(pcgHash(42)).toBe(1223963391);
    expect(pcgHash(0xffffffff)).toBe(3861530882);
    expect(pcgHash(123456789)).toBe(4272394698);
  });

  it('matches a BigInt implementation across the u32 range', () => {
    const rng = new SeededRandom(51);
    const inputs = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
    for (let i = 0; i < 2000; i++) inputs.push(Math.floor(rng.next() * 4294967296));
    for (const v of inputs) {
      const h = pcgHash(v);
      expect(Number.isInteger(h) && h >= 0 && h < 4294967296).toBe(true);
      expect(h).toBe(Number(pcgHashBig(BigInt(v))));
    }
  });
});

describe('uniformAt / uniformArray', () => {
  it('matches hand-verified values and its BigInt statement', () => {
    expect(uniformAt(7, 0)).toBe(0.5025464296340942);
    expect(uniformAt(7, 1)).toBe(0.6542201042175293);
    expect(uniformAt(7, 2)).toBe(0.8584161400794983);
    for (const seed of [0, 7, 0x9e3779b9, 0xffffffff]) {
      for (const index of [0, 1, 1000, 0x80000000, 0xffffffff]) {
        const big = pcgHashBig(BigInt(index) ^ pcgHashBig(BigInt(seed))) >> 8n;
        expect(uniformAt(seed, index)).toBe(Number(big) / 2 ** 24);
      }
    }
  });

  it('lies in [0, 1) on a 2^-24 grid and is roughly uniform', () => {
    const n = 20000;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const u = uniformAt(123, i);
      expect(u >= 0 && u < 1).toBe(true);
      expect(Number.isInteger(u * 2 ** 24)).toBe(true);
      sum += u;
    }
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.01);
  });

  it('different seeds give different streams; uniformArray maps to [lo, hi)', () => {
    expect(uniformAt(1, 5)).not.toBe(uniformAt(2, 5));
    const a = uniformArray(9, 100, -0.032, 0.032);
    expect(a.length).toBe(100);
    for (let i = 0; i < 100; i++) {
      expect(a[i]).toBe(-0.032 + 0.064 * uniformAt(9, i));
      expect(a[i] >= -0.032 && a[i] < 0.032).toBe(true);
    }
  });
});

describe('SeededRandom', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = new SeededRandom(1);
    const b = new SeededRandom(1);
    const c = new SeededRandom(2);
    const sa = Array.from({ length: 10 }, () => a.next());
    const sb = Array.from({ length: 10 }, () => b.next());
    const sc = Array.from({ length: 10 }, () => c.next());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
  });

  it('next in [0, 1), int(n) covers 0..n-1, normal has mean 0 and variance 1', () => {
    const rng = new SeededRandom(52);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++) {
      const u = rng.next();
      expect(u >= 0 && u < 1).toBe(true);
      counts[rng.int(7)]++;
    }
    for (const count of counts) expect(count).toBeGreaterThan(800);
    const n = 20000;
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      expect(Number.isFinite(z)).toBe(true);
      sum += z;
      sumSq += z * z;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.03);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.05);
  });
});
