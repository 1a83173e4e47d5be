import { SeededRandom } from '@dhta/kernels/reference';
import { describe, expect, it } from 'vitest';
import { summedHammingDistance, voteAnchor, voteAnchors } from '../src/anchor.ts';
import { AttackError } from '../src/errors.ts';

function randomCodes(rng: SeededRandom, count: number, bits: number, pPlus: number): Int8Array {
  const out = new Int8Array(count * bits);
  for (let i = 0; i < out.length; i++) out[i] = rng.next() < pPlus ? 1 : -1;
  return out;
}

/** All 2^K ±1 codes, by brute force: the minimum summed Hamming distance and every minimiser. */
function bruteForce(codes: Int8Array, bits: number): { min: number; minimisers: string[] } {
  let min = Number.POSITIVE_INFINITY;
  let minimisers: string[] = [];
  const candidate = new Int8Array(bits);
  for (let m = 0; m < 1 << bits; m++) {
    for (let j = 0; j < bits; j++) candidate[j] = (m >> j) & 1 ? 1 : -1;
    const d = summedHammingDistance(candidate, codes, bits);
    if (d < min) {
      min = d;
      minimisers = [];
    }
    if (d === min) minimisers.push(candidate.join(','));
  }
  return { min, minimisers };
}

describe('voteAnchors', () => {
  it('hand-computed: majority per bit, a tie gives +1', () => {
    // n_t = 3, bits = 4: columns (+,+,-) -> +, (-,-,-) -> -, (+,-,-) -> -, (+,+,+) -> +
    const three = new Int8Array([1, -1, 1, 1, 1, -1, -1, 1, -1, -1, -1, 1]);
    expect(Array.from(voteAnchor(three, 4))).toEqual([1, -1, -1, 1]);
    // n_t = 2: columns (+,-) tie -> +, (-,+) tie -> +, (-,-) -> -, (+,+) -> +
    const two = new Int8Array([1, -1, -1, 1, -1, 1, -1, 1]);
    expect(Array.from(voteAnchor(two, 4))).toEqual([1, 1, -1, 1]);
    // n_t = 1 (P2P): the anchor is the code itself
    expect(Array.from(voteAnchor(new Int8Array([-1, 1, -1]), 3))).toEqual([-1, 1, -1]);
  });

  it('Theorem 1: the anchor minimises the summed Hamming distance (brute force over all 2^K codes)', () => {
    const rng = new SeededRandom(2020);
    let ties = 0;
    let unique = 0;
    for (let trial = 0; trial < 300; trial++) {
      const bits = 1 + rng.int(10); // K = 1..10
      const nt = 1 + rng.int(8); // n_t = 1..8, odd and even
      const codes = randomCodes(rng, nt, bits, 0.2 + 0.6 * rng.next());
      const anchor = voteAnchor(codes, bits);
      const { min, minimisers } = bruteForce(codes, bits);
      expect(summedHammingDistance(anchor, codes, bits)).toBe(min);
      expect(minimisers).toContain(anchor.join(','));
      if (minimisers.length === 1) unique++;
      else ties++;
    }
    // both situations occur: a unique minimiser (odd n_t, or no tied column) and tied minimisers (even n_t)
    expect(unique).toBeGreaterThan(20);
    expect(ties).toBeGreaterThan(20);
  });

  it('batched: each anchor equals the anchor voted alone', () => {
    const rng = new SeededRandom(7);
    for (const [anchors, nt, bits] of [
      [5, 9, 16],
      [3, 4, 48],
      [7, 1, 33],
      [2, 2, 64],
    ]) {
      const targets = randomCodes(rng, anchors * nt, bits, 0.5);
      const batched = voteAnchors(targets, nt, bits);
      expect(batched.length).toBe(anchors * bits);
      for (let a = 0; a < anchors; a++) {
        const alone = voteAnchor(targets.subarray(a * nt * bits, (a + 1) * nt * bits), bits);
        expect(Array.from(batched.subarray(a * bits, (a + 1) * bits))).toEqual(Array.from(alone));
      }
    }
  });

  it('rejects bad input with a clear error', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(AttackError);
        return (e as AttackError).code;
      }
      throw new Error('no error');
    };
    expect(code(() => voteAnchors(new Int8Array([1, 0, 1, 1]), 2, 2))).toBe('BAD_INPUT');
    expect(code(() => voteAnchors(new Int8Array(7).fill(1), 2, 2))).toBe('BAD_INPUT');
    expect(code(() => voteAnchors(new Int8Array(4).fill(1), 0, 2))).toBe('BAD_OPTION');
    expect(code(() => voteAnchor(new Int8Array(0), 4))).toBe('BAD_INPUT');
    expect(() => voteAnchors(new Int8Array(5).fill(1), 3, 2)).toThrow(/\(anchors, 3, 2\)/);
  });
});
