import { afterEach, describe, expect, it } from 'vitest';
import {
  type Codes,
  fromPm1,
  fromWords,
  type HammingBackend,
  HammingError,
  type HammingErrorCode,
  HammingIndex,
  registerGpuBackend,
} from '../src/hamming/index.ts';

function codeOf(f: () => unknown): HammingErrorCode | string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HammingError);
    expect((e as HammingError).message).toMatch(/expected/);
    return (e as HammingError).code;
  }
  return 'did not throw';
}

async function codeOfAsync(f: () => Promise<unknown>): Promise<HammingErrorCode | string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(HammingError);
    expect((e as HammingError).message).toMatch(/expected/);
    return (e as HammingError).code;
  }
  return 'did not throw';
}

const db = (): HammingIndex => HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3, 4), { threads: 1 });

describe('bad input gets a HammingError with a code', () => {
  it('code lengths', () => {
    for (const bits of [0, 7, 4097, 8.5, Number.NaN])
      expect(codeOf(() => new HammingIndex(bits))).toBe('BAD_BITS');
    expect(codeOf(() => fromWords(3, new Uint32Array(1)))).toBe('BAD_BITS');
    const index = db();
    const other: Codes = { bits: 64, count: 1, words: new Uint32Array(2) };
    expect(codeOf(() => index.searchSync(other, 1))).toBe('BITS_MISMATCH');
    expect(codeOf(() => index.add(other))).toBe('BITS_MISMATCH');
    // A bare array whose length does not fit the code length.
    expect(codeOf(() => index.searchSync(new Uint8Array(6), 1))).toBe('BAD_CODES');
    expect(codeOf(() => index.searchSync(new Float32Array(33), 1))).toBe('BAD_CODES');
    expect(codeOf(() => new HammingIndex(64).add(new Uint32Array(3)))).toBe('BAD_CODES');
    expect(codeOf(() => index.searchSync([1, 2] as unknown as Uint32Array, 1))).toBe('BAD_CODES');
    const lying: Codes = { bits: 32, count: 3, words: new Uint32Array(2) };
    expect(codeOf(() => index.searchSync(lying, 1))).toBe('BAD_CODES');
  });

  it('k and radius', async () => {
    const index = db();
    for (const k of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(codeOf(() => index.searchSync(Uint32Array.of(0), k))).toBe('BAD_K');
      expect(await codeOfAsync(() => index.search(Uint32Array.of(0), k))).toBe('BAD_K');
    }
    for (const r of [-1, 0.5, Number.NaN]) {
      expect(codeOf(() => index.rangeSearchSync(Uint32Array.of(0), r))).toBe('BAD_RADIUS');
      expect(codeOf(() => index.countWithinSync(Uint32Array.of(0), r))).toBe('BAD_RADIUS');
      expect(await codeOfAsync(() => index.rangeSearch(Uint32Array.of(0), r))).toBe('BAD_RADIUS');
    }
    // k > n is not an error: n results.
    const r = index.searchSync(Uint32Array.of(0), 10);
    expect(r.k).toBe(4);
    expect(Array.from(r.ids)).toEqual([0, 1, 3, 2]);
    expect(Array.from(r.distances)).toEqual([1, 1, 1, 2]);
  });

  it('NaN in float codes, with its position', () => {
    const v = new Float32Array(16).fill(1);
    v[8 + 5] = Number.NaN;
    try {
      fromPm1(8, v);
      expect.unreachable();
    } catch (e) {
      expect((e as HammingError).code).toBe('NAN_CODE');
      expect((e as Error).message).toMatch(/code 1, bit 5/);
    }
    expect(codeOf(() => db().searchSync(new Float64Array(32).fill(Number.NaN), 1))).toBe('NAN_CODE');
    expect(codeOf(() => new HammingIndex(8).add(v))).toBe('NAN_CODE');
  });

  it('empty database', async () => {
    const index = new HammingIndex(16);
    const q = new Uint32Array(1);
    expect(codeOf(() => index.searchSync(q, 1))).toBe('EMPTY_DATABASE');
    expect(codeOf(() => index.rankSync(q))).toBe('EMPTY_DATABASE');
    expect(codeOf(() => index.rangeSearchSync(q, 1))).toBe('EMPTY_DATABASE');
    expect(codeOf(() => index.countWithinSync(q, 1))).toBe('EMPTY_DATABASE');
    expect(await codeOfAsync(() => index.search(q, 1))).toBe('EMPTY_DATABASE');
    expect(await codeOfAsync(() => index.rank(q))).toBe('EMPTY_DATABASE');
    expect(await codeOfAsync(() => index.countsByDistance(q))).toBe('EMPTY_DATABASE');
  });

  it('options', () => {
    expect(codeOf(() => new HammingIndex(8, { backend: 'tpu' as 'cpu' }))).toBe('BAD_OPTION');
    expect(codeOf(() => new HammingIndex(8, { threads: 0 }))).toBe('BAD_OPTION');
    expect(codeOf(() => new HammingIndex(8, { kernel: 'asm' as 'js' }))).toBe('BAD_OPTION');
  });
});

