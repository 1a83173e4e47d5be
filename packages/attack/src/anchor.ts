// Anchor codes by component voting (PROTOCOL.md "Anchor code", Algorithm 1 of the paper).
import { uniformAt } from '@dhta/kernels/reference';
import { querySeed } from './attack.ts';
import { AttackError } from './errors.ts';

function checkPm1(codes: Int8Array, what: string, bits: number): void {
  for (let i = 0; i < codes.length; i++) {
    const v = codes[i];
    if (v !== 1 && v !== -1) {
      throw new AttackError(
        'BAD_INPUT',
        `${what}: expected ±1 codes, found ${v} at code ${Math.floor(i / bits)}, bit ${i % bits}; ` +
          'binarise with sign (sign(0) = +1) before voting.',
      );
    }
  }
}

function checkCount(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new AttackError('BAD_OPTION', `${what}: expected a positive integer, found ${String(value)}.`);
  }
}

/**
 * Anchor codes by component voting, many at once. `targets` holds ±1 codes of shape
 * (anchors, targetsPerAnchor, bits), row-major; the result is (anchors, bits): bit j of anchor a is +1 when
 * the count of +1 among that anchor's n_t codes at bit j is >= the count of -1, else -1 (a tie, possible
 * only for even n_t, gives +1; the authors' sign(sum) would give 0). Such an anchor minimises the summed
 * Hamming distance to its n_t codes (Theorem 1).
 */
export function voteAnchors(targets: Int8Array, targetsPerAnchor: number, bits: number): Int8Array {
  checkCount(targetsPerAnchor, 'voteAnchors: targetsPerAnchor (n_t)');
  checkCount(bits, 'voteAnchors: bits');
  if (!(targets instanceof Int8Array)) {
    throw new AttackError(
      'BAD_INPUT',
      `voteAnchors: expected an Int8Array of ±1 target codes, found ${(targets as object)?.constructor?.name ?? typeof targets}.`,
    );
  }
  const perAnchor = targetsPerAnchor * bits;
  if (targets.length % perAnchor !== 0) {
    throw new AttackError(
      'BAD_INPUT',
      `voteAnchors: expected target codes of shape (anchors, ${targetsPerAnchor}, ${bits}), i.e. a length that ` +
        `is a multiple of ${perAnchor}, found ${targets.length}; check n_t and the code length.`,
    );
  }
  checkPm1(targets, 'voteAnchors: targets', bits);
  const anchors = targets.length / perAnchor;
  const out = new Int8Array(anchors * bits);
  for (let a = 0; a < anchors; a++) {
    for (let j = 0; j < bits; j++) {
      let sum = 0; // count(+1) - count(-1)
      for (let t = 0; t < targetsPerAnchor; t++) sum += targets[a * perAnchor + t * bits + j];
      out[a * bits + j] = sum >= 0 ? 1 : -1;
    }
  }
  return out;
}

/** The anchor of one set of n_t ±1 codes (n_t x bits): `voteAnchors` with one anchor. */
export function voteAnchor(codes: Int8Array, bits: number): Int8Array {
  checkCount(bits, 'voteAnchor: bits');
  if (codes.length === 0 || codes.length % bits !== 0) {
    throw new AttackError(
      'BAD_INPUT',
      `voteAnchor: expected n_t >= 1 codes of ${bits} bits (a length that is a positive multiple of ${bits}), ` +
        `found ${codes.length}; check the code length.`,
    );
  }
  return voteAnchors(codes, codes.length / bits, bits);
}

/** Sum over the n_t codes (n_t x bits) of the Hamming distance to `code` (bits). */
export function summedHammingDistance(code: Int8Array, codes: Int8Array, bits: number): number {
  let total = 0;
  for (let t = 0; t < codes.length / bits; t++) {
    for (let j = 0; j < bits; j++) if (codes[t * bits + j] !== code[j]) total++;
  }
  return total;
}

/**
 * P2P's anchors from (anchors, n_t, bits) target codes: for each query one of its n_t codes, drawn from the
 * query's own stream (seed, query id), so the choice does not depend on the batch, file or order it came in.
 * `queryIds` default 0..anchors-1. Returns (anchors, bits) and the index picked per query.
 */
export function pickP2pAnchors(
  targets: Int8Array,
  targetsPerAnchor: number,
  bits: number,
  seed: number,
  queryIds?: readonly number[],
): { anchors: Int8Array; picked: number[] } {
  checkCount(targetsPerAnchor, 'pickP2pAnchors: targetsPerAnchor (n_t)');
  checkCount(bits, 'pickP2pAnchors: bits');
  const perAnchor = targetsPerAnchor * bits;
  if (targets.length % perAnchor !== 0) {
    throw new AttackError(
      'BAD_INPUT',
      `pickP2pAnchors: expected target codes of shape (anchors, ${targetsPerAnchor}, ${bits}), found ${targets.length} values.`,
    );
  }
  checkPm1(targets, 'pickP2pAnchors: targets', bits);
  const n = targets.length / perAnchor;
  const ids = queryIds ?? Array.from({ length: n }, (_, i) => i);
  if (ids.length !== n)
    throw new AttackError('BAD_INPUT', `pickP2pAnchors: expected ${n} query ids, found ${ids.length}.`);
  const anchors = new Int8Array(n * bits);
  const picked: number[] = [];
  for (let a = 0; a < n; a++) {
    // A draw of its own in the query's stream, apart from those of the random start and of Noise.
    const t = Math.min(
      targetsPerAnchor - 1,
      Math.floor(uniformAt(querySeed(seed, ids[a]), P2P_DRAW) * targetsPerAnchor),
    );
    picked.push(t);
    anchors.set(targets.subarray(a * perAnchor + t * bits, a * perAnchor + (t + 1) * bits), a * bits);
  }
  return { anchors, picked };
}

/** Where in a query's random stream the P2P pick is drawn (far past any input's element indices). */
const P2P_DRAW = 0x7fff_7032;
