import { createRequire } from 'node:module';
import type SharpModule from 'sharp';
import { DataError, messageOf } from './errors.js';

let sharpModule: typeof SharpModule | undefined;

/**
 * sharp (a native addon) is loaded on first use with Node's own require, never through a bundler: from this
 * file's location, else from wherever @dhta/data resolves (the CLI bundle in apps/cli/dist finds it there).
 * So data sets that need no image decoding (IDX, CIFAR-10, moving items) work without it.
 */
export function loadSharp(): typeof SharpModule {
  if (sharpModule) return sharpModule;
  const here = createRequire(import.meta.url);
  const attempts: string[] = [];
  for (const from of [() => here, () => createRequire(here.resolve('@dhta/data'))]) {
    try {
      sharpModule = from()('sharp') as typeof SharpModule;
      return sharpModule;
    } catch (e) {
      attempts.push(messageOf(e).split('\n')[0]);
    }
  }
  throw new DataError('IO', `cannot load the image decoder sharp (${attempts.join('; ')})`, {
    hint: 'install the Node packages (bash scripts/setup.sh); sharp 0.35 needs linux-x64, darwin or win32',
  });
}

/**
 * How an image file becomes a tensor. Resizing is Pillow's BICUBIC resampling (what PIL's Image.resize does
 * by default since Pillow 7, and so what the authors' code does), reproduced bit for bit on 8-bit pixels.
 */
export interface Preprocess {
  /** Output channels: 3 (RGB, like PIL's convert('RGB')) or 1 (the first channel of grey images, else luma). */
  channels: 1 | 3;
  /** Resize to exactly [height, width] (aspect ratio not kept), or null to keep the decoded size. */
  resize: [number, number] | null;
  /** Crop [height, width] at [top, left] (after resizing), 'center' for torchvision's centre, or null. */
  crop: { size: [number, number]; at: [number, number] | 'center' } | null;
}

/**
 * The authors' test-time ImageNet preprocessing: ResizeImage(256) (PIL resize to 256 x 256, bicubic), then
 * PlaceCrop(224, 15.5, 15.5). PIL rounds the float crop box with Python's round (half to even), so the crop
 * starts at pixel 16 in both axes.
 */
export const IMAGENET_PREPROCESS: Preprocess = {
  channels: 3,
  resize: [256, 256],
  crop: { size: [224, 224], at: [16, 16] },
};
export const IMAGENET_NORMALISATION = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Output [height, width] of a preprocessing, given the decoded size (needed only without resize). */
export function outputSize(p: Preprocess, decoded?: [number, number]): [number, number] {
  if (p.crop) return p.crop.size;
  if (p.resize) return p.resize;
  if (!decoded)
    throw new Error('internal: outputSize needs the decoded size when neither resize nor crop is set');
  return decoded;
}

/** Decodes an image file to 8-bit interleaved pixels (1 to 4 channels, as stored). */
export async function decodeFile(
  path: string,
): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  const sharp = loadSharp();
  try {
    const { data, info } = await sharp(path, { failOn: 'error' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
      channels: info.channels,
    };
  } catch (e) {
    const missing = /no such file|not found|ENOENT|missing/i.test(messageOf(e));
    throw new DataError(
      missing ? 'MISSING_FILE' : 'BAD_IMAGE',
      missing ? `expected an image file, found nothing there` : `the image does not decode: ${messageOf(e)}`,
      { file: path, cause: e },
    );
  }
}

/** Converts decoded pixels to the requested channel count (PIL convert('RGB') / convert('L') semantics). */
export function toChannels(src: Uint8Array, pixels: number, from: number, to: 1 | 3): Uint8Array {
  if (from === to) return src;
  const out = new Uint8Array(pixels * to);
  for (let p = 0; p < pixels; p++) {
    if (to === 3) {
      if (from <= 2) {
        const g = src[p * from];
        out[p * 3] = g;
        out[p * 3 + 1] = g;
        out[p * 3 + 2] = g;
      } else {
        // RGBA or 4-channel: drop the fourth channel, as PIL's convert('RGB') does for RGBA.
        out[p * 3] = src[p * from];
        out[p * 3 + 1] = src[p * from + 1];
        out[p * 3 + 2] = src[p * from + 2];
      }
    } else if (from <= 2) {
      out[p] = src[p * from];
    } else {
      // PIL's L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded (ITU-R 601-2 luma).
      const r = src[p * from];
      const g = src[p * from + 1];
      const b = src[p * from + 2];
      out[p] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    }
  }
  return out;
}

function bicubic(x: number): number {
  const a = -0.5;
  const ax = Math.abs(x);
  if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
  if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
  return 0;
}

