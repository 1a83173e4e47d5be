// WebAssembly text of the CPU engine: the GEMM core (C = A B on packed panels, 128-bit SIMD) and the loops around it.
//
// Layout (see runtime.ts): A is packed in panels of MR = 4 rows, k-major (for each k the 4 row values);
// B in panels of NR = 8 columns, k-major (for each k the 8 column values); C is a padded row-major scratch of
// (mPanels * 4) x (nPanels * 8) floats. The 4x8 register block (8 f32x4 accumulators, 2 B vectors, 1 A
// broadcast) is the largest V8's x64 code generator keeps in its 16 vector registers without spilling:
// measured on the development machine, 4x8 ran at 47-52 GFLOP/s on one core, 6x8 and 4x12 at 25-27 (spills).
// Multiply and add stay separate (no relaxed-SIMD FMA, which Node 20 still hides behind a flag); on the
// machines we measured both give the same rate.

import { expNonPositive, f4, lanesLoop, MATH_LOCALS, sigmoid4, tanh4 } from './math.wat.js';
import { pairwiseTermsText } from './pairwise.wat.js';

/** Rows of an A panel. */
export const MR = 4;
/** Columns of a B panel. */
export const NR = 8;

function microkernel(): string {
  const lines: string[] = [];
  for (let v = 0; v < 2; v++) lines.push(`(local.set $b${v} (v128.load offset=${v * 16} (local.get $pb)))`);
  for (let r = 0; r < MR; r++) {
    lines.push(`(local.set $a (v128.load32_splat offset=${r * 4} (local.get $pa)))`);
    for (let v = 0; v < 2; v++) {
      const c = `$c${r}_${v}`;
      lines.push(
        `(local.set ${c} (f32x4.add (local.get ${c}) (f32x4.mul (local.get $a) (local.get $b${v}))))`,
      );
    }
  }
  return lines.join('\n          ');
}

function zeroAccumulators(): string {
  const lines: string[] = [];
  for (let r = 0; r < MR; r++)
    for (let v = 0; v < 2; v++) lines.push(`(local.set $c${r}_${v} (v128.const i32x4 0 0 0 0))`);
  return lines.join('\n        ');
}

function storeAccumulators(): string {
  const lines: string[] = [];
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < 2; v++) {
      // Row r of the tile is ldc bytes further on: $pc + r * $ldc + v * 16.
      const at =
        r === 0
          ? `(i32.add (local.get $pc) (i32.const ${v * 16}))`
          : `(i32.add (local.get $pc) (i32.add (i32.mul (local.get $ldc) (i32.const ${r})) (i32.const ${v * 16})))`;
      lines.push(`(v128.store ${at} (local.get $c${r}_${v}))`);
    }
  }
  return lines.join('\n        ');
}

// The memory-bound loops around the GEMM, driven by index tables so that one routine serves the packing of
// plain matrices, the im2col and col2im of strided convolutions' input gradients and the scatter of C with
// bias and ReLU. Column q and row k of an
// operand address element base[q] + koff[k] of the source; it is inside the (padded) input when
// ihb[q] + kh[k] lies in [0, H) and iwb[q] + kw[k] in [0, W) (plain matrices: all zero, H = W = 1; padding
// columns have ihb = -2^30, so they read 0 and write nothing). Tables are i32 arrays (byte offsets).
const LOOPS_TEXT = `
  ;; Packs panels j0 <= j < j1 of \`width\` columns: dst[((j*K + k)*width + c)] = src[base[q] + koff[k]] or 0.
  (func (export "gather") (param $src i32) (param $dst i32) (param $ihb i32) (param $iwb i32) (param $base i32)
      (param $kh i32) (param $kw i32) (param $koff i32) (param $K i32) (param $width i32) (param $H i32)
      (param $W i32) (param $j0 i32) (param $j1 i32)
    (local $j i32) (local $k i32) (local $c i32) (local $q i32) (local $q0 i32) (local $out i32)
    (local $khk i32) (local $kwk i32) (local $ko i32) (local $v f32) (local $q4 i32)
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.eqz (local.get $K))) (then (return)))
    (local.set $out (i32.add (local.get $dst) (i32.shl (i32.mul (i32.mul (local.get $j0) (local.get $K)) (local.get $width)) (i32.const 2))))
    (local.set $j (local.get $j0))
    (loop $J
      (local.set $q0 (i32.mul (local.get $j) (local.get $width)))
      (local.set $k (i32.const 0))
      (loop $Kl
        (local.set $khk (i32.load (i32.add (local.get $kh) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $kwk (i32.load (i32.add (local.get $kw) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $ko (i32.load (i32.add (local.get $koff) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $c (i32.const 0))
        (loop $C
          (local.set $q4 (i32.shl (i32.add (local.get $q0) (local.get $c)) (i32.const 2)))
          (local.set $v (f32.const 0))
          (if (i32.and
                (i32.lt_u (i32.add (i32.load (i32.add (local.get $ihb) (local.get $q4))) (local.get $khk)) (local.get $H))
                (i32.lt_u (i32.add (i32.load (i32.add (local.get $iwb) (local.get $q4))) (local.get $kwk)) (local.get $W)))
            (then (local.set $v (f32.load (i32.add (local.get $src)
              (i32.shl (i32.add (i32.load (i32.add (local.get $base) (local.get $q4))) (local.get $ko)) (i32.const 2)))))))
          (f32.store (local.get $out) (local.get $v))
          (local.set $out (i32.add (local.get $out) (i32.const 4)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br_if $C (i32.lt_u (local.get $c) (local.get $width))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $Kl (i32.lt_u (local.get $k) (local.get $K))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))

  ;; For rows 0 <= k < K and columns q0 <= q < q1 inside the input: v = C[k*ldc + q] (+ bias[k], or bias[q] when
  ;; flags & 4) (+ dst's element when flags & 8), ReLU when flags & 2 (NaN kept), then dst[base[q] + koff[k]] = v.
  (func (export "scatter") (param $cm i32) (param $ldc i32) (param $dst i32) (param $ihb i32) (param $iwb i32)
      (param $base i32) (param $kh i32) (param $kw i32) (param $koff i32) (param $K i32) (param $H i32)
      (param $W i32) (param $bias i32) (param $flags i32) (param $q0 i32) (param $q1 i32)
    (local $k i32) (local $q i32) (local $q4 i32) (local $khk i32) (local $kwk i32) (local $ko i32)
    (local $row i32) (local $at i32) (local $v f32) (local $bk f32)
    (if (i32.or (i32.ge_u (local.get $q0) (local.get $q1)) (i32.eqz (local.get $K))) (then (return)))
    (local.set $k (i32.const 0))
    (loop $Kl
      (local.set $khk (i32.load (i32.add (local.get $kh) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $kwk (i32.load (i32.add (local.get $kw) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $ko (i32.load (i32.add (local.get $koff) (i32.shl (local.get $k) (i32.const 2)))))
      (local.set $bk (f32.const 0))
      (if (i32.and (i32.ne (local.get $bias) (i32.const 0)) (i32.eqz (i32.and (local.get $flags) (i32.const 4))))
        (then (local.set $bk (f32.load (i32.add (local.get $bias) (i32.shl (local.get $k) (i32.const 2)))))))
      (local.set $row (i32.add (local.get $cm) (i32.shl (i32.mul (local.get $k) (local.get $ldc)) (i32.const 2))))
      (local.set $q (local.get $q0))
      (loop $Q
        (local.set $q4 (i32.shl (local.get $q) (i32.const 2)))
        (if (i32.and
              (i32.lt_u (i32.add (i32.load (i32.add (local.get $ihb) (local.get $q4))) (local.get $khk)) (local.get $H))
              (i32.lt_u (i32.add (i32.load (i32.add (local.get $iwb) (local.get $q4))) (local.get $kwk)) (local.get $W)))
          (then
            (local.set $v (f32.add (f32.load (i32.add (local.get $row) (local.get $q4))) (local.get $bk)))
            (if (i32.and (local.get $flags) (i32.const 4))
              (then (local.set $v (f32.add (local.get $v) (f32.load (i32.add (local.get $bias) (local.get $q4)))))))
            (local.set $at (i32.add (local.get $dst)
              (i32.shl (i32.add (i32.load (i32.add (local.get $base) (local.get $q4))) (local.get $ko)) (i32.const 2))))
            (if (i32.and (local.get $flags) (i32.const 8))
              (then (local.set $v (f32.add (local.get $v) (f32.load (local.get $at))))))
            (local.set $v (f32.reinterpret_i32 (select (i32.const 0) (i32.reinterpret_f32 (local.get $v))
              (i32.and (i32.shr_u (local.get $flags) (i32.const 1)) (f32.le (local.get $v) (f32.const 0))))))
            (f32.store (local.get $at) (local.get $v))))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br_if $Q (i32.lt_u (local.get $q) (local.get $q1))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $Kl (i32.lt_u (local.get $k) (local.get $K)))))

  ;; Max pooling of planes p0 <= p < p1 (H x W -> OH x OW, window k, stride s): y and argmax (index in the plane;
  ;; the first maximum wins, a NaN wins and stays).
  (func (export "maxpool") (param $x i32) (param $y i32) (param $am i32) (param $H i32) (param $W i32)
      (param $k i32) (param $s i32) (param $OH i32) (param $OW i32) (param $p0 i32) (param $p1 i32)
    (local $p i32) (local $oh i32) (local $ow i32) (local $kh i32) (local $kw i32) (local $plane i32)
    (local $best f32) (local $bi i32) (local $idx i32) (local $v f32) (local $out i32) (local $rowi i32)
    (local $start i32) (local $take i32)
    (if (i32.ge_u (local.get $p0) (local.get $p1)) (then (return)))
    (local.set $out (i32.mul (local.get $p0) (i32.mul (local.get $OH) (local.get $OW))))
    (local.set $p (local.get $p0))
    (loop $P
      (local.set $plane (i32.add (local.get $x) (i32.shl (i32.mul (local.get $p) (i32.mul (local.get $H) (local.get $W))) (i32.const 2))))
      (local.set $oh (i32.const 0))
      (loop $OHl
        (local.set $ow (i32.const 0))
        (loop $OWl
          (local.set $start (i32.add (i32.mul (i32.mul (local.get $oh) (local.get $s)) (local.get $W)) (i32.mul (local.get $ow) (local.get $s))))
          (local.set $bi (local.get $start))
          (local.set $best (f32.load (i32.add (local.get $plane) (i32.shl (local.get $bi) (i32.const 2)))))
          (local.set $kh (i32.const 0))
          (loop $KH
            (local.set $rowi (i32.add (local.get $start) (i32.mul (local.get $kh) (local.get $W))))
            (local.set $kw (i32.const 0))
            (loop $KW
              (local.set $idx (i32.add (local.get $rowi) (local.get $kw)))
              (local.set $v (f32.load (i32.add (local.get $plane) (i32.shl (local.get $idx) (i32.const 2)))))
              ;; Branch-free: on activations the comparison is a coin toss for the predictor. The select is on the
              ;; i32 bits, since V8 (11.x) turns an f32 select into a branch but an i32 one into a cmov (6x here).
              (local.set $take (i32.and (f32.eq (local.get $best) (local.get $best))
                    (i32.or (f32.gt (local.get $v) (local.get $best)) (f32.ne (local.get $v) (local.get $v)))))
              (local.set $best (f32.reinterpret_i32 (select (i32.reinterpret_f32 (local.get $v)) (i32.reinterpret_f32 (local.get $best)) (local.get $take))))
              (local.set $bi (select (local.get $idx) (local.get $bi) (local.get $take)))
              (local.set $kw (i32.add (local.get $kw) (i32.const 1)))
              (br_if $KW (i32.lt_u (local.get $kw) (local.get $k))))
            (local.set $kh (i32.add (local.get $kh) (i32.const 1)))
            (br_if $KH (i32.lt_u (local.get $kh) (local.get $k))))
          (f32.store (i32.add (local.get $y) (i32.shl (local.get $out) (i32.const 2))) (local.get $best))
          (i32.store (i32.add (local.get $am) (i32.shl (local.get $out) (i32.const 2))) (local.get $bi))
          (local.set $out (i32.add (local.get $out) (i32.const 1)))
          (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
          (br_if $OWl (i32.lt_u (local.get $ow) (local.get $OW))))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br_if $OHl (i32.lt_u (local.get $oh) (local.get $OH))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $P (i32.lt_u (local.get $p) (local.get $p1)))))

  ;; The pool's backward for planes p0 <= p < p1: dx's plane p to 0, then dx[plane p, argmax] += dy, only where
  ;; y > 0 when y != 0 (the ReLU before the pool folded in).
  (func (export "maxpool_backward") (param $dy i32) (param $am i32) (param $y i32) (param $dx i32)
      (param $planeIn i32) (param $planeOut i32) (param $p0 i32) (param $p1 i32)
    (local $o i32) (local $end i32) (local $at i32) (local $p i32) (local $i i32)
    (if (i32.ge_u (local.get $p0) (local.get $p1)) (then (return)))
    (local.set $p (local.get $p0))
    (loop $P
      ;; The plane to 0 here, where it is about to be written (no separate pass over dx).
      (local.set $at (i32.add (local.get $dx) (i32.shl (i32.mul (local.get $p) (local.get $planeIn)) (i32.const 2))))
      (local.set $end (i32.add (local.get $at) (i32.shl (local.get $planeIn) (i32.const 2))))
      (block $z4
        (loop $Z4
          (br_if $z4 (i32.gt_u (i32.add (local.get $at) (i32.const 16)) (local.get $end)))
          (v128.store (local.get $at) (v128.const i32x4 0 0 0 0))
          (local.set $at (i32.add (local.get $at) (i32.const 16)))
          (br $Z4)))
      (block $z1
        (loop $Z1
          (br_if $z1 (i32.ge_u (local.get $at) (local.get $end)))
          (f32.store (local.get $at) (f32.const 0))
          (local.set $at (i32.add (local.get $at) (i32.const 4)))
          (br $Z1)))
      (local.set $i (i32.const 0))
      (loop $I
        (local.set $o (i32.shl (i32.add (i32.mul (local.get $p) (local.get $planeOut)) (local.get $i)) (i32.const 2)))
        ;; The gate as an i32 select (0 where y <= 0), not a branch (see maxpool).
        (local.set $at (i32.add (local.get $dx) (i32.shl (i32.add (i32.mul (local.get $p) (local.get $planeIn))
          (i32.load (i32.add (local.get $am) (local.get $o)))) (i32.const 2))))
        (f32.store (local.get $at) (f32.add (f32.load (local.get $at))
          (f32.reinterpret_i32 (select (i32.load (i32.add (local.get $dy) (local.get $o))) (i32.const 0)
            (i32.or (i32.eqz (local.get $y)) (f32.gt (f32.load (i32.add (local.get $y) (local.get $o))) (f32.const 0)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $I (i32.lt_u (local.get $i) (local.get $planeOut))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $P (i32.lt_u (local.get $p) (local.get $p1)))))
`;

/**
 * gather8 and col2im8: the loops of gather/scatter for panels of 8 columns, with the 8 columns' tables held in
 * locals and no branches: an element outside the input reads the zero float at `zero` (gather) or adds into
 * the throw-away float at `sink` (col2im), chosen by an i32 select.
 *
 * col2im8 walks the rows k = (c, kh, kw) from the last to the first, so that every input element receives its
 * terms in ascending column order whatever the grouping of columns into panels: two columns q1 < q2 of one
 * image that reach the same element do so through taps (kh1, kw1) > (kh2, kw2) (an earlier output row, or
 * the same row and an earlier column, needs a later tap), so descending k puts q1 first within a panel, as
 * ascending panels do across them. With k ascending, an image whose first column is not at a panel boundary
 * (OH*OW not a multiple of 8, at image n > 0 of a batch) summed in another order than at the batch's start,
 * and a query's input gradient depended on its place in the batch.
 */
