import { type BindingDecl, declareBindings, reluKeepNan } from '../gpu/wgsl.js';

/** What changes the GEMM's code (the pipeline cache key). */
export interface GemmConfig {
  transA: boolean;
  transB: boolean;
  /** Bias added per output column (length N), per output row (length M), or none. */
  bias: 'none' | 'col' | 'row';
  relu: boolean;
  /** C = alpha*A*B + C instead of overwriting C. */
  accumulate: boolean;
  /** Split-K: write raw partial sums to a [splits, batch, M, N] buffer; the reduce pass applies the epilogue. */
  partial: boolean;
  /** Outputs per invocation (rows, cols) and invocations per workgroup (x along N, y along M). */
  tm: number;
  tn: number;
  wx: number;
  wy: number;
}

export const GEMM_UNIFORMS = [
  'M',
  'N',
  'K',
  'lda',
  'ldb',
  'ldc',
  'aOff',
  'bOff',
  'cOff',
  'strideA',
  'strideB',
  'strideC',
  'splits',
  'kChunk',
  'batch',
] as const;

type EpilogueFlags = Pick<GemmConfig, 'bias' | 'relu' | 'accumulate'>;

/**
 * The epilogue every product kernel and the split-K reduce apply: alpha * acc, + bias[n] or bias[m], + C,
 * then ReLU, as one WGSL expression (`zero` is the ReLU floor's type: '0.0' or 'vec4<f32>(0.0)').
 */
function epilogue(c: EpilogueFlags, acc: string, m: string, n: string, idx: string, zero = '0.0'): string {
  let v = `u.alpha * ${acc}`;
  if (c.bias === 'col') v = `${v} + bias[${n}]`;
  if (c.bias === 'row') v = `${v} + bias[${m}]`;
  if (c.accumulate) v = `${v} + cmat[${idx}]`;
  return c.relu ? reluKeepNan(`(${v})`, zero !== '0.0') : v;
}

/** The cache-key part of the epilogue flags (and whether the kernel writes split-K partials). */
function epilogueKey(c: EpilogueFlags & { partial?: boolean }): string[] {
  return [c.bias, c.relu ? 'r' : '', c.accumulate ? 'acc' : '', c.partial ? 'p' : ''];
}

export function gemmKey(c: GemmConfig): string {
  return [c.transA ? 'T' : 'N', c.transB ? 'T' : 'N', ...epilogueKey(c), c.tm, c.tn, c.wx, c.wy].join(':');
}

/**
 * Register-blocked GEMM: each invocation computes tm x tn outputs. Rows and columns of an invocation are
 * interleaved with the workgroup's (m = base + ty + i*wy, n = base + tx + j*wx) so that neighbouring lanes
 * read neighbouring addresses (llvmpipe runs lanes as SIMD). No workgroup memory: barriers are expensive on
 * the software driver, and caches serve the reuse. Out-of-range rows/columns load clamped indices and are
 * simply not written.
 */
