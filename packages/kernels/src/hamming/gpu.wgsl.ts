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
 * Queries per invocation in pass 1: with the query words in registers, each database word loaded serves
 * several queries. Only for codes of up to UNROLL_WORDS words (longer codes loop over words).
 */
export function histQueriesPerInvocation(words: number): number {
  return words <= UNROLL_WORDS ? 4 : 1;
}

/**
 * Pass 1: the histograms of `histQueriesPerInvocation(words)` consecutive queries against one block, into
 * their rows of bh. The host pads bh and the queries to a multiple of that many queries.
 */
export function hammingHistShader(words: number, bits: number): string {
  const L = bits + 1;
  const Q = histQueriesPerInvocation(words);
  const range = (m: number) => Array.from({ length: m }, (_, i) => i);
  let setup: string;
  let body: string;
  if (Q > 1) {
    setup = range(Q)
      .flatMap((r) => range(words).map((w) => `let q${r}_${w} = qs[qbase + ${r * words + w}u];`))
      .join('\n  ');
    body = [
      ...range(words).map((w) => `let c${w} = db[base + ${w}u];`),
      ...range(Q).map(
        (r) =>
          `let d${r} = ${range(words)
            .map((w) => `countOneBits(c${w} ^ q${r}_${w})`)
            .join(' + ')};`,
      ),
      ...range(Q).map((r) => `bh[row + ${r}u * stride + d${r}] += 1u;`),
    ].join('\n    ');
  } else {
    const dc = distanceCode(words);
    setup = dc.setup;
    body = `${dc.distance}\n    bh[row + d] += 1u;`;
  }
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
  let b = wid.x * ${HAMMING_WORKGROUP}u + lid;
  if (b >= u.blocksPerPage) { return; }
  let qb = u.qb0 + wid.y * ${Q}u;
  let qbase = (u.q0 + qb) * ${words}u;
  let stride = u.nBlocks * ${L}u;
  let row = (qb * u.nBlocks + u.blockBase + b) * ${L}u;
  let j0 = b * u.codesPerBlock;
  let j1 = min(j0 + u.codesPerBlock, u.pageCodes);
  for (var z = 0u; z < ${Q * L}u; z++) { bh[row + (z / ${L}u) * stride + z % ${L}u] = 0u; }
  ${setup}
  for (var j = j0; j < j1; j++) {
    let base = j * ${words}u;
    ${body}
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
  const Q = histQueriesPerInvocation(words);
  const range = (m: number) => Array.from({ length: m }, (_, i) => i);
  const survivor = (r: string, d: string) => `if (ok${r} && ${d} <= t${r}) {
      let c = bh[row${r} + ${d}];
      if (${d} < t${r} || c < take${r}) {
        let slot = ob${r} + qp[p${r} + 3u + ${d}] + c;
        outD[slot] = ${d};
        outI[slot] = u.pageStart + j;
      }
      bh[row${r} + ${d}] = c + 1u;
    }`;
  // Per query r of the invocation: validity (the last group may be partial), parameters, bh row.
  const perQuery = range(Q)
    .map(
      (r) => `let ok${r} = qi + ${r}u < u.nq;
  let p${r} = (qb + ${r}u) * ${S}u;
  let t${r} = select(0u, qp[p${r}], ok${r});
  let take${r} = select(0u, qp[p${r} + 1u], ok${r});
  let ob${r} = select(0u, qp[p${r} + 2u], ok${r});
  let row${r} = row + ${r}u * u.nBlocks * ${L}u;`,
    )
    .join('\n  ');
  let setup: string;
  let body: string;
  if (Q > 1) {
    setup = range(Q)
      .flatMap((r) => range(words).map((w) => `let q${r}_${w} = qs[qbase + ${r * words + w}u];`))
      .join('\n  ');
    body = [
      ...range(words).map((w) => `let c${w} = db[base + ${w}u];`),
      ...range(Q).map(
        (r) =>
          `let d${r} = ${range(words)
            .map((w) => `countOneBits(c${w} ^ q${r}_${w})`)
            .join(' + ')};`,
      ),
      ...range(Q).map((r) => survivor(String(r), `d${r}`)),
    ].join('\n    ');
  } else {
    const dc = distanceCode(words);
    setup = dc.setup;
    body = `${dc.distance}\n    ${survivor('0', 'd')}`;
  }
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
  let b = wid.x * ${HAMMING_WORKGROUP}u + lid;
  if (b >= u.blocksPerPage) { return; }
  let qi = wid.y * ${Q}u;
  let qb = u.qb0 + qi;
  let qbase = (u.q0 + qb) * ${words}u;
  let row = (qb * u.nBlocks + u.blockBase + b) * ${L}u;
  let j0 = b * u.codesPerBlock;
  let j1 = min(j0 + u.codesPerBlock, u.pageCodes);
  ${perQuery}
  ${setup}
  for (var j = j0; j < j1; j++) {
    let base = j * ${words}u;
    ${body}
  }
}`;
}
