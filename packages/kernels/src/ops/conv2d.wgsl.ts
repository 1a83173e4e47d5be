import { allOf, type BindingDecl, declareBindings, reluKeepNan } from '../gpu/wgsl.js';

/** Register block of a convolution kernel: `tr` rows (channels) x `tc` columns (pixels) per invocation. */
export interface ConvTile {
  tr: number;
  tc: number;
  wx: number;
  wy: number;
}

export interface ConvForwardConfig extends ConvTile {
  bias: boolean;
  relu: boolean;
  /** Kernel size baked into the code so the tap loops unroll. */
  kh: number;
  kw: number;
  /**
   * Kernel rows as a WGSL loop (only the taps of one row unrolled): KH times less code to compile (see
   * `rowLoopFor` in conv2d.ts for when it is used).
   */
  rowLoop?: boolean;
}

/** Shapes and strides, passed as uniforms (the same list for every convolution kernel). */
export const CONV_UNIFORMS = [
  'N',
  'C',
  'H',
  'W',
  'O',
  'OH',
  'OW',
  'stride',
  'pad',
  'splits',
  'chunk',
] as const;

const uniformDecls = CONV_UNIFORMS.map((name) => ({ name, type: 'u32' as const }));

function tileKey(t: ConvTile): string {
  return `${t.tr}x${t.tc}/${t.wx}x${t.wy}`;
}

export function convForwardKey(c: ConvForwardConfig): string {
  return `${tileKey(c)}:${c.kh}x${c.kw}${c.rowLoop ? 'L' : ''}:${c.bias ? 'b' : ''}${c.relu ? 'r' : ''}`;
}

/**
 * Forward convolution as an implicit GEMM in the orientation y[o, pixel]: rows are output channels, columns
 * are output pixels over the whole batch (q = n*OH*OW + oh*OW + ow), the reduction runs over (c, kh, kw)
 * with the tap loops unrolled (the kernel rows a loop with `rowLoop`), so the im2col gather needs no
 * division in the inner loop. Lanes run along pixels (contiguous loads of x and writes of y); weights are
 * broadcast across lanes. Bounds tests use `&`, not `&&` (see `allOf`).
 */