export function gemmShader(c: GemmConfig): string {
  const { tm, tn, wx, wy } = c;
  const buffers: BindingDecl[] = [
    { name: 'a', access: 'read', type: 'f32' },
    { name: 'b', access: 'read', type: 'f32' },
    { name: 'cmat', access: 'read_write', type: 'f32' },
  ];
  if (c.bias !== 'none' && !c.partial) buffers.push({ name: 'bias', access: 'read', type: 'f32' });
  const uniforms = [
    ...GEMM_UNIFORMS.map((name) => ({ name, type: 'u32' as const })),
    { name: 'alpha', type: 'f32' as const },
  ];

  // A(m, k) at aOff + m*ams + k*aks; B(k, n) at bOff + k*bks + n*bns.
  const ams = c.transA ? '1u' : 'u.lda';
  const aks = c.transA ? 'u.lda' : '1u';
  const bks = c.transB ? '1u' : 'u.ldb';
  const bns = c.transB ? 'u.ldb' : '1u';

  const lines: string[] = [];
  for (let i = 0; i < tm; i++) {
    lines.push(`  let m${i} = mBase + ${i * wy}u;`);
    lines.push(`  let aRow${i} = aBatch + min(m${i}, u.M - 1u) * ${ams};`);
  }
  for (let j = 0; j < tn; j++) {
    lines.push(`  let n${j} = nBase + ${j * wx}u;`);
    lines.push(`  let bCol${j} = bBatch + min(n${j}, u.N - 1u) * ${bns};`);
  }
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`  var c${i}_${j} = 0.0;`);
  const body: string[] = [];
  for (let i = 0; i < tm; i++) body.push(`    let av${i} = a[aRow${i} + k * ${aks}];`);
  for (let j = 0; j < tn; j++) body.push(`    let bv${j} = b[bCol${j} + k * ${bks}];`);
  for (let i = 0; i < tm; i++)
    for (let j = 0; j < tn; j++) body.push(`    c${i}_${j} = fma(av${i}, bv${j}, c${i}_${j});`);

  const writes: string[] = [];
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) {
      const idx = c.partial
        ? `((split * u.batch + bz) * u.M + m${i}) * u.N + n${j}`
        : `cBatch + m${i} * u.ldc + n${j}`;
      const v = c.partial ? `c${i}_${j}` : epilogue(c, `c${i}_${j}`, `m${i}`, `n${j}`, idx);
      writes.push(`  if (m${i} < u.M && n${j} < u.N) { cmat[${idx}] = ${v}; }`);
    }
  }

  return `
${declareBindings(buffers, uniforms)}
@compute @workgroup_size(${wx}, ${wy}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let split = wid.z % u.splits;
  let bz = wid.z / u.splits;
  let mBase = wid.y * ${tm * wy}u + lid.y;
  let nBase = wid.x * ${tn * wx}u + lid.x;
  let aBatch = u.aOff + bz * u.strideA;
  let bBatch = u.bOff + bz * u.strideB;
  let cBatch = u.cOff + bz * u.strideC;
  let kStart = split * u.kChunk;
  let kEnd = min(u.K, kStart + u.kChunk);
${lines.join('\n')}
  for (var k = kStart; k < kEnd; k++) {
${body.join('\n')}
  }
${writes.join('\n')}
}`;
}

/** Sums split-K partials [splits, batch, M, N] into C and applies the epilogue. */
export function gemmReduceShader(c: Pick<GemmConfig, 'bias' | 'relu' | 'accumulate'>): string {
  const buffers: BindingDecl[] = [
    { name: 'part', access: 'read', type: 'f32' },
    { name: 'cmat', access: 'read_write', type: 'f32' },
  ];
  if (c.bias !== 'none') buffers.push({ name: 'bias', access: 'read', type: 'f32' });
  const uniforms = ['M', 'N', 'ldc', 'cOff', 'strideC', 'splits', 'batch'].map((name) => ({
    name,
    type: 'u32' as const,
  }));
  const v = epilogue(c, 's', 'm', 'n', 'idx');
  return `
${declareBindings(buffers, [...uniforms, { name: 'alpha', type: 'f32' }])}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  let mn = u.M * u.N;
  if (i >= mn * u.batch) { return; }
  let bz = i / mn;
  let r = i % mn;
  let m = r / u.N;
  let n = r % u.N;
  var s = 0.0;
  for (var p = 0u; p < u.splits; p++) { s += part[(p * u.batch + bz) * mn + r]; }
  let idx = u.cOff + bz * u.strideC + m * u.ldc + n;
  cmat[idx] = ${v};
}`;
}

/** What changes the code of the small-M, transposed-B product (`gemvTShader`). */
export interface GemvTConfig extends Pick<GemmConfig, 'bias' | 'relu' | 'accumulate' | 'partial'> {
  /** Rows of A per workgroup, all computed by every invocation (from wid.y alone). */
  tm: number;
  /** Columns per invocation and invocations per workgroup (along N). */
  tn: number;
  wx: number;
}

