/**
 * A small WebAssembly module for the Hamming kernels, assembled here from opcodes (no toolchain, no
 * dependency). Scalar `i64.popcnt` compiles to the CPU's POPCNT instruction and gives a code's distance
 * directly. SIMD (`i8x16.popcnt`, lowered to table lookups on x86) was measured no faster even on a pure
 * popcount sum (2.1-2.6 vs 2.0-3.0 G 64-bit words/s on the development machine), before the per-code
 * horizontal sums that a distance needs; so the loops are scalar, unrolled, query words in locals.
 *
 * Exports (all pointers are byte offsets into the exported `memory`; codes are `W` u32 words each, the
 * query `q` one code, `n` database codes starting at `db`):
 * - `dist(db, q, W, n, out)`: u16 distances to out[0..n-1].
 * - `filter(db, q, W, n, lim, out) -> count`: for each code t with distance d <= lim (signed), appends
 *   the i32 `(t << 13) | d` to out, in t order; out needs room for n + 1 entries.
 * - `hist(db, q, W, n, h)`: h[d] += 1 (i32 counts) for each code's distance d.
 * Each has loops specialised for W = 1 (32-bit popcount), W = 2 (64-bit, unrolled by 4) and any W.
 *
 * Self-contained (references nothing outside itself), like `createHammingKernels`.
 */