export function convForwardShader(c: ConvForwardConfig): string {
  const { tr, tc, wx, wy } = c;
  const buffers: BindingDecl[] = [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'w', access: 'read', type: 'f32' },
    { name: 'y', access: 'read_write', type: 'f32' },
  ];
  if (c.bias) buffers.push({ name: 'bias', access: 'read', type: 'f32' });
  const pre: string[] = [];
  for (let j = 0; j < tc; j++) {
    pre.push(`  let q${j} = qBase + ${j * wx}u;`);
    pre.push(`  let qc${j} = min(q${j}, NP - 1u);`);
    pre.push(`  let n${j} = qc${j} / P; let p${j} = qc${j} % P;`);
    pre.push(`  let ihb${j} = i32(p${j} / u.OW * u.stride) - i32(u.pad);`);
    pre.push(`  let iwb${j} = i32(p${j} % u.OW * u.stride) - i32(u.pad);`);
    pre.push(`  let xb${j} = n${j} * u.C * HW;`);
  }
  for (let i = 0; i < tr; i++) {
    pre.push(`  let o${i} = oBase + ${i * wy}u;`);
    pre.push(`  let wb${i} = min(o${i}, u.O - 1u) * u.C * ${c.kh * c.kw}u;`);
  }
  for (let i = 0; i < tr; i++) for (let j = 0; j < tc; j++) pre.push(`  var acc${i}_${j} = 0.0;`);

  // One kernel row's taps: kernel row `kh` unrolled (a literal) or the loop variable `kh` (rowLoop).
  const rowTaps = (kh: number | null): string[] => {
    const r = kh === null ? 'kh' : `${kh}`;
    const ind = kh === null ? '      ' : '    ';
    const taps: string[] = [];
    for (let j = 0; j < tc; j++) {
      taps.push(`${ind}let ih${j}_${r} = ihb${j} + ${kh === null ? 'i32(kh)' : kh};`);
      taps.push(`${ind}let rv${j}_${r} = ${allOf(`ih${j}_${r} >= 0`, `ih${j}_${r} < i32(u.H)`)};`);
    }
    if (kh === null) for (let i = 0; i < tr; i++) taps.push(`${ind}let wk${i} = wc${i} + kh * ${c.kw}u;`);
    for (let kw = 0; kw < c.kw; kw++) {
      const t = kh === null ? `${kw}` : `${kh * c.kw + kw}`;
      for (let j = 0; j < tc; j++) {
        taps.push(`${ind}let iw${j}_${t} = iwb${j} + ${kw};`);
        taps.push(
          `${ind}let ok${j}_${t} = ${allOf(`rv${j}_${r}`, `iw${j}_${t} >= 0`, `iw${j}_${t} < i32(u.W)`)};`,
          `${ind}let xv${j}_${t} = select(0.0, x[select(0u, xc${j} + u32(ih${j}_${r}) * u.W + u32(iw${j}_${t}), ok${j}_${t})], ok${j}_${t});`,
        );
      }
      for (let i = 0; i < tr; i++)
        taps.push(
          kh === null
            ? `${ind}let wv${i}_${t} = w[wk${i} + ${kw}u];`
            : `${ind}let wv${i}_${t} = w[wc${i} + ${t}u];`,
        );
      for (let i = 0; i < tr; i++)
        for (let j = 0; j < tc; j++)
          taps.push(`${ind}acc${i}_${j} = fma(wv${i}_${t}, xv${j}_${t}, acc${i}_${j});`);
    }
    return taps;
  };
  const taps = c.rowLoop
    ? [`    for (var kh = 0u; kh < ${c.kh}u; kh++) {`, ...rowTaps(null), '    }']
    : Array.from({ length: c.kh }, (_, kh) => rowTaps(kh)).flat();
  const writes: string[] = [];
  for (let i = 0; i < tr; i++) {
    for (let j = 0; j < tc; j++) {
      let v = `acc${i}_${j}`;
      if (c.bias) v = `${v} + bias[o${i}]`;
      if (c.relu) v = reluKeepNan(`(${v})`);
      writes.push(`  if (o${i} < u.O && q${j} < NP) { y[(n${j} * u.O + o${i}) * P + p${j}] = ${v}; }`);
    }
  }
  return `
${declareBindings(buffers, uniformDecls)}
@compute @workgroup_size(${wx}, ${wy}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let P = u.OH * u.OW;
  let NP = u.N * P;
  let HW = u.H * u.W;
  let qBase = wid.x * ${tc * wx}u + lid.x;
  let oBase = wid.y * ${tr * wy}u${wy > 1 ? ' + lid.y' : ''};
${pre.join('\n')}
  for (var ci = 0u; ci < u.C; ci++) {
${Array.from({ length: tc }, (_, j) => `    let xc${j} = xb${j} + ci * HW;`).join('\n')}
${Array.from({ length: tr }, (_, i) => `    let wc${i} = wb${i} + ci * ${c.kh * c.kw}u;`).join('\n')}
${taps.join('\n')}
  }
${writes.join('\n')}
}`;
}

export interface ConvBackwardInputConfig extends ConvTile {
  kh: number;
  kw: number;
  unitStride: boolean;
  /** Kernel rows as a WGSL loop, as in `ConvForwardConfig`. */
  rowLoop?: boolean;
}

export function convBackwardInputKey(c: ConvBackwardInputConfig): string {
  return `${tileKey(c)}:${c.kh}x${c.kw}${c.rowLoop ? 'L' : ''}:${c.unitStride ? 's1' : 'sN'}`;
}

/**
 * Input gradient as a transposed convolution: dx[c, pixel] with rows = input channels, columns = input
 * pixels over the batch, reduction over (o, kh, kw): oh = (ih + pad - kh) / stride where that divides.
 */
