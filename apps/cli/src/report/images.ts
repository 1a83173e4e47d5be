// Pixels to pictures: image tiles (a video's middle frame, or a strip of its frames) as PNGs, the perturbation
// magnified, and whole figures composed from tiles with sharp. Pixels are float32 in [0, 1], C x H x W.

import { loadSharp } from '@dhta/data';
import type { Examples } from './inputs.js';

/** One picture: 8-bit RGB, row-major. */
export interface Rgb {
  width: number;
  height: number;
  data: Uint8Array;
  /** The larger side of one frame (a strip holds several), which sets the display scale. */
  frameSide?: number;
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : Number.isNaN(v) ? 0 : v);

/** The geometry of an examples array: q items of T frames of C x H x W (T = 1 for images). */
export function geometry(shape: number[]): {
  items: number;
  frames: number;
  c: number;
  h: number;
  w: number;
} {
  const [h, w] = shape.slice(-2);
  const c = shape[shape.length - 3];
  return { items: shape[0], frames: shape.length === 5 ? shape[1] : 1, c, h, w };
}

/** CHW float pixels (1 or 3 channels) to RGB bytes. */
export function chwToRgb(chw: Float32Array, c: number, h: number, w: number): Rgb {
  const out = new Uint8Array(h * w * 3);
  const plane = h * w;
  for (let p = 0; p < plane; p++)
    for (let k = 0; k < 3; k++)
      out[p * 3 + k] = Math.round(255 * clamp01(chw[(c === 1 ? 0 : k) * plane + p]));
  return { width: w, height: h, data: out };
}

/** Frame t of item i of an examples array, as CHW floats (a view). */
export function frameOf(ex: Examples, i: number, t: number): Float32Array {
  const g = geometry(ex.shape);
  const size = g.c * g.h * g.w;
  const start = (i * g.frames + t) * size;
  return ex.data.subarray(start, start + size);
}

/** The frames shown for a video item: all of them up to maxFrames, else evenly spaced (first and last kept). */
export function shownFrames(frames: number, maxFrames: number): number[] {
  if (frames <= maxFrames) return Array.from({ length: frames }, (_, t) => t);
  return Array.from({ length: maxFrames }, (_, j) => Math.round((j * (frames - 1)) / (maxFrames - 1)));
}

/** Frames side by side with a 2-pixel white gap. */
export function strip(frames: Rgb[]): Rgb {
  const gap = 2;
  const h = frames[0].height;
  const width = frames.reduce((s, f) => s + f.width, 0) + gap * (frames.length - 1);
  const out = new Uint8Array(width * h * 3).fill(255);
  let x0 = 0;
  for (const f of frames) {
    for (let y = 0; y < h; y++)
      out.set(f.data.subarray(y * f.width * 3, (y + 1) * f.width * 3), (y * width + x0) * 3);
    x0 += f.width + gap;
  }
  return { width, height: h, data: out, frameSide: Math.max(h, frames[0].width) };
}

/**
 * Item i as one picture: an image as it is; a video as its middle frame (`video: 'middle'`, for grid cells)
 * or a strip of up to 8 frames (`video: 'strip'`).
 */
export function itemPicture(ex: Examples, i: number, video: 'middle' | 'strip'): Rgb {
  const g = geometry(ex.shape);
  const ts =
    g.frames === 1 ? [0] : video === 'middle' ? [Math.floor(g.frames / 2)] : shownFrames(g.frames, 8);
  const pics = ts.map((t) => chwToRgb(frameOf(ex, i, t), g.c, g.h, g.w));
  return pics.length === 1 ? pics[0] : strip(pics);
}

/**
 * The perturbation of item i, magnified for the eye (the paper's Fig. 8): |x' - x| divided by its largest
 * value over the item, so it fills [0, 1]. Returns the magnified pixels and that largest value.
 */
export function magnifiedPerturbation(
  adversarial: Examples,
  benign: Examples,
  i: number,
): { pixels: Examples; max: number } {
  const g = geometry(benign.shape);
  const size = g.frames * g.c * g.h * g.w;
  const a = adversarial.data.subarray(i * size, (i + 1) * size);
  const b = benign.data.subarray(i * size, (i + 1) * size);
  const d = new Float32Array(size);
  let max = 0;
  for (let p = 0; p < size; p++) {
    d[p] = Math.abs(a[p] - b[p]);
    if (d[p] > max) max = d[p];
  }
  if (max > 0) for (let p = 0; p < size; p++) d[p] /= max;
  return { pixels: { shape: [1, ...benign.shape.slice(1)], data: d }, max };
}