export function buildHammingWasm(): Uint8Array {
  const I32 = 0x7f;
  const I64 = 0x7e;
  const EMPTY = 0x40;
  // Opcodes.
  const BLOCK = 0x02;
  const LOOP = 0x03;
  const IF = 0x04;
  const ELSE = 0x05;
  const END = 0x0b;
  const BR = 0x0c;
  const BR_IF = 0x0d;
  const LOCAL_GET = 0x20;
  const LOCAL_SET = 0x21;
  const LOCAL_TEE = 0x22;
  const I32_LOAD = 0x28;
  const I64_LOAD = 0x29;
  const I32_STORE = 0x36;
  const I32_STORE16 = 0x3b;
  const I32_CONST = 0x41;
  const I64_CONST = 0x42;
  const I32_EQ = 0x46;
  const I32_GE_U = 0x4f;
  const I32_GT_U = 0x4b;
  const I32_LE_S = 0x4c;
  const I32_POPCNT = 0x69;
  const I32_ADD = 0x6a;
  const I32_AND = 0x71;
  const I32_OR = 0x72;
  const I32_XOR = 0x73;
  const I32_SHL = 0x74;
  const I32_SHR_U = 0x76;
  const I64_POPCNT = 0x7b;
  const I64_ADD = 0x7c;
  const I64_XOR = 0x85;
  const I32_WRAP_I64 = 0xa7;

  function uleb(v: number): number[] {
    const out: number[] = [];
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      out.push(b);
    } while (v !== 0);
    return out;
  }
  function sleb(v: number): number[] {
    const out: number[] = [];
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        out.push(b);
        return out;
      }
      out.push(b | 0x80);
    }
  }
  const get = (i: number) => [LOCAL_GET, ...uleb(i)];
  const set = (i: number) => [LOCAL_SET, ...uleb(i)];
  const tee = (i: number) => [LOCAL_TEE, ...uleb(i)];
  const i32c = (v: number) => [I32_CONST, ...sleb(v)];
  const i64c0 = [I64_CONST, 0];
  const mem = (opcode: number, align: number, offset: number) => [opcode, align, ...uleb(offset)];
  /** local[i] += c */
  const addTo = (i: number, c: number) => [...get(i), ...i32c(c), I32_ADD, ...set(i)];

  // Locals shared by the three functions' layouts: parameters first, then these (indices filled per fn).
  interface Layout {
    db: number;
    q: number;
    W: number;
    n: number;
    p: number; // current code pointer
    t: number; // current code index
    d: number; // distance
    qa: number; // the query's odd last word (fixed W)
    qa64: number; // first of FIXED/2 i64 locals holding the query (fixed W)
    w: number; // byte offset inside a code (general W)
    half: number; // bytes of the whole i64 part of a code (general W)
    stride: number; // bytes per code (general W)
  }

  /**
   * A loop over all codes: `body(u, distance)` emits the per-code work for code t+u, given the
   * instructions that push its distance. Unrolled by `unroll` with a remainder loop.
   */
  function codeLoop(
    L: Layout,
    unroll: number,
    strideBytes: number,
    distance: (u: number) => number[],
    body: (u: number, dist: number[]) => number[],
    advance: (k: number) => number[],
  ): number[] {
    const out: number[] = [...i32c(0), ...set(L.t), ...get(L.db), ...set(L.p)];
    if (unroll > 1) {
      out.push(BLOCK, EMPTY, LOOP, EMPTY);
      out.push(...get(L.t), ...i32c(unroll), I32_ADD, ...get(L.n), I32_GT_U, BR_IF, 1);
      for (let u = 0; u < unroll; u++) out.push(...body(u, distance(u)));
      out.push(...addTo(L.p, unroll * strideBytes), ...addTo(L.t, unroll), ...advance(unroll));
      out.push(BR, 0, END, END);
    }
    out.push(BLOCK, EMPTY, LOOP, EMPTY);
    out.push(...get(L.t), ...get(L.n), I32_GE_U, BR_IF, 1);
    out.push(...body(0, distance(0)));
    if (strideBytes > 0) out.push(...addTo(L.p, strideBytes));
    else out.push(...get(L.p), ...get(L.stride), I32_ADD, ...set(L.p));
    out.push(...addTo(L.t, 1), ...advance(1));
    out.push(BR, 0, END, END);
    return out;
  }

  /**
   * Fixed W (1..8): the query's words sit in locals (i64 pairs, then one i32 when W is odd); the distance
   * of code u of an unrolled group is a sum of popcounts at constant offsets.
   */
  const distFixed = (L: Layout, W: number) => (u: number) => {
    const out: number[] = [];
    const base = 4 * W * u;
    const pairs = W >> 1;
    for (let h = 0; h < pairs; h++) {
      out.push(...get(L.p), ...mem(I64_LOAD, 3, base + 8 * h), ...get(L.qa64 + h), I64_XOR, I64_POPCNT);
      if (h > 0) out.push(I64_ADD);
    }
    if (pairs > 0) out.push(I32_WRAP_I64);
    if (W & 1) {
      out.push(...get(L.p), ...mem(I32_LOAD, 2, base + 8 * pairs), ...get(L.qa), I32_XOR, I32_POPCNT);
      if (pairs > 0) out.push(I32_ADD);
    }
    return out;
  };
  const loadQuery = (L: Layout, W: number) => {
    const out: number[] = [];
    for (let h = 0; h < W >> 1; h++) out.push(...get(L.q), ...mem(I64_LOAD, 3, 8 * h), ...set(L.qa64 + h));
    if (W & 1) out.push(...get(L.q), ...mem(I32_LOAD, 2, 8 * (W >> 1)), ...set(L.qa));
    return out;
  };
  /**
   * Any W: i64 popcounts over the 8-byte part of the code, four per iteration into an i64 accumulator
   * (the first query local, unused by this path), then one i32 popcount when W is odd.
   */
  const distG = (L: Layout) => (_u: number) => {
    const acc = L.qa64;
    const term = (off: number) => [
      ...get(L.p),
      ...get(L.w),
      I32_ADD,
      ...mem(I64_LOAD, 3, off),
      ...get(L.q),
      ...get(L.w),
      I32_ADD,
      ...mem(I64_LOAD, 3, off),
      I64_XOR,
      I64_POPCNT,
    ];
    return [
      ...i64c0,
      ...set(acc),
      ...i32c(0),
      ...set(L.w),
      BLOCK,
      EMPTY,
      LOOP,
      EMPTY,
      ...get(L.w),
      ...i32c(32),
      I32_ADD,
      ...get(L.half),
      I32_GT_U,
      BR_IF,
      1,
      ...get(acc),
      ...term(0),
      ...term(8),
      I64_ADD,
      ...term(16),
      ...term(24),
      I64_ADD,
      I64_ADD,
      I64_ADD,
      ...set(acc),
      ...addTo(L.w, 32),
      BR,
      0,
      END,
      END,
      BLOCK,
      EMPTY,
      LOOP,
      EMPTY,
      ...get(L.w),
      ...get(L.half),
      I32_GE_U,
      BR_IF,
      1,
      ...get(acc),
      ...term(0),
      I64_ADD,
      ...set(acc),
      ...addTo(L.w, 8),
      BR,
      0,
      END,
      END,
      ...get(acc),
      I32_WRAP_I64,
      ...set(L.d),
      ...get(L.W),
      ...i32c(1),
      I32_AND,
      IF,
      EMPTY,
      ...get(L.d),
      ...get(L.p),
      ...get(L.w),
      I32_ADD,
      ...mem(I32_LOAD, 2, 0),
      ...get(L.q),
      ...get(L.w),
      I32_ADD,
      ...mem(I32_LOAD, 2, 0),
      I32_XOR,
      I32_POPCNT,
      I32_ADD,
      ...set(L.d),
      END,
      ...get(L.d),
    ];
  };

  /** if W == 1 {..} else if W == 2 {..} ... else if W == FIXED {..} else {any W}. */
  function dispatch(
    L: Layout,
    loop: (unroll: number, stride: number, distance: (u: number) => number[]) => number[],
  ): number[] {
    const general = [
      ...get(L.W),
      ...i32c(1),
      I32_SHR_U,
      ...i32c(3),
      I32_SHL,
      ...set(L.half),
      ...get(L.W),
      ...i32c(2),
      I32_SHL,
      ...set(L.stride),
      ...loop(1, 0, distG(L)),
    ];
    let code = general;
    for (let W = FIXED; W >= 1; W--) {
      const unroll = W <= 2 ? 4 : W <= 4 ? 2 : 1;
      code = [
        ...get(L.W),
        ...i32c(W),
        I32_EQ,
        IF,
        EMPTY,
        ...loadQuery(L, W),
        ...loop(unroll, 4 * W, distFixed(L, W)),
        ELSE,
        ...code,
        END,
      ];
    }
    return code;
  }

  // Local declarations after the parameters: i32 x 8 (p t d qa w half stride + 1 spare/extra), i64 x 1.
  function layout(nParams: number): Layout {
    const b = nParams;
    return {
      db: 0,
      q: 1,
      W: 2,
      n: 3,
      p: b,
      t: b + 1,
      d: b + 2,
      qa: b + 3,
      w: b + 4,
      half: b + 5,
      stride: b + 6,
      qa64: b + 8, // b + 7 is a per-function extra i32 (the out pointer or a counter)
    };
  }
  /** Codes of up to FIXED words get unrolled loops with the query held in locals. */
  const FIXED = 8;
  const localsDecl = [2, 8, I32, FIXED >> 1, I64];

  // dist(db, q, W, n, out)
  const distBody = (() => {
    const L = layout(5);
    const OUT = 4;
    const o = L.p + 7;
    const loop = (unroll: number, stride: number, distance: (u: number) => number[]) => [
      ...get(OUT),
      ...set(o),
      ...codeLoop(
        L,
        unroll,
        stride,
        distance,
        (u, dist) => [...get(o), ...dist, ...mem(I32_STORE16, 1, 2 * u)],
        (k) => addTo(o, 2 * k),
      ),
    ];
    return [...localsDecl, ...dispatch(L, loop), END];
  })();

  // filter(db, q, W, n, lim, out) -> count
  const filterBody = (() => {
    const L = layout(6);
    const LIM = 4;
    const OUT = 5;
    const cnt = L.p + 7;
    const loop = (unroll: number, stride: number, distance: (u: number) => number[]) =>
      codeLoop(
        L,
        unroll,
        stride,
        distance,
        (u, dist) => [
          ...dist,
          ...tee(L.d),
          ...get(LIM),
          I32_LE_S,
          IF,
          EMPTY,
          ...get(cnt),
          ...i32c(2),
          I32_SHL,
          ...get(OUT),
          I32_ADD,
          ...get(L.t),
          ...(u > 0 ? [...i32c(u), I32_ADD] : []),
          ...i32c(13),
          I32_SHL,
          ...get(L.d),
          I32_OR,
          ...mem(I32_STORE, 2, 0),
          ...addTo(cnt, 1),
          END,
        ],
        () => [],
      );
    return [...localsDecl, ...i32c(0), ...set(cnt), ...dispatch(L, loop), ...get(cnt), END];
  })();

  // hist(db, q, W, n, h)
  const histBody = (() => {
    const L = layout(5);
    const H = 4;
    const a = L.p + 7;
    const loop = (unroll: number, stride: number, distance: (u: number) => number[]) =>
      codeLoop(
        L,
        unroll,
        stride,
        distance,
        (_u, dist) => [
          ...dist,
          ...i32c(2),
          I32_SHL,
          ...get(H),
          I32_ADD,
          ...tee(a),
          ...get(a),
          ...mem(I32_LOAD, 2, 0),
          ...i32c(1),
          I32_ADD,
          ...mem(I32_STORE, 2, 0),
        ],
        () => [],
      );
    return [...localsDecl, ...dispatch(L, loop), END];
  })();

  const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
  const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
  const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
  const types = [
    [0x60, 5, I32, I32, I32, I32, I32, 0], // dist, hist
    [0x60, 6, I32, I32, I32, I32, I32, I32, 1, I32], // filter
  ];
  const bodies = [distBody, filterBody, histBody];
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(3, vec([[0], [1], [0]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(
      7,
      vec([
        [...name('memory'), 0x02, 0],
        [...name('dist'), 0x00, 0],
        [...name('filter'), 0x00, 1],
        [...name('hist'), 0x00, 2],
      ]),
    ),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ];
  return new Uint8Array(bytes);
}