function panelLoops(): string {
  const cols = Array.from({ length: NR }, (_, c) => c);
  const colLocals = cols.map((c) => `(local $ih${c} i32) (local $iw${c} i32) (local $b${c} i32)`).join(' ');
  const loadCols = cols
    .map(
      (c) =>
        `(local.set $ih${c} (i32.load offset=${c * 4} (i32.add (local.get $ihb) (local.get $q4))))
        (local.set $iw${c} (i32.load offset=${c * 4} (i32.add (local.get $iwb) (local.get $q4))))
        (local.set $b${c} (i32.load offset=${c * 4} (i32.add (local.get $base) (local.get $q4))))`,
    )
    .join('\n        ');
  const inside = (c: number) =>
    `(i32.and (i32.lt_u (i32.add (local.get $ih${c}) (local.get $khk)) (local.get $H))
                   (i32.lt_u (i32.add (local.get $iw${c}) (local.get $kwk)) (local.get $W)))`;
  const addr = (c: number, buf: string, other: string) =>
    `(select (i32.add (local.get ${buf}) (i32.shl (i32.add (local.get $b${c}) (local.get $ko)) (i32.const 2)))
                 (local.get ${other}) ${inside(c)})`;
  const loadRow = `(local.set $khk (i32.load (i32.add (local.get $kh) (local.get $k4))))
          (local.set $kwk (i32.load (i32.add (local.get $kw) (local.get $k4))))
          (local.set $ko (i32.load (i32.add (local.get $koff) (local.get $k4))))`;
  const gatherBody = cols
    .map((c) => `(f32.store offset=${c * 4} (local.get $out) (f32.load ${addr(c, '$src', '$zero')}))`)
    .join('\n          ');
  const col2imBody = cols
    .map(
      (c) => `(local.set $at ${addr(c, '$dst', '$sink')})
          (f32.store (local.get $at) (f32.add (f32.load (local.get $at)) (f32.load offset=${c * 4} (local.get $row))))`,
    )
    .join('\n          ');
  // `descending`: rows k = K-1 down to 0 (k4 = 4k, the byte offset in the row tables).
  const frame = (
    name: string,
    params: string,
    init: string,
    body: string,
    step: string,
    prologue = '',
    descending = false,
  ) => `
  (func (export "${name}") ${params} (param $ihb i32) (param $iwb i32) (param $base i32) (param $kh i32)
      (param $kw i32) (param $koff i32) (param $K i32) (param $H i32) (param $W i32) (param $j0 i32) (param $j1 i32)
    ${colLocals}
    (local $j i32) (local $k4 i32) (local $K4 i32) (local $q4 i32) (local $khk i32) (local $kwk i32) (local $ko i32)
    (local $out i32) (local $row i32) (local $at i32)
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.eqz (local.get $K))) (then (return)))
    (local.set $K4 (i32.shl (local.get $K) (i32.const 2)))
    ${prologue}
    (local.set $j (local.get $j0))
    (loop $J
      (local.set $q4 (i32.shl (local.get $j) (i32.const 5)))
      ${loadCols}
      ${init}
      (local.set $k4 ${descending ? '(i32.sub (local.get $K4) (i32.const 4))' : '(i32.const 0)'})
      (loop $Kl
          ${loadRow}
          ${body}
          ${step}
        ${
          descending
            ? `(local.set $k4 (i32.sub (local.get $k4) (i32.const 4)))
        (br_if $Kl (i32.ge_s (local.get $k4) (i32.const 0)))`
            : `(local.set $k4 (i32.add (local.get $k4) (i32.const 4)))
        (br_if $Kl (i32.lt_u (local.get $k4) (local.get $K4)))`
        })
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))`;
  return (
    frame(
      'gather8',
      '(param $src i32) (param $dst i32) (param $zero i32)',
      '(local.set $out (i32.add (local.get $dst) (i32.mul (local.get $j) (i32.shl (local.get $K) (i32.const 5)))))',
      gatherBody,
      '(local.set $out (i32.add (local.get $out) (i32.const 32)))',
    ) +
    frame(
      'col2im8',
      '(param $cm i32) (param $ldc i32) (param $dst i32) (param $sink i32)',
      // From the last row of C (k = K-1) up.
      `(local.set $row (i32.add (i32.add (local.get $cm) (local.get $q4))
        (i32.mul (i32.sub (local.get $K) (i32.const 1)) (i32.shl (local.get $ldc) (i32.const 2)))))`,
      col2imBody,
      '(local.set $row (i32.sub (local.get $row) (i32.shl (local.get $ldc) (i32.const 2))))',
      // Each thread's throw-away float is on its own cache line.
      '(local.set $sink (i32.add (local.get $sink) (i32.shl (global.get $thread) (i32.const 6))))',
      true,
    )
  );
}

/** The scalar step of the 2x2 pool: `v` (index `idx`) replaces the best when larger or NaN (see maxpool). */
function poolTake(v: string, idx: string): string {
  return `(local.set $take (i32.and (f32.eq (local.get $best) (local.get $best))
                (i32.or (f32.gt ${v} (local.get $best)) (f32.ne ${v} ${v}))))
          (local.set $best (f32.reinterpret_i32 (select (i32.reinterpret_f32 ${v}) (i32.reinterpret_f32 (local.get $best)) (local.get $take))))
          (local.set $bi (select ${idx} (local.get $bi) (local.get $take)))`;
}

/** The same step on four windows at once (masks instead of selects: no branch either way). */
function poolTake4(v: string, idx: string): string {
  return `(local.set $vt (v128.and (f32x4.eq (local.get $vbest) (local.get $vbest))
                (v128.or (f32x4.gt ${v} (local.get $vbest)) (f32x4.ne ${v} ${v}))))
            (local.set $vbest (v128.bitselect ${v} (local.get $vbest) (local.get $vt)))
            (local.set $vbi (v128.bitselect ${idx} (local.get $vbi) (local.get $vt)))`;
}

/**
 * maxpool2: 2x2 max pooling with stride 2 (the common case) for planes p0 <= p < p1, same rules as maxpool
 * (the window's elements in the order (0,0), (0,1), (1,0), (1,1); the first maximum wins, a NaN wins and
 * stays). Four windows at a time: two rows of 8 inputs loaded as four vectors, split into even and odd
 * columns by shuffles, compared lane-wise; the last OW % 4 windows of a row one at a time.
 */
function maxPool2Text(): string {
  const even = '0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27';
  const odd = '4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31';
  const at = (i: string) => `(i32.add (local.get $plane) (i32.shl ${i} (i32.const 2)))`;
  return `
  (func (export "maxpool2") (param $x i32) (param $y i32) (param $am i32) (param $H i32) (param $W i32)
      (param $OH i32) (param $OW i32) (param $p0 i32) (param $p1 i32)
    (local $p i32) (local $oh i32) (local $ow i32) (local $row i32) (local $i i32) (local $out i32)
    (local $best f32) (local $bi i32) (local $v f32) (local $plane i32) (local $take i32) (local $OW4 i32)
    (local $r0a v128) (local $r0b v128) (local $r1a v128) (local $r1b v128) (local $vbest v128) (local $vbi v128)
    (local $vi v128) (local $vt v128) (local $vW v128)
    (if (i32.ge_u (local.get $p0) (local.get $p1)) (then (return)))
    (local.set $out (i32.shl (i32.mul (local.get $p0) (i32.mul (local.get $OH) (local.get $OW))) (i32.const 2)))
    (local.set $OW4 (i32.and (local.get $OW) (i32.const -4)))
    (local.set $vW (i32x4.splat (local.get $W)))
    (local.set $p (local.get $p0))
    (loop $P
      (local.set $plane (i32.add (local.get $x) (i32.shl (i32.mul (local.get $p) (i32.mul (local.get $H) (local.get $W))) (i32.const 2))))
      (local.set $oh (i32.const 0))
      (loop $OHl
        (local.set $row (i32.mul (i32.shl (local.get $oh) (i32.const 1)) (local.get $W)))
        (local.set $ow (i32.const 0))
        (block $vecDone
          (loop $V
            (br_if $vecDone (i32.ge_u (local.get $ow) (local.get $OW4)))
            (local.set $i (i32.add (local.get $row) (i32.shl (local.get $ow) (i32.const 1))))
            (local.set $r0a (v128.load ${at('(local.get $i)')}))
            (local.set $r0b (v128.load offset=16 ${at('(local.get $i)')}))
            (local.set $r1a (v128.load ${at('(i32.add (local.get $i) (local.get $W))')}))
            (local.set $r1b (v128.load offset=16 ${at('(i32.add (local.get $i) (local.get $W))')}))
            (local.set $vi (i32x4.add (i32x4.splat (local.get $i)) (v128.const i32x4 0 2 4 6)))
            (local.set $vbest (i8x16.shuffle ${even} (local.get $r0a) (local.get $r0b)))
            (local.set $vbi (local.get $vi))
            ${poolTake4(`(i8x16.shuffle ${odd} (local.get $r0a) (local.get $r0b))`, '(i32x4.add (local.get $vi) (v128.const i32x4 1 1 1 1))')}
            ${poolTake4(`(i8x16.shuffle ${even} (local.get $r1a) (local.get $r1b))`, '(i32x4.add (local.get $vi) (local.get $vW))')}
            ${poolTake4(`(i8x16.shuffle ${odd} (local.get $r1a) (local.get $r1b))`, '(i32x4.add (i32x4.add (local.get $vi) (local.get $vW)) (v128.const i32x4 1 1 1 1))')}
            (v128.store (i32.add (local.get $y) (local.get $out)) (local.get $vbest))
            (v128.store (i32.add (local.get $am) (local.get $out)) (local.get $vbi))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (local.set $ow (i32.add (local.get $ow) (i32.const 4)))
            (br $V)))
        (block $done
          (loop $OWl
            (br_if $done (i32.ge_u (local.get $ow) (local.get $OW)))
            (local.set $i (i32.add (local.get $row) (i32.shl (local.get $ow) (i32.const 1))))
            (local.set $bi (local.get $i))
            (local.set $best (f32.load ${at('(local.get $i)')}))
            (local.set $v (f32.load ${at('(i32.add (local.get $i) (i32.const 1))')}))
            ${poolTake('(local.get $v)', '(i32.add (local.get $i) (i32.const 1))')}
            (local.set $v (f32.load ${at('(i32.add (local.get $i) (local.get $W))')}))
            ${poolTake('(local.get $v)', '(i32.add (local.get $i) (local.get $W))')}
            (local.set $v (f32.load ${at('(i32.add (i32.add (local.get $i) (local.get $W)) (i32.const 1))')}))
            ${poolTake('(local.get $v)', '(i32.add (i32.add (local.get $i) (local.get $W)) (i32.const 1))')}
            (f32.store (i32.add (local.get $y) (local.get $out)) (local.get $best))
            (i32.store (i32.add (local.get $am) (local.get $out)) (local.get $bi))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
            (br $OWl)))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br_if $OHl (i32.lt_u (local.get $oh) (local.get $OH))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $P (i32.lt_u (local.get $p) (local.get $p1)))))`;
}

/**
 * pad_planes: copies planes p0 <= p < p1 of H x W floats from src into planes of Hq x Wq floats at dst, at row
 * `top` and column `left`, zeros around (the padded input of a convolution, read without bounds checks by
 * conv_gemm and winograd_conv; Hq >= top + H, Wq >= left + W).
 */
function padPlanesText(): string {
  return `
  (func $pad_planes (export "pad_planes") (param $src i32) (param $dst i32) (param $H i32) (param $W i32) (param $top i32)
      (param $left i32) (param $Hq i32) (param $Wq i32) (param $p0 i32) (param $p1 i32)
    (local $p i32) (local $r i32) (local $in i32) (local $out i32) (local $end i32) (local $rowEnd i32)
    (local $planeBytes i32) (local $o i32)
    (if (i32.ge_u (local.get $p0) (local.get $p1)) (then (return)))
    (local.set $planeBytes (i32.shl (i32.mul (local.get $Wq) (local.get $Hq)) (i32.const 2)))
    (local.set $in (i32.add (local.get $src) (i32.shl (i32.mul (local.get $p0) (i32.mul (local.get $H) (local.get $W))) (i32.const 2))))
    (local.set $p (local.get $p0))
    (loop $P
      ;; The whole plane to 0 (16 bytes at a time, then the rest), then the rows of the input into it.
      (local.set $out (i32.add (local.get $dst) (i32.mul (local.get $p) (local.get $planeBytes))))
      (local.set $end (i32.add (local.get $out) (local.get $planeBytes)))
      (local.set $o (local.get $out))
      (block $z4
        (loop $Z4
          (br_if $z4 (i32.gt_u (i32.add (local.get $o) (i32.const 16)) (local.get $end)))
          (v128.store (local.get $o) (v128.const i32x4 0 0 0 0))
          (local.set $o (i32.add (local.get $o) (i32.const 16)))
          (br $Z4)))
      (block $z1
        (loop $Z1
          (br_if $z1 (i32.ge_u (local.get $o) (local.get $end)))
          (f32.store (local.get $o) (f32.const 0))
          (local.set $o (i32.add (local.get $o) (i32.const 4)))
          (br $Z1)))
      (local.set $o (i32.add (local.get $out)
        (i32.shl (i32.add (i32.mul (local.get $top) (local.get $Wq)) (local.get $left)) (i32.const 2))))
      (local.set $r (i32.const 0))
      (block $rowsDone
        (loop $R
          (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $H)))
          (local.set $rowEnd (i32.add (local.get $in) (i32.shl (local.get $W) (i32.const 2))))
          (local.set $out (local.get $o))
          (block $c4
            (loop $C4
              (br_if $c4 (i32.gt_u (i32.add (local.get $in) (i32.const 16)) (local.get $rowEnd)))
              (v128.store (local.get $out) (v128.load (local.get $in)))
              (local.set $in (i32.add (local.get $in) (i32.const 16)))
              (local.set $out (i32.add (local.get $out) (i32.const 16)))
              (br $C4)))
          (block $c1
            (loop $C1
              (br_if $c1 (i32.ge_u (local.get $in) (local.get $rowEnd)))
              (f32.store (local.get $out) (f32.load (local.get $in)))
              (local.set $in (i32.add (local.get $in) (i32.const 4)))
              (local.set $out (i32.add (local.get $out) (i32.const 4)))
              (br $C1)))
          (local.set $o (i32.add (local.get $o) (i32.shl (local.get $Wq) (i32.const 2))))
          (local.set $r (i32.add (local.get $r) (i32.const 1)))
          (br $R)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $P (i32.lt_u (local.get $p) (local.get $p1)))))`;
}

/** F(2x2, 3x3) Winograd: B^T's rows as the combinations of a 4-vector (the input transform's 1-D step). */
function winogradBT(d: string[]): string[] {
  const [d0, d1, d2, d3] = d;
  return [
    `(f32x4.sub ${d0} ${d2})`,
    `(f32x4.add ${d1} ${d2})`,
    `(f32x4.sub ${d2} ${d1})`,
    `(f32x4.sub ${d1} ${d3})`,
  ];
}

