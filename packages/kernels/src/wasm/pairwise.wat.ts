// The WebAssembly routine of Engine.pairwiseTerms (the pairwise loss's B x N pair terms; definition:
// reference pairwiseTerms), four columns at a time with f32x4, then the row's tail one at a time with the same
// formulas in f32. exp and log are polynomials (WebAssembly has neither):
// - exp(x), x in [-87, 0]: x = n ln2 + r (n = nearest(x / ln2), ln2 in two parts so that r is exact to f32),
//   exp(r) by its Taylor series to r^7 (|r| <= ln2 / 2: the first omitted term is below 5e-9 relative), times
//   2^n built from its exponent bits (n >= -126: a normal number). Inputs below -87 are taken as -87 (exp is
//   then ~1.6e-38, and only 1 + exp is used).
// - log(q), q in [1, 2]: 2 atanh(z), z = (q - 1) / (q + 1) in [0, 1/3], by its odd series to z^15 (the first
//   omitted term is below 2e-9 relative).

import { PAIRWISE_CHUNK } from '../engine.js';

const LOG2E = Math.LOG2E;
// ln 2 = LN2_HI + LN2_LO, LN2_HI with 16 significant bits, so that n * LN2_HI is exact for |n| <= 256.
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.4286068203094173e-6;

/** The pair terms' expressions for vectors of 4 lanes (v128) or scalars (f32), as WAT text. */
function lane(width: 1 | 4) {
  const v = width === 4;
  const op = (name: string) => (v ? `f32x4.${name}` : `f32.${name}`);
  const k = (c: number) => (v ? `(v128.const f32x4 ${c} ${c} ${c} ${c})` : `(f32.const ${c})`);
  const get = (name: string) => (v ? `(f32x4.splat (local.get ${name}))` : `(local.get ${name})`);
  const sel = (a: string, b: string, cond: string) =>
    v ? `(v128.bitselect ${a} ${b} ${cond})` : `(select ${a} ${b} ${cond})`;
  const load = (addr: string) => `(${v ? 'v128' : 'f32'}.load ${addr})`;
  const store = (addr: string, x: string) => `(${v ? 'v128' : 'f32'}.store ${addr} ${x})`;
  // exp(x) for x <= 0: p(r) * 2^n.
  const pow2 = (n: string) =>
    v
      ? `(i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s ${n}) (v128.const i32x4 127 127 127 127)) (i32.const 23))`
      : `(f32.reinterpret_i32 (i32.shl (i32.add (i32.trunc_f32_s ${n}) (i32.const 127)) (i32.const 23)))`;
  const taylor = [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];
  const atanh = [1 / 15, 1 / 13, 1 / 11, 1 / 9, 1 / 7, 1 / 5, 1 / 3, 1];
  const horner = (coefs: number[], x: string) =>
    coefs
      .slice(1)
      .reduce((acc, c) => `(${op('add')} ${k(c)} (${op('mul')} (local.get ${x}) ${acc}))`, k(coefs[0]));
  const L = v ? 'v' : 's';
  return {
    locals:
      ['t', 'x', 'n', 'r', 'e', 'q', 'z', 'z2', 'w', 'sg', 'sv']
        .map((x) => `(local $${L}${x} ${v ? 'v128' : 'f32'})`)
        .join(' ') + ` (local $${L}m ${v ? 'v128' : 'i32'})`,
    /** Computes the terms at byte offset $at of the row; adds the likelihood term to $acc (v128 or f32). */
    body: (acc: string) => `
        (local.set $${L}t (${op('mul')} ${get('$thetaScale')} ${load('(i32.add (local.get $rowT) (local.get $at))')}))
        (local.set $${L}m (${op('gt')} ${load('(i32.add (local.get $rowS) (local.get $at))')} ${k(0)}))
        (local.set $${L}sv ${v ? `(v128.and (local.get $vm) ${k(1)})` : '(f32.convert_i32_u (local.get $sm))'})
        (local.set $${L}w ${sel(get('$wSim'), get('$wDis'), `(local.get $${L}m)`)})
        ;; e = exp(-|t|)
        (local.set $${L}x (${op('max')} (${op('neg')} (${op('abs')} (local.get $${L}t))) ${k(-87)}))
        (local.set $${L}n (${op('nearest')} (${op('mul')} (local.get $${L}x) ${k(LOG2E)})))
        (local.set $${L}r (${op('sub')} (${op('sub')} (local.get $${L}x) (${op('mul')} (local.get $${L}n) ${k(LN2_HI)}))
          (${op('mul')} (local.get $${L}n) ${k(LN2_LO)})))
        (local.set $${L}e (${op('mul')} ${horner(taylor, `$${L}r`)} ${pow2(`(local.get $${L}n)`)}))
        (local.set $${L}q (${op('add')} ${k(1)} (local.get $${L}e)))
        ;; sigmoid(t) = 1 / q (t >= 0) or e / q
        (local.set $${L}sg (${op('div')} ${sel(k(1), `(local.get $${L}e)`, `(${op('ge')} (local.get $${L}t) ${k(0)})`)} (local.get $${L}q)))
        ${store('(i32.add (local.get $rowC) (local.get $at))', `(${op('mul')} ${get('$scale')} (${op('mul')} (local.get $${L}w) (${op('sub')} (local.get $${L}sv) (local.get $${L}sg))))`)}
        ;; log(q) = 2 atanh(z), z = (q - 1) / (q + 1)
        (local.set $${L}z (${op('div')} (${op('sub')} (local.get $${L}q) ${k(1)}) (${op('add')} (local.get $${L}q) ${k(1)})))
        (local.set $${L}z2 (${op('mul')} (local.get $${L}z) (local.get $${L}z)))
        ;; acc += w (s t - max(t, 0) - log q)
        (local.set ${acc} (${op('add')} (local.get ${acc}) (${op('mul')} (local.get $${L}w)
          (${op('sub')} (${op('sub')} (${op('mul')} (local.get $${L}sv) (local.get $${L}t)) (${op('max')} (local.get $${L}t) ${k(0)}))
            (${op('mul')} ${k(2)} (${op('mul')} (local.get $${L}z) ${horner(atanh, `$${L}z2`)}))))))`,
  };
}