export function gemvTKey(c: GemvTConfig): string {
  return ['gemvT', ...epilogueKey(c), c.tm, c.tn, c.wx].join(':');
}

/**
 * C[M, N] = A[M, K] B[N, K]^T (linear layers, LSTM projections) with K, lda, ldb and the A/B offsets multiples
 * of 4. Both operands are read as vec4 along K, where B's rows are contiguous: on llvmpipe every storage
 * load with a per-lane address is a guarded scalar load per lane and per component, so per 4 k an
 * invocation does tm + tn vec4 loads for 4*tm*tn multiply-adds, against 4*(tm + tn) scalar loads in the
 * generic kernel. Rows come from wid.y alone; at small M one workgroup row covers all of M, so B is read
 * once. Same uniforms and epilogue as `gemmShader`; batch is 1; kChunk counts vec4s.
 */
export function gemvTShader(c: GemvTConfig): string {
  const { tm, tn, wx } = c;
  const buffers: BindingDecl[] = [
    { name: 'a', access: 'read', type: 'vec4<f32>' },
    { name: 'b', access: 'read', type: 'vec4<f32>' },
    { name: 'cmat', access: 'read_write', type: 'f32' },
  ];
  if (c.bias !== 'none' && !c.partial) buffers.push({ name: 'bias', access: 'read', type: 'f32' });
  const uniforms = [
    ...GEMM_UNIFORMS.map((name) => ({ name, type: 'u32' as const })),
    { name: 'alpha', type: 'f32' as const },
  ];
  const lines: string[] = [];
  for (let i = 0; i < tm; i++) {
    lines.push(`  let m${i} = mBase + ${i}u;`);
    lines.push(`  let aRow${i} = (u.aOff + min(m${i}, u.M - 1u) * u.lda) / 4u;`);
  }
  for (let j = 0; j < tn; j++) {
    lines.push(`  let n${j} = nBase + ${j * wx}u;`);
    lines.push(`  let bRow${j} = (u.bOff + min(n${j}, u.N - 1u) * u.ldb) / 4u;`);
  }
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`  var c${i}_${j} = 0.0;`);
  const body: string[] = [];
  for (let i = 0; i < tm; i++) body.push(`    let av${i} = a[aRow${i} + k];`);
  for (let j = 0; j < tn; j++) body.push(`    let bv${j} = b[bRow${j} + k];`);
  for (let i = 0; i < tm; i++)
    for (let j = 0; j < tn; j++) body.push(`    c${i}_${j} = c${i}_${j} + dot(av${i}, bv${j});`);
  const writes: string[] = [];
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) {
      const idx = c.partial ? `(split * u.M + m${i}) * u.N + n${j}` : `u.cOff + m${i} * u.ldc + n${j}`;
      const v = c.partial ? `c${i}_${j}` : epilogue(c, `c${i}_${j}`, `m${i}`, `n${j}`, idx);
      writes.push(`  if (m${i} < u.M && n${j} < u.N) { cmat[${idx}] = ${v}; }`);
    }
  }
  return `
${declareBindings(buffers, uniforms)}
@compute @workgroup_size(${wx}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let split = wid.z;
  let nBase = wid.x * ${tn * wx}u + lid.x;
  let mBase = wid.y * ${tm}u;
  let kStart = split * u.kChunk;
  let kEnd = min(u.K / 4u, kStart + u.kChunk);
${lines.join('\n')}
  for (var k = kStart; k < kEnd; k++) {
${body.join('\n')}
  }
${writes.join('\n')}
}`;
}

/** What changes the code of the vec4-column product (`gemmN4Shader`). */
export interface GemmN4Config
  extends Pick<GemmConfig, 'transA' | 'bias' | 'relu' | 'accumulate' | 'partial'> {
  /** Rows of C per workgroup, all computed by every invocation (from wid.y alone). */
  tm: number;
  /** vec4 columns per invocation and invocations per workgroup (along N). */
  tn: number;
  wx: number;
}