/**
 * conv_gemm: a GEMM whose B panels are gathered on the fly and whose C goes straight to its place, with
 * bias and ReLU. The A panels of B panel j are at ap + (j / jPer) * aStep (pieces of the columns with an A
 * each: a weight gradient's images). For B panels j0 <= j < j1 (threads split them): panel j's element (k, c) is the float at
 * src + colOff[8j + c] + rowOff[k] (byte offsets; every address valid: a convolution reads a padded copy of
 * its input, see pad_planes), packed into this thread's K x 8 floats at scratch + thread * 32 K' (K' = K
 * rounded up to even: whole 64-byte lines per thread), then every A
 * panel times it, and the 4 x 8 tile (+ bias[8j + c] when flags & 2, else + bias[m] when bias != 0, else
 * + 0; then max(., 0) when flags & 1, NaN kept) stored at dst + dstOff[8j + c] + m * rowStride for rows
 * m < M and columns with dstOff >= 0 (a whole
 * tile as 8 vector stores when its 8 columns are contiguous). Each output is the GEMM core's chain over k
 * in order, then the bias: the same bits as gemm, then storing C with its bias, at any batch and thread count.
 */
function convGemmText(): string {
  const cols = Array.from({ length: NR }, (_, c) => c);
  const acc: string[] = [];
  for (let r = 0; r < MR; r++) for (let v = 0; v < 2; v++) acc.push(`$c${r}_${v}`);
  const contiguous = (name: string) =>
    cols
      .slice(1)
      .map((c) => `(i32.eq (i32.sub (local.get $${name}${c}) (local.get $${name}0)) (i32.const ${4 * c}))`)
      .reduce((a, b) => `(i32.and ${a} ${b})`);
  const epilogue: string[] = [];
  for (let r = 0; r < MR; r++) {
    // One addition of the bias: of the column (flags & 2; the panel's 8 biases, loaded per panel) or of row
    // min(m, M - 1) (in bounds for the rows past M, which are not stored), + 0 without one.
    epilogue.push(`(if (i32.and (local.get $flags) (i32.const 2))
          (then
            (local.set $c${r}_0 (f32x4.add (local.get $c${r}_0) (local.get $bc0)))
            (local.set $c${r}_1 (f32x4.add (local.get $c${r}_1) (local.get $bc1))))
          (else
            (local.set $bv (v128.const i32x4 0 0 0 0))
            (if (local.get $bias) (then (local.set $bv (v128.load32_splat (i32.add (local.get $bias)
              (i32.shl (select (i32.add (local.get $m0) (i32.const ${r})) (i32.sub (local.get $M) (i32.const 1))
                (i32.lt_u (i32.add (local.get $m0) (i32.const ${r})) (local.get $M))) (i32.const 2)))))))
            (local.set $c${r}_0 (f32x4.add (local.get $c${r}_0) (local.get $bv)))
            (local.set $c${r}_1 (f32x4.add (local.get $c${r}_1) (local.get $bv)))))`);
    for (let v = 0; v < 2; v++) {
      const c = `$c${r}_${v}`;
      epilogue.push(
        `(if (i32.and (local.get $flags) (i32.const 1)) (then (local.set ${c} (f32x4.max (local.get ${c}) (v128.const f32x4 0 0 0 0)))))`,
      );
    }
  }
  const vectorStores: string[] = [];
  for (let r = 0; r < MR; r++) {
    for (let v = 0; v < 2; v++)
      vectorStores.push(`(v128.store offset=${v * 16} (local.get $out) (local.get $c${r}_${v}))`);
    if (r < MR - 1) vectorStores.push('(local.set $out (i32.add (local.get $out) (local.get $rowStride)))');
  }
  const laneStores: string[] = [];
  for (const c of cols) {
    const rowsText: string[] = [];
    for (let r = 0; r < MR; r++) {
      rowsText.push(`(if (i32.lt_u (i32.const ${r}) (local.get $rows)) (then
              (f32.store (local.get $out) (f32x4.extract_lane ${c % 4} (local.get $c${r}_${c >> 2})))
              (local.set $out (i32.add (local.get $out) (local.get $rowStride)))))`);
    }
    laneStores.push(`(local.set $d (i32.load offset=${c * 4} (i32.add (local.get $dstOff) (local.get $q4))))
          (if (i32.ge_s (local.get $d) (i32.const 0)) (then
            (local.set $out (i32.add (local.get $rowBase) (local.get $d)))
            ${rowsText.join('\n            ')}))`);
  }
  return `
  (func (export "conv_gemm") (param $ap i32) (param $aStep i32) (param $jPer i32) (param $src i32)
      (param $colOff i32) (param $rowOff i32)
      (param $dst i32) (param $dstOff i32) (param $rowStride i32) (param $bias i32) (param $flags i32)
      (param $M i32) (param $K i32) (param $scratch i32) (param $j0 i32) (param $j1 i32)
    ${acc.map((a) => `(local ${a} v128)`).join(' ')}
    (local $b0 v128) (local $b1 v128) (local $a v128) (local $bv v128) (local $bc0 v128) (local $bc1 v128)
    ${cols.map((c) => `(local $s${c} i32) (local $e${c} i32)`).join(' ')}
    (local $i i32) (local $j i32) (local $k i32) (local $pa i32) (local $pb i32) (local $sp i32) (local $k4 i32)
    (local $K4 i32) (local $ro i32) (local $q4 i32) (local $mPanels i32) (local $aPanel i32) (local $m0 i32)
    (local $rows i32) (local $whole i32) (local $out i32) (local $rowBase i32) (local $d i32) (local $apj i32)
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.or (i32.eqz (local.get $M)) (i32.eqz (local.get $K))))
      (then (return)))
    (local.set $K4 (i32.shl (local.get $K) (i32.const 2)))
    (local.set $aPanel (i32.mul (local.get $K) (i32.const ${MR * 4})))
    (local.set $mPanels (i32.shr_u (i32.add (local.get $M) (i32.const ${MR - 1})) (i32.const 2)))
    ;; This thread's panel: K rounded up to even, so that no two threads' panels share a 64-byte line.
    (local.set $sp (i32.add (local.get $scratch) (i32.mul (global.get $thread)
      (i32.shl (i32.and (i32.add (local.get $K) (i32.const 1)) (i32.const -2)) (i32.const 5)))))
    (local.set $j (local.get $j0))
    (loop $J
      (local.set $q4 (i32.shl (local.get $j) (i32.const 5)))
      ${cols.map((c) => `(local.set $s${c} (i32.add (local.get $src) (i32.load offset=${c * 4} (i32.add (local.get $colOff) (local.get $q4)))))`).join('\n      ')}
      ;; The panel: two vector copies per row when its 8 columns are contiguous, else 8 scalar ones.
      (local.set $pb (local.get $sp))
      (local.set $k4 (i32.const 0))
      (if ${contiguous('s')}
        (then
          (loop $Bv
            (local.set $ro (i32.add (local.get $s0) (i32.load (i32.add (local.get $rowOff) (local.get $k4)))))
            (v128.store (local.get $pb) (v128.load (local.get $ro)))
            (v128.store offset=16 (local.get $pb) (v128.load offset=16 (local.get $ro)))
            (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
            (local.set $k4 (i32.add (local.get $k4) (i32.const 4)))
            (br_if $Bv (i32.lt_u (local.get $k4) (local.get $K4)))))
        (else
          (loop $Bs
            (local.set $ro (i32.load (i32.add (local.get $rowOff) (local.get $k4))))
            ${cols.map((c) => `(f32.store offset=${c * 4} (local.get $pb) (f32.load (i32.add (local.get $s${c}) (local.get $ro))))`).join('\n            ')}
            (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
            (local.set $k4 (i32.add (local.get $k4) (i32.const 4)))
            (br_if $Bs (i32.lt_u (local.get $k4) (local.get $K4))))))
      ;; The biases of the panel's columns (flags & 2; read past the last column for a partial panel, not stored).
      (if (i32.and (local.get $flags) (i32.const 2))
        (then
          (local.set $bc0 (v128.load (i32.add (local.get $bias) (local.get $q4))))
          (local.set $bc1 (v128.load offset=16 (i32.add (local.get $bias) (local.get $q4))))))
      ;; This panel's A: the A of its piece (pieces of jPer panels, aStep bytes apart).
      (local.set $apj (i32.add (local.get $ap) (i32.mul (i32.div_u (local.get $j) (local.get $jPer)) (local.get $aStep))))
      ;; Whether the tile's 8 columns are 8 contiguous floats of the output.
      ${cols.map((c) => `(local.set $e${c} (i32.load offset=${c * 4} (i32.add (local.get $dstOff) (local.get $q4))))`).join('\n      ')}
      (local.set $whole (i32.and (i32.ge_s (local.get $e0) (i32.const 0)) ${contiguous('e')}))
      (local.set $i (i32.const 0))
      (loop $I
        ${zeroAccumulators()}
        (local.set $pa (i32.add (local.get $apj) (i32.mul (local.get $i) (local.get $aPanel))))
        (local.set $pb (local.get $sp))
        (local.set $k (local.get $K))
        (loop $L
          ${microkernel()}
          (local.set $pa (i32.add (local.get $pa) (i32.const ${MR * 4})))
          (local.set $pb (i32.add (local.get $pb) (i32.const ${NR * 4})))
          (local.set $k (i32.sub (local.get $k) (i32.const 1)))
          (br_if $L (local.get $k)))
        (local.set $m0 (i32.shl (local.get $i) (i32.const 2)))
        (local.set $rows (i32.sub (local.get $M) (local.get $m0)))
        (local.set $rowBase (i32.add (local.get $dst) (i32.mul (local.get $m0) (local.get $rowStride))))
        ${epilogue.join('\n        ')}
        (if (i32.and (local.get $whole) (i32.ge_u (local.get $rows) (i32.const ${MR})))
          (then
            (local.set $out (i32.add (local.get $rowBase) (local.get $e0)))
            ${vectorStores.join('\n            ')})
          (else
          ${laneStores.join('\n          ')}))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $I (i32.lt_u (local.get $i) (local.get $mPanels))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))`;
}

/**
 * pack_a4: A panels j0 <= j < j1 of K steps from lines of contiguous floats: line q = 4j + r starts at byte
 * src + base[q] (base[q] < 0: a line of zeros), and dst[(j*K + k)*4 + r] = line q's float k. Four
 * steps at a time as a 4 x 4 transpose of vectors, the last K % 4 one at a time.
 */
function packA4Text(): string {
  const rows = [0, 1, 2, 3];
  const shuffle = (lanes: number[], a: string, b: string) =>
    `(i8x16.shuffle ${lanes.flatMap((l) => [0, 1, 2, 3].map((x) => 4 * l + x)).join(' ')} (local.get ${a}) (local.get ${b}))`;
  return `
  (func (export "pack_a4") (param $src i32) (param $dst i32) (param $base i32) (param $K i32) (param $j0 i32)
      (param $j1 i32)
    ${rows.map((r) => `(local $l${r} i32) (local $v${r} v128)`).join(' ')}
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local $j i32) (local $k i32) (local $K4 i32) (local $out i32) (local $zero i32)
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.eqz (local.get $K))) (then (return)))
    (local.set $K4 (i32.and (local.get $K) (i32.const -4)))
    (local.set $out (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $j0) (local.get $K)) (i32.const 4))))
    (local.set $j (local.get $j0))
    (loop $J
      ${rows.map((r) => `(local.set $l${r} (i32.load offset=${4 * r} (i32.add (local.get $base) (i32.shl (local.get $j) (i32.const 4)))))`).join('\n      ')}
      (local.set $zero (i32.or (i32.lt_s (local.get $l0) (i32.const 0)) (i32.or (i32.lt_s (local.get $l1) (i32.const 0))
        (i32.or (i32.lt_s (local.get $l2) (i32.const 0)) (i32.lt_s (local.get $l3) (i32.const 0))))))
      ${rows.map((r) => `(local.set $l${r} (i32.add (local.get $l${r}) (local.get $src)))`).join('\n      ')}
      (local.set $k (i32.const 0))
      (if (local.get $zero)
        (then
          ;; A panel with lines past the matrix: one float at a time, 0 for those lines.
          (block $sDone
            (loop $S
              (br_if $sDone (i32.ge_u (local.get $k) (local.get $K)))
              ${rows
                .map(
                  (
                    r,
                  ) => `(f32.store offset=${4 * r} (local.get $out) (if (result f32) (i32.ge_s (local.get $l${r}) (local.get $src))
                (then (f32.load (i32.add (local.get $l${r}) (i32.shl (local.get $k) (i32.const 2))))) (else (f32.const 0))))`,
                )
                .join('\n              ')}
              (local.set $out (i32.add (local.get $out) (i32.const 16)))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br $S))))
        (else
          (block $vDone
            (loop $V
              (br_if $vDone (i32.ge_u (local.get $k) (local.get $K4)))
              ${rows.map((r) => `(local.set $v${r} (v128.load (i32.add (local.get $l${r}) (i32.shl (local.get $k) (i32.const 2)))))`).join('\n              ')}
              (local.set $t0 ${shuffle([0, 4, 1, 5], '$v0', '$v1')})
              (local.set $t1 ${shuffle([0, 4, 1, 5], '$v2', '$v3')})
              (local.set $t2 ${shuffle([2, 6, 3, 7], '$v0', '$v1')})
              (local.set $t3 ${shuffle([2, 6, 3, 7], '$v2', '$v3')})
              (v128.store (local.get $out) ${shuffle([0, 1, 4, 5], '$t0', '$t1')})
              (v128.store offset=16 (local.get $out) ${shuffle([2, 3, 6, 7], '$t0', '$t1')})
              (v128.store offset=32 (local.get $out) ${shuffle([0, 1, 4, 5], '$t2', '$t3')})
              (v128.store offset=48 (local.get $out) ${shuffle([2, 3, 6, 7], '$t2', '$t3')})
              (local.set $out (i32.add (local.get $out) (i32.const 64)))
              (local.set $k (i32.add (local.get $k) (i32.const 4)))
              (br $V)))
          (block $tDone
            (loop $T
              (br_if $tDone (i32.ge_u (local.get $k) (local.get $K)))
              ${rows.map((r) => `(f32.store offset=${4 * r} (local.get $out) (f32.load (i32.add (local.get $l${r}) (i32.shl (local.get $k) (i32.const 2)))))`).join('\n              ')}
              (local.set $out (i32.add (local.get $out) (i32.const 16)))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br $T)))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))`;
}

/**
 * sum_rows: for columns l0 <= l < l1 of `rows` rows (rowStride floats apart), dst[l] = (dst[l] when
 * accumulate, else 0) + src[l] + src[rowStride + l] + ... in row order, one f32 chain per column (four
 * columns at a time): the same sums on any thread count.
 */
function sumRowsText(): string {
  return `
  (func (export "sum_rows") (param $src i32) (param $dst i32) (param $rowStride i32) (param $rows i32)
      (param $accumulate i32) (param $l0 i32) (param $l1 i32)
    (local $l i32) (local $n i32) (local $at i32) (local $step i32) (local $acc v128) (local $s f32)
    (if (i32.ge_u (local.get $l0) (local.get $l1)) (then (return)))
    (local.set $step (i32.shl (local.get $rowStride) (i32.const 2)))
    (local.set $l (local.get $l0))
    (block $vDone
      (loop $V
        (br_if $vDone (i32.gt_u (i32.add (local.get $l) (i32.const 4)) (local.get $l1)))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (if (local.get $accumulate)
          (then (local.set $acc (v128.load (i32.add (local.get $dst) (i32.shl (local.get $l) (i32.const 2)))))))
        (local.set $at (i32.add (local.get $src) (i32.shl (local.get $l) (i32.const 2))))
        (local.set $n (local.get $rows))
        (block $nDone
          (loop $N
            (br_if $nDone (i32.eqz (local.get $n)))
            (local.set $acc (f32x4.add (local.get $acc) (v128.load (local.get $at))))
            (local.set $at (i32.add (local.get $at) (local.get $step)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $N)))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $l) (i32.const 2))) (local.get $acc))
        (local.set $l (i32.add (local.get $l) (i32.const 4)))
        (br $V)))
    (block $sDone
      (loop $S
        (br_if $sDone (i32.ge_u (local.get $l) (local.get $l1)))
        (local.set $s (f32.const 0))
        (if (local.get $accumulate)
          (then (local.set $s (f32.load (i32.add (local.get $dst) (i32.shl (local.get $l) (i32.const 2)))))))
        (local.set $at (i32.add (local.get $src) (i32.shl (local.get $l) (i32.const 2))))
        (local.set $n (local.get $rows))
        (block $nDone1
          (loop $N1
            (br_if $nDone1 (i32.eqz (local.get $n)))
            (local.set $s (f32.add (local.get $s) (f32.load (local.get $at))))
            (local.set $at (i32.add (local.get $at) (local.get $step)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $N1)))
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $l) (i32.const 2))) (local.get $s))
        (local.set $l (i32.add (local.get $l) (i32.const 1)))
        (br $S))))`;
}

