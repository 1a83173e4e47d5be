import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { DataError } from '../src/index.js';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `dhta-data-${prefix}-`));
}

/** A w x h image whose pixels encode (value, x, y) so that loads can be checked exactly. */
export async function writeImage(
  path: string,
  w: number,
  h: number,
  value: number,
  format: 'png' | 'jpeg' = 'png',
) {
  mkdirSync(dirname(path), { recursive: true });
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      raw[o] = value;
      raw[o + 1] = (x * 7) % 256;
      raw[o + 2] = (y * 11) % 256;
    }
  }
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  await (format === 'png' ? img.png() : img.jpeg({ quality: 95 })).toFile(path);
}

/** Writes an IDX file (uint8), optionally gzipped. */
export function writeIdx(path: string, dims: number[], data: Uint8Array, gzip = false) {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  for (const [i, d] of dims.entries()) head.writeUInt32BE(d, 4 + 4 * i);
  const bytes = Buffer.concat([head, Buffer.from(data)]);
  writeFileSync(path, gzip ? gzipSync(bytes) : bytes);
}

/** Runs fn and returns the DataError it throws (failing the test when it throws something else or nothing). */
export async function dataError(fn: () => unknown): Promise<DataError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof DataError) return e;
    throw new Error(`expected a DataError, got: ${(e as Error)?.stack ?? e}`);
  }
  throw new Error('expected a DataError, nothing was thrown');
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

export function histogram(labels: Uint8Array, classes: number): number[] {
  const h = new Array(classes).fill(0);
  for (let i = 0; i < labels.length; i++) if (labels[i]) h[i % classes]++;
  return h;
}
