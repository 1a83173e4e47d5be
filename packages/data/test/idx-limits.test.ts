// Gzipped IDX files are inflated under the header's control: a small file that inflates to far more than its
// header declares is stopped at the declared size (on disk and in memory), a header that declares more than
// the limit is refused before its data is read, and nothing partial is left in the cache.
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { IdxFile } from '../src/index.js';
import { dataError, tempDir } from './helpers.js';

/** An IDX header for uint8 data of the given dimensions. */
function idxHeader(dims: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  for (const [i, d] of dims.entries()) head.writeUInt32BE(d, 4 + 4 * i);
  return head;
}

/**
 * A gzip file of about `mib / 1000` MiB that inflates to a 10-label IDX file followed by `mib` MiB of zeros:
 * gzip members of 16 MiB of zeros each, concatenated (gunzip reads them as one stream).
 */
function gzipBomb(mib: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(16 << 20), { level: 9 });
  const head = gzipSync(Buffer.concat([idxHeader([10]), Buffer.alloc(10, 1)]));
  return Buffer.concat([head, ...new Array(mib / 16).fill(zeros)]);
}

/** The largest size any file in `dir` reached while `fn` ran (polled every millisecond). */
async function largestFileWhile(dir: string, fn: () => Promise<unknown>): Promise<number> {
  let largest = 0;
  const poll = () => {
    for (const f of readdirSync(dir)) {
      try {
        largest = Math.max(largest, statSync(join(dir, f)).size);
      } catch {
        // renamed or removed between readdir and stat
      }
    }
  };
  const timer = setInterval(poll, 1);
  try {
    await fn();
  } finally {
    clearInterval(timer);
    poll();
  }
  return largest;
}

describe('gzipped IDX: inflation bounded by the header', () => {
  it('stops inflating a gzip bomb at the declared size: the cache never holds more, nothing is left', async () => {
    const dir = tempDir('bomb');
    const cache = tempDir('bomb-cache');
    const path = join(dir, 'labels-idx1-ubyte.gz');
    writeFileSync(path, gzipBomb(128)); // ~130 KB that inflates to 128 MiB
    expect(statSync(path).size).toBeLessThan(1 << 20);
    let error: Awaited<ReturnType<typeof dataError>> | undefined;
    const t0 = performance.now();
    const largest = await largestFileWhile(cache, async () => {
      error = await dataError(() => IdxFile.open(path, { cacheDir: cache }));
    });
    expect(error?.code).toBe('BAD_IDX');
    expect(error?.message).toContain(path);
    expect(error?.message).toMatch(/declares uint8 10 \(18 bytes\), the gzip stream holds more; stopped/);
    expect(largest).toBeLessThanOrEqual(18);
    expect(readdirSync(cache)).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('stops inflating into memory too (no usable cache folder)', async () => {
    const dir = tempDir('bomb-mem');
    const path = join(dir, 'labels-idx1-ubyte.gz');
    writeFileSync(path, gzipBomb(128));
    const notADir = join(dir, 'file');
    writeFileSync(notADir, '');
    const before = process.memoryUsage().arrayBuffers;
    const e = await dataError(() => IdxFile.open(path, { cacheDir: join(notADir, 'cache') }));
    expect(e.code).toBe('BAD_IDX');
    expect(e.message).toMatch(/the gzip stream holds more; stopped inflating there/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
  });

  it('refuses a header that declares more than the limit before reading its data (TOO_LARGE)', async () => {
    const dir = tempDir('too-large');
    const cache = tempDir('too-large-cache');
    const huge = Buffer.concat([idxHeader([0xffffffff, 0xffffffff, 0xffffffff]), Buffer.alloc(100)]);
    const plain = join(dir, 'huge.idx');
    writeFileSync(plain, huge);
    const gz = join(dir, 'huge.idx.gz');
    writeFileSync(gz, gzipSync(huge));
    for (const p of [plain, gz]) {
      const e = await dataError(() => IdxFile.open(p, { cacheDir: cache }));
      expect(e.code).toBe('TOO_LARGE');
      expect(e.message).toContain(p);
      expect(e.message).toMatch(
        /expected an IDX array of at most 4294967296 bytes, the header declares uint8/,
      );
    }
    // A caller's own limit.
    const small = join(dir, 'small.idx');
    writeFileSync(small, Buffer.concat([idxHeader([100]), Buffer.alloc(100)]));
    expect((await IdxFile.open(small, { maxBytes: 108 })).count).toBe(100);
    expect((await dataError(() => IdxFile.open(small, { maxBytes: 107 }))).code).toBe('TOO_LARGE');
    writeFileSync(`${small}.gz`, gzipSync(Buffer.concat([idxHeader([100]), Buffer.alloc(100)])));
    expect(
      (await dataError(() => IdxFile.open(`${small}.gz`, { cacheDir: cache, maxBytes: 107 }))).code,
    ).toBe('TOO_LARGE');
    expect(readdirSync(cache)).toEqual([]);
  });

  it('opens one gzipped file several times at once: each open writes its own copy, all succeed', async () => {
    const dir = tempDir('concurrent');
    const cache = tempDir('concurrent-cache');
    const data = Buffer.from(Array.from({ length: 3 << 18 }, (_, i) => (i * 7) % 251));
    const path = join(dir, 'images-idx3-ubyte.gz');
    writeFileSync(path, gzipSync(Buffer.concat([idxHeader([3, 512, 512]), data]), { level: 1 }));
    const files = await Promise.all([1, 2, 3, 4].map(() => IdxFile.open(path, { cacheDir: cache })));
    for (const f of files) {
      expect(f.header.dims).toEqual([3, 512, 512]);
      expect(Buffer.from(f.readRecords(2, 1)).equals(data.subarray(2 << 18))).toBe(true);
    }
    expect(readdirSync(cache).filter((f) => !/^idx-[0-9a-f]{20}\.idx$/.test(f))).toEqual([]);
  });
});
