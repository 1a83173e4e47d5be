import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  crc32,
  encodeIndexFile,
  fromWords,
  HammingError,
  HammingIndex,
  INDEX_HEADER_BYTES,
  readNpy,
  readNpyFile,
  writeNpy,
  writeNpyFile,
} from '../src/hamming/index.ts';
import { createRng, randomWords } from '../src/hamming/random.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hamming-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function loadCode(path: string, expectedBits?: number): Promise<string> {
  try {
    await HammingIndex.load(path, { expectedBits });
  } catch (e) {
    expect(e).toBeInstanceOf(HammingError);
    expect((e as Error).message).toMatch(/expected .*found/);
    return (e as HammingError).code;
  }
  return 'loaded';
}

describe('index file', () => {
  it('crc32 is the standard one', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('round trips at several code lengths, atomically', async () => {
    for (const bits of [8, 12, 64, 100, 1024]) {
      const codes = fromWords(bits, randomWords(createRng(bits), bits, 37));
      const index = HammingIndex.fromCodes(codes, { threads: 1 });
      const path = join(dir, `i${bits}.dhi`);
      await index.save(path);
      const bytes = await readFile(path);
      expect(bytes.length).toBe(INDEX_HEADER_BYTES + 37 * Math.ceil(bits / 8) + 4);
      expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe('DHTAHAM1');
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      expect(view.getUint32(8, true)).toBe(1);
      expect(view.getUint32(12, true)).toBe(bits);
      expect(view.getBigUint64(16, true)).toBe(37n);
      const loaded = await HammingIndex.load(path, { expectedBits: bits, threads: 1 });
      expect(loaded.count).toBe(37);
      expect(loaded.codes.words).toEqual(codes.words);
      expect(HammingIndex.fromBytes(index.toBytes()).codes.words).toEqual(codes.words);
      const q = codes.words.subarray(0, 3 * loaded.wordsPerCode);
      expect(loaded.searchSync(q, 5)).toEqual(index.searchSync(q, 5));
    }
    // No temporary files left behind.
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('an empty index round trips', async () => {
    const path = join(dir, 'empty.dhi');
    await new HammingIndex(16).save(path);
    expect((await HammingIndex.load(path)).count).toBe(0);
  });

  it('truncated, corrupt, mismatched and foreign files get clear errors', async () => {
    const codes = fromWords(64, randomWords(createRng(1), 64, 20));
    const good = encodeIndexFile(codes);
    const write = async (name: string, bytes: Uint8Array) => {
      const p = join(dir, name);
      await writeFile(p, bytes);
      return p;
    };
    expect(await loadCode(await write('ok.dhi', good), 64)).toBe('loaded');
    expect(await loadCode(await write('bits.dhi', good), 32)).toBe('BITS_MISMATCH');
    for (const cut of [4, 10, 24, 100, good.length - 1]) {
      expect(await loadCode(await write(`cut${cut}.dhi`, good.subarray(0, cut)))).toBe('TRUNCATED');
    }
    for (const at of [30, INDEX_HEADER_BYTES, good.length - 2]) {
      const bad = good.slice();
      bad[at] ^= 0x10;
      expect(await loadCode(await write(`flip${at}.dhi`, bad))).toBe('CHECKSUM');
    }
    const longer = new Uint8Array(good.length + 3);
    longer.set(good);
    expect(await loadCode(await write('long.dhi', longer))).toBe('BAD_FILE');
    const version = good.slice();
    version[8] = 9;
    expect(await loadCode(await write('v9.dhi', version))).toBe('UNSUPPORTED_VERSION');
    const badBits = good.slice();
    new DataView(badBits.buffer).setUint32(12, 5000, true);
    expect(await loadCode(await write('bits5000.dhi', badBits))).toBe('BAD_FILE');
    expect(await loadCode(await write('npy.dhi', writeNpy(new Uint8Array(8), [1, 8])))).toBe('BAD_FILE');
    expect(await loadCode(join(dir, 'missing.dhi'))).toBe('BAD_FILE');
  });
});

describe('npy', () => {
  it('round trips every dtype, with NumPy-compatible headers', async () => {
    const arrays = [
      { data: Uint8Array.of(1, 2, 3, 4, 5, 6), shape: [2, 3] },
      { data: Int32Array.of(-1, 2, 3), shape: [3] },
      { data: Int8Array.of(-1, 1, 1, -1), shape: [2, 2] },
      { data: Uint32Array.of(0xffffffff), shape: [1, 1] },
      { data: BigInt64Array.of(-5n, 2n ** 40n), shape: [2] },
      { data: Float32Array.of(0.5, -1), shape: [1, 2] },
      { data: Float64Array.of(Math.PI), shape: [1] },
      { data: new Uint8Array(0), shape: [0, 8] },
    ];
    for (const { data, shape } of arrays) {
      const bytes = writeNpy(data, shape);
      const headerEnd = new DataView(bytes.buffer).getUint16(8, true) + 10;
      expect(headerEnd % 64).toBe(0);
      expect(bytes[headerEnd - 1]).toBe(0x0a);
      const back = readNpy(bytes);
      expect(back.shape).toEqual(shape);
      expect(back.data).toEqual(data);
    }
    const p = join(dir, 'a.npy');
    await writeNpyFile(p, Int32Array.of(7, 8), [2, 1]);
    expect((await readNpyFile(p)).shape).toEqual([2, 1]);
  });

  it('reads version 2 headers and scalars', () => {
    const v1 = writeNpy(Int32Array.of(42), []);
    expect(readNpy(v1).shape).toEqual([]);
    const headerLen = new DataView(v1.buffer).getUint16(8, true);
    const v2 = new Uint8Array(v1.length + 2);
    v2.set(v1.subarray(0, 8));
    v2[6] = 2;
    new DataView(v2.buffer).setUint32(8, headerLen, true);
    v2.set(v1.subarray(10), 12);
    expect(readNpy(v2).data).toEqual(Int32Array.of(42));
  });

  it('rejects what it does not read', () => {
    const code = (bytes: Uint8Array) => {
      try {
        readNpy(bytes);
      } catch (e) {
        return (e as HammingError).code;
      }
      return 'read';
    };
    const good = writeNpy(Int32Array.of(1, 2), [2]);
    expect(code(good)).toBe('read');
    expect(code(good.subarray(0, good.length - 1))).toBe('TRUNCATED');
    expect(code(new Uint8Array(20))).toBe('BAD_NPY');
    const text = (s: string) => {
      const b = good.slice();
      const h = new TextDecoder('latin1').decode(b.subarray(10, 74)).replace("'<i4'", s);
      for (let i = 0; i < 64; i++) b[10 + i] = h.charCodeAt(i);
      return b;
    };
    expect(code(text("'>i4'"))).toBe('BAD_NPY');
    expect(code(text("'<i2'"))).toBe('BAD_NPY');
    const fortran = good.slice();
    const h = new TextDecoder('latin1').decode(fortran.subarray(10, 74)).replace('False', 'True ');
    for (let i = 0; i < 64; i++) fortran[10 + i] = h.charCodeAt(i);
    expect(code(fortran)).toBe('BAD_NPY');
  });
});