export function convBackwardInputShader(c: ConvBackwardInputConfig): string {
  const { tr, tc, wx, wy } = c;
  const KK = c.kh * c.kw;
  const buffers: BindingDecl[] = [
    { name: 'dy', access: 'read', type: 'f32' },
    { name: 'w', access: 'read', type: 'f32' },
    { name: 'dx', access: 'read_write', type: 'f32' },
  ];
  const pre: string[] = [];
  for (let j = 0; j < tc; j++) {
    pre.push(`  let q${j} = qBase + ${j * wx}u;`);
    pre.push(`  let qc${j} = min(q${j}, NHW - 1u);`);
    pre.push(`  let n${j} = qc${j} / HW; let p${j} = qc${j} % HW;`);
    pre.push(`  let ihp${j} = i32(p${j} / u.W) + i32(u.pad);`);
    pre.push(`  let iwp${j} = i32(p${j} % u.W) + i32(u.pad);`);
    pre.push(`  let db${j} = n${j} * u.O * P;`);
  }
  for (let i = 0; i < tr; i++) {
    pre.push(`  let c${i} = cBase + ${i * wy}u;`);
    pre.push(`  let wb${i} = min(c${i}, u.C - 1u) * ${KK}u;`);
  }
  for (let i = 0; i < tr; i++) for (let j = 0; j < tc; j++) pre.push(`  var acc${i}_${j} = 0.0;`);
  const rowTaps = (kh: number | null): string[] => {
    const r = kh === null ? 'kh' : `${kh}`;
    const khE = kh === null ? 'i32(kh)' : `${kh}`;
    const ind = kh === null ? '      ' : '    ';
    const taps: string[] = [];
    for (let j = 0; j < tc; j++) {
      if (c.unitStride) {
        taps.push(`${ind}let oh${j}_${r} = ihp${j} - ${khE};`);
        taps.push(`${ind}let rv${j}_${r} = ${allOf(`oh${j}_${r} >= 0`, `oh${j}_${r} < i32(u.OH)`)};`);
      } else {
        taps.push(`${ind}let ohn${j}_${r} = ihp${j} - ${khE};`);
        taps.push(`${ind}let oh${j}_${r} = ohn${j}_${r} / i32(u.stride);`);
        taps.push(
          `${ind}let rv${j}_${r} = ${allOf(`ohn${j}_${r} >= 0`, `ohn${j}_${r} % i32(u.stride) == 0`, `oh${j}_${r} < i32(u.OH)`)};`,
        );
      }
    }
    if (kh === null) taps.push(`${ind}let wk = wo + kh * ${c.kw}u;`);
    for (let kw = 0; kw < c.kw; kw++) {
      const t = kh === null ? `${kw}` : `${kh * c.kw + kw}`;
      for (let j = 0; j < tc; j++) {
        if (c.unitStride) {
          taps.push(`${ind}let ow${j}_${t} = iwp${j} - ${kw};`);
          taps.push(
            `${ind}let ok${j}_${t} = ${allOf(`rv${j}_${r}`, `ow${j}_${t} >= 0`, `ow${j}_${t} < i32(u.OW)`)};`,
          );
        } else {
          taps.push(`${ind}let own${j}_${t} = iwp${j} - ${kw};`);
          taps.push(`${ind}let ow${j}_${t} = own${j}_${t} / i32(u.stride);`);
          taps.push(
            `${ind}let ok${j}_${t} = ${allOf(`rv${j}_${r}`, `own${j}_${t} >= 0`, `own${j}_${t} % i32(u.stride) == 0`, `ow${j}_${t} < i32(u.OW)`)};`,
          );
        }
        taps.push(
          `${ind}let gv${j}_${t} = select(0.0, dy[select(0u, dc${j} + u32(oh${j}_${r}) * u.OW + u32(ow${j}_${t}), ok${j}_${t})], ok${j}_${t});`,
        );
      }
      for (let i = 0; i < tr; i++)
        taps.push(
          kh === null
            ? `${ind}let wv${i}_${t} = w[wk + wb${i} + ${kw}u];`
            : `${ind}let wv${i}_${t} = w[wo + wb${i} + ${t}u];`,
        );
      for (let i = 0; i < tr; i++)
        for (let j = 0; j < tc; j++)
          taps.push(`${ind}acc${i}_${j} = fma(wv${i}_${t}, gv${j}_${t}, acc${i}_${j});`);
    }
    return taps;
  };
  const taps = c.rowLoop
    ? [`    for (var kh = 0u; kh < ${c.kh}u; kh++) {`, ...rowTaps(null), '    }']
    : Array.from({ length: c.kh }, (_, kh) => rowTaps(kh)).flat();
  const writes: string[] = [];
  for (let i = 0; i < tr; i++)
    for (let j = 0; j < tc; j++)
      writes.push(
        `  if (c${i} < u.C && q${j} < NHW) { dx[(n${j} * u.C + c${i}) * HW + p${j}] = acc${i}_${j}; }`,
      );
  return `
${declareBindings(buffers, uniformDecls)}
@compute @workgroup_size(${wx}, ${wy}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let P = u.OH * u.OW;
  let HW = u.H * u.W;
  let NHW = u.N * HW;
  let qBase = wid.x * ${tc * wx}u + lid.x;
  let cBase = wid.y * ${tr * wy}u${wy > 1 ? ' + lid.y' : ''};
${pre.join('\n')}
  for (var oi = 0u; oi < u.O; oi++) {
    let wo = oi * u.C * ${KK}u;
${Array.from({ length: tc }, (_, j) => `    let dc${j} = db${j} + oi * P;`).join('\n')}
${taps.join('\n')}
  }
${writes.join('\n')}
}`;
}

