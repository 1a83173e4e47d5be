import { SeededRandom } from '@dhta/kernels/reference';
import { describe, expect, it } from 'vitest';
import { AttackError } from '../src/errors.ts';
import {
  drawWithoutReplacement,
  eligibleTargetGroups,
  groupByLabel,
  sampleAttack,
  sampleQueries,
  sampleTargetObjects,
} from '../src/sampling.ts';

function oneHot(classes: number, indices: number[]): Uint8Array {
  const out = new Uint8Array(indices.length * classes);
  indices.forEach((c, i) => {
    out[i * classes + c] = 1;
  });
  return out;
}

function row(labels: Uint8Array, i: number, classes: number): number[] {
  return Array.from(labels.subarray(i * classes, (i + 1) * classes));
}

function errorCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AttackError);
    return (e as AttackError).code;
  }
  throw new Error('no error thrown');
}

// Single-label data: class c has sizes[c] database objects.
const sizes = [30, 12, 9, 40, 10];
const dbClasses = sizes.flatMap((s, c) => Array.from({ length: s }, () => c));
const database = oneHot(5, dbClasses);
const queryClasses = Array.from({ length: 200 }, (_, i) => i % 5);
const queries = oneHot(5, queryClasses);

describe('sampleAttack', () => {
  it('is deterministic under a seed and changes with it', () => {
    const a = sampleAttack(queries, database, 5, { seed: 11 });
    const b = sampleAttack(queries, database, 5, { seed: 11 });
    const c = sampleAttack(queries, database, 5, { seed: 12 });
    expect(a).toEqual(b);
    expect(Array.from(a.queryIndices)).not.toEqual(Array.from(c.queryIndices));
  });

  it('follows the protocol: distinct queries, eligible targets that differ, exact-label target objects', () => {
    const nt = 9;
    const s = sampleAttack(queries, database, 5, { seed: 3, queries: 100, targetsPerQuery: nt });
    expect(s.queryIndices.length).toBe(100);
    expect(new Set(s.queryIndices).size).toBe(100);
    for (const q of s.queryIndices) expect(q >= 0 && q < 200).toBe(true);
    for (let k = 0; k < 100; k++) {
      const q = s.queryIndices[k];
      const target = row(s.targetLabels, k, 5);
      const t = target.indexOf(1);
      expect(target.reduce((x, y) => x + y, 0)).toBe(1);
      expect(t).not.toBe(queryClasses[q]); // differs from the query's label
      expect(sizes[t]).toBeGreaterThan(nt); // occurs more than n_t times (class 2 has exactly 9: never)
      const objects = Array.from(s.targetIndices.subarray(k * nt, (k + 1) * nt));
      expect(new Set(objects).size).toBe(nt); // without replacement
      for (const i of objects) expect(dbClasses[i]).toBe(t); // exact label
    }
  });

  it('open set: targets only from the given classes', () => {
    const s = sampleAttack(queries, database, 5, {
      seed: 4,
      queries: 60,
      targetsPerQuery: 9,
      targetClasses: [3, 4],
    });
    const seen = new Set<number>();
    for (let k = 0; k < 60; k++) {
      const t = row(s.targetLabels, k, 5).indexOf(1);
      expect([3, 4]).toContain(t);
      expect(t).not.toBe(queryClasses[s.queryIndices[k]]);
      seen.add(t);
    }
    expect(seen.size).toBe(2);
    // Class 2 has only 9 objects: with n_t = 9 it cannot be a target.
    expect(errorCode(() => sampleAttack(queries, database, 5, { seed: 4, targetClasses: [2] }))).toBe(
      'NO_TARGET',
    );
  });

  it('draws target labels uniformly among the eligible ones', () => {
    // Queries of class 0; eligible targets for n_t = 9: classes 1, 3, 4 (class 2 has exactly 9 objects).
    const q0 = oneHot(
      5,
      Array.from({ length: 3000 }, () => 0),
    );
    const s = sampleAttack(q0, database, 5, { seed: 5, queries: 3000, targetsPerQuery: 9 });
    const counts = [0, 0, 0, 0, 0];
    for (let k = 0; k < 3000; k++) counts[row(s.targetLabels, k, 5).indexOf(1)]++;
    expect(counts[0]).toBe(0);
    expect(counts[2]).toBe(0);
    // 1000 expected each; binomial sd ~ 26: allow 5 sd
    for (const c of [1, 3, 4]) expect(Math.abs(counts[c] - 1000)).toBeLessThan(130);
    // target objects uniform within the class: class 4 has 10 objects, each picked 9/10 of the time
    const picks = new Map<number, number>();
    let class4 = 0;
    for (let k = 0; k < 3000; k++) {
      if (row(s.targetLabels, k, 5)[4] !== 1) continue;
      class4++;
      for (const i of s.targetIndices.subarray(k * 9, (k + 1) * 9)) picks.set(i, (picks.get(i) ?? 0) + 1);
    }
    expect(picks.size).toBe(10);
    for (const n of picks.values()) expect(Math.abs(n / class4 - 0.9)).toBeLessThan(0.05);
  });

  it('multi-label: exact label-vector equality for eligibility, difference and target objects', () => {
    // label vectors: [1,1,0] x 6, [1,0,0] x 6, [0,1,0] x 3 (too few for n_t = 3), [0,0,0] x 8 (no positive)
    const rows = [
      ...Array.from({ length: 6 }, () => [1, 1, 0]),
      ...Array.from({ length: 6 }, () => [1, 0, 0]),
      ...Array.from({ length: 3 }, () => [0, 1, 0]),
      ...Array.from({ length: 8 }, () => [0, 0, 0]),
    ];
    // shuffle the order deterministically so members are not contiguous
    const order = Array.from(
      drawWithoutReplacement(Int32Array.from(rows.keys()), rows.length, new SeededRandom(1)),
    );
    const db = new Uint8Array(order.flatMap((i) => rows[i]));
    const groups = groupByLabel(db, 3);
    expect(groups.map((g) => g.members.length).sort((a, b) => a - b)).toEqual([3, 6, 6, 8]);
    expect(
      eligibleTargetGroups(groups, 3)
        .map((g) => Array.from(g.label).join(''))
        .sort(),
    ).toEqual(['100', '110']);
    // a query labelled [1,0,0] must get [1,1,0] (the only eligible vector that differs), and its objects must
    // be [1,1,0] rows, never [1,0,0] rows although those share a label
    const s = sampleAttack(new Uint8Array([1, 0, 0, 1, 0, 0]), db, 3, {
      seed: 9,
      queries: 2,
      targetsPerQuery: 3,
    });
    for (let k = 0; k < 2; k++) {
      expect(row(s.targetLabels, k, 3)).toEqual([1, 1, 0]);
      for (const i of s.targetIndices.subarray(k * 3, (k + 1) * 3)) expect(row(db, i, 3)).toEqual([1, 1, 0]);
    }
    // a query labelled [0,1,0] may get either eligible vector
    const t = sampleAttack(new Uint8Array(Array.from({ length: 50 }, () => [0, 1, 0]).flat()), db, 3, {
      seed: 9,
      queries: 50,
      targetsPerQuery: 3,
    });
    const seen = new Set(Array.from({ length: 50 }, (_, k) => row(t.targetLabels, k, 3).join('')));
    expect([...seen].sort()).toEqual(['100', '110']);
  });

  it('a sweep over n_t is paired: same queries and target labels, nested target objects', () => {
    const nts = [1, 3, 9];
    const samples = nts.map((nt) =>
      sampleAttack(queries, database, 5, {
        seed: 21,
        queries: 40,
        targetsPerQuery: nt,
        maxTargetsPerQuery: 9,
      }),
    );
    const largest = samples[2];
    for (const [i, s] of samples.entries()) {
      expect(s.targetsPerQuery).toBe(nts[i]);
      expect(Array.from(s.queryIndices)).toEqual(Array.from(largest.queryIndices));
      expect(Array.from(s.targetLabels)).toEqual(Array.from(largest.targetLabels));
      for (let k = 0; k < 40; k++) {
        const objects = Array.from(s.targetIndices.subarray(k * nts[i], (k + 1) * nts[i]));
        // the n_t objects are the first n_t of the largest n_t's: P2P's object (the first) never changes
        expect(objects).toEqual(Array.from(largest.targetIndices.subarray(k * 9, k * 9 + nts[i])));
      }
    }
    // Eligibility follows the sweep's largest n_t: class 2 (exactly 9 objects) is never a target, even at n_t 1.
    const targets = new Set(
      Array.from({ length: 40 }, (_, k) => row(samples[0].targetLabels, k, 5).indexOf(1)),
    );
    expect(targets.has(2)).toBe(false);
    expect(targets.size).toBe(4); // classes 0, 1, 3, 4
    // Without maxTargetsPerQuery, n_t 1 may target class 2 (more than 1 object).
    const alone = sampleAttack(queries, database, 5, { seed: 21, queries: 200, targetsPerQuery: 1 });
    expect(Array.from({ length: 200 }, (_, k) => row(alone.targetLabels, k, 5)[2]).some((v) => v === 1)).toBe(
      true,
    );
    expect(
      errorCode(() =>
        sampleAttack(queries, database, 5, { seed: 1, targetsPerQuery: 9, maxTargetsPerQuery: 3 }),
      ),
    ).toBe('BAD_OPTION');
  });

  it('errors: no eligible target, too many queries, bad options', () => {
    // Only class 0 is eligible for n_t = 9 when the database is classes 0 (30) and 2 (9)
    const small = oneHot(5, [...Array.from({ length: 30 }, () => 0), ...Array.from({ length: 9 }, () => 2)]);
    expect(errorCode(() => sampleAttack(oneHot(5, [0, 0]), small, 5, { seed: 1, queries: 2 }))).toBe(
      'NO_TARGET',
    );
    expect(() => sampleAttack(oneHot(5, [0, 0]), small, 5, { seed: 1, queries: 2 })).toThrow(
      /query \d \(draw 0\).*differs from the query's.*lower n_t/,
    );
    // a query of class 1 has class 0 as a target
    expect(sampleAttack(oneHot(5, [1]), small, 5, { seed: 1, queries: 1 }).targetIndices.length).toBe(9);
    expect(errorCode(() => sampleAttack(queries, database, 5, { seed: 1, queries: 201 }))).toBe('BAD_OPTION');
    expect(errorCode(() => sampleAttack(queries, database, 5, { seed: 1, targetsPerQuery: 0 }))).toBe(
      'BAD_OPTION',
    );
    expect(errorCode(() => sampleAttack(queries, database, 5, { seed: 1.5 }))).toBe('BAD_OPTION');
    expect(errorCode(() => sampleAttack(new Uint8Array(7), database, 5, { seed: 1 }))).toBe('BAD_INPUT');
  });
});

