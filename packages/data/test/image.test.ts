import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  cropOrigin,
  decodeFile,
  IMAGENET_PREPROCESS,
  loadImageInto,
  type Preprocess,
  resizeBicubicPil,
} from '../src/index.js';
import { dataError, tempDir, writeImage } from './helpers.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

describe("the authors' ImageNet preprocessing", () => {
  // Fixtures from fixtures/make-pil-fixture.py (Pillow 9.4): resize to 256x256 bicubic, PlaceCrop 224 at 15.5.
  for (const name of ['a', 'b']) {
    it(`equals Pillow bit for bit (${name === 'a' ? '320x240 RGB: down and up' : '23x17 RGBA: up, alpha dropped'})`, async () => {
      const out = new Float32Array(3 * 224 * 224);
      await loadImageInto(join(fixtures, `pil-${name}-input.png`), IMAGENET_PREPROCESS, out, 0, [224, 224]);
      const want = await decodeFile(join(fixtures, `pil-${name}-expected.png`));
      expect([want.width, want.height, want.channels]).toEqual([224, 224, 3]);
      let mismatches = 0;
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < 224 * 224; p++) {
          if (Math.round(out[c * 224 * 224 + p] * 255) !== want.data[p * 3 + c]) mismatches++;
        }
      }
      expect(mismatches).toBe(0);
    });
  }

  it('crops at 16 (PIL rounds the 15.5 box half to even), like a centre crop of 256 -> 224', () => {
    expect(IMAGENET_PREPROCESS.crop?.at).toEqual([16, 16]);
    expect(cropOrigin({ size: [224, 224], at: 'center' }, 256, 256)).toEqual([16, 16]);
    expect(cropOrigin({ size: [2, 2], at: 'center' }, 5, 7)).toEqual([2, 2]); // 1.5 -> 2, 2.5 -> 2
  });
});

describe('resize and crop', () => {
  it('keeps a constant image constant and is the identity at the same size', () => {
    const src = new Uint8Array(10 * 7 * 3).fill(77);
    expect(Array.from(new Set(resizeBicubicPil(src, 10, 7, 3, 31, 4)))).toEqual([77]);
    const ramp = Uint8Array.from({ length: 12 }, (_, i) => i * 20);
    expect(Array.from(resizeBicubicPil(ramp, 4, 3, 1, 4, 3))).toEqual(Array.from(ramp));
  });

  it('fixed-offset crops, no resize, and one channel', async () => {
    const dir = tempDir('crop');
    const p = join(dir, 'x.png');
    await writeImage(p, 9, 6, 200);
    const pre: Preprocess = { channels: 3, resize: null, crop: { size: [2, 3], at: [1, 4] } };
    const out = new Float32Array(18);
    await loadImageInto(p, pre, out, 0, [2, 3]);
    // Channel 1 holds x * 7, channel 2 y * 11 (see writeImage).
    expect(Array.from(out.subarray(6, 9), (v) => Math.round(v * 255))).toEqual([28, 35, 42]);
    expect(Array.from(out.subarray(12, 18), (v) => Math.round(v * 255))).toEqual([11, 11, 11, 22, 22, 22]);
    const grey = new Float32Array(6);
    await loadImageInto(p, { ...pre, channels: 1 }, grey, 0, [2, 3]);
    // PIL's L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 at x = 4, y = 1.
    expect(Math.round(grey[0] * 255)).toBe((200 * 19595 + 28 * 38470 + 11 * 7471 + 0x8000) >> 16);
    const big = await dataError(() =>
      loadImageInto(p, { ...pre, crop: { size: [7, 3], at: 'center' } }, new Float32Array(63), 0, [7, 3]),
    );
    expect(big.message).toMatch(/does not fit the 6x9 image/);
  });

  it('a file that is not an image, and an empty file, give BAD_IMAGE naming the file', async () => {
    const dir = tempDir('badimg');
    const p = join(dir, 'broken.jpg');
    writeFileSync(p, 'this is not a JPEG');
    const e = await dataError(() => decodeFile(p));
    expect(e.code).toBe('BAD_IMAGE');
    expect(e.message).toContain(p);
    const cut = join(dir, 'cut.jpg');
    const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
      .jpeg()
      .toBuffer();
    writeFileSync(cut, jpeg.subarray(0, jpeg.length / 2));
    expect((await dataError(() => decodeFile(cut))).code).toBe('BAD_IMAGE');
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    expect((await dataError(() => decodeFile(empty))).message).toContain(empty);
    const gone = await dataError(() => decodeFile(join(dir, 'gone.png')));
    expect(gone.message).toContain('gone.png');
  });
});