/**
 * sgd: PyTorch's SGD step with momentum and weight decay on elements i0 <= i < i1, in f32 (lr, momentum and
 * weight decay arrive as their f32 bits): v = momentum * v + (g + weightDecay * w); w = w - lr * v. Four
 * elements at a time, then the tail; the same operations element by element, so the same bits as the scalar
 * form and as the WGSL kernel.
 */
function sgdText(): string {
  const step = (
    load: string,
    store: string,
    mul: string,
    add: string,
    sub: string,
    splat: (x: string) => string,
    width: number,
  ) => `
        (local.set $wv (${load} (i32.add (local.get $w) (local.get $at))))
        (local.set $vv (${add} (${mul} ${splat('$m')} (${load} (i32.add (local.get $v) (local.get $at))))
          (${add} (${load} (i32.add (local.get $g) (local.get $at))) (${mul} ${splat('$wd')} (local.get $wv)))))
        (${store} (i32.add (local.get $v) (local.get $at)) (local.get $vv))
        (${store} (i32.add (local.get $w) (local.get $at)) (${sub} (local.get $wv) (${mul} ${splat('$lr')} (local.get $vv))))
        (local.set $at (i32.add (local.get $at) (i32.const ${4 * width})))`;
  const splat4 = (x: string) => `(f32x4.splat (local.get ${x}))`;
  const splat1 = (x: string) => `(local.get ${x})`;
  return `
  (func (export "sgd") (param $w i32) (param $g i32) (param $v i32) (param $lrBits i32) (param $mBits i32)
      (param $wdBits i32) (param $i0 i32) (param $i1 i32)
    (local $at i32) (local $end i32) (local $lr f32) (local $m f32) (local $wd f32)
    (local $wv v128) (local $vv v128)
    (if (i32.ge_u (local.get $i0) (local.get $i1)) (then (return)))
    (local.set $lr (f32.reinterpret_i32 (local.get $lrBits)))
    (local.set $m (f32.reinterpret_i32 (local.get $mBits)))
    (local.set $wd (f32.reinterpret_i32 (local.get $wdBits)))
    (local.set $at (i32.shl (local.get $i0) (i32.const 2)))
    (local.set $end (i32.shl (i32.sub (local.get $i1) (i32.rem_u (i32.sub (local.get $i1) (local.get $i0)) (i32.const 4))) (i32.const 2)))
    (block $vDone
      (loop $V
        (br_if $vDone (i32.ge_u (local.get $at) (local.get $end)))${step('v128.load', 'v128.store', 'f32x4.mul', 'f32x4.add', 'f32x4.sub', splat4, 4)}
        (br $V)))
    (call $sgdTail (local.get $w) (local.get $g) (local.get $v) (local.get $lr) (local.get $m) (local.get $wd)
      (local.get $at) (i32.shl (local.get $i1) (i32.const 2))))

  (func $sgdTail (param $w i32) (param $g i32) (param $v i32) (param $lr f32) (param $m f32) (param $wd f32)
      (param $at i32) (param $end i32)
    (local $wv f32) (local $vv f32)
    (block $sDone
      (loop $S
        (br_if $sDone (i32.ge_u (local.get $at) (local.get $end)))${step('f32.load', 'f32.store', 'f32.mul', 'f32.add', 'f32.sub', splat1, 1)}
        (br $S))))`;
}

/**
 * The skeleton of winograd_conv and winograd4_conv (`components` = 16 or 36 products): the parameters, the
 * shared locals, this thread's V and M in its scratch, and per group of 8 tiles 1. the input transform
 * (`inputBody`: one channel of four tiles at $q0..$q3 into V at $vc, component stride $xiV), 2. the products
 * on the GEMM core (each output a chain over the channels in order) and 3. `output` (the output transform from
 * M at $ms; $tt is free for it).
 */
function winogradFunc(
  name: string,
  components: number,
  locals: string[],
  inputBody: string,
  output: string,
): string {
  const lanes = [0, 1, 2, 3];
  const acc: string[] = [];
  for (let r = 0; r < MR; r++) for (let v = 0; v < 2; v++) acc.push(`$c${r}_${v}`);
  const accStores: string[] = [];
  for (let r = 0; r < MR; r++)
    for (let v = 0; v < 2; v++)
      accStores.push(`(v128.store offset=${r * 32 + v * 16} (local.get $pc) (local.get $c${r}_${v}))`);
  const all = [
    ...acc.map((a) => `(local ${a} v128)`),
    '(local $b0 v128) (local $b1 v128) (local $a v128) (local $bv v128)',
    ...locals,
    lanes.map((l) => `(local $q${l} i32)`).join(' '),
    '(local $j i32) (local $h i32) (local $c i32) (local $o i32) (local $xi i32) (local $i i32) (local $k i32)',
    '(local $pa i32) (local $pb i32) (local $pc i32) (local $vs i32) (local $ms i32) (local $vc i32) (local $mo i32)',
    '(local $yo i32) (local $at i32) (local $tt i32) (local $mPanels i32) (local $Mp i32) (local $aPanel i32)',
    '(local $xiV i32) (local $xiM i32)',
  ].join('\n    ');
  return `
  (func (export "${name}") (param $ap i32) (param $aStep i32) (param $xq i32) (param $corner i32)
      (param $ytab i32) (param $planeIn i32) (param $rowIn i32) (param $y i32) (param $planeOut i32)
      (param $rowOut i32) (param $bias i32) (param $relu i32) (param $M i32) (param $C i32) (param $scratch i32)
      (param $j0 i32) (param $j1 i32)
    ${all}
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.or (i32.eqz (local.get $M)) (i32.eqz (local.get $C))))
      (then (return)))
    (local.set $mPanels (i32.shr_u (i32.add (local.get $M) (i32.const ${MR - 1})) (i32.const 2)))
    (local.set $Mp (i32.shl (local.get $mPanels) (i32.const 2)))
    (local.set $aPanel (i32.shl (local.get $C) (i32.const 4)))
    ;; Bytes between two components' panels in V (C x 8 floats) and in M (Mp x 8 floats).
    (local.set $xiV (i32.shl (local.get $C) (i32.const 5)))
    (local.set $xiM (i32.shl (local.get $Mp) (i32.const 5)))
    (local.set $vs (i32.add (local.get $scratch) (i32.mul (global.get $thread)
      (i32.mul (i32.add (local.get $C) (local.get $Mp)) (i32.const ${32 * components})))))
    (local.set $ms (i32.add (local.get $vs) (i32.mul (local.get $C) (i32.const ${32 * components}))))
    (local.set $j (local.get $j0))
    (loop $J
      ;; 1. The input transform of the group's tiles, four at a time.
      (local.set $h (i32.const 0))
      (loop $Hin
        (local.set $tt (i32.shl (i32.add (i32.shl (local.get $j) (i32.const 3)) (local.get $h)) (i32.const 2)))
        ${lanes.map((l) => `(local.set $q${l} (i32.add (local.get $xq) (i32.load offset=${4 * l} (i32.add (local.get $corner) (local.get $tt)))))`).join('\n        ')}
        (local.set $vc (i32.add (local.get $vs) (i32.shl (local.get $h) (i32.const 2))))
        (local.set $c (i32.const 0))
        (loop $Cin
          ${inputBody}
          ${lanes.map((l) => `(local.set $q${l} (i32.add (local.get $q${l}) (local.get $planeIn)))`).join('\n          ')}
          (local.set $vc (i32.add (local.get $vc) (i32.const 32)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br_if $Cin (i32.lt_u (local.get $c) (local.get $C))))
        (local.set $h (i32.add (local.get $h) (i32.const 4)))
        (br_if $Hin (i32.lt_u (local.get $h) (i32.const 8))))
      ;; 2. The ${components} products, each an A panel at a time into M.
      (local.set $xi (i32.const 0))
      (loop $XI
        (local.set $i (i32.const 0))
        (loop $I
          ${zeroAccumulators()}
          (local.set $pa (i32.add (i32.add (local.get $ap) (i32.mul (local.get $xi) (local.get $aStep)))
            (i32.mul (local.get $i) (local.get $aPanel))))
          (local.set $pb (i32.add (local.get $vs) (i32.mul (local.get $xi) (local.get $xiV))))
          (local.set $k (local.get $C))
          (loop $L
            ${microkernel()}
            (local.set $pa (i32.add (local.get $pa) (i32.const ${MR * 4})))
            (local.set $pb (i32.add (local.get $pb) (i32.const ${NR * 4})))
            (local.set $k (i32.sub (local.get $k) (i32.const 1)))
            (br_if $L (local.get $k)))
          (local.set $pc (i32.add (i32.add (local.get $ms) (i32.mul (local.get $xi) (local.get $xiM)))
            (i32.shl (local.get $i) (i32.const 7))))
          ${accStores.join('\n          ')}
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $I (i32.lt_u (local.get $i) (local.get $mPanels))))
        (local.set $xi (i32.add (local.get $xi) (i32.const 1)))
        (br_if $XI (i32.lt_u (local.get $xi) (i32.const ${components}))))
      ;; 3. The output transform, four tiles at a time.
      ${output}
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))`;
}

/**
 * winograd_conv: a 3x3 stride-1 convolution as Winograd F(2x2, 3x3), transforms and products fused per group
 * of 8 tiles (B panel j: tiles 8j..8j+7; threads split the groups). Tile t is the 4 x 4 patch of the padded
 * input at byte xq + corner[t] (+ planeIn per channel, rowIn per row) and the 2 x 2 block of y at byte
 * y + (ytab[t] & -4) (+ planeOut per output channel, rowOut per row), its right column inside y when
 * ytab[t] & 1, its bottom row when ytab[t] & 2 (ytab[t] < 0: no tile). For each group, in this thread's
 * scratch (at scratch + thread * 4 * 8 * 16 * (C + Mp), Mp = M rounded up to 4):
 * 1. the input transform V = B^T d B of the group's tiles and C channels, four tiles at a time (their patch
 *    rows loaded and transposed so that lanes are tiles), as 16 B panels of C x 8 (component xi = 4 i + j);
 * 2. the 16 products U[xi] V[xi] on the GEMM core (A: the transformed kernels, aStep bytes per component;
 *    each output a chain over the channels in order), into 16 blocks of Mp x 8;
 * 3. the output transform A^T m A (rows, then columns), + bias[o] (bias != 0; else nothing), max(., 0) when
 *    relu (NaN kept), stored: a whole row of four tiles as vectors, else tile by tile inside y.
 * V and M never leave the thread's caches; every output depends on its own tile only, in a fixed order.
 */
function winogradConvText(): string {
  const lanes = [0, 1, 2, 3];
  const shuffle = (sel: number[], a: string, b: string) =>
    `(i8x16.shuffle ${sel.flatMap((l) => [0, 1, 2, 3].map((x) => 4 * l + x)).join(' ')} ${a} ${b})`;
  // 4 x 4 transpose of $p0..$p3 (lane l's row) into $d0..$d3 (element j of every lane).
  const transpose = `(local.set $t0 ${shuffle([0, 4, 1, 5], '(local.get $p0)', '(local.get $p1)')})
            (local.set $t1 ${shuffle([0, 4, 1, 5], '(local.get $p2)', '(local.get $p3)')})
            (local.set $t2 ${shuffle([2, 6, 3, 7], '(local.get $p0)', '(local.get $p1)')})
            (local.set $t3 ${shuffle([2, 6, 3, 7], '(local.get $p2)', '(local.get $p3)')})
            (local.set $d0 ${shuffle([0, 1, 4, 5], '(local.get $t0)', '(local.get $t1)')})
            (local.set $d1 ${shuffle([2, 3, 6, 7], '(local.get $t0)', '(local.get $t1)')})
            (local.set $d2 ${shuffle([0, 1, 4, 5], '(local.get $t2)', '(local.get $t3)')})
            (local.set $d3 ${shuffle([2, 3, 6, 7], '(local.get $t2)', '(local.get $t3)')})`;
  const inRows: string[] = [];
  for (let r = 0; r < 4; r++) {
    inRows.push(`${lanes.map((l) => `(local.set $p${l} (v128.load offset=0 (i32.add (local.get $q${l}) (i32.mul (local.get $rowIn) (i32.const ${r})))))`).join('\n            ')}
            ${transpose}
            ${winogradBT(['(local.get $d0)', '(local.get $d1)', '(local.get $d2)', '(local.get $d3)'])
              .map((e, j) => `(local.set $e${r}${j} ${e})`)
              .join('\n            ')}`);
  }
  const inStores: string[] = [];
  for (let j = 0; j < 4; j++) {
    const col = winogradBT([0, 1, 2, 3].map((r) => `(local.get $e${r}${j})`));
    for (let i = 0; i < 4; i++) {
      const xi = 4 * i + j;
      inStores.push(
        `(v128.store offset=${xi * 0} (i32.add (local.get $vc) (i32.mul (local.get $xiV) (i32.const ${xi}))) ${col[i]})`,
      );
    }
  }
  const mLoads = Array.from(
    { length: 16 },
    (_, xi) =>
      `(local.set $m${xi} (v128.load (i32.add (local.get $mo) (i32.mul (local.get $xiM) (i32.const ${xi})))))`,
  );
  const outT: string[] = [];
  for (let j = 0; j < 4; j++) {
    outT.push(
      `(local.set $u0${j} (f32x4.add (f32x4.add (local.get $m${j}) (local.get $m${4 + j})) (local.get $m${8 + j})))`,
    );
    outT.push(
      `(local.set $u1${j} (f32x4.sub (f32x4.sub (local.get $m${4 + j}) (local.get $m${8 + j})) (local.get $m${12 + j})))`,
    );
  }
  const ys: string[] = [];
  for (let r = 0; r < 2; r++) {
    ys.push(
      `(local.set $y${r}0 (f32x4.add (f32x4.add (f32x4.add (local.get $u${r}0) (local.get $u${r}1)) (local.get $u${r}2)) (local.get $bv)))`,
    );
    ys.push(
      `(local.set $y${r}1 (f32x4.add (f32x4.sub (f32x4.sub (local.get $u${r}1) (local.get $u${r}2)) (local.get $u${r}3)) (local.get $bv)))`,
    );
  }
  const relu = ['$y00', '$y01', '$y10', '$y11']
    .map((v) => `(local.set ${v} (f32x4.max (local.get ${v}) (v128.const f32x4 0 0 0 0)))`)
    .join('\n              ');
  const laneStores = lanes
    .map(
      (l) => `(if (i32.ge_s (local.get $w${l}) (i32.const 0)) (then
                (local.set $at (i32.add (local.get $yo) (i32.and (local.get $w${l}) (i32.const -4))))
                (f32.store (local.get $at) (f32x4.extract_lane ${l} (local.get $y00)))
                (if (i32.and (local.get $w${l}) (i32.const 1))
                  (then (f32.store offset=4 (local.get $at) (f32x4.extract_lane ${l} (local.get $y01)))))
                (if (i32.and (local.get $w${l}) (i32.const 2)) (then
                  (local.set $at (i32.add (local.get $at) (local.get $rowOut)))
                  (f32.store (local.get $at) (f32x4.extract_lane ${l} (local.get $y10)))
                  (if (i32.and (local.get $w${l}) (i32.const 1))
                    (then (f32.store offset=4 (local.get $at) (f32x4.extract_lane ${l} (local.get $y11)))))))))`,
    )
    .join('\n              ');
  const locals = [
    '(local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128)',
    '(local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)',
    '(local $d0 v128) (local $d1 v128) (local $d2 v128) (local $d3 v128)',
    [0, 1, 2, 3].flatMap((r) => [0, 1, 2, 3].map((j) => `(local $e${r}${j} v128)`)).join(' '),
    Array.from({ length: 16 }, (_, xi) => `(local $m${xi} v128)`).join(' '),
    [0, 1].flatMap((r) => [0, 1, 2, 3].map((j) => `(local $u${r}${j} v128)`)).join(' '),
    '(local $y00 v128) (local $y01 v128) (local $y10 v128) (local $y11 v128)',
    lanes.map((l) => `(local $w${l} i32)`).join(' '),
    '(local $whole i32)',
  ];
  const output = `(local.set $h (i32.const 0))
      (loop $Hout
        (local.set $tt (i32.shl (i32.add (i32.shl (local.get $j) (i32.const 3)) (local.get $h)) (i32.const 2)))
        ${lanes.map((l) => `(local.set $w${l} (i32.load offset=${4 * l} (i32.add (local.get $ytab) (local.get $tt))))`).join('\n        ')}
        ;; A whole row of blocks: four tiles side by side, both columns and rows inside y.
        (local.set $whole (i32.and (i32.and (i32.eq (i32.and (local.get $w0) (i32.const -2147483645)) (i32.const 3))
            (i32.eq (i32.and (local.get $w1) (i32.const -2147483645)) (i32.const 3)))
          (i32.and (i32.eq (i32.and (local.get $w2) (i32.const -2147483645)) (i32.const 3))
            (i32.eq (i32.and (local.get $w3) (i32.const -2147483645)) (i32.const 3)))))
        (local.set $whole (i32.and (local.get $whole) (i32.and (i32.eq (i32.sub (local.get $w1) (local.get $w0)) (i32.const 8))
          (i32.and (i32.eq (i32.sub (local.get $w2) (local.get $w0)) (i32.const 16)) (i32.eq (i32.sub (local.get $w3) (local.get $w0)) (i32.const 24))))))
        (local.set $mo (i32.add (local.get $ms) (i32.shl (local.get $h) (i32.const 2))))
        (local.set $yo (local.get $y))
        (local.set $o (i32.const 0))
        (loop $O
          ${mLoads.join('\n          ')}
          ${outT.join('\n          ')}
          (local.set $bv (v128.const i32x4 0 0 0 0))
          (if (local.get $bias) (then (local.set $bv (v128.load32_splat (i32.add (local.get $bias) (i32.shl (local.get $o) (i32.const 2)))))))
          ${ys.join('\n          ')}
          (if (local.get $relu) (then
              ${relu}))
          (if (local.get $whole)
            (then
              (local.set $at (i32.add (local.get $yo) (i32.and (local.get $w0) (i32.const -4))))
              (v128.store (local.get $at) (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $y00) (local.get $y01)))
              (v128.store offset=16 (local.get $at) (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $y00) (local.get $y01)))
              (local.set $at (i32.add (local.get $at) (local.get $rowOut)))
              (v128.store (local.get $at) (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $y10) (local.get $y11)))
              (v128.store offset=16 (local.get $at) (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $y10) (local.get $y11))))
            (else
              ${laneStores}))
          (local.set $mo (i32.add (local.get $mo) (i32.const 32)))
          (local.set $yo (i32.add (local.get $yo) (local.get $planeOut)))
          (local.set $o (i32.add (local.get $o) (i32.const 1)))
          (br_if $O (i32.lt_u (local.get $o) (local.get $M))))
        (local.set $h (i32.add (local.get $h) (i32.const 4)))
        (br_if $Hout (i32.lt_u (local.get $h) (i32.const 8))))`;
  return winogradFunc(
    'winograd_conv',
    16,
    locals,
    `${inRows.join('\n          ')}
          ${inStores.join('\n          ')}`,
    output,
  );
}

