// WebAssembly text of the Hamming kernels, assembled at build time (scripts/gen-wasm.ts writes the bytes to
// hamming.wasm.gen.ts). Scalar `i64.popcnt` compiles to the CPU's POPCNT instruction and gives a code's
// distance directly. SIMD (`i8x16.popcnt`, lowered to table lookups on x86) was measured no faster even on a
// pure popcount sum (2.1-2.6 vs 2.0-3.0 G 64-bit words/s on the development machine), before the per-code
// horizontal sums that a distance needs; so the loops are scalar, unrolled, query words in locals.
//
// Exports (all pointers are byte offsets into the exported `memory`; codes are `W` u32 words each, the
// query `q` one code, `n` database codes starting at `db`):
// - `dist(db, q, W, n, out)`: u16 distances to out[0..n-1].
// - `filter(db, q, W, n, lim, out) -> count`: for each code t with distance d <= lim (signed), appends
//   the i32 `(t << 13) | d` to out, in t order; out needs room for n + 1 entries.
// - `hist(db, q, W, n, h)`: h[d] += 1 (i32 counts) for each code's distance d.
// Each has loops specialised for W = 1 (32-bit popcount), W = 2 (64-bit, unrolled by 4) up to W = 8 (the
// query in locals, the code loop unrolled by 4, 2 or 1), and one loop for any W.

/** Codes of up to FIXED words get unrolled loops with the query held in locals. */
const FIXED = 8;

/**
 * A code's distance: `pre`, statements that leave nothing on the stack, then `expr`, which pushes the
 * distance as an i32.
 */
interface Distance {
  pre: string;
  expr: string;
}

const offset = (bytes: number): string => (bytes ? ` offset=${bytes}` : '');

/**
 * The locals after the parameters, the same in the three functions: $p the code, $t its index, $d a
 * distance, $qa the query's odd last word (fixed W), $w a byte offset inside the code, $half the bytes of
 * its whole i64 words and $stride of the code (any W), one i32 of the function's own (`extra`), then the
 * query's i64 words $q0..$q3 (fixed W; any W keeps its running sum in $q0).
 */
function locals(extra: string): string {
  const i32 = ['$p', '$t', '$d', '$qa', '$w', '$half', '$stride', extra];
  const i64 = Array.from({ length: FIXED >> 1 }, (_, h) => `$q${h}`);
  return [...i32.map((l) => `(local ${l} i32)`), ...i64.map((l) => `(local ${l} i64)`)].join(' ');
}

/** Fixed W (1..8): a sum of popcounts of code u of an unrolled group, at constant offsets from $p. */
function distanceFixed(W: number, u: number): Distance {
  const base = 4 * W * u;
  const pairs = W >> 1;
  let expr = '';
  for (let h = 0; h < pairs; h++) {
    const term = `(i64.popcnt (i64.xor (i64.load${offset(base + 8 * h)} (local.get $p)) (local.get $q${h})))`;
    expr = h === 0 ? term : `(i64.add ${expr} ${term})`;
  }
  if (pairs > 0) expr = `(i32.wrap_i64 ${expr})`;
  if (W & 1) {
    const term = `(i32.popcnt (i32.xor (i32.load${offset(base + 8 * pairs)} (local.get $p)) (local.get $qa)))`;
    expr = pairs > 0 ? `(i32.add ${expr} ${term})` : term;
  }
  return { pre: '', expr };
}

/** The query's words into locals, for fixed W. */
function loadQuery(W: number): string {
  const out: string[] = [];
  const pairs = W >> 1;
  for (let h = 0; h < pairs; h++) out.push(`(local.set $q${h} (i64.load${offset(8 * h)} (local.get $q)))`);
  if (W & 1) out.push(`(local.set $qa (i32.load${offset(8 * pairs)} (local.get $q)))`);
  return out.join('\n');
}

/**
 * Any W: i64 popcounts over the whole 8-byte words of the code, four per iteration into $q0 (unused by this
 * path otherwise), then one i32 popcount when W is odd.
 */
function distanceAnyW(): Distance {
  const term = (off: number) =>
    `(i64.popcnt (i64.xor (i64.load${offset(off)} (i32.add (local.get $p) (local.get $w)))
                         (i64.load${offset(off)} (i32.add (local.get $q) (local.get $w)))))`;
  const pre = `(local.set $q0 (i64.const 0))
(local.set $w (i32.const 0))
(block $words4
  (loop $next4
    (br_if $words4 (i32.gt_u (i32.add (local.get $w) (i32.const 32)) (local.get $half)))
    (local.set $q0 (i64.add (local.get $q0) (i64.add (i64.add ${term(0)} ${term(8)}) (i64.add ${term(16)} ${term(24)}))))
    (local.set $w (i32.add (local.get $w) (i32.const 32)))
    (br $next4)))
(block $words
  (loop $next
    (br_if $words (i32.ge_u (local.get $w) (local.get $half)))
    (local.set $q0 (i64.add (local.get $q0) ${term(0)}))
    (local.set $w (i32.add (local.get $w) (i32.const 8)))
    (br $next)))
(local.set $d (i32.wrap_i64 (local.get $q0)))
(if (i32.and (local.get $W) (i32.const 1))
  (then
    (local.set $d (i32.add (local.get $d)
      (i32.popcnt (i32.xor (i32.load (i32.add (local.get $p) (local.get $w)))
                           (i32.load (i32.add (local.get $q) (local.get $w)))))))))`;
  return { pre, expr: '(local.get $d)' };
}