export function gemmN4Key(c: GemmN4Config): string {
  return ['n4', c.transA ? 'T' : 'N', ...epilogueKey(c), c.tm, c.tn, c.wx].join(':');
}

/**
 * C[M, N] = op(A) B with B stored [K, N] and C read and written as vec4 along N (N, ldb, ldc and the B/C
 * offsets multiples of 4): the product of a linear layer's input gradient (dy W, M = batch rows) and of its
 * weight gradient (dy^T x, K = batch rows). Rows come from wid.y alone, so A's addresses are the same in
 * every lane and llvmpipe loads each once; per k an invocation does tn vec4 loads of B for 4*tm*tn
 * multiply-adds and, at the end, tm*tn vec4 stores, where the generic kernel needs a guarded scalar load or
 * store per lane and per element. Same uniforms and epilogue as `gemmShader`; batch is 1.
 */
export function gemmN4Shader(c: GemmN4Config): string {
  const { tm, tn, wx } = c;
  const buffers: BindingDecl[] = [
    { name: 'a', access: 'read', type: 'f32' },
    { name: 'b', access: 'read', type: 'vec4<f32>' },
    { name: 'cmat', access: 'read_write', type: 'vec4<f32>' },
  ];
  if (c.bias !== 'none' && !c.partial)
    buffers.push({ name: 'bias', access: 'read', type: c.bias === 'col' ? 'vec4<f32>' : 'f32' });
  const uniforms = [
    ...GEMM_UNIFORMS.map((name) => ({ name, type: 'u32' as const })),
    { name: 'alpha', type: 'f32' as const },
  ];
  const ams = c.transA ? '1u' : 'u.lda';
  const aks = c.transA ? 'u.lda' : '1u';
  const lines: string[] = [];
  for (let i = 0; i < tm; i++) {
    lines.push(`  let m${i} = mBase + ${i}u;`);
    lines.push(`  let aRow${i} = u.aOff + min(m${i}, u.M - 1u) * ${ams};`);
  }
  for (let j = 0; j < tn; j++) {
    lines.push(`  let n${j} = nBase + ${j * wx}u;`);
    lines.push(`  let nc${j} = min(n${j}, N4 - 1u);`);
  }
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) lines.push(`  var c${i}_${j} = vec4<f32>(0.0);`);
  const body: string[] = [];
  body.push('    let bk = (u.bOff + k * u.ldb) / 4u;');
  for (let i = 0; i < tm; i++) body.push(`    let av${i} = a[aRow${i} + k * ${aks}];`);
  for (let j = 0; j < tn; j++) body.push(`    let bv${j} = b[bk + nc${j}];`);
  for (let i = 0; i < tm; i++)
    for (let j = 0; j < tn; j++) body.push(`    c${i}_${j} = fma(vec4<f32>(av${i}), bv${j}, c${i}_${j});`);
  const writes: string[] = [];
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) {
      const idx = c.partial
        ? `((split * u.M + m${i}) * u.N) / 4u + n${j}`
        : `(u.cOff + m${i} * u.ldc) / 4u + n${j}`;
      const v = c.partial ? `c${i}_${j}` : epilogue(c, `c${i}_${j}`, `m${i}`, `n${j}`, idx, 'vec4<f32>(0.0)');
      writes.push(`  if (m${i} < u.M && n${j} < N4) { cmat[${idx}] = ${v}; }`);
    }
  }
  return `
${declareBindings(buffers, uniforms)}
@compute @workgroup_size(${wx}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let split = wid.z;
  let N4 = u.N / 4u;
  let nBase = wid.x * ${tn * wx}u + lid.x;
  let mBase = wid.y * ${tm}u;
  let kStart = split * u.kChunk;
  let kEnd = min(u.K, kStart + u.kChunk);
${lines.join('\n')}
  for (var k = kStart; k < kEnd; k++) {
${body.join('\n')}
  }
${writes.join('\n')}
}`;
}
