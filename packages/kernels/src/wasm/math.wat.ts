// f32x4 math for the engine's WebAssembly text (WebAssembly has no exp, tanh or log): statements that set a
// local, and a loop over a row in vectors of four with lane loads and stores for its tail. Used by the LSTM
// gates (cpu.wat.ts) and the pairwise loss's pair terms (pairwise.wat.ts).

export const f4 = (v: number) => `(v128.const f32x4 ${v} ${v} ${v} ${v})`;

/**
 * Statements that set $out to exp(x) for lanes x <= 0 (Cephes' expf: x = n ln 2 + r, |r| <= ln 2 / 2, a
 * degree-7 polynomial for e^r, times 2^n built in the exponent bits; about 1 ulp). Below x = -87 (e^-87 is
 * about 1.6e-38, near the smallest normal float) the result is 0; a NaN stays NaN. Locals $eX $eN $eR $eP.
 */
export function expNonPositive(x: string, out: string): string {
  const poly = [
    1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
  ];
  let p = f4(poly[0]);
  for (const c of poly.slice(1)) p = `(f32x4.add (f32x4.mul ${p} (local.get $eR)) ${f4(c)})`;
  return `(local.set $eX (f32x4.max ${x} ${f4(-87)}))
        (local.set $eN (f32x4.nearest (f32x4.mul (local.get $eX) ${f4(Math.LOG2E)})))
        (local.set $eR (f32x4.sub (f32x4.sub (local.get $eX) (f32x4.mul (local.get $eN) ${f4(0.693359375)}))
          (f32x4.mul (local.get $eN) ${f4(-2.1219444e-4)})))
        (local.set $eP (f32x4.add (f32x4.add (f32x4.mul ${p} (f32x4.mul (local.get $eR) (local.get $eR))) (local.get $eR)) ${f4(1)}))
        (local.set ${out} (v128.andnot (f32x4.mul (local.get $eP)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $eN)) (v128.const i32x4 127 127 127 127)) (i32.const 23)))
          (f32x4.lt ${x} ${f4(-87)})))`;
}

/**
 * Statements that set $out to sigmoid(z): q = e / (1 + e) with e = exp(-|z|) (sigmoid(-|z|)), then 1 - q
 * for z >= 0 (a saturated gate rounds to the float below 1 where the exact value does, which 1 / (1 + e)
 * would not: 1 + e rounds to 1 first), q below.
 */
export function sigmoid4(z: string, out: string): string {
  return `(local.set $sZ ${z})
        ${expNonPositive('(f32x4.neg (f32x4.abs (local.get $sZ)))', '$sE')}
        (local.set $sD (f32x4.div (local.get $sE) (f32x4.add (local.get $sE) ${f4(1)})))
        (local.set ${out} (v128.bitselect (f32x4.sub ${f4(1)} (local.get $sD)) (local.get $sD)
          (f32x4.ge (local.get $sZ) ${f4(0)})))`;
}

/**
 * Statements that set $out to tanh(z): Cephes' tanhf polynomial below |z| = 0.625, else
 * sign(z) (1 - 2e / (1 + e)) with e = exp(-2|z|) (no cancellation there, no overflow anywhere, and near 1
 * the rounding of the exact value).
 */
export function tanh4(z: string, out: string): string {
  const poly = [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1];
  let p = f4(poly[0]);
  for (const c of poly.slice(1)) p = `(f32x4.add (f32x4.mul ${p} (local.get $tZ2)) ${f4(c)})`;
  return `(local.set $tZ ${z})
        (local.set $tA (f32x4.abs (local.get $tZ)))
        (local.set $tZ2 (f32x4.mul (local.get $tZ) (local.get $tZ)))
        ${expNonPositive(`(f32x4.mul (local.get $tA) ${f4(-2)})`, '$tE')}
        (local.set $tE (f32x4.sub ${f4(1)} (f32x4.div (f32x4.add (local.get $tE) (local.get $tE)) (f32x4.add ${f4(1)} (local.get $tE)))))
        (local.set $tE (v128.or (local.get $tE) (v128.and (local.get $tZ) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))))
        (local.set ${out} (v128.bitselect
          (f32x4.add (f32x4.mul (f32x4.mul ${p} (local.get $tZ2)) (local.get $tZ)) (local.get $tZ))
          (local.get $tE) (f32x4.lt (local.get $tA) ${f4(0.625)})))`;
}

export const MATH_LOCALS =
  '(local $eX v128) (local $eN v128) (local $eR v128) (local $eP v128) (local $sZ v128) (local $sE v128) ' +
  '(local $sD v128) (local $tZ v128) (local $tA v128) (local $tZ2 v128) (local $tE v128)';

/**
 * A loop over j = 0, 4, ... < H (byte offset $jo) running `body(load, store)` on four elements at a time;
 * the last H % 4 elements through lane loads (zeros past H) and lane stores, so nothing past H is read or
 * written. `load(addr)` gives an f32x4 from byte address addr + jo, `store(addr, v)` writes one.
 */
export function lanesLoop(
  body: (load: (a: string) => string, store: (a: string, v: string) => string) => string,
): string {
  const full = body(
    (a) => `(v128.load (i32.add ${a} (local.get $jo)))`,
    (a, v) => `(v128.store (i32.add ${a} (local.get $jo)) ${v})`,
  );
  const partLoad = (a: string) => {
    let v = '(v128.const i32x4 0 0 0 0)';
    for (let l = 0; l < 3; l++)
      v = `(if (result v128) (i32.gt_u (local.get $rest) (i32.const ${l}))
          (then (f32x4.replace_lane ${l} ${v} (f32.load offset=${4 * l} (i32.add ${a} (local.get $jo))))) (else ${v}))`;
    return v;
  };
  const partStore = (a: string, v: string) =>
    `(local.set $st ${v})
        ${[0, 1, 2]
          .map(
            (l) =>
              `(if (i32.gt_u (local.get $rest) (i32.const ${l})) (then (f32.store offset=${4 * l} (i32.add ${a} (local.get $jo)) (f32x4.extract_lane ${l} (local.get $st)))))`,
          )
          .join('\n        ')}`;
  return `(local.set $jo (i32.const 0))
      (block $vDone
        (loop $V
          (br_if $vDone (i32.gt_u (i32.add (local.get $jo) (i32.const 16)) (local.get $H4)))
          ${full}
          (local.set $jo (i32.add (local.get $jo) (i32.const 16)))
          (br $V)))
      (local.set $rest (i32.shr_u (i32.sub (local.get $H4) (local.get $jo)) (i32.const 2)))
      (if (local.get $rest) (then
        ${body(partLoad, partStore)}))`;
}