/** What a function does per code (u: its place in an unrolled group) and after each group of k codes. */
interface PerCode {
  body: (u: number, distance: Distance) => string;
  advance: (k: number) => string;
}

/**
 * A loop over all codes, unrolled by `unroll` with a remainder loop; `stride` bytes per code (0: $stride,
 * any W).
 */
function codeLoop(unroll: number, stride: number, distance: (u: number) => Distance, per: PerCode): string {
  const out = ['(local.set $t (i32.const 0))', '(local.set $p (local.get $db))'];
  if (unroll > 1) {
    const group = Array.from({ length: unroll }, (_, u) => per.body(u, distance(u)));
    out.push(`(block $groups
  (loop $group
    (br_if $groups (i32.gt_u (i32.add (local.get $t) (i32.const ${unroll})) (local.get $n)))
    ${group.join('\n')}
    (local.set $p (i32.add (local.get $p) (i32.const ${unroll * stride})))
    (local.set $t (i32.add (local.get $t) (i32.const ${unroll})))
    ${per.advance(unroll)}
    (br $group)))`);
  }
  const step =
    stride > 0
      ? `(local.set $p (i32.add (local.get $p) (i32.const ${stride})))`
      : '(local.set $p (i32.add (local.get $p) (local.get $stride)))';
  out.push(`(block $codes
  (loop $code
    (br_if $codes (i32.ge_u (local.get $t) (local.get $n)))
    ${per.body(0, distance(0))}
    ${step}
    (local.set $t (i32.add (local.get $t) (i32.const 1)))
    ${per.advance(1)}
    (br $code)))`);
  return out.join('\n');
}

/** if W == 1 {..} else if W == 2 {..} ... else if W == FIXED {..} else {any W}. */
function dispatch(per: PerCode, prologue = ''): string {
  let code = `(local.set $half (i32.shl (i32.shr_u (local.get $W) (i32.const 1)) (i32.const 3)))
(local.set $stride (i32.shl (local.get $W) (i32.const 2)))
${prologue}
${codeLoop(1, 0, distanceAnyW, per)}`;
  for (let W = FIXED; W >= 1; W--) {
    const unroll = W <= 2 ? 4 : W <= 4 ? 2 : 1;
    code = `(if (i32.eq (local.get $W) (i32.const ${W}))
  (then
    ${loadQuery(W)}
    ${prologue}
    ${codeLoop(unroll, 4 * W, (u) => distanceFixed(W, u), per)})
  (else
    ${code}))`;
  }
  return code;
}

function distFunction(): string {
  const per: PerCode = {
    // The output address goes on the stack before the distance's statements (any W), then the u16 store.
    body: (u, d) =>
      d.pre
        ? `(local.get $o)\n${d.pre}\n(i32.store16${offset(2 * u)} ${d.expr})`
        : `(i32.store16${offset(2 * u)} (local.get $o) ${d.expr})`,
    advance: (k) => `(local.set $o (i32.add (local.get $o) (i32.const ${2 * k})))`,
  };
  return `(func (export "dist") (param $db i32) (param $q i32) (param $W i32) (param $n i32) (param $out i32)
  ${locals('$o')}
  ${dispatch(per, '(local.set $o (local.get $out))')})`;
}

function filterFunction(): string {
  const per: PerCode = {
    body: (u, d) => `${d.pre}
(if (i32.le_s (local.tee $d ${d.expr}) (local.get $lim))
  (then
    (i32.store (i32.add (i32.shl (local.get $cnt) (i32.const 2)) (local.get $out))
      (i32.or (i32.shl ${u > 0 ? `(i32.add (local.get $t) (i32.const ${u}))` : '(local.get $t)'} (i32.const 13))
              (local.get $d)))
    (local.set $cnt (i32.add (local.get $cnt) (i32.const 1)))))`,
    advance: () => '',
  };
  return `(func (export "filter") (param $db i32) (param $q i32) (param $W i32) (param $n i32) (param $lim i32)
    (param $out i32) (result i32)
  ${locals('$cnt')}
  (local.set $cnt (i32.const 0))
  ${dispatch(per)}
  (local.get $cnt))`;
}

function histFunction(): string {
  const per: PerCode = {
    body: (_u, d) => `${d.pre}
(i32.store (local.tee $a (i32.add (i32.shl ${d.expr} (i32.const 2)) (local.get $h)))
  (i32.add (i32.load (local.get $a)) (i32.const 1)))`,
    advance: () => '',
  };
  return `(func (export "hist") (param $db i32) (param $q i32) (param $W i32) (param $n i32) (param $h i32)
  ${locals('$a')}
  ${dispatch(per)})`;
}

/** The module's text: its own memory (exported as `memory`, 1 page to start) and dist, filter, hist. */
export function hammingModuleText(): string {
  return `(module
  (memory (export "memory") 1)
  ${distFunction()}
  ${filterFunction()}
  ${histFunction()})`;
}