describe('sampleTargetObjects', () => {
  it('draws n_t objects with exactly the given label, and refuses labels with n_t or fewer objects', () => {
    const rng = new SeededRandom(4);
    const objects = sampleTargetObjects(database, 5, oneHot(5, [4]), 9, rng);
    expect(new Set(objects).size).toBe(9);
    for (const i of objects) expect(dbClasses[i]).toBe(4);
    // class 2 occurs exactly 9 times: not more than n_t = 9
    expect(errorCode(() => sampleTargetObjects(database, 5, oneHot(5, [2]), 9, rng))).toBe('TOO_FEW_TARGETS');
    expect(() => sampleTargetObjects(database, 5, oneHot(5, [2]), 9, rng)).toThrow(
      /more than n_t = 9.*found 9/,
    );
    // absent label vector
    expect(() => sampleTargetObjects(database, 5, new Uint8Array([1, 1, 0, 0, 0]), 1, rng)).toThrow(
      /absent from the database/,
    );
    // n_t = 8 makes class 2 eligible
    expect(sampleTargetObjects(database, 5, oneHot(5, [2]), 8, rng).length).toBe(8);
  });
});

describe('sampleQueries and drawWithoutReplacement', () => {
  it('draws without replacement, uniformly', () => {
    const rng = new SeededRandom(8);
    const all = sampleQueries(20, 20, rng);
    expect(Array.from(all).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const first = [0, 0, 0, 0, 0];
    for (let t = 0; t < 5000; t++) first[drawWithoutReplacement([10, 11, 12, 13, 14], 2, rng)[0] - 10]++;
    for (const c of first) expect(Math.abs(c - 1000)).toBeLessThan(150); // sd ~ 28
    expect(errorCode(() => drawWithoutReplacement([1, 2], 3, rng))).toBe('BAD_OPTION');
  });
});