/** f32x4 constant with all lanes v. */
const k4 = (v: number) => `(v128.const f32x4 ${v} ${v} ${v} ${v})`;

/**
 * F(4x4, 3x3) Winograd, points 0, 1, -1, 2, -2: statements setting dst[0..5] = B^T d (d: 6 expressions read
 * more than once, so locals), with $wa..$wd as temporaries. B^T's rows: 4 d0 - 5 d2 + d4,
 * (d4 - 4 d2) +- (d3 - 4 d1), (d4 - d2) +- 2 (d3 - d1), 4 d1 - 5 d3 + d5.
 */
function winograd4BT(d: string[], dst: string[]): string {
  const [d0, d1, d2, d3, d4, d5] = d;
  const set = (i: number, e: string) => dst[i].replace('%', e);
  return [
    `(local.set $wa (f32x4.sub ${d4} (f32x4.mul ${d2} ${k4(4)})))`,
    `(local.set $wb (f32x4.sub ${d3} (f32x4.mul ${d1} ${k4(4)})))`,
    `(local.set $wc (f32x4.sub ${d4} ${d2}))`,
    `(local.set $wd (f32x4.mul (f32x4.sub ${d3} ${d1}) ${k4(2)}))`,
    set(0, `(f32x4.add (f32x4.sub (f32x4.mul ${d0} ${k4(4)}) (f32x4.mul ${d2} ${k4(5)})) ${d4})`),
    set(1, '(f32x4.add (local.get $wa) (local.get $wb))'),
    set(2, '(f32x4.sub (local.get $wa) (local.get $wb))'),
    set(3, '(f32x4.add (local.get $wc) (local.get $wd))'),
    set(4, '(f32x4.sub (local.get $wc) (local.get $wd))'),
    set(5, `(f32x4.add (f32x4.sub (f32x4.mul ${d1} ${k4(4)}) (f32x4.mul ${d3} ${k4(5)})) ${d5})`),
  ].join('\n            ');
}

/**
 * Statements setting dst[0..3] = A^T m for F(4x4, 3x3) (m: 6 expressions, read more than once), with
 * $wa..$wd as temporaries: s = m1 + m2, d = m1 - m2, S = m3 + m4, D = m3 - m4; m0 + s + S, d + 2 D, s + 4 S,
 * d + 8 D + m5.
 */
function winograd4AT(m: string[], dst: string[]): string {
  const set = (i: number, e: string) => dst[i].replace('%', e);
  return [
    `(local.set $wa (f32x4.add ${m[1]} ${m[2]}))`,
    `(local.set $wb (f32x4.sub ${m[1]} ${m[2]}))`,
    `(local.set $wc (f32x4.add ${m[3]} ${m[4]}))`,
    `(local.set $wd (f32x4.sub ${m[3]} ${m[4]}))`,
    set(0, `(f32x4.add (f32x4.add ${m[0]} (local.get $wa)) (local.get $wc))`),
    set(1, `(f32x4.add (local.get $wb) (f32x4.mul (local.get $wd) ${k4(2)}))`),
    set(2, `(f32x4.add (local.get $wa) (f32x4.mul (local.get $wc) ${k4(4)}))`),
    set(3, `(f32x4.add (f32x4.add (local.get $wb) (f32x4.mul (local.get $wd) ${k4(8)})) ${m[5]})`),
  ].join('\n            ');
}

/** 4 x 4 transpose of the vectors named src into the locals named dst (through $t0..$t3). */
function transpose4(src: string[], dst: string[]): string {
  const shuffle = (sel: number[], a: string, b: string) =>
    `(i8x16.shuffle ${sel.flatMap((l) => [0, 1, 2, 3].map((x) => 4 * l + x)).join(' ')} ${a} ${b})`;
  const g = (n: string) => `(local.get ${n})`;
  return [
    `(local.set $t0 ${shuffle([0, 4, 1, 5], g(src[0]), g(src[1]))})`,
    `(local.set $t1 ${shuffle([0, 4, 1, 5], g(src[2]), g(src[3]))})`,
    `(local.set $t2 ${shuffle([2, 6, 3, 7], g(src[0]), g(src[1]))})`,
    `(local.set $t3 ${shuffle([2, 6, 3, 7], g(src[2]), g(src[3]))})`,
    `(local.set ${dst[0]} ${shuffle([0, 1, 4, 5], '(local.get $t0)', '(local.get $t1)')})`,
    `(local.set ${dst[1]} ${shuffle([2, 3, 6, 7], '(local.get $t0)', '(local.get $t1)')})`,
    `(local.set ${dst[2]} ${shuffle([0, 1, 4, 5], '(local.get $t2)', '(local.get $t3)')})`,
    `(local.set ${dst[3]} ${shuffle([2, 3, 6, 7], '(local.get $t2)', '(local.get $t3)')})`,
  ].join('\n            ');
}

/**
 * winograd4_conv: as winograd_conv, with F(4x4, 3x3) tiles: tile t is the 6 x 6 patch at byte xq + corner[t]
 * and the 4 x 4 block of y at byte y + ytab[2t] (-1: no tile), of which ytab[2t + 1] & 15 columns and
 * ytab[2t + 1] >> 4 rows lie inside y. 36 components (xi = 6 i + j) instead of 16; this thread's scratch is
 * at scratch + thread * 4 * 8 * 36 * (C + Mp). The products are the same GEMM core chains over the channels
 * in order, and every output depends on its own tile only: the same bits at any batch and thread count.
 */
function winograd4ConvText(): string {
  const lanes = [0, 1, 2, 3];
  const six = [0, 1, 2, 3, 4, 5];
  const g = (n: string) => `(local.get ${n})`;
  // Input: row r of the four patches, elements 0-3 by a vector load and 4-5 by a 64-bit load, as six vectors
  // of lanes = tiles; B^T along the row into $e{r}{j}; then B^T down each column j, stored as V[6 i + j].
  const inRows: string[] = [];
  for (let r = 0; r < 6; r++) {
    const at = (l: number) =>
      r === 0 ? g(`$q${l}`) : `(i32.add ${g(`$q${l}`)} (i32.mul ${g('$rowIn')} (i32.const ${r})))`;
    inRows.push(`${lanes.map((l) => `(local.set $p${l} (v128.load ${at(l)}))`).join('\n            ')}
            ${lanes.map((l) => `(local.set $s${l} (v128.load64_zero offset=16 ${at(l)}))`).join('\n            ')}
            ${transpose4(['$p0', '$p1', '$p2', '$p3'], ['$d0', '$d1', '$d2', '$d3'])}
            (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 ${g('$s0')} ${g('$s1')}))
            (local.set $t1 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 ${g('$s2')} ${g('$s3')}))
            (local.set $d4 (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 ${g('$t0')} ${g('$t1')}))
            (local.set $d5 (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 ${g('$t0')} ${g('$t1')}))
            ${winograd4BT(
              six.map((j) => g(`$d${j}`)),
              six.map((j) => `(local.set $e${r}${j} %)`),
            )}`);
  }
  const inCols: string[] = [];
  for (let j = 0; j < 6; j++) {
    inCols.push(
      winograd4BT(
        six.map((r) => g(`$e${r}${j}`)),
        six.map(
          (i) =>
            `(v128.store (i32.add (local.get $vc) (i32.mul (local.get $xiV) (i32.const ${6 * i + j}))) %)`,
        ),
      ),
    );
  }
  const mLoads = Array.from(
    { length: 36 },
    (_, xi) =>
      `(local.set $m${xi} (v128.load (i32.add (local.get $mo) (i32.mul (local.get $xiM) (i32.const ${xi})))))`,
  );
  // Output: A^T down each column j into $u{i}{j}, then along each row i into $y{i}{j}, + bias, ReLU.
  const outT: string[] = [];
  for (let j = 0; j < 6; j++)
    outT.push(
      winograd4AT(
        six.map((i) => g(`$m${6 * i + j}`)),
        [0, 1, 2, 3].map((i) => `(local.set $u${i}${j} %)`),
      ),
    );
  for (let i = 0; i < 4; i++)
    outT.push(
      winograd4AT(
        six.map((j) => g(`$u${i}${j}`)),
        [0, 1, 2, 3].map((j) => `(local.set $y${i}${j} (f32x4.add % (local.get $bv)))`),
      ),
    );
  const relu = [0, 1, 2, 3]
    .flatMap((i) =>
      [0, 1, 2, 3].map((j) => `(local.set $y${i}${j} (f32x4.max (local.get $y${i}${j}) ${k4(0)}))`),
    )
    .join('\n              ');
  // Row i of every tile (a vector per tile after the transpose), stored where it lies inside y.
  const stores: string[] = [];
  for (let i = 0; i < 4; i++) {
    stores.push(
      transpose4(
        [0, 1, 2, 3].map((j) => `$y${i}${j}`),
        ['$p0', '$p1', '$p2', '$p3'],
      ),
    );
    for (const l of lanes) {
      stores.push(`(if (i32.and (i32.ge_s (local.get $w${l}) (i32.const 0)) (i32.gt_u (i32.shr_u (local.get $f${l}) (i32.const 4)) (i32.const ${i})))
              (then
                (local.set $at (i32.add (i32.add (local.get $yo) (local.get $w${l})) (i32.mul (local.get $rowOut) (i32.const ${i}))))
                (if (i32.eq (i32.and (local.get $f${l}) (i32.const 15)) (i32.const 4))
                  (then (v128.store (local.get $at) (local.get $p${l})))
                  (else
                    (f32.store (local.get $at) (f32x4.extract_lane 0 (local.get $p${l})))
                    (if (i32.gt_u (i32.and (local.get $f${l}) (i32.const 15)) (i32.const 1))
                      (then (f32.store offset=4 (local.get $at) (f32x4.extract_lane 1 (local.get $p${l})))))
                    (if (i32.gt_u (i32.and (local.get $f${l}) (i32.const 15)) (i32.const 2))
                      (then (f32.store offset=8 (local.get $at) (f32x4.extract_lane 2 (local.get $p${l})))))))))`);
    }
  }
  const locals = [
    '(local $wa v128) (local $wb v128) (local $wc v128) (local $wd v128)',
    lanes.map((l) => `(local $p${l} v128) (local $s${l} v128) (local $t${l} v128)`).join(' '),
    six.map((j) => `(local $d${j} v128)`).join(' '),
    six.flatMap((r) => six.map((j) => `(local $e${r}${j} v128)`)).join(' '),
    Array.from({ length: 36 }, (_, xi) => `(local $m${xi} v128)`).join(' '),
    [0, 1, 2, 3].flatMap((i) => six.map((j) => `(local $u${i}${j} v128)`)).join(' '),
    [0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `(local $y${i}${j} v128)`)).join(' '),
    lanes.map((l) => `(local $w${l} i32) (local $f${l} i32)`).join(' '),
  ];
  const output = `(local.set $h (i32.const 0))
      (loop $Hout
        (local.set $tt (i32.shl (i32.add (i32.shl (local.get $j) (i32.const 3)) (local.get $h)) (i32.const 3)))
        ${lanes
          .map(
            (l) => `(local.set $w${l} (i32.load offset=${8 * l} (i32.add (local.get $ytab) (local.get $tt))))
        (local.set $f${l} (i32.load offset=${8 * l + 4} (i32.add (local.get $ytab) (local.get $tt))))`,
          )
          .join('\n        ')}
        (local.set $mo (i32.add (local.get $ms) (i32.shl (local.get $h) (i32.const 2))))
        (local.set $yo (local.get $y))
        (local.set $o (i32.const 0))
        (loop $O
          ${mLoads.join('\n          ')}
          (local.set $bv (v128.const i32x4 0 0 0 0))
          (if (local.get $bias) (then (local.set $bv (v128.load32_splat (i32.add (local.get $bias) (i32.shl (local.get $o) (i32.const 2)))))))
          ${outT.join('\n          ')}
          (if (local.get $relu) (then
              ${relu}))
          ${stores.join('\n          ')}
          (local.set $mo (i32.add (local.get $mo) (i32.const 32)))
          (local.set $yo (i32.add (local.get $yo) (local.get $planeOut)))
          (local.set $o (i32.add (local.get $o) (i32.const 1)))
          (br_if $O (i32.lt_u (local.get $o) (local.get $M))))
        (local.set $h (i32.add (local.get $h) (i32.const 4)))
        (br_if $Hout (i32.lt_u (local.get $h) (i32.const 8))))`;
  return winogradFunc(
    'winograd4_conv',
    36,
    locals,
    `${inRows.join('\n          ')}
          ${inCols.join('\n          ')}`,
    output,
  );
}

