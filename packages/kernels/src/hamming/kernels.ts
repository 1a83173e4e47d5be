/**
 * The CPU kernels of the Hamming search.
 *
 * Everything lives inside one self-contained factory, `createHammingKernels`, that references nothing
 * outside itself: worker threads rebuild the very same kernels from `createHammingKernels.toString()`, so
 * the main-thread path and the worker path run one code, type-checked once.
 *
 * Two levels:
 * - primitives over one block of database codes and one block of queries: distances, "codes within a
 *   limit" (filter) and distance histograms. Two implementations: WebAssembly (scalar POPCNT, see
 *   wasm.ts; the default) and plain JavaScript (SWAR popcount; a fallback and a cross-check in tests).
 * - selection by counting on top of them: k-NN, radius search, full ranking, histograms. Every kernel
 *   works on queries [q0, q1) against database codes [j0, j1) and returns a partial result (ids are
 *   global database indices) that merge.ts can combine across threads.
 */

/** k nearest neighbours of rows q0..q1-1: `k` columns per row, sorted by (distance, id). */
export interface KnnPart {
  k: number;
  distances: Int32Array;
  ids: Int32Array;
}

/** CSR lists: row r holds entries lims[r] .. lims[r+1]-1, sorted by (distance, id). */
export interface RangePart {
  lims: Int32Array;
  distances: Int32Array;
  ids: Int32Array;
}

export interface RankPart {
  distances: Int32Array;
  ids: Int32Array;
}

export type KernelVariant = 'wasm' | 'js';

export interface HammingKernels {
  readonly variant: KernelVariant;
  knn(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    k: number,
  ): KnnPart;
  range(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    radius: number,
  ): RangePart;
  /** (q1-q0) x (bits+1) counts of database codes at each distance. */
  histogram(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
  ): Int32Array;
  /** Whole ordering of [j0, j1) per query: (q1-q0) x (j1-j0) ids and distances, by (distance, id). */
  rank(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
  ): RankPart;
}

/**
 * Builds the kernels. With `wasmBytes` (the module of wasm.ts) the primitives run in WebAssembly, else in
 * JavaScript.
 */