export function convBackwardWeightKey(t: ConvTile): string {
  return tileKey(t);
}

/**
 * Weight gradient as a GEMM: dw[o, k] with k = (c, kh, kw), reduced over all output pixels of the batch in
 * `splits` deterministic chunks (wid.z), each written to its own slice of a partial buffer
 * [splits, O, C*KH*KW]; a second pass sums the slices.
 */
export function convBackwardWeightShader(t: ConvTile, kh: number, kw: number, subgroupUnit = 0): string {
  const { tr, tc, wx, wy } = t;
  // subgroupUnit (rows from wid.y alone, wy = 1): lane s of each group of SG loads dy rows SG*k + s and
  // subgroupBroadcast hands them round, instead of every lane loading every row (as in convRowShader).
  const SG = wy === 1 ? subgroupUnit : 0;
  const KK = kh * kw;
  const buffers: BindingDecl[] = [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'dy', access: 'read', type: 'f32' },
    { name: 'part', access: 'read_write', type: 'f32' },
  ];
  const pre: string[] = [];
  for (let j = 0; j < tc; j++) {
    pre.push(`  let k${j} = kBase + ${j * wx}u;`);
    pre.push(`  let kc${j} = min(k${j}, CKK - 1u);`);
    pre.push(`  let ch${j} = kc${j} / ${KK}u; let tap${j} = kc${j} % ${KK}u;`);
    pre.push(
      `  let dh${j} = i32(tap${j} / ${kw}u) - i32(u.pad); let dw${j} = i32(tap${j} % ${kw}u) - i32(u.pad);`,
    );
    pre.push(`  let xcb${j} = ch${j} * HW;`);
  }
  for (let i = 0; i < tr; i++) {
    pre.push(`  let o${i} = oBase + ${i * wy}u;`);
    pre.push(`  let ob${i} = min(o${i}, u.O - 1u) * P;`);
  }
  for (let i = 0; i < tr; i++) for (let j = 0; j < tc; j++) pre.push(`  var acc${i}_${j} = 0.0;`);
  const body: string[] = [];
  for (let j = 0; j < tc; j++) {
    body.push(`    let ih${j} = ohs + dh${j}; let iw${j} = ows + dw${j};`);
    body.push(`    let ok${j} = ih${j} >= 0 && ih${j} < i32(u.H) && iw${j} >= 0 && iw${j} < i32(u.W);`);
    body.push(
      `    let xv${j} = select(0.0, x[select(0u, xn + xcb${j} + u32(ih${j}) * u.W + u32(iw${j}), ok${j})], ok${j});`,
    );
  }
  if (SG) {
    for (let k = 0; k < Math.ceil(tr / SG); k++) {
      pre.push(`  let sr${k} = min(oBase + ${SG * k}u + sl % ${SG}u, u.O - 1u) * P;`);
      body.push(`    let gl${k} = dy[dn + sr${k} + p];`);
    }
    for (let i = 0; i < tr; i++)
      body.push(`    let gv${i} = subgroupBroadcast(gl${Math.floor(i / SG)}, ${i % SG}u);`);
  } else {
    for (let i = 0; i < tr; i++) body.push(`    let gv${i} = dy[dn + ob${i} + p];`);
  }
  for (let i = 0; i < tr; i++)
    for (let j = 0; j < tc; j++) body.push(`    acc${i}_${j} = fma(gv${i}, xv${j}, acc${i}_${j});`);
  const writes: string[] = [];
  for (let i = 0; i < tr; i++)
    for (let j = 0; j < tc; j++)
      writes.push(
        `  if (o${i} < u.O && k${j} < CKK) { part[(wid.z * u.O + o${i}) * CKK + k${j}] = acc${i}_${j}; }`,
      );
  return `${SG ? 'enable subgroups;' : ''}
${declareBindings(buffers, uniformDecls)}
@compute @workgroup_size(${wx}, ${wy}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${SG ? ', @builtin(subgroup_invocation_id) sl: u32' : ''}) {
  let P = u.OH * u.OW;
  let HW = u.H * u.W;
  let CKK = u.C * ${KK}u;
  let NP = u.N * P;
  let kBase = wid.x * ${tc * wx}u + lid.x;
  let oBase = wid.y * ${tr * wy}u${wy > 1 ? ' + lid.y' : ''};
${pre.join('\n')}
  let qStart = wid.z * u.chunk;
  let qEnd = min(NP, qStart + u.chunk);
  for (var q = qStart; q < qEnd; q++) {
    let n = q / P;
    let p = q % P;
    let ohs = i32(p / u.OW * u.stride);
    let ows = i32(p % u.OW * u.stride);
    let xn = n * u.C * HW;
    let dn = n * u.O * P;
${body.join('\n')}
  }
${writes.join('\n')}
}`;
}

