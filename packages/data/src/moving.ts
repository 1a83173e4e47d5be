import { BaseDataset, type Dataset } from './dataset.js';
import { DataError } from './errors.js';
import { mixSeed, Rng } from './rng.js';

/** The motion patterns, in label order: the label of a clip is its motion, not the item shown. */
export const MOTIONS = [
  'right',
  'left',
  'down',
  'up',
  'down-right',
  'up-left',
  'grow',
  'shrink',
  'rotate',
  'bounce',
] as const;
export type Motion = (typeof MOTIONS)[number];

/** Geometry of the moving-items clips (see README.md, "Moving items"). */
export const MOVING = {
  canvas: 32,
  frames: 10,
  /** Edge of the 28 x 28 source image on the canvas at frame 0, uniform in [min, max] pixels. */
  itemMin: 14,
  itemMax: 16,
  /** Centre at frame 0, uniform in [centre - jitter, centre + jitter] in both axes. */
  startJitter: 4,
  /** Path length of translations (diagonals: along the diagonal), uniform in [min, max] pixels. */
  distanceMin: 6,
  distanceMax: 10,
  /** grow: scale 1 -> factor; shrink: 1 -> 1 / factor (geometric in time). */
  scaleFactor: 1.5,
  /** rotate: clockwise, 0 -> angle radians, angle uniform in [min, max]. */
  angleMin: (Math.PI / 2) * 0.8,
  angleMax: (Math.PI / 2) * 1.2,
} as const;

/**
 * Per-pixel mean and standard deviation of moving-items clips (all frames, all classes), measured over
 * 2000 clips of each base set with seed 1 (test/moving.test.ts re-measures them).
 */
export const MOVING_MNIST_NORMALISATION = { mean: [0.0293], std: [0.1395] };
export const MOVING_FASHION_MNIST_NORMALISATION = { mean: [0.0645], std: [0.1955] };

/** Where clip j of a pool starts and how it moves: drawn from (seed, pool, j) only, in a fixed order. */
export interface ClipParams {
  motion: number;
  baseIndex: number;
  size: number;
  cx: number;
  cy: number;
  distance: number;
  angle: number;
}

/** The parameters of clip j; every class draws the same numbers in the same order, so frame 0 is class-blind. */
export function clipParams(
  seed: number,
  pool: number,
  j: number,
  baseCount: number,
  classes: number,
): ClipParams {
  const rng = new Rng(mixSeed(seed, pool, j));
  const c = MOVING.canvas / 2;
  return {
    motion: j % classes,
    baseIndex: rng.int(baseCount),
    size: MOVING.itemMin + (MOVING.itemMax - MOVING.itemMin) * rng.next(),
    cx: c + MOVING.startJitter * (2 * rng.next() - 1),
    cy: c + MOVING.startJitter * (2 * rng.next() - 1),
    distance: MOVING.distanceMin + (MOVING.distanceMax - MOVING.distanceMin) * rng.next(),
    angle: MOVING.angleMin + (MOVING.angleMax - MOVING.angleMin) * rng.next(),
  };
}

/** Centre offset (dx, dy), scale and clockwise angle of the item at progress p in [0, 1]. */
export function pose(
  motion: number,
  p: number,
  q: ClipParams,
): { dx: number; dy: number; scale: number; angle: number } {
  const d = q.distance * p;
  const diag = d / Math.SQRT2;
  const pose = { dx: 0, dy: 0, scale: 1, angle: 0 };
  switch (MOTIONS[motion]) {
    case 'right':
      pose.dx = d;
      break;
    case 'left':
      pose.dx = 0 - d; // 0 - d: no -0 at p = 0
      break;
    case 'down':
      pose.dy = d;
      break;
    case 'up':
      pose.dy = 0 - d;
      break;
    case 'down-right':
      pose.dx = diag;
      pose.dy = diag;
      break;
    case 'up-left':
      pose.dx = 0 - diag;
      pose.dy = 0 - diag;
      break;
    case 'grow':
      pose.scale = MOVING.scaleFactor ** p;
      break;
    case 'shrink':
      pose.scale = MOVING.scaleFactor ** -p;
      break;
    case 'rotate':
      pose.angle = q.angle * p;
      break;
    case 'bounce':
      // Right for the first half, back to the start in the second.
      pose.dx = q.distance * (1 - Math.abs(2 * p - 1));
      break;
  }
  return pose;
}