describe('backends', () => {
  afterEach(() => registerGpuBackend(null));

  it("'gpu' without a GPU backend says to call enableGpuHamming()", () => {
    const e = (() => {
      try {
        new HammingIndex(64, { backend: 'gpu' });
      } catch (err) {
        return err as HammingError;
      }
      return null;
    })();
    expect(e?.code).toBe('NO_GPU_BACKEND');
    expect(e?.message).toMatch(/enableGpuHamming\(\)/);
  });

  it("'auto' runs on the CPU", async () => {
    const index = db();
    await index.search(Uint32Array.of(0), 2);
    expect(index.lastDevice).toMatch(/^cpu: /);
  });

  /** A stand-in GPU backend that delegates to the CPU and records its calls. */
  function fakeGpu(estimate: number, calls: string[]): HammingBackend {
    const on = (db: { codes: Codes }, op: string) => {
      calls.push(op);
      return HammingIndex.fromCodes(db.codes, { backend: 'cpu', threads: 1 });
    };
    return {
      kind: 'gpu',
      device: 'gpu: fake',
      search: async (d, q, k) => on(d, 'search').searchSync(q, k),
      rangeSearch: async (d, q, r) => on(d, 'rangeSearch').rangeSearchSync(q, r),
      rank: async (d, q) => on(d, 'rank').rankSync(q),
      countsByDistance: async (d, q) => on(d, 'counts').countsByDistanceSync(q),
      estimateSeconds: () => estimate,
      dispose: async () => {
        calls.push('dispose');
      },
    };
  }

  it('a registered GPU backend plugs in: gpu uses it, auto picks it when its estimate is lower', async () => {
    const calls: string[] = [];
    registerGpuBackend(async () => fakeGpu(0, calls));
    const gpu = HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3), { backend: 'gpu' });
    expect(Array.from((await gpu.search(Uint32Array.of(0), 2)).ids)).toEqual([0, 1]);
    expect(gpu.lastDevice).toBe('gpu: fake');
    const auto = HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3), { backend: 'auto' });
    await auto.countWithin(Uint32Array.of(0), 1);
    expect(auto.lastDevice).toBe('gpu: fake');
    await gpu.dispose();
    expect(calls).toEqual(['search', 'counts', 'dispose']);

    registerGpuBackend(async () => fakeGpu(1e9, calls));
    const slow = HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3), { backend: 'auto' });
    await slow.rank(Uint32Array.of(0));
    expect(slow.lastDevice).toMatch(/^cpu: /);
  });

  it("'auto' falls back to the CPU when the GPU backend cannot start; 'gpu' reports the failure", async () => {
    registerGpuBackend(async () => {
      throw new HammingError('NO_GPU_BACKEND', 'expected an adapter, found none');
    });
    const auto = HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3));
    expect(Array.from((await auto.search(Uint32Array.of(3), 1)).ids)).toEqual([2]);
    expect(auto.lastDevice).toMatch(/^cpu: /);
    const gpu = HammingIndex.fromWords(32, Uint32Array.of(1, 2, 3), { backend: 'gpu' });
    expect(await codeOfAsync(() => gpu.search(Uint32Array.of(3), 1))).toBe('NO_GPU_BACKEND');
  });
});
