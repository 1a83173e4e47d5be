import { argError } from '../errors.js';
import { type Gpu, grid, type UniformValue } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDistinct, checkDType, checkFinite, checkSameSize, shapeString } from './check.js';
import {
  attackProjectShader,
  attackStepL2Shader,
  attackStepProjectShader,
  type ElementwiseUpdate,
  elementwiseUpdateShader,
  TRAINING_WORKGROUP,
  uniformNoiseShader,
} from './training.wgsl.js';

/** Most channels attackProject takes (the per-channel box lives in a uniform array). */
export const MAX_PROJECT_CHANNELS = 1024;

function runUpdate(
  gpu: Gpu,
  kind: ElementwiseUpdate,
  op: string,
  buffers: Tensor[],
  uniforms: UniformValue[],
): void {
  const n = buffers[0].size;
  gpu.run({
    op,
    key: kind,
    code: () => elementwiseUpdateShader(kind),
    buffers,
    uniforms: [n, ...uniforms],
    workgroups: grid(Math.ceil(n / TRAINING_WORKGROUP)),
  });
}

/** y += alpha * x, in place on y; returns y. */
export function axpy(gpu: Gpu, alpha: number, x: Tensor, y: Tensor): Tensor {
  const op = 'axpy';
  checkDType(op, 'x', x, 'f32');
  checkDType(op, 'y', y, 'f32');
  checkSameSize(op, ['x', x], ['y', y]);
  checkDistinct(op, ['y', y], ['x', x]);
  checkFinite(op, 'alpha', alpha);
  runUpdate(gpu, 'axpy', op, [x, y], [{ f32: alpha }]);
  return y;
}

/** alpha * x: in place on x, or into `out` when given; returns the result. */
export function scale(gpu: Gpu, x: Tensor, alpha: number, out?: Tensor): Tensor {
  const op = 'scale';
  checkDType(op, 'x', x, 'f32');
  checkFinite(op, 'alpha', alpha);
  if (!out || out.buffer === x.buffer) {
    if (out) checkSameSize(op, ['x', x], ['out', out]);
    runUpdate(gpu, 'scaleInPlace', op, [x], [{ f32: alpha }]);
    return out ?? x;
  }
  checkDType(op, 'out', out, 'f32');
  checkSameSize(op, ['x', x], ['out', out]);
  runUpdate(gpu, 'scaleOut', op, [x, out], [{ f32: alpha }]);
  return out;
}

export interface SgdMomentumOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/**
 * One step of torch.optim.SGD with momentum (dampening 0, no Nesterov), in place on w and v:
 * g' = g + weightDecay * w; v = momentum * v + g'; w -= lr * v. Start v at zero (PyTorch's first step).
 */
export function sgdMomentumStep(
  gpu: Gpu,
  w: Tensor,
  g: Tensor,
  v: Tensor,
  options: SgdMomentumOptions,
): void {
  const op = 'sgdMomentumStep';
  for (const [name, t] of [
    ['w', w],
    ['g', g],
    ['v', v],
  ] as const) {
    checkDType(op, name, t, 'f32');
  }
  checkSameSize(op, ['w', w], ['g', g]);
  checkSameSize(op, ['w', w], ['v', v]);
  checkDistinct(op, ['w', w], ['g', g], ['v', v]);
  checkDistinct(op, ['v', v], ['g', g]);
  const { lr, momentum, weightDecay } = options;
  checkFinite(op, 'lr', lr);
  checkFinite(op, 'momentum', momentum);
  checkFinite(op, 'weightDecay', weightDecay);
  runUpdate(gpu, 'sgdMomentum', op, [w, g, v], [{ f32: lr }, { f32: momentum }, { f32: weightDecay }]);
}

export type AttackStepMode = 'l2' | 'sign' | 'raw';

export interface AttackStepOptions {
  mode: AttackStepMode;
  lr: number;
}

/**
 * One descent step on delta, in place, each of the `rows` rows (one query each) on its own:
 *   l2:   delta -= lr * g / ||g_row||_2 (a row whose gradient is all zero is left unchanged)
 *   sign: delta -= lr * sign(g) (sign(0) = 0)
 *   raw:  delta -= lr * g
 * The l2 step is one dispatch: a workgroup per row reduces the norm, then updates the row.
 */