/**
 * Renders one frame: the 28 x 28 source (values in [0, 1]) placed with centre (cx, cy), edge `size`, rotated
 * clockwise by `angle`; bilinear sampling, 2 x 2 supersampling per canvas pixel, zero outside the source.
 */
export function renderFrame(
  src: Float32Array,
  srcOffset: number,
  srcSize: number,
  out: Float32Array,
  outOffset: number,
  canvas: number,
  cx: number,
  cy: number,
  size: number,
  angle: number,
): void {
  const k = srcSize / size; // source pixels per canvas pixel
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const half = srcSize / 2;
  const at = (x: number, y: number) =>
    x < 0 || y < 0 || x >= srcSize || y >= srcSize ? 0 : src[srcOffset + y * srcSize + x];
  for (let y = 0; y < canvas; y++) {
    for (let x = 0; x < canvas; x++) {
      let acc = 0;
      for (let sy = 0; sy < 2; sy++) {
        for (let sx = 0; sx < 2; sx++) {
          const px = x + 0.25 + 0.5 * sx - cx;
          const py = y + 0.25 + 0.5 * sy - cy;
          // Inverse of a clockwise rotation (y points down): rotate the canvas offset counter-clockwise.
          const u = (cos * px + sin * py) * k + half - 0.5;
          const v = (-sin * px + cos * py) * k + half - 0.5;
          const x0 = Math.floor(u);
          const y0 = Math.floor(v);
          if (x0 < -1 || y0 < -1 || x0 >= srcSize || y0 >= srcSize) continue;
          const fx = u - x0;
          const fy = v - y0;
          acc +=
            (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
            fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
        }
      }
      out[outOffset + y * canvas + x] = acc * 0.25;
    }
  }
}

/**
 * "Moving items": clip j of the pool shows one real image of `base` moving by motion j mod 10 on a 32 x 32
 * canvas for 10 frames, generated on the fly from (seed, pool, j). NTCHW, one channel.
 */
export class MovingItemsDataset extends BaseDataset {
  readonly base: Dataset;
  readonly seed: number;
  readonly pool: number;

  constructor(
    name: string,
    base: Dataset,
    clips: number,
    seed: number,
    pool: number,
    normalisation: { mean: readonly number[]; std: readonly number[] },
  ) {
    if (base.kind !== 'image' || base.channels !== 1 || base.height !== base.width)
      throw new DataError(
        'BAD_OPTION',
        `${name}: moving items need square one-channel images, ${base.name} is not`,
      );
    const classes = MOTIONS.length;
    const labels = new Uint8Array(clips * classes);
    for (let j = 0; j < clips; j++) labels[j * classes + (j % classes)] = 1;
    super(
      {
        name,
        kind: 'video',
        channels: 1,
        height: MOVING.canvas,
        width: MOVING.canvas,
        frames: MOVING.frames,
        classNames: [...MOTIONS],
        ...normalisation,
      },
      labels,
    );
    this.base = base;
    this.seed = seed;
    this.pool = pool;
  }

  params(j: number): ClipParams {
    this.checkIndex(j);
    return clipParams(this.seed, this.pool, j, this.base.length, this.classes);
  }

  protected async decode(indices: readonly number[], out: Float32Array, offset: number): Promise<void> {
    const params = indices.map((j) => clipParams(this.seed, this.pool, j, this.base.length, this.classes));
    const src = await this.base.load(params.map((q) => q.baseIndex));
    const s = this.base.height;
    const n = MOVING.canvas;
    const T = this.frames;
    params.forEach((q, k) => {
      for (let t = 0; t < T; t++) {
        const m = pose(q.motion, T === 1 ? 0 : t / (T - 1), q);
        renderFrame(
          src,
          k * s * s,
          s,
          out,
          offset + k * this.itemSize + t * n * n,
          n,
          q.cx + m.dx,
          q.cy + m.dy,
          q.size * m.scale,
          m.angle,
        );
      }
    });
  }
}