/**
 * winograd4_weights: the F(4x4, 3x3) kernels U = G g G^T of winogradWeights(..., 4) for row panels
 * j0 <= p < j1 (threads split them), in float64 (f64x2, two rows at a time) with the operations of the
 * JavaScript transform in its order, rounded once to f32: the same bits. Row r of panel p, step k reads the
 * kernel at byte w + 36 (r rs + k ks) (forward: rs = C, ks = 1; flipped: rs = 1, ks = C, the kernel turned by
 * 180 degrees), or the 9 zeros at byte zero for rows r >= M; component xi of (p, k) is the vector at byte
 * out + xi * stride + 16 (p K + k).
 */
function winograd4WeightsText(): string {
  const lanes = [0, 1, 2, 3];
  const d = (v: number) => `(f64x2.splat (f64.const ${v}))`;
  const g = (n: string) => `(local.get ${n})`;
  const half = (flipped: boolean, h: number): string => {
    const lines: string[] = [];
    // g_e of lanes 2h and 2h + 1, promoted.
    for (let e = 0; e < 9; e++) {
      const src = 4 * (flipped ? 8 - e : e);
      lines.push(`(local.set $g${e} (f64x2.replace_lane 1
          (f64x2.splat (f64.promote_f32 (f32.load offset=${src} (local.get $a${2 * h}))))
          (f64.promote_f32 (f32.load offset=${src} (local.get $a${2 * h + 1})))))`);
    }
    // t = G g (6 x 3), column j at a time: t[i][j] in $t{i}{j}.
    for (let j = 0; j < 3; j++) {
      const [g0, g1, g2] = [g(`$g${j}`), g(`$g${3 + j}`), g(`$g${6 + j}`)];
      lines.push(
        `(local.set $ev (f64x2.add (f64x2.div ${g0} ${d(24)}) (f64x2.div ${g2} ${d(6)})))`,
        `(local.set $t0${j} (f64x2.div ${g0} ${d(4)}))`,
        `(local.set $t1${j} (f64x2.div (f64x2.neg (f64x2.add (f64x2.add ${g0} ${g1}) ${g2})) ${d(6)}))`,
        `(local.set $t2${j} (f64x2.div (f64x2.neg (f64x2.add (f64x2.sub ${g0} ${g1}) ${g2})) ${d(6)}))`,
        `(local.set $t3${j} (f64x2.add (local.get $ev) (f64x2.div ${g1} ${d(12)})))`,
        `(local.set $t4${j} (f64x2.sub (local.get $ev) (f64x2.div ${g1} ${d(12)})))`,
        `(local.set $t5${j} ${g2})`,
      );
    }
    // U row i = t row i times G^T: U[6i + j] in $u{6i + j} of half h.
    for (let i = 0; i < 6; i++) {
      const [a, b, dd] = [g(`$t${i}0`), g(`$t${i}1`), g(`$t${i}2`)];
      const u = (j: number) => `$u${6 * i + j}_${h}`;
      lines.push(
        `(local.set $ev (f64x2.add (f64x2.div ${a} ${d(24)}) (f64x2.div ${dd} ${d(6)})))`,
        `(local.set ${u(0)} (f64x2.div ${a} ${d(4)}))`,
        `(local.set ${u(1)} (f64x2.div (f64x2.neg (f64x2.add (f64x2.add ${a} ${b}) ${dd})) ${d(6)}))`,
        `(local.set ${u(2)} (f64x2.div (f64x2.neg (f64x2.add (f64x2.sub ${a} ${b}) ${dd})) ${d(6)}))`,
        `(local.set ${u(3)} (f64x2.add (local.get $ev) (f64x2.div ${b} ${d(12)})))`,
        `(local.set ${u(4)} (f64x2.sub (local.get $ev) (f64x2.div ${b} ${d(12)})))`,
        `(local.set ${u(5)} ${dd})`,
      );
    }
    return lines.join('\n            ');
  };
  const stores = Array.from(
    { length: 36 },
    (_, xi) => `(v128.store (i32.add (local.get $o) (i32.mul (local.get $stride) (i32.const ${xi})))
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
              (f32x4.demote_f64x2_zero (local.get $u${xi}_0)) (f32x4.demote_f64x2_zero (local.get $u${xi}_1))))`,
  ).join('\n            ');
  const locals = [
    Array.from({ length: 9 }, (_, e) => `(local $g${e} v128)`).join(' '),
    [0, 1, 2, 3, 4, 5].flatMap((i) => [0, 1, 2].map((j) => `(local $t${i}${j} v128)`)).join(' '),
    Array.from({ length: 36 }, (_, xi) => `(local $u${xi}_0 v128) (local $u${xi}_1 v128)`).join(' '),
    '(local $ev v128)',
    lanes.map((l) => `(local $a${l} i32)`).join(' '),
    '(local $p i32) (local $k i32) (local $o i32) (local $r i32)',
  ].join('\n    ');
  const addr = (l: number) => `(local.set $a${l} (select
          (i32.add (local.get $w) (i32.mul (i32.const 36) (i32.add (i32.mul (i32.add (local.get $r) (i32.const ${l})) (local.get $rs))
            (i32.mul (local.get $k) (local.get $ks)))))
          (local.get $zero)
          (i32.lt_u (i32.add (local.get $r) (i32.const ${l})) (local.get $M))))`;
  return `
  (func (export "winograd4_weights") (param $w i32) (param $rs i32) (param $ks i32) (param $M i32) (param $K i32)
      (param $flipped i32) (param $zero i32) (param $out i32) (param $stride i32) (param $j0 i32) (param $j1 i32)
    ${locals}
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.eqz (local.get $K))) (then (return)))
    (local.set $p (local.get $j0))
    (loop $P
      (local.set $r (i32.shl (local.get $p) (i32.const 2)))
      (local.set $o (i32.add (local.get $out) (i32.shl (i32.mul (local.get $p) (local.get $K)) (i32.const 4))))
      (local.set $k (i32.const 0))
      (loop $Kl
        ${lanes.map(addr).join('\n        ')}
        (if (local.get $flipped)
          (then
            ${half(true, 0)}
            ${half(true, 1)})
          (else
            ${half(false, 0)}
            ${half(false, 1)}))
        ${stores}
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $Kl (i32.lt_u (local.get $k) (local.get $K))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $P (i32.lt_u (local.get $p) (local.get $j1)))))`;
}

/**
 * The module: imports its memory as env.memory (shared when `shared`), exports
 * gemm(ap, bp, c, mPanels, K, ldc, j0, j1): for B panels j0 <= j < j1 and every A panel i, the 4x8 tile
 * C[4i.., 8j..] = A panel i x B panel j (byte offsets; ldc in floats). Splitting [j0, j1) between threads
 * splits the work with no shared output.
 */
export function cpuModuleText(shared: boolean, maxPages: number): string {
  const locals: string[] = [];
  for (let r = 0; r < MR; r++) for (let v = 0; v < 2; v++) locals.push(`(local $c${r}_${v} v128)`);
  const mem = shared ? `(memory 1 ${maxPages} shared)` : `(memory 1 ${maxPages})`;
  return `(module
  (import "env" "memory" ${mem})
  ;; This instance's thread index (each thread has its own instance over the shared memory).
  (global $thread (mut i32) (i32.const 0))
  (func (export "set_thread") (param $t i32) (global.set $thread (local.get $t)))
  (func (export "gemm") (param $ap i32) (param $bp i32) (param $c i32) (param $mPanels i32)
      (param $K i32) (param $ldcFloats i32) (param $j0 i32) (param $j1 i32)
    ${locals.join(' ')}
    (local $b0 v128) (local $b1 v128) (local $a v128)
    (local $i i32) (local $j i32) (local $k i32) (local $pa i32) (local $pb i32) (local $pc i32) (local $ldc i32)
    (local $aPanel i32) (local $bPanel i32)
    (local.set $ldc (i32.mul (local.get $ldcFloats) (i32.const 4)))
    (local.set $aPanel (i32.mul (local.get $K) (i32.const ${MR * 4})))
    (local.set $bPanel (i32.mul (local.get $K) (i32.const ${NR * 4})))
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.or (i32.eqz (local.get $mPanels)) (i32.eqz (local.get $K))))
      (then (return)))
    (local.set $j (local.get $j0))
    (loop $J
      (local.set $i (i32.const 0))
      (loop $I
        ${zeroAccumulators()}
        (local.set $pa (i32.add (local.get $ap) (i32.mul (local.get $i) (local.get $aPanel))))
        (local.set $pb (i32.add (local.get $bp) (i32.mul (local.get $j) (local.get $bPanel))))
        (local.set $k (local.get $K))
        (loop $L
          ${microkernel()}
          (local.set $pa (i32.add (local.get $pa) (i32.const ${MR * 4})))
          (local.set $pb (i32.add (local.get $pb) (i32.const ${NR * 4})))
          (local.set $k (i32.sub (local.get $k) (i32.const 1)))
          (br_if $L (local.get $k)))
        (local.set $pc (i32.add (local.get $c)
          (i32.add (i32.mul (i32.mul (local.get $i) (i32.const ${MR})) (local.get $ldc))
                   (i32.mul (local.get $j) (i32.const ${NR * 4})))))
        ${storeAccumulators()}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $I (i32.lt_u (local.get $i) (local.get $mPanels))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))
${LOOPS_TEXT}${maxPool2Text()}${padPlanesText()}${convGemmText()}${packA4Text()}${sumRowsText()}${sgdText()}${winogradConvText()}${winograd4ConvText()}${winograd4WeightsText()}${panelLoops()}${stepProjectText()}${convRowsText()}${lstmGatesText()}${lstmGatesBackwardText()}${maxPool2BackwardText()}${storeRowsText()}${pairwiseTermsText()})`;
}

/**
 * step_project: the attack's L2 step, both clamps and the next input for rows r0 <= r < r1 of `cols` floats
 * (planes of `plane` floats, channel c = plane index % channels; `box` holds lo, hi, eps per channel as f32;
 * lr arrives as its f32 bits), the same float operations as WasmEngine.attackStep (l2) followed by
 * attackProject and xAdv = xn + delta: gmax = max |g| (order-free), scaledNorm = f32(sqrt(sum of
 * f32(g / gmax)^2 in float64, in element order)), then per element
 * d -= lr * ((g / gmax) / scaledNorm) (rows with gmax = 0 do not move), image = min(max(xn + d, lo), hi),
 * d = min(max(image - xn, -eps), eps), xAdv = xn + d. Four elements at a time; the float64 sum one element
 * at a time, in order. Each row is one chunk of work: the same bits on any thread count.
 */
function stepProjectText(): string {
  const update = (v: boolean) => {
    const T = v ? 'f32x4' : 'f32';
    const load = v ? 'v128.load' : 'f32.load';
    const store = v ? 'v128.store' : 'f32.store';
    const get = (n: string) => `(local.get $${n}${v ? 'V' : ''})`;
    return `(local.set $d${v ? 'V' : ''} (${load} (i32.add (local.get $delta) (local.get $at))))
            (if (local.get $move) (then
              (local.set $d${v ? 'V' : ''} (${T}.sub ${get('d')} (${T}.mul ${get('lr')}
                (${T}.div (${T}.div (${load} (i32.add (local.get $g) (local.get $at))) ${get('gmax')}) ${get('norm')}))))))
            (local.set $x${v ? 'V' : ''} (${load} (i32.add (local.get $xn) (local.get $at))))
            (local.set $d${v ? 'V' : ''} (${T}.min (${T}.max (${T}.sub
              (${T}.min (${T}.max (${T}.add ${get('x')} ${get('d')}) ${get('lo')}) ${get('hi')}) ${get('x')})
              ${get('negEps')}) ${get('eps')}))
            (${store} (i32.add (local.get $delta) (local.get $at)) ${get('d')})
            (${store} (i32.add (local.get $xa) (local.get $at)) (${T}.add ${get('x')} ${get('d')}))
            (local.set $at (i32.add (local.get $at) (i32.const ${v ? 16 : 4})))`;
  };
  return `
  (func (export "step_project") (param $delta i32) (param $g i32) (param $xn i32) (param $xa i32) (param $cols i32)
      (param $plane i32) (param $channels i32) (param $box i32) (param $lrBits i32) (param $r0 i32) (param $r1 i32)
    (local $r i32) (local $at i32) (local $end i32) (local $rowEnd i32) (local $planeEnd4 i32) (local $p i32)
    (local $c i32) (local $move i32) (local $gmax f32) (local $v f32) (local $norm f32) (local $lr f32)
    (local $ss f64) (local $q f64) (local $qV v128) (local $d f32) (local $x f32) (local $lo f32) (local $hi f32)
    (local $eps f32) (local $negEps f32) (local $gmaxV v128) (local $normV v128) (local $lrV v128) (local $dV v128)
    (local $xV v128) (local $loV v128) (local $hiV v128) (local $epsV v128) (local $negEpsV v128)
    (if (i32.ge_u (local.get $r0) (local.get $r1)) (then (return)))
    (local.set $lr (f32.reinterpret_i32 (local.get $lrBits)))
    (local.set $lrV (f32x4.splat (local.get $lr)))
    (local.set $r (local.get $r0))
    (loop $R
      ;; gmax = max |g| over the row: pmax(a, b) = a < b ? b : a keeps a NaN out, as "if (v > gmax)" does.
      (local.set $at (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2)))
      (local.set $rowEnd (i32.add (local.get $at) (i32.shl (local.get $cols) (i32.const 2))))
      (local.set $gmaxV (v128.const i32x4 0 0 0 0))
      (block $mDone
        (loop $M
          (br_if $mDone (i32.gt_u (i32.add (local.get $at) (i32.const 16)) (local.get $rowEnd)))
          (local.set $gmaxV (f32x4.pmax (local.get $gmaxV) (f32x4.abs (v128.load (i32.add (local.get $g) (local.get $at))))))
          (local.set $at (i32.add (local.get $at) (i32.const 16)))
          (br $M)))
      (local.set $gmax (f32.max (f32.max (f32x4.extract_lane 0 (local.get $gmaxV)) (f32x4.extract_lane 1 (local.get $gmaxV)))
        (f32.max (f32x4.extract_lane 2 (local.get $gmaxV)) (f32x4.extract_lane 3 (local.get $gmaxV)))))
      (block $mtDone
        (loop $MT
          (br_if $mtDone (i32.ge_u (local.get $at) (local.get $rowEnd)))
          (local.set $v (f32.abs (f32.load (i32.add (local.get $g) (local.get $at)))))
          (if (f32.gt (local.get $v) (local.get $gmax)) (then (local.set $gmax (local.get $v))))
          (local.set $at (i32.add (local.get $at) (i32.const 4)))
          (br $MT)))
      (local.set $move (f32.gt (local.get $gmax) (f32.const 0)))
      (local.set $norm (f32.const 1))
      (if (local.get $move) (then
        ;; The float64 sum of f32(g / gmax)^2 in element order (the divisions four at a time).
        (local.set $gmaxV (f32x4.splat (local.get $gmax)))
        (local.set $ss (f64.const 0))
        (local.set $at (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2)))
        (block $sDone
          (loop $S
            (br_if $sDone (i32.gt_u (i32.add (local.get $at) (i32.const 16)) (local.get $rowEnd)))
            (local.set $qV (f32x4.div (v128.load (i32.add (local.get $g) (local.get $at))) (local.get $gmaxV)))
            ${[0, 1, 2, 3]
              .map(
                (l) => `(local.set $q (f64.promote_f32 (f32x4.extract_lane ${l} (local.get $qV))))
            (local.set $ss (f64.add (local.get $ss) (f64.mul (local.get $q) (local.get $q))))`,
              )
              .join('\n            ')}
            (local.set $at (i32.add (local.get $at) (i32.const 16)))
            (br $S)))
        (block $stDone
          (loop $ST
            (br_if $stDone (i32.ge_u (local.get $at) (local.get $rowEnd)))
            (local.set $q (f64.promote_f32 (f32.div (f32.load (i32.add (local.get $g) (local.get $at))) (local.get $gmax))))
            (local.set $ss (f64.add (local.get $ss) (f64.mul (local.get $q) (local.get $q))))
            (local.set $at (i32.add (local.get $at) (i32.const 4)))
            (br $ST)))
        (local.set $norm (f32.demote_f64 (f64.sqrt (local.get $ss))))))
      (local.set $normV (f32x4.splat (local.get $norm)))
      ;; The update, plane by plane (each plane's channel box).
      (local.set $at (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2)))
      (local.set $p (i32.const 0))
      (block $pDone
        (loop $P
          (br_if $pDone (i32.ge_u (local.get $at) (local.get $rowEnd)))
          (local.set $c (i32.mul (i32.rem_u (local.get $p) (local.get $channels)) (i32.const 12)))
          (local.set $lo (f32.load (i32.add (local.get $box) (local.get $c))))
          (local.set $hi (f32.load offset=4 (i32.add (local.get $box) (local.get $c))))
          (local.set $eps (f32.load offset=8 (i32.add (local.get $box) (local.get $c))))
          (local.set $negEps (f32.neg (local.get $eps)))
          (local.set $loV (f32x4.splat (local.get $lo)))
          (local.set $hiV (f32x4.splat (local.get $hi)))
          (local.set $epsV (f32x4.splat (local.get $eps)))
          (local.set $negEpsV (f32x4.splat (local.get $negEps)))
          (local.set $end (i32.add (local.get $at) (i32.shl (local.get $plane) (i32.const 2))))
          (local.set $planeEnd4 (i32.sub (local.get $end) (i32.and (i32.sub (local.get $end) (local.get $at)) (i32.const 15))))
          (block $vDone
            (loop $V
              (br_if $vDone (i32.ge_u (local.get $at) (local.get $planeEnd4)))
              ${update(true)}
              (br $V)))
          (block $tDone
            (loop $T
              (br_if $tDone (i32.ge_u (local.get $at) (local.get $end)))
              ${update(false)}
              (br $T)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $P)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br_if $R (i32.lt_u (local.get $r) (local.get $r1)))))`;
}