/** A stride-1 convolution computed in runs of `tc` neighbouring pixels of one output row per invocation. */
export interface ConvRowConfig {
  /** Output rows (channels) per invocation; all lanes of a workgroup share them. */
  tr: number;
  /** Output pixels of one row per invocation. */
  tc: number;
  /** Output rows per invocation (default 1): neighbouring rows share input rows as neighbouring columns do. */
  ty?: number;
  /** Invocations per workgroup (along pixel runs). */
  wx: number;
  kh: number;
  kw: number;
  /** Input gradient: the weight is read as w[ch, r, KH-1-a, KW-1-b] (a transposed convolution). */
  transposed: boolean;
  bias: boolean;
  relu: boolean;
  /**
   * 0, or the lanes (a power of two no larger than the smallest subgroup) that share weight loads: each of
   * them loads a different weight and subgroupBroadcast hands them round, instead of every lane loading
   * every weight. Needs the device feature 'subgroups'.
   */
  subgroupUnit: number;
  /**
   * Read src and write dst as vec4 (needs tc % 4 == 0 and both widths multiples of 4, so every vec4 lies in
   * one row, wholly inside or outside it); the padding is then baked in (`pad`).
   */
  vec4?: boolean;
  pad?: number;
}

export function convRowKey(c: ConvRowConfig): string {
  const flags = `${c.transposed ? 't' : ''}${c.bias ? 'b' : ''}${c.relu ? 'r' : ''}${c.subgroupUnit ? `s${c.subgroupUnit}` : ''}`;
  const v4 = c.vec4 ? `:v4p${c.pad ?? 0}` : '';
  return `row:${c.tr}x${c.ty ?? 1}x${c.tc}/${c.wx}:${c.kh}x${c.kw}:${flags}${v4}`;
}

/**
 * Stride-1 convolution out[n, r, y, x] = sum over ch, a, b of in[n, ch, y - pad + a, x - pad + b] * W(r, ch, a, b)
 * (uniforms: N, C = reduced channels, H x W = input, O = output rows, OH x OW = output, pad, splits = runs
 * per row). Serves the forward pass and, with `transposed` and pad' = K-1-pad on dy, the input gradient.
 *
 * Why this shape on llvmpipe: every storage load whose address is not a compile-time uniform becomes eight
 * scalar loads, each behind an exec-mask and a bounds branch, so loads, not multiply-adds, bound the kernel.
 * A run of tc pixels needs tc+KW input loads per kernel row for KW*tc*tr multiply-adds (neighbouring taps
 * share loads), and the channels (rows) come from the workgroup id alone, so their weights are the same in
 * all lanes. (That alone does not make llvmpipe load them once: `dhta bench driver` measured addresses from
 * the workgroup id at the per-lane rate, only compile-time constants on the scalar path; the subgroup path,
 * one per-lane load per `subgroupUnit` weights handed round by subgroupBroadcast, is what cuts them.)
 */