export function createHammingKernels(wasmBytes?: Uint8Array | null): HammingKernels {
  /** Bytes of database codes per block: stays in L1/L2 while a block of queries scans it. */
  const BLOCK_BYTES = 1 << 16;
  /** Budget of the per-query-block selection state, in bytes. */
  const STATE_BUDGET = 4 << 20;
  const MAX_QB = 64;

  /** Primitives over one block of queries and one block of database codes. */
  interface Prims {
    /** Sizes the buffers for W words per code, up to `block` codes per block and `qb` queries. */
    configure(W: number, block: number, qb: number, L: number): void;
    setQueries(q: Uint32Array, qa: number, qe: number): void;
    setBlock(db: Uint32Array, jb: number, je: number): void;
    /** Distances of local query s to the block's first m codes (a view, valid until the next call). */
    dist(s: number, m: number): Uint16Array | Int32Array;
    /** Codes with distance <= lim, as (t << 13) | d in t order, in `filtered` (valid until the next call). */
    filter(s: number, m: number, lim: number): number;
    filtered(): Int32Array;
    histClear(rows: number): void;
    histAdd(s: number, m: number): void;
    histRow(s: number): Int32Array;
  }

  function jsPrims(): Prims {
    let W = 1;
    let L = 1;
    let queries: Uint32Array = new Uint32Array(0);
    let qBase = 0;
    let db: Uint32Array = new Uint32Array(0);
    let jBase = 0;
    let buf = new Int32Array(0);
    let out = new Int32Array(0);
    let hist = new Int32Array(0);

    function dist(s: number, m: number): Int32Array {
      const q = queries;
      const qi = qBase + s;
      if (W === 1) {
        const a = q[qi];
        for (let t = 0, p = jBase; t < m; t++, p++) {
          let x = db[p] ^ a;
          x = x - ((x >>> 1) & 0x55555555);
          x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
          x = (x + (x >>> 4)) & 0x0f0f0f0f;
          buf[t] = Math.imul(x, 0x01010101) >>> 24;
        }
      } else if (W === 2) {
        const a = q[2 * qi];
        const b = q[2 * qi + 1];
        for (let t = 0, p = 2 * jBase; t < m; t++, p += 2) {
          let x = db[p] ^ a;
          let y = db[p + 1] ^ b;
          x = x - ((x >>> 1) & 0x55555555);
          y = y - ((y >>> 1) & 0x55555555);
          x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
          y = (y & 0x33333333) + ((y >>> 2) & 0x33333333);
          // Nibbles of x + y are at most 8: no carry across nibbles.
          x = x + y;
          x = (x & 0x0f0f0f0f) + ((x >>> 4) & 0x0f0f0f0f);
          buf[t] = Math.imul(x, 0x01010101) >>> 24;
        }
      } else {
        const qo = qi * W;
        for (let t = 0, p = jBase * W; t < m; t++) {
          let d = 0;
          let w = 0;
          for (; w + 1 < W; w += 2, p += 2) {
            let x = db[p] ^ q[qo + w];
            let y = db[p + 1] ^ q[qo + w + 1];
            x = x - ((x >>> 1) & 0x55555555);
            y = y - ((y >>> 1) & 0x55555555);
            x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
            y = (y & 0x33333333) + ((y >>> 2) & 0x33333333);
            x = x + y;
            x = (x & 0x0f0f0f0f) + ((x >>> 4) & 0x0f0f0f0f);
            d += Math.imul(x, 0x01010101) >>> 24;
          }
          if (w < W) {
            let x = db[p] ^ q[qo + w];
            x = x - ((x >>> 1) & 0x55555555);
            x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
            x = (x + (x >>> 4)) & 0x0f0f0f0f;
            d += Math.imul(x, 0x01010101) >>> 24;
            p++;
          }
          buf[t] = d;
        }
      }
      return buf;
    }

    return {
      configure(w, block, qb, l) {
        W = w;
        L = l;
        if (buf.length < block) {
          buf = new Int32Array(block);
          out = new Int32Array(block + 1);
        }
        if (hist.length < qb * l) hist = new Int32Array(qb * l);
      },
      setQueries(q, qa) {
        queries = q;
        qBase = qa;
      },
      setBlock(d, jb) {
        db = d;
        jBase = jb;
      },
      dist,
      filter(s, m, lim) {
        const d = dist(s, m);
        let c = 0;
        for (let t = 0; t < m; t++) {
          if (d[t] <= lim) out[c++] = (t << 13) | d[t];
        }
        return c;
      },
      filtered: () => out,
      histClear(rows) {
        hist.fill(0, 0, rows * L);
      },
      histAdd(s, m) {
        const d = dist(s, m);
        const h = s * L;
        for (let t = 0; t < m; t++) hist[h + d[t]]++;
      },
      histRow: (s) => hist.subarray(s * L, s * L + L),
    };
  }

  interface WasmApi {
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: object) => { exports: object };
  }

  function wasmPrims(bytes: Uint8Array): Prims {
    // Typed locally: the package's lib settings carry no WebAssembly declarations.
    const wa = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const instance = new wa.Instance(new wa.Module(bytes), {});
    const ex = instance.exports as unknown as {
      memory: { readonly buffer: ArrayBuffer; grow(pages: number): number };
      dist(db: number, q: number, W: number, n: number, out: number): void;
      filter(db: number, q: number, W: number, n: number, lim: number, out: number): number;
      hist(db: number, q: number, W: number, n: number, h: number): void;
    };
    const memory = ex.memory;
    let W = 1;
    let L = 1;
    let qOff = 0;
    let dbOff = 0;
    let outOff = 0;
    let histOff = 0;
    let u32 = new Uint32Array(memory.buffer);
    let out16 = new Uint16Array(0);
    let out32 = new Int32Array(0);
    let hist = new Int32Array(0);
    let size = 0;
    return {
      configure(w, block, qb, l) {
        W = w;
        L = l;
        // Layout: queries | database block | out (block + 1 i32) | histograms (qb x L i32).
        qOff = 0;
        dbOff = qOff + qb * W * 4;
        outOff = dbOff + block * W * 4;
        histOff = outOff + (block + 1) * 4;
        const need = histOff + qb * L * 4;
        if (need > size) {
          const have = memory.buffer.byteLength;
          if (need > have) memory.grow(Math.ceil((need - have) / 65536));
          size = memory.buffer.byteLength;
        }
        u32 = new Uint32Array(memory.buffer);
        out16 = new Uint16Array(memory.buffer, outOff, block);
        out32 = new Int32Array(memory.buffer, outOff, block + 1);
        hist = new Int32Array(memory.buffer, histOff, qb * L);
      },
      setQueries(q, qa, qe) {
        u32.set(q.subarray(qa * W, qe * W), qOff >> 2);
      },
      setBlock(db, jb, je) {
        u32.set(db.subarray(jb * W, je * W), dbOff >> 2);
      },
      dist(s, m) {
        ex.dist(dbOff, qOff + s * W * 4, W, m, outOff);
        return out16;
      },
      filter: (s, m, lim) => ex.filter(dbOff, qOff + s * W * 4, W, m, lim, outOff),
      filtered: () => out32,
      histClear(rows) {
        hist.fill(0, 0, rows * L);
      },
      histAdd(s, m) {
        ex.hist(dbOff, qOff + s * W * 4, W, m, histOff + s * L * 4);
      },
      histRow: (s) => hist.subarray(s * L, s * L + L),
    };
  }

  const prims: Prims = wasmBytes ? wasmPrims(wasmBytes) : jsPrims();
  const variant: KernelVariant = wasmBytes ? 'wasm' : 'js';

  function blockCodes(W: number): number {
    return Math.max(64, Math.min(8192, Math.floor(BLOCK_BYTES / (4 * W))));
  }

  /**
   * Runs `perQuery(s, qi, jb, m)` (s: query within the block, qi: absolute query) for every query block x database block, with the primitives loaded;
   * `beginQueries(qb, qe)` / `endQueries(qb, qe)` bracket each query block.
   */
  function sweep(
    db: Uint32Array,
    W: number,
    L: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    QB: number,
    beginQueries: (qb: number, qe: number) => void,
    perQuery: (s: number, qi: number, jb: number, m: number) => void,
    endQueries: (qb: number, qe: number) => void,
  ): void {
    const B = blockCodes(W);
    prims.configure(W, B, QB, L);
    for (let qb = q0; qb < q1; qb += QB) {
      const qe = Math.min(q1, qb + QB);
      prims.setQueries(q, qb, qe);
      beginQueries(qb, qe);
      for (let jb = j0; jb < j1; jb += B) {
        const je = Math.min(j1, jb + B);
        prims.setBlock(db, jb, je);
        for (let s = 0; s < qe - qb; s++) perQuery(s, qb + s, jb, je - jb);
      }
      endQueries(qb, qe);
    }
  }

  function histogram(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
  ): Int32Array {
    const W = (bits + 31) >>> 5;
    const L = bits + 1;
    const hist = new Int32Array((q1 - q0) * L);
    sweep(
      db,
      W,
      L,
      q,
      q0,
      q1,
      j0,
      j1,
      Math.max(1, Math.min(MAX_QB, q1 - q0)),
      (qb, qe) => prims.histClear(qe - qb),
      (s, _qi, _jb, m) => prims.histAdd(s, m),
      (qb, qe) => {
        for (let s = 0; s < qe - qb; s++) hist.set(prims.histRow(s), (qb - q0 + s) * L);
      },
    );
    return hist;
  }

  function knn(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    k: number,
  ): KnnPart {
    const n = j1 - j0;
    const kk = Math.min(k, n);
    const nq = q1 - q0;
    const outD = new Int32Array(nq * kk);
    const outI = new Int32Array(nq * kk);
    if (kk > 0 && nq > 0) {
      if (4 * kk >= n) knnTwoPass(db, bits, q, q0, q1, j0, j1, kk, outD, outI);
      else knnOnePass(db, bits, q, q0, q1, j0, j1, kk, outD, outI);
    }
    return { k: kk, distances: outD, ids: outI };
  }

  /**
   * For k large against n: a histogram pass finds each query's threshold distance, a second pass places
   * the survivors, met in id order, straight at their sorted positions.
   */
  function knnTwoPass(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    k: number,
    outD: Int32Array,
    outI: Int32Array,
  ): void {
    const W = (bits + 31) >>> 5;
    const L = bits + 1;
    const hist = histogram(db, bits, q, q0, q1, j0, j1);
    const thr = new Int32Array(q1 - q0);
    // Histogram rows become start offsets for distances up to the threshold.
    for (let r = 0; r < q1 - q0; r++) {
      let acc = 0;
      let t = 0;
      for (; t < L; t++) {
        const c = hist[r * L + t];
        hist[r * L + t] = acc;
        acc += c;
        if (acc >= k) break;
      }
      thr[r] = t;
    }
    sweep(
      db,
      W,
      L,
      q,
      q0,
      q1,
      j0,
      j1,
      Math.max(1, Math.min(MAX_QB, q1 - q0)),
      () => {},
      (s, qi, jb, m) => {
        const r = qi - q0;
        const c = prims.filter(s, m, thr[r]);
        const f = prims.filtered();
        const h = r * L;
        const o = r * k;
        for (let i = 0; i < c; i++) {
          const e = f[i];
          const d = e & 8191;
          const p = hist[h + d]++;
          if (p < k) {
            outD[o + p] = d;
            outI[o + p] = jb + (e >>> 13);
          }
        }
      },
      () => {},
    );
  }

  /**
   * One pass with a shrinking threshold, per query. Each database block is filtered (in WebAssembly) by
   * the query's current limit; the survivors are appended to a candidate buffer in id order and counted
   * by distance. After the block, the threshold drops while the count strictly below it reaches k; codes
   * at the threshold are kept only while fewer than k are held (later ids lose ties). At the end the
   * survivors are placed at their sorted positions by counting: no heap, no sort.
   */
  function knnOnePass(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    k: number,
    outD: Int32Array,
    outI: Int32Array,
  ): void {
    const W = (bits + 31) >>> 5;
    const L = bits + 1;
    // After a compaction at most k candidates remain, so a whole block always fits behind them.
    const cap = 2 * k + blockCodes(W);
    const QB = Math.max(1, Math.min(MAX_QB, q1 - q0, Math.floor(STATE_BUDGET / (cap * 6 + L * 4))));
    const candD = new Uint16Array(QB * cap);
    const candI = new Int32Array(QB * cap);
    const len = new Int32Array(QB);
    const cnt = new Int32Array(QB * L);
    const thr = new Int32Array(QB);
    const tot = new Int32Array(QB);
    const lims = new Int32Array(QB);
    const off = new Int32Array(L);

    /** Keeps the candidates below the threshold and the first (in id order) ones at it, k in all. */
    const compact = (s: number): void => {
      const base = s * cap;
      const th = thr[s];
      const cb = s * L;
      let atThr = k - (tot[s] - cnt[cb + th]);
      let w = base;
      for (let r = base, end = base + len[s]; r < end; r++) {
        const d = candD[r];
        if (d < th || (d === th && atThr-- > 0)) {
          candD[w] = d;
          candI[w] = candI[r];
          w++;
        }
      }
      len[s] = w - base;
      if (tot[s] > k) {
        cnt[cb + th] -= tot[s] - k;
        tot[s] = k;
      }
    };

    sweep(
      db,
      W,
      L,
      q,
      q0,
      q1,
      j0,
      j1,
      QB,
      () => {
        len.fill(0);
        cnt.fill(0);
        thr.fill(bits);
        tot.fill(0);
        lims.fill(bits);
      },
      (s, _qi, jb, m) => {
        const lim = lims[s];
        if (lim < 0) return;
        const c = prims.filter(s, m, lim);
        if (c === 0) return;
        if (len[s] + c > cap) compact(s);
        const f = prims.filtered();
        const cb = s * L;
        let w = s * cap + len[s];
        for (let i = 0; i < c; i++) {
          const e = f[i];
          const d = e & 8191;
          candD[w] = d;
          candI[w] = jb + (e >>> 13);
          cnt[cb + d]++;
          w++;
        }
        len[s] += c;
        let th = thr[s];
        let tt = tot[s] + c;
        while (tt - cnt[cb + th] >= k) {
          tt -= cnt[cb + th];
          cnt[cb + th] = 0;
          th--;
        }
        thr[s] = th;
        tot[s] = tt;
        lims[s] = tt >= k ? th - 1 : th;
      },
      (qb, qe) => {
        for (let s = 0; s < qe - qb; s++) {
          const th = thr[s];
          const cb = s * L;
          let acc = 0;
          for (let d = 0; d <= th; d++) {
            off[d] = acc;
            acc += cnt[cb + d];
          }
          const o = (qb + s - q0) * k;
          const base = s * cap;
          const end = base + len[s];
          for (let r = base; r < end; r++) {
            const d = candD[r];
            if (d <= th) {
              const p = off[d]++;
              if (p < k) {
                outD[o + p] = d;
                outI[o + p] = candI[r];
              }
            }
          }
        }
      },
    );
  }

  function range(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
    radius: number,
  ): RangePart {
    const W = (bits + 31) >>> 5;
    const L = bits + 1;
    const nq = q1 - q0;
    const rad = Math.min(radius, bits);
    // Per-query growable lists, in id order.
    const listD: Int32Array[] = [];
    const listI: Int32Array[] = [];
    const listLen = new Int32Array(nq);
    for (let r = 0; r < nq; r++) {
      listD.push(new Int32Array(16));
      listI.push(new Int32Array(16));
    }
    sweep(
      db,
      W,
      L,
      q,
      q0,
      q1,
      j0,
      j1,
      Math.max(1, Math.min(MAX_QB, q1 - q0)),
      () => {},
      (s, qi, jb, m) => {
        const r = qi - q0;
        const c = prims.filter(s, m, rad);
        if (c === 0) return;
        const f = prims.filtered();
        let len = listLen[r];
        let ld = listD[r];
        let li = listI[r];
        if (len + c > ld.length) {
          const size = Math.max(2 * ld.length, len + c);
          const nd = new Int32Array(size);
          nd.set(ld.subarray(0, len));
          const ni = new Int32Array(size);
          ni.set(li.subarray(0, len));
          ld = nd;
          li = ni;
          listD[r] = nd;
          listI[r] = ni;
        }
        for (let i = 0; i < c; i++) {
          const e = f[i];
          ld[len] = e & 8191;
          li[len] = jb + (e >>> 13);
          len++;
        }
        listLen[r] = len;
      },
      () => {},
    );
    const lims = new Int32Array(nq + 1);
    for (let r = 0; r < nq; r++) lims[r + 1] = lims[r] + listLen[r];
    const outD = new Int32Array(lims[nq]);
    const outI = new Int32Array(lims[nq]);
    const off = new Int32Array(rad + 1);
    for (let r = 0; r < nq; r++) {
      // Stable counting sort by distance: ids stay ascending within a distance.
      off.fill(0);
      const ld = listD[r];
      const li = listI[r];
      const len = listLen[r];
      for (let t = 0; t < len; t++) off[ld[t]]++;
      let acc = lims[r];
      for (let d = 0; d <= rad; d++) {
        const c = off[d];
        off[d] = acc;
        acc += c;
      }
      for (let t = 0; t < len; t++) {
        const p = off[ld[t]]++;
        outD[p] = ld[t];
        outI[p] = li[t];
      }
    }
    return { lims, distances: outD, ids: outI };
  }

  function rank(
    db: Uint32Array,
    bits: number,
    q: Uint32Array,
    q0: number,
    q1: number,
    j0: number,
    j1: number,
  ): RankPart {
    const W = (bits + 31) >>> 5;
    const L = bits + 1;
    const n = j1 - j0;
    const nq = q1 - q0;
    const hist = histogram(db, bits, q, q0, q1, j0, j1);
    for (let r = 0; r < nq; r++) {
      let acc = 0;
      for (let t = 0; t < L; t++) {
        const c = hist[r * L + t];
        hist[r * L + t] = acc;
        acc += c;
      }
    }
    const outD = new Int32Array(nq * n);
    const outI = new Int32Array(nq * n);
    sweep(
      db,
      W,
      L,
      q,
      q0,
      q1,
      j0,
      j1,
      Math.max(1, Math.min(MAX_QB, q1 - q0)),
      () => {},
      (s, qi, jb, m) => {
        const r = qi - q0;
        const d = prims.dist(s, m);
        const h = r * L;
        const o = r * n;
        for (let t = 0; t < m; t++) {
          const p = o + hist[h + d[t]]++;
          outD[p] = d[t];
          outI[p] = jb + t;
        }
      },
      () => {},
    );
    return { distances: outD, ids: outI };
  }

  return { variant, knn, range, histogram, rank };
}