/**
 * Output columns of a conv_rows block: 4 vectors of 4. (With 8, V8 loaded all 8 input vectors before the
 * products and spilled an accumulator to the stack: 1.5-2x slower.)
 */
export const ROW_BLOCK = 16;

/**
 * conv_rows: a stride-1 convolution computed along output rows, for layers with few output channels (a first
 * layer's input gradient), where conv_gemm's 4 x 8 tiles and Winograd's products would be mostly zero rows.
 * Unit j of [j0, j1) is image j: its C planes of H x W floats at src + 4 j C H W are first copied into this
 * thread's zero-padded planes of Hp x Wp floats (pad_planes, at row padH and column padW; in the thread's
 * scratch, where the products then read them from the caches), then for every output row oh, block b of
 * ROW_BLOCK (16) columns and output channel m < M, the 16 sums A[m, k] * pad[corner + rowOff[k] + column]
 * over k in order (A in packed panels of 4 rows: row m's step k at ap + 16 (K (m / 4) + k) + 4 (m % 4);
 * rowOff in bytes; corner = oh Wp + 16 b floats), then + bias[m] when bias != 0 and max(., 0) when relu
 * (NaN kept), stored at dst + 4 ((j M + m) OH OW + oh OW + 16 b + column) for the columns < OW. The same
 * chain over k then the bias as conv_gemm: the same bits. The thread's scratch holds C Hp Wp floats rounded
 * up to 16, plus ROW_BLOCK (a block reads up to ROW_BLOCK - 1 floats past a row).
 */
function convRowsText(): string {
  const V = ROW_BLOCK / 4;
  const vs = Array.from({ length: V }, (_, v) => v);
  const stores = vs
    .map(
      (v) => `(if (i32.ge_s (local.get $cnt) (i32.const ${4 * v + 4}))
            (then (v128.store offset=${16 * v} (local.get $out) (local.get $acc${v})))
            (else ${[0, 1, 2]
              .map(
                (l) =>
                  `(if (i32.gt_s (local.get $cnt) (i32.const ${4 * v + l})) (then (f32.store offset=${16 * v + 4 * l} (local.get $out) (f32x4.extract_lane ${l} (local.get $acc${v})))))`,
              )
              .join('\n              ')}))`,
    )
    .join('\n          ');
  return `
  (func (export "conv_rows") (param $ap i32) (param $K i32) (param $M i32) (param $src i32) (param $C i32)
      (param $H i32) (param $W i32) (param $padH i32) (param $padW i32) (param $Hp i32) (param $Wp i32)
      (param $scratch i32) (param $rowOff i32) (param $dst i32) (param $bias i32) (param $relu i32) (param $OW i32)
      (param $OH i32) (param $j0 i32) (param $j1 i32)
    ${vs.map((v) => `(local $acc${v} v128)`).join(' ')} (local $a v128) (local $b v128)
    (local $j i32) (local $oh i32) (local $blk i32) (local $blocks i32) (local $corner i32) (local $pad i32)
    (local $outBase i32) (local $out i32) (local $cnt i32) (local $m i32) (local $pa i32) (local $pr i32)
    (local $k i32) (local $ro i32) (local $aPanel i32) (local $outPlane i32) (local $imageFloats i32)
    (if (i32.or (i32.ge_u (local.get $j0) (local.get $j1)) (i32.or (i32.eqz (local.get $M)) (i32.eqz (local.get $K))))
      (then (return)))
    (local.set $aPanel (i32.shl (local.get $K) (i32.const 4)))
    (local.set $outPlane (i32.shl (i32.mul (local.get $OH) (local.get $OW)) (i32.const 2)))
    (local.set $blocks (i32.div_u (i32.add (local.get $OW) (i32.const ${ROW_BLOCK - 1})) (i32.const ${ROW_BLOCK})))
    (local.set $imageFloats (i32.mul (local.get $C) (i32.mul (local.get $H) (local.get $W))))
    ;; This thread's padded planes: C Hp Wp floats rounded up to whole 64-byte lines, plus a block's overrun.
    (local.set $pad (i32.add (local.get $scratch) (i32.mul (global.get $thread)
      (i32.shl (i32.add (i32.and (i32.add (i32.mul (local.get $C) (i32.mul (local.get $Hp) (local.get $Wp))) (i32.const 15)) (i32.const -16))
        (i32.const ${ROW_BLOCK})) (i32.const 2)))))
    (local.set $j (local.get $j0))
    (loop $J
      (call $pad_planes (i32.add (local.get $src) (i32.shl (i32.mul (local.get $j) (local.get $imageFloats)) (i32.const 2)))
        (local.get $pad) (local.get $H) (local.get $W) (local.get $padH) (local.get $padW) (local.get $Hp) (local.get $Wp)
        (i32.const 0) (local.get $C))
      (local.set $oh (i32.const 0))
      (loop $OHl
        (local.set $blk (i32.const 0))
        (loop $B
          (local.set $corner (i32.add (local.get $pad)
            (i32.shl (i32.add (i32.mul (local.get $oh) (local.get $Wp)) (i32.mul (local.get $blk) (i32.const ${ROW_BLOCK}))) (i32.const 2))))
          (local.set $cnt (i32.sub (local.get $OW) (i32.mul (local.get $blk) (i32.const ${ROW_BLOCK}))))
          (local.set $outBase (i32.add (local.get $dst) (i32.add
            (i32.mul (i32.mul (local.get $j) (local.get $M)) (local.get $outPlane))
            (i32.shl (i32.add (i32.mul (local.get $oh) (local.get $OW)) (i32.mul (local.get $blk) (i32.const ${ROW_BLOCK}))) (i32.const 2)))))
          (local.set $m (i32.const 0))
          (loop $Ml
            ${vs.map((v) => `(local.set $acc${v} (v128.const i32x4 0 0 0 0))`).join(' ')}
            (local.set $pa (i32.add (i32.add (local.get $ap) (i32.mul (i32.shr_u (local.get $m) (i32.const 2)) (local.get $aPanel)))
              (i32.shl (i32.and (local.get $m) (i32.const 3)) (i32.const 2))))
            (local.set $pr (local.get $rowOff))
            (local.set $k (local.get $K))
            (loop $L
              (local.set $ro (i32.add (local.get $corner) (i32.load (local.get $pr))))
              (local.set $a (v128.load32_splat (local.get $pa)))
              ${vs
                .map(
                  (v) =>
                    `(local.set $acc${v} (f32x4.add (local.get $acc${v}) (f32x4.mul (local.get $a) (v128.load offset=${16 * v} (local.get $ro)))))`,
                )
                .join('\n              ')}
              (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
              (local.set $pr (i32.add (local.get $pr) (i32.const 4)))
              (local.set $k (i32.sub (local.get $k) (i32.const 1)))
              (br_if $L (local.get $k)))
            (if (local.get $bias) (then
              (local.set $b (v128.load32_splat (i32.add (local.get $bias) (i32.shl (local.get $m) (i32.const 2)))))
              ${vs.map((v) => `(local.set $acc${v} (f32x4.add (local.get $acc${v}) (local.get $b)))`).join(' ')}))
            (if (local.get $relu) (then
              ${vs.map((v) => `(local.set $acc${v} (f32x4.max (local.get $acc${v}) (v128.const f32x4 0 0 0 0)))`).join('\n              ')}))
            (local.set $out (i32.add (local.get $outBase) (i32.mul (local.get $m) (local.get $outPlane))))
            (if (i32.ge_s (local.get $cnt) (i32.const ${ROW_BLOCK}))
              (then ${vs.map((v) => `(v128.store offset=${16 * v} (local.get $out) (local.get $acc${v}))`).join(' ')})
              (else
              ${stores}))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br_if $Ml (i32.lt_u (local.get $m) (local.get $M))))
          (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
          (br_if $B (i32.lt_u (local.get $blk) (local.get $blocks))))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br_if $OHl (i32.lt_u (local.get $oh) (local.get $OH))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $J (i32.lt_u (local.get $j) (local.get $j1)))))`;
}

// ---- LSTM gate math (f32x4): exp, sigmoid and tanh in math.wat.ts ---------------------------------------

/**
 * lstm_gates: the forward gate math of one step for batch rows n0 <= n < n1 (H units; byte addresses of
 * row 0 at this step, `*Stride` in floats between rows): the pre-activations a = (projection in `gates`) +
 * (recurrent product at rec + 4 (n ldRec + g), when rec != 0) + b_hh, each sum rounded to f32; the gates
 * i, f, o = sigmoid and g = tanh written back over them; c = f c_prev + i g (c_prev at cPrev, 0 when
 * cPrev = 0) and h = o tanh(c) written to c and h, and to cT and hT (stride H) when they are not 0.
 */
function lstmGatesText(): string {
  const body = (ld: (a: string) => string, st: (a: string, v: string) => string) => {
    const gate = (q: number) => `(i32.add (local.get $gRow) (i32.mul (local.get $H4) (i32.const ${q})))`;
    const pre = (q: number) => {
      const rec = `(i32.add (local.get $rRow) (i32.mul (local.get $H4) (i32.const ${q})))`;
      const bias = `(i32.add (local.get $bhh) (i32.mul (local.get $H4) (i32.const ${q})))`;
      return `(local.set $a (${'f32x4.add'} (if (result v128) (local.get $rec) (then (f32x4.add ${ld(gate(q))} ${ld(rec)})) (else ${ld(gate(q))}))
          ${ld(bias)}))`;
    };
    return `${pre(0)}
        ${sigmoid4('(local.get $a)', '$ig')}
        ${pre(1)}
        ${sigmoid4('(local.get $a)', '$fg')}
        ${pre(2)}
        ${tanh4('(local.get $a)', '$gg')}
        ${pre(3)}
        ${sigmoid4('(local.get $a)', '$og')}
        (local.set $cp (v128.const i32x4 0 0 0 0))
        (if (local.get $cPrev) (then (local.set $cp ${ld('(local.get $pRow)')})))
        (local.set $cn (f32x4.add (f32x4.mul (local.get $fg) (local.get $cp)) (f32x4.mul (local.get $ig) (local.get $gg))))
        ${tanh4('(local.get $cn)', '$hn')}
        (local.set $hn (f32x4.mul (local.get $og) (local.get $hn)))
        ${st(gate(0), '(local.get $ig)')}
        ${st(gate(1), '(local.get $fg)')}
        ${st(gate(2), '(local.get $gg)')}
        ${st(gate(3), '(local.get $og)')}
        ${st('(local.get $cRow)', '(local.get $cn)')}
        ${st('(local.get $hRow)', '(local.get $hn)')}
        (if (local.get $cT) (then ${st('(i32.add (local.get $cT) (i32.mul (local.get $n) (local.get $H4)))', '(local.get $cn)')}))
        (if (local.get $hT) (then ${st('(i32.add (local.get $hT) (i32.mul (local.get $n) (local.get $H4)))', '(local.get $hn)')}))`;
  };
  return `
  (func (export "lstm_gates") (param $gates i32) (param $rowStride i32) (param $rec i32) (param $ldRec i32)
      (param $bhh i32) (param $cPrev i32) (param $cPrevStride i32) (param $c i32) (param $h i32)
      (param $stateStride i32) (param $cT i32) (param $hT i32) (param $H i32) (param $n0 i32) (param $n1 i32)
    (local $n i32) (local $jo i32) (local $H4 i32) (local $rest i32) (local $gRow i32) (local $rRow i32)
    (local $pRow i32) (local $cRow i32) (local $hRow i32)
    (local $a v128) (local $ig v128) (local $fg v128) (local $gg v128) (local $og v128) (local $cp v128)
    (local $cn v128) (local $hn v128) (local $st v128) ${MATH_LOCALS}
    (if (i32.ge_u (local.get $n0) (local.get $n1)) (then (return)))
    (local.set $H4 (i32.shl (local.get $H) (i32.const 2)))
    (local.set $n (local.get $n0))
    (loop $N
      (local.set $gRow (i32.add (local.get $gates) (i32.shl (i32.mul (local.get $n) (local.get $rowStride)) (i32.const 2))))
      (local.set $rRow (i32.add (local.get $rec) (i32.shl (i32.mul (local.get $n) (local.get $ldRec)) (i32.const 2))))
      (local.set $pRow (i32.add (local.get $cPrev) (i32.shl (i32.mul (local.get $n) (local.get $cPrevStride)) (i32.const 2))))
      (local.set $cRow (i32.add (local.get $c) (i32.shl (i32.mul (local.get $n) (local.get $stateStride)) (i32.const 2))))
      (local.set $hRow (i32.add (local.get $h) (i32.shl (i32.mul (local.get $n) (local.get $stateStride)) (i32.const 2))))
      ${lanesLoop(body)}
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $N (i32.lt_u (local.get $n) (local.get $n1)))))`;
}