export function convRowShader(c: ConvRowConfig): string {
  const { tr, tc, wx, kh: KH, kw: KW } = c;
  const ty = c.ty ?? 1;
  const KK = KH * KW;
  const V4 = c.vec4 ?? false;
  const PAD = c.pad ?? 0;
  const buffers: BindingDecl[] = [
    { name: 'src', access: 'read', type: V4 ? 'vec4<f32>' : 'f32' },
    { name: 'w', access: 'read', type: 'f32' },
    { name: 'dst', access: 'read_write', type: V4 ? 'vec4<f32>' : 'f32' },
  ];
  if (c.bias) buffers.push({ name: 'bias', access: 'read', type: 'f32' });
  const span = tc + KW - 1;
  const pre: string[] = [];
  for (let i = 0; i < tr; i++) {
    pre.push(`  let r${i} = min(rBase + ${i}u, u.O - 1u);`);
    pre.push(c.transposed ? `  let wr${i} = r${i} * ${KK}u;` : `  let wr${i} = r${i} * u.C * ${KK}u;`);
  }
  // Column validity of the input values a run needs (independent of the channel and kernel row).
  // vec4 mode: input element jj sits at column ox - pad + jj, in vec4 v = floor((jj - pad) / 4) from ox.
  const vLo = Math.floor(-PAD / 4);
  const vHi = Math.floor((span - 1 - PAD) / 4);
  if (V4) {
    for (let v = vLo; v <= vHi; v++) {
      pre.push(`  let cx${v - vLo} = i32(ox) + ${4 * v};`);
      pre.push(`  let cv${v - vLo} = cx${v - vLo} >= 0 && cx${v - vLo} < i32(u.W);`);
    }
  } else {
    for (let jj = 0; jj < span; jj++) {
      pre.push(`  let cx${jj} = x0 + ${jj};`);
      pre.push(`  let cv${jj} = cx${jj} >= 0 && cx${jj} < i32(u.W);`);
    }
  }
  for (let i = 0; i < tr; i++)
    for (let yy = 0; yy < ty; yy++) for (let j = 0; j < tc; j++) pre.push(`  var acc${i}_${yy}_${j} = 0.0;`);
  const body: string[] = [];
  const SG = c.subgroupUnit;
  if (SG) {
    // Lane s of the subgroup loads the weights m = SG*k + s % SG of the flattened (row, tap) block.
    const wloads = Math.ceil((tr * KK) / SG);
    for (let k = 0; k < wloads; k++) {
      pre.push(`  let wm${k} = min(${SG * k}u + sl % ${SG}u, ${tr * KK - 1}u);`);
      pre.push(`  let wi${k} = min(rBase + wm${k} / ${KK}u, u.O - 1u);`);
      pre.push(
        c.transposed
          ? `  let wo${k} = wi${k} * ${KK}u + ${KK - 1}u - wm${k} % ${KK}u;`
          : `  let wo${k} = wi${k} * u.C * ${KK}u + wm${k} % ${KK}u;`,
      );
      body.push(
        c.transposed
          ? `    let wl${k} = w[ch * u.O * ${KK}u + wo${k}];`
          : `    let wl${k} = w[wo${k} + ch * ${KK}u];`,
      );
    }
  }
  // All weights of the channel, once: each serves ty output rows.
  for (let t = 0; t < KK; t++) {
    const wt = c.transposed ? KK - 1 - t : t;
    for (let i = 0; i < tr; i++) {
      const m = i * KK + t;
      body.push(
        SG
          ? `    let wv${i}_${t} = subgroupBroadcast(wl${Math.floor(m / SG)}, ${m % SG}u);`
          : `    let wv${i}_${t} = w[wc${i} + ${wt}u];`,
      );
    }
  }
  // Input rows y0 .. y0 + ty + KH - 2: row a feeds output row yy through kernel row a - yy.
  for (let a = 0; a < ty + KH - 1; a++) {
    body.push(`    let iy${a} = y0 + ${a};`);
    body.push(`    let rv${a} = iy${a} >= 0 && iy${a} < i32(u.H);`);
    if (V4) {
      body.push(`    let rowb${a} = (i32(sc) + iy${a} * i32(u.W) + i32(ox)) / 4;`);
      for (let v = vLo; v <= vHi; v++) {
        const vi = v - vLo;
        body.push(`    let ok${a}_${vi} = rv${a} && cv${vi};`);
        body.push(
          `    let xq${a}_${vi} = select(vec4<f32>(0.0), src[u32(select(0, rowb${a} + ${v}, ok${a}_${vi}))], ok${a}_${vi});`,
        );
      }
      for (let jj = 0; jj < span; jj++) {
        const rc = jj - PAD;
        const v = Math.floor(rc / 4);
        body.push(`    let xv${a}_${jj} = xq${a}_${v - vLo}[${rc - 4 * v}];`);
      }
    } else {
      body.push(`    let rowb${a} = i32(sc) + iy${a} * i32(u.W) + x0;`);
      for (let jj = 0; jj < span; jj++) {
        body.push(`    let ok${a}_${jj} = rv${a} && cv${jj};`);
        body.push(
          `    let xv${a}_${jj} = select(0.0, src[u32(select(0, rowb${a} + ${jj}, ok${a}_${jj}))], ok${a}_${jj});`,
        );
      }
    }
    for (let yy = 0; yy < ty; yy++) {
      const kr = a - yy;
      if (kr < 0 || kr >= KH) continue;
      for (let b = 0; b < KW; b++) {
        const t = kr * KW + b;
        for (let i = 0; i < tr; i++)
          for (let j = 0; j < tc; j++)
            body.push(`    acc${i}_${yy}_${j} = fma(wv${i}_${t}, xv${a}_${j + b}, acc${i}_${yy}_${j});`);
      }
    }
  }
  const writes: string[] = [];
  for (let i = 0; i < tr; i++) {
    for (let yy = 0; yy < ty; yy++) {
      if (V4) {
        for (let j4 = 0; j4 < tc / 4; j4++) {
          let v = `vec4<f32>(${[0, 1, 2, 3].map((e) => `acc${i}_${yy}_${4 * j4 + e}`).join(', ')})`;
          if (c.bias) v = `${v} + bias[r${i}]`;
          if (c.relu) v = reluKeepNan(`(${v})`, true);
          writes.push(
            `  if (live && rBase + ${i}u < u.O && oy + ${yy}u < u.OH && ox + ${4 * j4}u < u.OW) { dst[(ob + ${i}u * OP + ${yy}u * u.OW) / 4u + ${j4}u] = ${v}; }`,
          );
        }
        continue;
      }
      for (let j = 0; j < tc; j++) {
        let v = `acc${i}_${yy}_${j}`;
        if (c.bias) v = `${v} + bias[r${i}]`;
        if (c.relu) v = reluKeepNan(`(${v})`);
        writes.push(
          `  if (live && rBase + ${i}u < u.O && oy + ${yy}u < u.OH && ox + ${j}u < u.OW) { dst[ob + ${i}u * OP + ${yy}u * u.OW + ${j}u] = ${v}; }`,
        );
      }
    }
  }
  return `${SG ? 'enable subgroups;' : ''}
${declareBindings(buffers, uniformDecls)}
@compute @workgroup_size(${wx}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${SG ? ', @builtin(subgroup_invocation_id) sl: u32' : ''}) {
  let blocks = (u.OH + ${ty - 1}u) / ${ty}u;
  let runs = u.N * blocks * u.splits;
  let lane = wid.x * ${wx}u + lid.x;
  let live = lane < runs;
  let l = min(lane, runs - 1u);
  let seg = l % u.splits;
  let row = l / u.splits;
  let n = row / blocks;
  let oy = row % blocks * ${ty}u;
  let ox = seg * ${tc}u;
  let y0 = i32(oy) - i32(u.pad);
  let x0 = i32(ox) - i32(u.pad);
  let HW = u.H * u.W;
  let OP = u.OH * u.OW;
  let rBase = wid.y * ${tr}u;
  let sb = n * u.C * HW;
  let ob = (n * u.O + rBase) * OP + oy * u.OW + ox;
${pre.join('\n')}
  for (var ch = 0u; ch < u.C; ch++) {
    let sc = sb + ch * HW;
${Array.from({ length: tr }, (_, i) => (c.transposed ? `    let wc${i} = ch * u.O * ${KK}u + wr${i};` : `    let wc${i} = wr${i} + ch * ${KK}u;`)).join('\n')}
${body.join('\n')}
  }
${writes.join('\n')}
}`;
}

