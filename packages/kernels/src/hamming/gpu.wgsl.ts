/**
 * WGSL for the GPU Hamming search. Three kernels share one work split: a database page is cut into
 * blocks of `codesPerBlock` consecutive codes, and one invocation owns one (query, block) pair, walking its
 * block in id order. That ownership is what makes the selection deterministic without atomics or sorts:
 *
 * - `hist`: the invocation counts its block's distances into its own row of `bh` (query x block x L,
 *   L = bits + 1): a histogram per (query, block), plain read-modify-writes, no atomics.
 * - `scan`: one invocation per (query, distance) turns the column over blocks into an exclusive prefix
 *   (how many codes at that distance lie in earlier blocks, i.e. have smaller ids) and writes the total,
 *   the query's histogram, to `hist`.
 * - `place`: the host has picked, per query, the threshold T and how many codes at exactly T to take;
 *   the invocation walks its block again and writes each survivor (d < T, or d = T while the cursor is
 *   below `take`) straight to slot cumBelow[d] + cursor[d], the cursor being its `bh` entry, bumped per
 *   code. Slots are therefore ordered by (distance, id) with no sort.
 *
 * Distances are countOneBits over the XOR of u32 words; for codes up to 8 words (256 bits) the query's
 * words are held in registers and the loop over words is unrolled.
 */
import { declareBindings, GRID_BUILTINS, LINEAR_WORKGROUP } from '../gpu/wgsl.ts';

export const HAMMING_WORKGROUP = 64;

/** Largest code (in words) whose query words are kept in registers. */
const UNROLL_WORDS = 8;

function distanceCode(words: number): { setup: string; distance: string } {
  if (words <= UNROLL_WORDS) {
    const setup = Array.from({ length: words }, (_, w) => `let q${w} = qs[qbase + ${w}u];`).join('\n  ');
    const terms = Array.from({ length: words }, (_, w) => `countOneBits(db[base + ${w}u] ^ q${w})`);
    return { setup, distance: `let d = ${terms.join(' + ')};` };
  }
  return {
    setup: '',
    distance: `var d = 0u;
    for (var w = 0u; w < ${words}u; w++) { d += countOneBits(db[base + w] ^ qs[qbase + w]); }`,
  };
}

const PAGE_UNIFORMS = [
  { name: 'nq', type: 'u32' as const },
  { name: 'q0', type: 'u32' as const },
  { name: 'qb0', type: 'u32' as const },
  { name: 'pageCodes', type: 'u32' as const },
  { name: 'codesPerBlock', type: 'u32' as const },
  { name: 'blocksPerPage', type: 'u32' as const },
  { name: 'blockBase', type: 'u32' as const },
  { name: 'nBlocks', type: 'u32' as const },
  { name: 'pageStart', type: 'u32' as const },
];

/**
 * Common head of `hist` and `place`: the invocation's (query, block) pair. One workgroup row (dispatch y)
 * per query and lanes over blocks: the query's words are then uniform across the workgroup (scalar loads
 * kept in registers). On llvmpipe this was 2x faster than lanes over queries sharing a block.
 */
function pairHead(words: number, L: number): string {
  return `
  let b = wid.x * ${HAMMING_WORKGROUP}u + lid;
  if (b >= u.blocksPerPage) { return; }
  let qi = wid.y;
  let qb = u.qb0 + qi;
  let qbase = (u.q0 + qb) * ${words}u;
  let row = (qb * u.nBlocks + u.blockBase + b) * ${L}u;
  let j0 = b * u.codesPerBlock;
  let j1 = min(j0 + u.codesPerBlock, u.pageCodes);`;
}

/** Pass 1: the histogram of one (query, block) pair into its row of bh. */
export function hammingHistShader(words: number, bits: number): string {
  const L = bits + 1;
  const { setup, distance } = distanceCode(words);
  return `
${declareBindings(
  [
    { name: 'db', access: 'read', type: 'u32' },
    { name: 'qs', access: 'read', type: 'u32' },
    { name: 'bh', access: 'read_write', type: 'u32' },
  ],
  PAGE_UNIFORMS,
)}
@compute @workgroup_size(${HAMMING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${pairHead(words, L)}
  for (var d0 = 0u; d0 < ${L}u; d0++) { bh[row + d0] = 0u; }
  ${setup}
  for (var j = j0; j < j1; j++) {
    let base = j * ${words}u;
    ${distance}
    bh[row + d] += 1u;
  }
}`;
}

/** Pass 2: exclusive prefix over blocks per (query, distance); totals to hist. */
export function hammingScanShader(bits: number): string {
  const L = bits + 1;
  return `
${declareBindings(
  [
    { name: 'bh', access: 'read_write', type: 'u32' },
    { name: 'hist', access: 'read_write', type: 'u32' },
  ],
  [
    { name: 'nq', type: 'u32' },
    { name: 'nBlocks', type: 'u32' },
  ],
)}
@compute @workgroup_size(${HAMMING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${LINEAR_WORKGROUP}
  let g = wg_linear * ${HAMMING_WORKGROUP}u + lid;
  if (g >= u.nq * ${L}u) { return; }
  let q = g / ${L}u;
  let d = g % ${L}u;
  var run = 0u;
  for (var b = 0u; b < u.nBlocks; b++) {
    let i = (q * u.nBlocks + b) * ${L}u + d;
    let c = bh[i];
    bh[i] = run;
    run += c;
  }
  hist[g] = run;
}`;
}

/**
 * Pass 3: writes survivors at their final slots. qp holds per query (stride L + 3): threshold T, take
 * (codes at exactly T to keep), the query's first output slot, then cumBelow[0..L) (codes strictly
 * closer than each distance).
 */
export function hammingPlaceShader(words: number, bits: number): string {
  const L = bits + 1;
  const S = L + 3;
  const { setup, distance } = distanceCode(words);
  return `
${declareBindings(
  [
    { name: 'db', access: 'read', type: 'u32' },
    { name: 'qs', access: 'read', type: 'u32' },
    { name: 'bh', access: 'read_write', type: 'u32' },
    { name: 'qp', access: 'read', type: 'u32' },
    { name: 'outD', access: 'read_write', type: 'u32' },
    { name: 'outI', access: 'read_write', type: 'u32' },
  ],
  PAGE_UNIFORMS,
)}
@compute @workgroup_size(${HAMMING_WORKGROUP})
fn main(${GRID_BUILTINS}) {
  ${pairHead(words, L)}
  let p = qb * ${S}u;
  let t = qp[p];
  let take = qp[p + 1u];
  let ob = qp[p + 2u];
  ${setup}
  for (var j = j0; j < j1; j++) {
    let base = j * ${words}u;
    ${distance}
    if (d <= t) {
      let c = bh[row + d];
      if (d < t || c < take) {
        let slot = ob + qp[p + 3u + d] + c;
        outD[slot] = d;
        outI[slot] = u.pageStart + j;
      }
      bh[row + d] = c + 1u;
    }
  }
}`;
}