export function attackStep(
  gpu: Gpu,
  delta: Tensor,
  g: Tensor,
  rows: number,
  options: AttackStepOptions,
): void {
  const op = 'attackStep';
  checkDType(op, 'delta', delta, 'f32');
  checkDType(op, 'g', g, 'f32');
  checkSameSize(op, ['delta', delta], ['g', g]);
  checkDistinct(op, ['delta', delta], ['g', g]);
  if (!Number.isInteger(rows) || rows < 0 || (rows === 0 ? delta.size !== 0 : delta.size % rows !== 0)) {
    throw argError(
      op,
      `rows must be a non-negative integer that divides delta's ${delta.size} elements ` +
        `(shape ${shapeString(delta.shape)}), found ${rows}`,
    );
  }
  const { mode, lr } = options;
  checkFinite(op, 'lr', lr);
  if (mode === 'sign' || mode === 'raw') {
    runUpdate(gpu, mode === 'sign' ? 'stepSign' : 'stepRaw', op, [delta, g], [{ f32: lr }]);
    return;
  }
  if (mode !== 'l2') throw argError(op, `mode must be 'l2', 'sign' or 'raw', found '${String(mode)}'`);
  if (rows === 0) return;
  gpu.run({
    op,
    key: 'l2',
    code: attackStepL2Shader,
    buffers: [delta, g],
    uniforms: [rows, delta.size / rows, { f32: lr }],
    workgroups: grid(rows),
  });
}

/** min(max(x, lo), hi), element-wise: in place on x, or into `out` when given; returns the result. */
export function clampBox(gpu: Gpu, x: Tensor, lo: number, hi: number, out?: Tensor): Tensor {
  const op = 'clampBox';
  checkDType(op, 'x', x, 'f32');
  if (!(lo <= hi)) throw argError(op, `lo (${lo}) must not exceed hi (${hi})`);
  const bounds: UniformValue[] = [{ f32: lo }, { f32: hi }];
  if (!out || out.buffer === x.buffer) {
    if (out) checkSameSize(op, ['x', x], ['out', out]);
    runUpdate(gpu, 'clampInPlace', op, [x], bounds);
    return out ?? x;
  }
  checkDType(op, 'out', out, 'f32');
  checkSameSize(op, ['x', x], ['out', out]);
  runUpdate(gpu, 'clampOut', op, [x, out], bounds);
  return out;
}

export interface AttackProjectOptions {
  channels: number;
  /** Elements per channel plane (H*W, or T*H*W for video). */
  planeSize: number;
  /** Per-channel box of the normalised image (the pixel box [0, 1] through the normalisation). */
  lo: readonly number[];
  hi: readonly number[];
  /** The L-infinity radius: one for every channel, or one per channel (eps given in pixel space becomes eps / std[c]). */
  eps: number | readonly number[];
}

/** Checks the projection's options against delta's size; returns the per-channel box as vec4 uniforms. */
function projectBounds(op: string, delta: Tensor, options: AttackProjectOptions): UniformValue[] {
  const { channels, planeSize, lo, hi, eps } = options;
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_PROJECT_CHANNELS) {
    throw argError(op, `channels must be an integer in 1..${MAX_PROJECT_CHANNELS}, found ${channels}`);
  }
  if (!Number.isInteger(planeSize) || planeSize < 1) {
    throw argError(op, `planeSize must be a positive integer, found ${planeSize}`);
  }
  if (delta.size % (channels * planeSize) !== 0) {
    throw argError(
      op,
      `delta's ${delta.size} elements (shape ${shapeString(delta.shape)}) are not rows of ` +
        `channels * planeSize = ${channels} * ${planeSize}`,
    );
  }
  if (lo.length !== channels || hi.length !== channels) {
    throw argError(
      op,
      `lo and hi need one value per channel (${channels}), found ${lo.length} and ${hi.length}`,
    );
  }
  for (let c = 0; c < channels; c++) {
    if (!(lo[c] <= hi[c])) throw argError(op, `lo[${c}] (${lo[c]}) must not exceed hi[${c}] (${hi[c]})`);
  }
  const epsOf = (c: number): number => (typeof eps === 'number' ? eps : eps[c]);
  if (typeof eps !== 'number' && eps.length !== channels) {
    throw argError(
      op,
      `eps needs one value per channel (${channels}) or one number, found ${eps.length} values`,
    );
  }
  for (let c = 0; c < channels; c++) {
    const e = epsOf(c);
    if (!(e >= 0) || !Number.isFinite(e)) throw argError(op, `eps must be a finite number >= 0, found ${e}`);
  }
  const bounds: UniformValue[] = [];
  for (let c = 0; c < channels; c++)
    bounds.push({ f32: lo[c] }, { f32: hi[c] }, { f32: epsOf(c) }, { f32: 0 });
  return bounds;
}