/** Block of the stride-1 weight-gradient kernel (`convWeightRowShader`). */
export interface ConvWeightRowConfig {
  /** Input channels per invocation (from wid.y: their input loads are the same in every lane). */
  tcc: number;
  /** Output channels per invocation (lanes run along output channels, `to` of them wx apart). */
  to: number;
  /** Output pixels of one row per step. */
  tc: number;
  wx: number;
  kh: number;
  kw: number;
}

export function convWeightRowKey(c: ConvWeightRowConfig): string {
  return `wrow:${c.tcc}x${c.to}x${c.tc}/${c.wx}:${c.kh}x${c.kw}`;
}

/**
 * Stride-1 weight gradient dw[o, ch, a, b] = sum over n, y, x of dy[n, o, y, x] * x[n, ch, y - pad + a, x - pad + b],
 * reduced over the output rows (n, y) of the batch in `splits` deterministic chunks of `chunk` rows (wid.z),
 * each written to its slice of part [splits, O, C*KH*KW]. Lanes run along output channels and the input
 * channels come from wid.y, so input loads are the same in every lane (llvmpipe loads them once) and only
 * dy loads are per lane: tc of them per step for tcc*to*KH*KW*tc multiply-adds, where the tiled kernel does
 * one per-lane gather per column and pixel.
 */
