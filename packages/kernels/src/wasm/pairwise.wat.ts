// The WebAssembly routine of Engine.pairwiseTerms (the pairwise loss's B x N pair terms; definition:
// reference pairwiseTerms), four columns at a time with f32x4 (the row's tail through lane loads and stores),
// on the math of math.wat.ts: sigmoid(t) and e = exp(-|t|) from sigmoid4, and log(1 + e) = 2 atanh(z),
// z = e / (2 + e) in [0, 1/3], by the odd series to z^15 (the first omitted term is below 2e-9 relative).

import { PAIRWISE_CHUNK } from '../engine.js';
import { f4, lanesLoop, MATH_LOCALS, sigmoid4 } from './math.wat.js';

/** Statements: lanes of $vacc += w (s t - max(t, 0) - log(1 + e)) and coef = scale w (s - sigmoid(t)). */
function termsBody(ld: (a: string) => string, st: (a: string, v: string) => string): string {
  const atanh = [1 / 15, 1 / 13, 1 / 11, 1 / 9, 1 / 7, 1 / 5, 1 / 3, 1];
  const series = atanh
    .slice(1)
    .reduce((acc, c) => `(f32x4.add ${f4(c)} (f32x4.mul (local.get $z2) ${acc}))`, f4(atanh[0]));
  return `(local.set $t (f32x4.mul (f32x4.splat (local.get $thetaScale)) ${ld('(local.get $cT)')}))
        (local.set $m (f32x4.gt ${ld('(local.get $cS)')} ${f4(0)}))
        (local.set $sv (v128.and (local.get $m) ${f4(1)}))
        (local.set $w (v128.bitselect (f32x4.splat (local.get $wSim)) (f32x4.splat (local.get $wDis)) (local.get $m)))
        ${sigmoid4('(local.get $t)', '$sg')}
        ${st('(local.get $cC)', '(f32x4.mul (f32x4.splat (local.get $scale)) (f32x4.mul (local.get $w) (f32x4.sub (local.get $sv) (local.get $sg))))')}
        ;; log(1 + e), e = exp(-|t|) (sigmoid4's $sE)
        (local.set $z (f32x4.div (local.get $sE) (f32x4.add ${f4(2)} (local.get $sE))))
        (local.set $z2 (f32x4.mul (local.get $z) (local.get $z)))
        (local.set $vacc (f32x4.add (local.get $vacc) (v128.and
          (f32x4.mul (local.get $w) (f32x4.sub
            (f32x4.sub (f32x4.mul (local.get $sv) (local.get $t)) (f32x4.max (local.get $t) ${f4(0)}))
            (f32x4.mul ${f4(2)} (f32x4.mul (local.get $z) ${series}))))
          ;; lanes past the chunk's end (read as 0) add nothing
          (i32x4.lt_s (i32x4.add (i32x4.splat (local.get $jo)) (v128.const i32x4 0 4 8 12)) (i32x4.splat (local.get $H4))))))`;
}

/**
 * pairwise_terms: rows r0 <= i < r1 of theta and sim (N columns, byte addresses) into coef (same layout) and
 * lik (`chunks` floats per row: each chunk's terms added in four lanes, then lanes (0 + 1) + (2 + 3));
 * thetaScale and scale arrive as their f32 bits. Threads split the rows.
 */
export function pairwiseTermsText(): string {
  return `
  (func (export "pairwise_terms") (param $theta i32) (param $sim i32) (param $coef i32) (param $lik i32)
      (param $N i32) (param $chunks i32) (param $balance i32) (param $tsBits i32) (param $scaleBits i32)
      (param $r0 i32) (param $r1 i32)
    (local $i i32) (local $at i32) (local $c i32) (local $nSim i32) (local $row i32) (local $n f32)
    (local $cT i32) (local $cS i32) (local $cC i32) (local $jo i32) (local $H4 i32) (local $rest i32)
    (local $thetaScale f32) (local $scale f32) (local $wSim f32) (local $wDis f32)
    (local $vacc v128) (local $st v128) (local $t v128) (local $m v128) (local $sv v128) (local $w v128)
    (local $sg v128) (local $z v128) (local $z2 v128) ${MATH_LOCALS}
    (if (i32.ge_u (local.get $r0) (local.get $r1)) (then (return)))
    (local.set $thetaScale (f32.reinterpret_i32 (local.get $tsBits)))
    (local.set $scale (f32.reinterpret_i32 (local.get $scaleBits)))
    (local.set $n (f32.convert_i32_u (local.get $N)))
    (local.set $i (local.get $r0))
    (loop $I
      (local.set $row (i32.shl (i32.mul (local.get $i) (local.get $N)) (i32.const 2)))
      ;; n_sim, then the row's pair weights
      (local.set $nSim (i32.const 0))
      (local.set $at (i32.const 0))
      (block $cDone
        (loop $C
          (br_if $cDone (i32.ge_u (local.get $at) (i32.shl (local.get $N) (i32.const 2))))
          (local.set $nSim (i32.add (local.get $nSim)
            (f32.gt (f32.load (i32.add (i32.add (local.get $sim) (local.get $row)) (local.get $at))) (f32.const 0))))
          (local.set $at (i32.add (local.get $at) (i32.const 4)))
          (br $C)))
      (local.set $wSim (f32.const 1))
      (local.set $wDis (f32.const 1))
      (if (i32.and (local.get $balance)
            (i32.and (i32.gt_u (local.get $nSim) (i32.const 0)) (i32.lt_u (local.get $nSim) (local.get $N))))
        (then
          (local.set $wSim (f32.div (local.get $n) (f32.mul (f32.const 2) (f32.convert_i32_u (local.get $nSim)))))
          (local.set $wDis (f32.div (local.get $n)
            (f32.mul (f32.const 2) (f32.convert_i32_u (i32.sub (local.get $N) (local.get $nSim))))))))
      (local.set $c (i32.const 0))
      (block $chunksDone
        (loop $K
          (br_if $chunksDone (i32.ge_u (local.get $c) (local.get $chunks)))
          ;; the chunk's columns: byte offset $at in the row, $H4 bytes
          (local.set $at (i32.add (local.get $row) (i32.mul (local.get $c) (i32.const ${4 * PAIRWISE_CHUNK}))))
          (local.set $H4 (i32.sub (i32.shl (local.get $N) (i32.const 2))
            (i32.mul (local.get $c) (i32.const ${4 * PAIRWISE_CHUNK}))))
          (if (i32.gt_u (local.get $H4) (i32.const ${4 * PAIRWISE_CHUNK})) (then (local.set $H4 (i32.const ${4 * PAIRWISE_CHUNK}))))
          (local.set $cT (i32.add (local.get $theta) (local.get $at)))
          (local.set $cS (i32.add (local.get $sim) (local.get $at)))
          (local.set $cC (i32.add (local.get $coef) (local.get $at)))
          (local.set $vacc (v128.const f32x4 0 0 0 0))
          ${lanesLoop(termsBody)}
          (f32.store (i32.add (local.get $lik) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $chunks)) (local.get $c)) (i32.const 2)))
            (f32.add
              (f32.add (f32x4.extract_lane 0 (local.get $vacc)) (f32x4.extract_lane 1 (local.get $vacc)))
              (f32.add (f32x4.extract_lane 2 (local.get $vacc)) (f32x4.extract_lane 3 (local.get $vacc)))))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $K)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $I (i32.lt_u (local.get $i) (local.get $r1)))))`;
}