/**
 * lstm_gates_backward: the BPTT gate math of one step for batch rows n0 <= n < n1 (addresses of row 0 at
 * this step; gates and dG rows rowStride floats apart, c and dh stateStride, dhRec and dc H, cPrev
 * cPrevStride or 0 for zeros): dh_t = dh + dhRec; dc_t = dc + dh_t o tanh'(c) (tanh' = 4e / (1 + e)^2,
 * e = exp(-2|c|)); dG = (dc_t g i (1 - i), dc_t c_prev f (1 - f), dc_t i (1 - g^2), dh_t tanh(c) o (1 - o));
 * dc becomes dc_t f.
 */
function lstmGatesBackwardText(): string {
  const body = (ld: (a: string) => string, st: (a: string, v: string) => string) => {
    const at = (base: string, q: number) =>
      `(i32.add (local.get ${base}) (i32.mul (local.get $H4) (i32.const ${q})))`;
    const one = f4(1);
    return `(local.set $ig ${ld(at('$gRow', 0))})
        (local.set $fg ${ld(at('$gRow', 1))})
        (local.set $gg ${ld(at('$gRow', 2))})
        (local.set $og ${ld(at('$gRow', 3))})
        (local.set $cs ${ld('(local.get $cRow)')})
        ${tanh4('(local.get $cs)', '$tc')}
        ${expNonPositive(`(f32x4.mul (f32x4.abs (local.get $cs)) ${f4(-2)})`, '$sl')}
        (local.set $a (f32x4.add ${one} (local.get $sl)))
        (local.set $sl (f32x4.div (f32x4.mul ${f4(4)} (local.get $sl)) (f32x4.mul (local.get $a) (local.get $a))))
        (local.set $cp (v128.const i32x4 0 0 0 0))
        (if (local.get $cPrev) (then (local.set $cp ${ld('(local.get $pRow)')})))
        (local.set $dht (f32x4.add ${ld('(local.get $dRow)')} ${ld('(local.get $rRow)')}))
        (local.set $dct (f32x4.add ${ld('(local.get $qRow)')} (f32x4.mul (f32x4.mul (local.get $dht) (local.get $og)) (local.get $sl))))
        ${st(at('$oRow', 0), `(f32x4.mul (f32x4.mul (f32x4.mul (local.get $dct) (local.get $gg)) (local.get $ig)) (f32x4.sub ${one} (local.get $ig)))`)}
        ${st(at('$oRow', 1), `(f32x4.mul (f32x4.mul (f32x4.mul (local.get $dct) (local.get $cp)) (local.get $fg)) (f32x4.sub ${one} (local.get $fg)))`)}
        ${st(at('$oRow', 2), `(f32x4.mul (f32x4.mul (local.get $dct) (local.get $ig)) (f32x4.sub ${one} (f32x4.mul (local.get $gg) (local.get $gg))))`)}
        ${st(at('$oRow', 3), `(f32x4.mul (f32x4.mul (f32x4.mul (local.get $dht) (local.get $tc)) (local.get $og)) (f32x4.sub ${one} (local.get $og)))`)}
        ${st('(local.get $qRow)', '(f32x4.mul (local.get $dct) (local.get $fg))')}`;
  };
  return `
  (func (export "lstm_gates_backward") (param $gates i32) (param $dG i32) (param $rowStride i32) (param $c i32)
      (param $dh i32) (param $stateStride i32) (param $cPrev i32) (param $cPrevStride i32) (param $dhRec i32)
      (param $dc i32) (param $H i32) (param $n0 i32) (param $n1 i32)
    (local $n i32) (local $jo i32) (local $H4 i32) (local $rest i32) (local $gRow i32) (local $oRow i32)
    (local $cRow i32) (local $dRow i32) (local $pRow i32) (local $rRow i32) (local $qRow i32)
    (local $a v128) (local $ig v128) (local $fg v128) (local $gg v128) (local $og v128) (local $cp v128)
    (local $cs v128) (local $tc v128) (local $sl v128) (local $dht v128) (local $dct v128) (local $st v128)
    ${MATH_LOCALS}
    (if (i32.ge_u (local.get $n0) (local.get $n1)) (then (return)))
    (local.set $H4 (i32.shl (local.get $H) (i32.const 2)))
    (local.set $n (local.get $n0))
    (loop $N
      (local.set $gRow (i32.add (local.get $gates) (i32.shl (i32.mul (local.get $n) (local.get $rowStride)) (i32.const 2))))
      (local.set $oRow (i32.add (local.get $dG) (i32.shl (i32.mul (local.get $n) (local.get $rowStride)) (i32.const 2))))
      (local.set $cRow (i32.add (local.get $c) (i32.shl (i32.mul (local.get $n) (local.get $stateStride)) (i32.const 2))))
      (local.set $dRow (i32.add (local.get $dh) (i32.shl (i32.mul (local.get $n) (local.get $stateStride)) (i32.const 2))))
      (local.set $pRow (i32.add (local.get $cPrev) (i32.shl (i32.mul (local.get $n) (local.get $cPrevStride)) (i32.const 2))))
      (local.set $rRow (i32.add (local.get $dhRec) (i32.mul (local.get $n) (local.get $H4))))
      (local.set $qRow (i32.add (local.get $dc) (i32.mul (local.get $n) (local.get $H4))))
      ${lanesLoop(body)}
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $N (i32.lt_u (local.get $n) (local.get $n1)))))`;
}

/**
 * maxpool2_backward: the backward of a 2 x 2, stride-2 max pool whose windows tile the input exactly
 * (H = 2 OH, W = 2 OW), for planes p0 <= p < p1: every dx element is written once, dy (only where y > 0 when
 * y != 0, the ReLU before the pool folded in) at the window's argmax and 0 elsewhere, plus 0 (as the general
 * routine's 0 + dy: the same bits). Four windows at a time: two rows of 8 dx values built by masks and
 * shuffles; the last OW % 4 windows one at a time.
 */
function maxPool2BackwardText(): string {
  const lo = '0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23';
  const hi = '8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31';
  const pick = (off: string) => `(v128.and (local.get $d) (i32x4.eq (local.get $pv) ${off}))`;
  return `
  (func (export "maxpool2_backward") (param $dy i32) (param $am i32) (param $y i32) (param $dx i32) (param $W i32)
      (param $OH i32) (param $OW i32) (param $p0 i32) (param $p1 i32)
    (local $p i32) (local $oh i32) (local $ow i32) (local $o i32) (local $plane i32) (local $row i32)
    (local $OW4 i32) (local $d v128) (local $pv v128) (local $e0 v128) (local $e1 v128) (local $vW v128)
    (local $vW1 v128) (local $at i32) (local $i i32) (local $ds f32) (local $q i32)
    (if (i32.ge_u (local.get $p0) (local.get $p1)) (then (return)))
    (local.set $OW4 (i32.and (local.get $OW) (i32.const -4)))
    (local.set $vW (i32x4.splat (local.get $W)))
    (local.set $vW1 (i32x4.splat (i32.add (local.get $W) (i32.const 1))))
    (local.set $o (i32.shl (i32.mul (local.get $p0) (i32.mul (local.get $OH) (local.get $OW))) (i32.const 2)))
    (local.set $p (local.get $p0))
    (loop $P
      (local.set $plane (i32.add (local.get $dx) (i32.shl (i32.mul (local.get $p) (i32.shl (i32.mul (local.get $OH) (local.get $W)) (i32.const 1))) (i32.const 2))))
      (local.set $oh (i32.const 0))
      (loop $OHl
        (local.set $row (i32.mul (i32.shl (local.get $oh) (i32.const 1)) (local.get $W)))
        (local.set $ow (i32.const 0))
        (block $vDone
          (loop $V
            (br_if $vDone (i32.ge_u (local.get $ow) (local.get $OW4)))
            (local.set $i (i32.add (local.get $row) (i32.shl (local.get $ow) (i32.const 1))))
            (local.set $d (v128.load (i32.add (local.get $dy) (local.get $o))))
            (if (local.get $y) (then
              (local.set $d (v128.and (local.get $d) (f32x4.gt (v128.load (i32.add (local.get $y) (local.get $o))) (v128.const f32x4 0 0 0 0))))))
            (local.set $d (f32x4.add (local.get $d) (v128.const f32x4 0 0 0 0)))
            (local.set $pv (i32x4.sub (v128.load (i32.add (local.get $am) (local.get $o)))
              (i32x4.add (i32x4.splat (local.get $i)) (v128.const i32x4 0 2 4 6))))
            (local.set $at (i32.add (local.get $plane) (i32.shl (local.get $i) (i32.const 2))))
            (local.set $e0 ${pick('(v128.const i32x4 0 0 0 0)')})
            (local.set $e1 ${pick('(v128.const i32x4 1 1 1 1)')})
            (v128.store (local.get $at) (i8x16.shuffle ${lo} (local.get $e0) (local.get $e1)))
            (v128.store offset=16 (local.get $at) (i8x16.shuffle ${hi} (local.get $e0) (local.get $e1)))
            (local.set $at (i32.add (local.get $at) (i32.shl (local.get $W) (i32.const 2))))
            (local.set $e0 ${pick('(local.get $vW)')})
            (local.set $e1 ${pick('(local.get $vW1)')})
            (v128.store (local.get $at) (i8x16.shuffle ${lo} (local.get $e0) (local.get $e1)))
            (v128.store offset=16 (local.get $at) (i8x16.shuffle ${hi} (local.get $e0) (local.get $e1)))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (local.set $ow (i32.add (local.get $ow) (i32.const 4)))
            (br $V)))
        (block $sDone
          (loop $S
            (br_if $sDone (i32.ge_u (local.get $ow) (local.get $OW)))
            (local.set $i (i32.add (local.get $row) (i32.shl (local.get $ow) (i32.const 1))))
            (local.set $ds (f32.add (f32.const 0) (f32.reinterpret_i32 (select (i32.load (i32.add (local.get $dy) (local.get $o))) (i32.const 0)
              (i32.or (i32.eqz (local.get $y)) (f32.gt (f32.load (i32.add (local.get $y) (local.get $o))) (f32.const 0)))))))
            (local.set $q (i32.sub (i32.load (i32.add (local.get $am) (local.get $o))) (local.get $i)))
            (local.set $at (i32.add (local.get $plane) (i32.shl (local.get $i) (i32.const 2))))
            (f32.store (local.get $at) (f32.reinterpret_i32 (select (i32.reinterpret_f32 (local.get $ds)) (i32.const 0) (i32.eq (local.get $q) (i32.const 0)))))
            (f32.store offset=4 (local.get $at) (f32.reinterpret_i32 (select (i32.reinterpret_f32 (local.get $ds)) (i32.const 0) (i32.eq (local.get $q) (i32.const 1)))))
            (local.set $at (i32.add (local.get $at) (i32.shl (local.get $W) (i32.const 2))))
            (f32.store (local.get $at) (f32.reinterpret_i32 (select (i32.reinterpret_f32 (local.get $ds)) (i32.const 0) (i32.eq (local.get $q) (local.get $W)))))
            (f32.store offset=4 (local.get $at) (f32.reinterpret_i32 (select (i32.reinterpret_f32 (local.get $ds)) (i32.const 0)
              (i32.eq (local.get $q) (i32.add (local.get $W) (i32.const 1))))))
            (local.set $o (i32.add (local.get $o) (i32.const 4)))
            (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
            (br $S)))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br_if $OHl (i32.lt_u (local.get $oh) (local.get $OH))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $P (i32.lt_u (local.get $p) (local.get $p1)))))`;
}

/**
 * store_rows: scatter's plain-matrix case with contiguous columns, four at a time: for rows 0 <= k < K and
 * columns q0 <= q < q1, v = C[k ldc + q] + (bias[k] when bias != 0 and not flags & 4, else 0) (+ bias[q]
 * when flags & 4) (+ dst's element when flags & 8), 0 where flags & 2 and v <= 0 (NaN kept), stored at
 * dst + 4 (k ldd + q): the same float operations as scatter, so the same bits.
 */
function storeRowsText(): string {
  const step = (v: boolean) => {
    const T = v ? 'f32x4' : 'f32';
    const load = v ? 'v128.load' : 'f32.load';
    const store = v ? 'v128.store' : 'f32.store';
    const bk = v ? '(local.get $bkV)' : '(local.get $bk)';
    const relu = v
      ? '(v128.andnot (local.get $x) (f32x4.le (local.get $x) (v128.const f32x4 0 0 0 0)))'
      : '(f32.reinterpret_i32 (select (i32.const 0) (i32.reinterpret_f32 (local.get $s)) (f32.le (local.get $s) (f32.const 0))))';
    const x = v ? '$x' : '$s';
    return `(local.set ${x} (${T}.add (${load} (i32.add (local.get $row) (local.get $q4))) ${bk}))
            (if (i32.and (local.get $flags) (i32.const 4))
              (then (local.set ${x} (${T}.add (local.get ${x}) (${load} (i32.add (local.get $bias) (local.get $q4)))))))
            (if (i32.and (local.get $flags) (i32.const 8))
              (then (local.set ${x} (${T}.add (local.get ${x}) (${load} (i32.add (local.get $out) (local.get $q4)))))))
            (if (i32.and (local.get $flags) (i32.const 2)) (then (local.set ${x} ${relu})))
            (${store} (i32.add (local.get $out) (local.get $q4)) (local.get ${x}))`;
  };
  return `
  (func (export "store_rows") (param $cm i32) (param $ldc i32) (param $dst i32) (param $ldd i32) (param $K i32)
      (param $bias i32) (param $flags i32) (param $q0 i32) (param $q1 i32)
    (local $k i32) (local $q4 i32) (local $end4 i32) (local $end i32) (local $row i32) (local $out i32)
    (local $bk f32) (local $bkV v128) (local $s f32) (local $x v128)
    (if (i32.or (i32.ge_u (local.get $q0) (local.get $q1)) (i32.eqz (local.get $K))) (then (return)))
    (local.set $end (i32.shl (local.get $q1) (i32.const 2)))
    (local.set $end4 (i32.sub (local.get $end) (i32.and (i32.sub (local.get $end) (i32.shl (local.get $q0) (i32.const 2))) (i32.const 15))))
    (local.set $k (i32.const 0))
    (loop $Kl
      (local.set $bk (f32.const 0))
      (if (i32.and (i32.ne (local.get $bias) (i32.const 0)) (i32.eqz (i32.and (local.get $flags) (i32.const 4))))
        (then (local.set $bk (f32.load (i32.add (local.get $bias) (i32.shl (local.get $k) (i32.const 2)))))))
      (local.set $bkV (f32x4.splat (local.get $bk)))
      (local.set $row (i32.add (local.get $cm) (i32.shl (i32.mul (local.get $k) (local.get $ldc)) (i32.const 2))))
      (local.set $out (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $k) (local.get $ldd)) (i32.const 2))))
      (local.set $q4 (i32.shl (local.get $q0) (i32.const 2)))
      (block $vDone
        (loop $V
          (br_if $vDone (i32.ge_u (local.get $q4) (local.get $end4)))
          ${step(true)}
          (local.set $q4 (i32.add (local.get $q4) (i32.const 16)))
          (br $V)))
      (block $sDone
        (loop $S
          (br_if $sDone (i32.ge_u (local.get $q4) (local.get $end)))
          ${step(false)}
          (local.set $q4 (i32.add (local.get $q4) (i32.const 4)))
          (br $S)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $Kl (i32.lt_u (local.get $k) (local.get $K)))))`;
}