export function convWeightRowShader(c: ConvWeightRowConfig): string {
  const { tcc, to, tc, wx, kh: KH, kw: KW } = c;
  const KK = KH * KW;
  const span = tc + KW - 1;
  const buffers: BindingDecl[] = [
    { name: 'x', access: 'read', type: 'f32' },
    { name: 'dy', access: 'read', type: 'f32' },
    { name: 'part', access: 'read_write', type: 'f32' },
  ];
  const pre: string[] = [];
  for (let q = 0; q < to; q++) {
    pre.push(`  let o${q} = oBase + ${q * wx}u;`);
    pre.push(`  let od${q} = min(o${q}, u.O - 1u) * OP;`);
  }
  for (let i = 0; i < tcc; i++) pre.push(`  let ci${i} = min(cBase + ${i}u, u.C - 1u) * HW;`);
  for (let q = 0; q < to; q++)
    for (let i = 0; i < tcc; i++) for (let t = 0; t < KK; t++) pre.push(`  var acc${q}_${i}_${t} = 0.0;`);
  const body: string[] = [];
  for (let j = 0; j < tc; j++) body.push(`      let okx${j} = x0 + ${j}u < u.OW;`);
  for (let q = 0; q < to; q++)
    for (let j = 0; j < tc; j++)
      body.push(
        `      let g${q}_${j} = select(0.0, dy[select(0u, dn + od${q} + y * u.OW + x0 + ${j}u, okx${j})], okx${j});`,
      );
  for (let jj = 0; jj < span; jj++) {
    body.push(`      let ix${jj} = i32(x0) + ${jj - 0} - i32(u.pad);`);
    body.push(`      let cv${jj} = ix${jj} >= 0 && ix${jj} < i32(u.W);`);
  }
  for (let a = 0; a < KH; a++) {
    body.push(`      let iy${a} = i32(y) + ${a} - i32(u.pad);`);
    body.push(`      let rv${a} = iy${a} >= 0 && iy${a} < i32(u.H);`);
    for (let i = 0; i < tcc; i++) {
      body.push(`      let rb${a}_${i} = i32(xn + ci${i}) + iy${a} * i32(u.W);`);
      for (let jj = 0; jj < span; jj++)
        body.push(
          `      let xv${a}_${i}_${jj} = select(0.0, x[u32(select(0, rb${a}_${i} + ix${jj}, rv${a} && cv${jj}))], rv${a} && cv${jj});`,
        );
      for (let b = 0; b < KW; b++)
        for (let q = 0; q < to; q++)
          for (let j = 0; j < tc; j++)
            body.push(
              `      acc${q}_${i}_${a * KW + b} = fma(g${q}_${j}, xv${a}_${i}_${j + b}, acc${q}_${i}_${a * KW + b});`,
            );
    }
  }
  const writes: string[] = [];
  for (let q = 0; q < to; q++)
    for (let i = 0; i < tcc; i++)
      for (let t = 0; t < KK; t++)
        writes.push(
          `  if (o${q} < u.O && cBase + ${i}u < u.C) { part[(wid.z * u.O + o${q}) * CKK + (cBase + ${i}u) * ${KK}u + ${t}u] = acc${q}_${i}_${t}; }`,
        );
  return `
${declareBindings(buffers, uniformDecls)}
@compute @workgroup_size(${wx}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let OP = u.OH * u.OW;
  let HW = u.H * u.W;
  let CKK = u.C * ${KK}u;
  let oBase = wid.x * ${to * wx}u + lid.x;
  let cBase = wid.y * ${tcc}u;
${pre.join('\n')}
  let rStart = wid.z * u.chunk;
  let rEnd = min(u.N * u.OH, rStart + u.chunk);
  for (var r = rStart; r < rEnd; r++) {
    let n = r / u.OH;
    let y = r % u.OH;
    let xn = n * u.C * HW;
    let dn = n * u.O * OP;
    for (var x0 = 0u; x0 < u.OW; x0 += ${tc}u) {
${body.join('\n')}
    }
  }
${writes.join('\n')}
}`;
}