/**
 * pairwise_terms: rows r0 <= i < r1 of theta and sim (N columns, byte addresses) into coef (same layout) and
 * lik (`chunks` floats per row: each chunk's terms added as four lane sums, lanes (0 + 1) + (2 + 3), then the
 * tail in order); thetaScale and scale arrive as their f32 bits. Threads split the rows.
 */
export function pairwiseTermsText(): string {
  const vec = lane(4);
  const sca = lane(1);
  return `
  (func (export "pairwise_terms") (param $theta i32) (param $sim i32) (param $coef i32) (param $lik i32)
      (param $N i32) (param $chunks i32) (param $balance i32) (param $tsBits i32) (param $scaleBits i32)
      (param $r0 i32) (param $r1 i32)
    (local $i i32) (local $j i32) (local $jEnd i32) (local $at i32) (local $c i32) (local $nSim i32)
    (local $rowT i32) (local $rowS i32) (local $rowC i32) (local $n f32)
    (local $thetaScale f32) (local $scale f32) (local $wSim f32) (local $wDis f32)
    (local $vacc v128) (local $sacc f32)
    ${vec.locals}
    ${sca.locals}
    (if (i32.ge_u (local.get $r0) (local.get $r1)) (then (return)))
    (local.set $thetaScale (f32.reinterpret_i32 (local.get $tsBits)))
    (local.set $scale (f32.reinterpret_i32 (local.get $scaleBits)))
    (local.set $n (f32.convert_i32_u (local.get $N)))
    (local.set $i (local.get $r0))
    (loop $I
      (local.set $rowT (i32.add (local.get $theta) (i32.shl (i32.mul (local.get $i) (local.get $N)) (i32.const 2))))
      (local.set $rowS (i32.add (local.get $sim) (i32.shl (i32.mul (local.get $i) (local.get $N)) (i32.const 2))))
      (local.set $rowC (i32.add (local.get $coef) (i32.shl (i32.mul (local.get $i) (local.get $N)) (i32.const 2))))
      ;; n_sim, then the row's pair weights
      (local.set $nSim (i32.const 0))
      (local.set $at (i32.const 0))
      (block $cDone
        (loop $C
          (br_if $cDone (i32.ge_u (local.get $at) (i32.shl (local.get $N) (i32.const 2))))
          (local.set $nSim (i32.add (local.get $nSim)
            (f32.gt (f32.load (i32.add (local.get $rowS) (local.get $at))) (f32.const 0))))
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
          (local.set $j (i32.mul (local.get $c) (i32.const ${PAIRWISE_CHUNK})))
          (local.set $jEnd (i32.add (local.get $j) (i32.const ${PAIRWISE_CHUNK})))
          (if (i32.gt_u (local.get $jEnd) (local.get $N)) (then (local.set $jEnd (local.get $N))))
          (local.set $vacc (v128.const f32x4 0 0 0 0))
          (block $vDone
            (loop $V
              (br_if $vDone (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $jEnd)))
              (local.set $at (i32.shl (local.get $j) (i32.const 2)))${vec.body('$vacc')}
              (local.set $j (i32.add (local.get $j) (i32.const 4)))
              (br $V)))
          (local.set $sacc (f32.add
            (f32.add (f32x4.extract_lane 0 (local.get $vacc)) (f32x4.extract_lane 1 (local.get $vacc)))
            (f32.add (f32x4.extract_lane 2 (local.get $vacc)) (f32x4.extract_lane 3 (local.get $vacc)))))
          (block $sDone
            (loop $S
              (br_if $sDone (i32.ge_u (local.get $j) (local.get $jEnd)))
              (local.set $at (i32.shl (local.get $j) (i32.const 2)))${sca.body('$sacc')}
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $S)))
          (f32.store (i32.add (local.get $lik) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $chunks)) (local.get $c)) (i32.const 2)))
            (local.get $sacc))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $K)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $I (i32.lt_u (local.get $i) (local.get $r1)))))`;
}