const PRECISION_BITS = 32 - 8 - 2;
const ROUND = 1 << (PRECISION_BITS - 1);
const SCALE = 2 ** PRECISION_BITS;

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output pixel, the first input and fixed-point weights. */
function coefficients(
  inSize: number,
  outSize: number,
): { bounds: Int32Array; ksize: number; kk: Int32Array } {
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Int32Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * SCALE) : Math.trunc(0.5 + k * SCALE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, ksize, kk };
}

function clip8(ss: number): number {
  const v = Math.floor(ss / SCALE);
  return v < 0 ? 0 : Math.min(v, 255);
}

/**
 * PIL's Image.resize((outW, outH), BICUBIC) on interleaved 8-bit pixels: a horizontal pass into an 8-bit
 * temporary over the rows the vertical pass needs, then a vertical pass, with Pillow's 22-bit fixed point.
 */
export function resizeBicubicPil(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outW: number,
  outH: number,
): Uint8Array {
  if (outW === width && outH === height) return src.slice();
  const needH = outW !== width;
  const needV = outH !== height;
  const hc = coefficients(width, outW);
  const vc = coefficients(height, outH);
  let img = src;
  let imgW = width;
  let imgH = height;
  const yFirst = vc.bounds[0];
  const yLast = vc.bounds[outH * 2 - 2] + vc.bounds[outH * 2 - 1];
  let vShift = 0;
  if (needH) {
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(outW * rows * channels);
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + yFirst) * width * channels;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = hc.bounds[xx * 2];
        const xmax = hc.bounds[xx * 2 + 1];
        const k = xx * hc.ksize;
        for (let c = 0; c < channels; c++) {
          let ss = ROUND;
          for (let x = 0; x < xmax; x++) ss += src[rowIn + (x + xmin) * channels + c] * hc.kk[k + x];
          tmp[(y * outW + xx) * channels + c] = clip8(ss);
        }
      }
    }
    img = tmp;
    imgW = outW;
    imgH = rows;
    vShift = yFirst;
  }
  if (!needV) return img;
  const out = new Uint8Array(imgW * outH * channels);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vc.bounds[yy * 2] - vShift;
    const ymax = vc.bounds[yy * 2 + 1];
    const k = yy * vc.ksize;
    for (let xx = 0; xx < imgW; xx++) {
      for (let c = 0; c < channels; c++) {
        let ss = ROUND;
        for (let y = 0; y < ymax; y++) ss += img[((y + ymin) * imgW + xx) * channels + c] * vc.kk[k + y];
        out[(yy * imgW + xx) * channels + c] = clip8(ss);
      }
    }
  }
  void imgH;
  return out;
}

/** Python's round(): halves to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The crop origin: fixed, or torchvision's CenterCrop (round((H - h) / 2), half to even). */
export function cropOrigin(
  p: NonNullable<Preprocess['crop']>,
  height: number,
  width: number,
): [number, number] {
  if (p.at !== 'center') return p.at;
  return [roundHalfEven((height - p.size[0]) / 2), roundHalfEven((width - p.size[1]) / 2)];
}

/**
 * Decodes one image file and preprocesses it into out[offset ...] as CHW floats in [0, 1].
 * `expect` is the output [height, width] every item of the data set must have.
 */
export async function loadImageInto(
  path: string,
  p: Preprocess,
  out: Float32Array,
  offset: number,
  expect: [number, number],
): Promise<void> {
  const d = await decodeFile(path);
  let px = toChannels(d.data, d.width * d.height, d.channels, p.channels);
  let w = d.width;
  let h = d.height;
  const c = p.channels;
  if (p.resize) {
    px = resizeBicubicPil(px, w, h, c, p.resize[1], p.resize[0]);
    h = p.resize[0];
    w = p.resize[1];
  }
  let top = 0;
  let left = 0;
  let oh = h;
  let ow = w;
  if (p.crop) {
    [top, left] = cropOrigin(p.crop, h, w);
    [oh, ow] = p.crop.size;
    if (top < 0 || left < 0 || top + oh > h || left + ow > w)
      throw new DataError(
        'BAD_IMAGE',
        `a ${oh}x${ow} crop at (${top}, ${left}) does not fit the ${h}x${w} image${p.resize ? ' after resizing' : ''}`,
        { file: path, hint: 'resize first (resize=...) or choose a smaller crop' },
      );
  }
  if (oh !== expect[0] || ow !== expect[1])
    throw new DataError(
      'BAD_IMAGE',
      `expected a ${expect[0]}x${expect[1]} image (as the data set's others), found ${oh}x${ow}`,
      {
        file: path,
        hint: 'set resize=HxW so that every image gets the same size',
      },
    );
  const plane = oh * ow;
  const s = 1 / 255;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const si = ((y + top) * w + (x + left)) * c;
      const di = offset + y * ow + x;
      for (let ch = 0; ch < c; ch++) out[di + ch * plane] = px[si + ch] * s;
    }
  }
}
