// The attack's inputs as the CLI's protocol makes them, from the packages (no arithmetic of the page's own):
// the n_t objects of the target label, their anchor, and the pixels of a split's item.
import { querySeed, sampleTargetObjects, voteAnchor } from '@dhta/attack';
import { SeededRandom } from '@dhta/kernels/reference';

/** A one-hot label vector. */
export function oneHotLabel(classes: number, label: number): Uint8Array {
  const v = new Uint8Array(classes);
  v[label] = 1;
  return v;
}

/**
 * The n_t database objects of `target` the anchor is voted from: as the protocol draws them (sampleAttack: a
 * uniformly random order of the objects with exactly that label vector, without replacement, its first n_t),
 * from the query's own random stream (seed, query id), so that the draw depends on nothing but the seed, the
 * query and the target. The same function serves the page and its tests.
 */
export function drawTargetObjects(
  databaseLabels: Uint8Array,
  classes: number,
  target: number,
  queryId: number,
  seed: number,
  nT: number,
): Int32Array {
  const rng = new SeededRandom(querySeed(seed, queryId));
  return sampleTargetObjects(databaseLabels, classes, oneHotLabel(classes, target), nT, rng);
}

/** The ±1 codes (rows x bits) of the database objects `ids`. */
export function gatherCodes(codes: Int8Array, ids: ArrayLike<number>, bits: number): Int8Array {
  const out = new Int8Array(ids.length * bits);
  for (let i = 0; i < ids.length; i++) out.set(codes.subarray(ids[i] * bits, (ids[i] + 1) * bits), i * bits);
  return out;
}

/** The anchor: component voting over the codes of the drawn objects (Algorithm 1). */
export function anchorFrom(codes: Int8Array, ids: ArrayLike<number>, bits: number): Int8Array {
  return voteAnchor(gatherCodes(codes, ids, bits), bits);
}

/** Float32 pixels of uint8 bytes: v * (1 / 255), as the data sets decode 8-bit images. */
export function bytesToPixels(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  const scale = 1 / 255;
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] * scale;
  return out;
}

/** The label of a one-hot row (the first positive class; -1 for none). */
export function labelOf(labels: Uint8Array, i: number, classes: number): number {
  for (let c = 0; c < classes; c++) if (labels[i * classes + c]) return c;
  return -1;
}

/** ±1 codes (count x bits) of codes packed in FAISS's layout (bit j is bit j % 8 of byte j / 8, 1 = +1). */
export function unpackFaissBytes(bytes: Uint8Array, bits: number): Int8Array {
  const per = Math.ceil(bits / 8);
  const count = bytes.length / per;
  const out = new Int8Array(count * bits);
  for (let i = 0; i < count; i++)
    for (let j = 0; j < bits; j++) out[i * bits + j] = (bytes[i * per + (j >> 3)] >> (j & 7)) & 1 ? 1 : -1;
  return out;
}

/** Hamming distance between two ±1 codes. */
export function hammingDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let j = 0; j < a.length; j++) if (a[j] >= 0 !== b[j] >= 0) d++;
  return d;
}