/** The scale at which a picture of this size is shown: small images enlarged (pixels kept sharp), large ones reduced. */
export function displaySize(
  pic: Rgb,
  target: number,
): { width: number; height: number; kernel: 'nearest' | 'lanczos3' } {
  const side = pic.frameSide ?? Math.max(pic.height, pic.width);
  if (side < target) {
    const k = Math.max(1, Math.floor(target / side));
    return { width: pic.width * k, height: pic.height * k, kernel: 'nearest' };
  }
  const k = target / side;
  return {
    width: Math.max(1, Math.round(pic.width * k)),
    height: Math.max(1, Math.round(pic.height * k)),
    kernel: 'lanczos3',
  };
}

/** A picture as a PNG, scaled so that one frame's larger side is about `target` pixels. */
export async function toPng(
  pic: Rgb,
  target: number,
): Promise<{ png: Buffer; width: number; height: number }> {
  const sharp = loadSharp();
  const size = displaySize(pic, target);
  const png = await sharp(Buffer.from(pic.data.buffer, pic.data.byteOffset, pic.data.byteLength), {
    raw: { width: pic.width, height: pic.height, channels: 3 },
  })
    .resize(size.width, size.height, { kernel: size.kernel, fit: 'fill' })
    .png({ compressionLevel: 9 })
    .toBuffer();
  return { png, width: size.width, height: size.height };
}

/** An SVG (a chart, or a composed figure) as a PNG at `scale` times its size. */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  const sharp = loadSharp();
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .flatten({ background: '#ffffff' })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/** One cell of a composed figure: a tile PNG, an optional coloured frame, and a caption under it. */
export interface FigureCell {
  png: Buffer;
  width: number;
  height: number;
  border?: string;
  caption?: string;
}

export interface FigureRow {
  label: string;
  cells: FigureCell[];
}

export interface FigureBlock {
  title: string;
  rows: FigureRow[];
}

/**
 * A figure of blocks of labelled rows of tiles, as one SVG with the tiles embedded as data: URIs (so sharp
 * can rasterise it without reading any file).
 */
export function composeFigure(
  blocks: FigureBlock[],
  legend?: string,
): { svg: string; width: number; height: number } {
  const pad = 10;
  const labelWidth = 110;
  const gap = 6;
  const border = 3;
  const captionHeight = 14;
  const titleHeight = 20;
  const parts: string[] = [];
  let y = pad;
  let width = 0;
  if (legend) {
    parts.push(`<text x="${pad}" y="${y + 13}" font-size="12" fill="#333">${escapeXml(legend)}</text>`);
    y += titleHeight;
  }
  for (const block of blocks) {
    parts.push(
      `<text x="${pad}" y="${y + 14}" font-size="13" font-weight="bold" fill="#111">${escapeXml(block.title)}</text>`,
    );
    y += titleHeight;
    for (const row of block.rows) {
      const rowHeight = Math.max(...row.cells.map((c) => c.height)) + 2 * border;
      const hasCaption = row.cells.some((c) => c.caption);
      parts.push(
        `<text x="${pad}" y="${y + rowHeight / 2 + 4}" font-size="12" fill="#111">${escapeXml(row.label)}</text>`,
      );
      let x = pad + labelWidth;
      for (const c of row.cells) {
        // A caption wider than its tile widens the slot (about 6 px per character at this size).
        const slot = Math.max(c.width + 2 * border, (c.caption?.length ?? 0) * 6);
        const left = x + (slot - c.width - 2 * border) / 2;
        if (c.border)
          parts.push(
            `<rect x="${left}" y="${y}" width="${c.width + 2 * border}" height="${c.height + 2 * border}" fill="${c.border}"/>`,
          );
        parts.push(
          `<image x="${left + border}" y="${y + border}" width="${c.width}" height="${c.height}" ` +
            `href="data:image/png;base64,${c.png.toString('base64')}"/>`,
        );
        if (c.caption)
          parts.push(
            `<text x="${x + slot / 2}" y="${y + rowHeight + 11}" font-size="10" text-anchor="middle" fill="#333">${escapeXml(c.caption)}</text>`,
          );
        x += slot + gap;
      }
      width = Math.max(width, x - gap + pad);
      y += rowHeight + (hasCaption ? captionHeight : 0) + gap;
    }
    y += gap;
  }
  const height = y + pad;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>`;
  return { svg, width, height };
}