/**
 * The attack's projection, in place on delta [rows, channels, planeSize] (xn the normalised clean images,
 * same layout): delta = clamp(clamp(xn + delta, lo[c], hi[c]) - xn, -eps, eps).
 */
export function attackProject(gpu: Gpu, delta: Tensor, xn: Tensor, options: AttackProjectOptions): void {
  const op = 'attackProject';
  checkDType(op, 'delta', delta, 'f32');
  checkDType(op, 'xn', xn, 'f32');
  checkSameSize(op, ['delta', delta], ['xn', xn]);
  checkDistinct(op, ['delta', delta], ['xn', xn]);
  const bounds = projectBounds(op, delta, options);
  gpu.run({
    op,
    key: `c${options.channels}`,
    code: () => attackProjectShader(options.channels),
    buffers: [delta, xn],
    uniforms: [delta.size, options.channels, options.planeSize, 0, ...bounds],
    workgroups: grid(Math.ceil(delta.size / TRAINING_WORKGROUP)),
  });
}

/**
 * One whole iteration's update of an L2 attack, fused into one dispatch (a workgroup per query):
 * attackStep(delta, g, rows, {mode: 'l2', lr}), then attackProject(delta, xn, options), then
 * xAdv = xn + delta (the next iteration's input). Same f32 operations in the same order as those three,
 * so the same result to the bit, with one pass over the data instead of four and no copy.
 */
export function attackStepProject(
  gpu: Gpu,
  delta: Tensor,
  g: Tensor,
  xn: Tensor,
  xAdv: Tensor,
  rows: number,
  options: AttackProjectOptions & { lr: number },
): void {
  const op = 'attackStepProject';
  for (const [name, t] of [
    ['delta', delta],
    ['g', g],
    ['xn', xn],
    ['xAdv', xAdv],
  ] as const) {
    checkDType(op, name, t, 'f32');
    checkSameSize(op, ['delta', delta], [name, t]);
  }
  checkDistinct(op, ['delta', delta], ['g', g], ['xn', xn], ['xAdv', xAdv]);
  checkDistinct(op, ['xAdv', xAdv], ['g', g], ['xn', xn]);
  if (!Number.isInteger(rows) || rows < 0 || (rows === 0 ? delta.size !== 0 : delta.size % rows !== 0)) {
    throw argError(
      op,
      `rows must be a non-negative integer that divides delta's ${delta.size} elements ` +
        `(shape ${shapeString(delta.shape)}), found ${rows}`,
    );
  }
  checkFinite(op, 'lr', options.lr);
  const bounds = projectBounds(op, delta, options);
  if (rows > 0 && (delta.size / rows) % (options.channels * options.planeSize) !== 0) {
    throw argError(
      op,
      `a row of ${delta.size / rows} elements is not channels * planeSize = ${options.channels} * ${options.planeSize} elements`,
    );
  }
  if (rows === 0) return;
  gpu.run({
    op,
    key: `c${options.channels}`,
    code: () => attackStepProjectShader(options.channels),
    buffers: [delta, g, xn, xAdv],
    uniforms: [
      rows,
      delta.size / rows,
      options.channels,
      options.planeSize,
      { f32: options.lr },
      0,
      0,
      0,
      ...bounds,
    ],
    workgroups: grid(rows),
  });
}

/**
 * A tensor of uniform noise in [lo, hi): element i is lo + (hi - lo) * uniformAt(seed, offset + i), the
 * counter-based recipe of reference/random.ts, so it equals the CPU reference up to f32 rounding. Seed and
 * offset are taken mod 2^32; `offset` lets a large draw be produced in pieces.
 */
export function uniformNoise(
  gpu: Gpu,
  shape: readonly number[],
  seed: number,
  lo: number,
  hi: number,
  offset = 0,
): Tensor {
  const op = 'uniformNoise';
  if (!Number.isInteger(seed)) throw argError(op, `seed must be an integer, found ${seed}`);
  if (!Number.isInteger(offset) || offset < 0) {
    throw argError(op, `offset must be a non-negative integer, found ${offset}`);
  }
  checkFinite(op, 'lo', lo);
  checkFinite(op, 'hi', hi);
  if (!(lo <= hi)) throw argError(op, `lo (${lo}) must not exceed hi (${hi})`);
  const out = gpu.empty(shape);
  gpu.run({
    op,
    key: 'uniform',
    code: uniformNoiseShader,
    buffers: [out],
    uniforms: [out.size, seed >>> 0, offset >>> 0, { f32: lo }, { f32: hi - lo }],
    workgroups: grid(Math.ceil(out.size / TRAINING_WORKGROUP)),
  });
  return out;
}
