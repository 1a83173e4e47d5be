// DHTA, P2P, HAG and Noise on a batch of queries, exactly as PROTOCOL.md fixes them (defaults = the authors'
// code): delta lives in the model's normalised input space, starts at 0, takes per-query L2-normalised
// gradient steps, and after each step the image is clamped to the pixel box, then delta to the eps ball.

import type { AttackStepMode, EngineTensor as Tensor } from '@dhta/kernels';
import { pcgHash, uniformAt } from '@dhta/kernels/reference';
import type { HashingNetwork } from '@dhta/models';
import { AttackError } from './errors.js';
import { type AlphaSchedule, alphaAt } from './schedule.js';

export type AttackMethod = 'dhta' | 'p2p' | 'hag' | 'noise';
export type EpsSpace = 'normalized' | 'pixel';

export interface AttackOptions {
  method: AttackMethod;
  /** Default: 2000 for image models, 500 for video models. */
  iterations?: number;
  /** Step size (default 1). */
  lr?: number;
  /** 'l2' (default): delta -= lr * g / ||g||_2 per query; 'sign'; 'raw'. */
  step?: AttackStepMode;
  /** The L-infinity bound (default 0.032), in `epsSpace`. */
  eps?: number;
  /** 'normalized' (default, the authors' code): eps in (x - mean) / std units; 'pixel': eps in [0, 1] pixels. */
  epsSpace?: EpsSpace;
  /** Default: 'paper' for image models, 0.1 for video models. */
  alpha?: AlphaSchedule;
  /** Start delta uniformly in the eps ball instead of at 0. */
  randomStart?: boolean;
  /** Seed of the random start and of the Noise baseline (default 0). */
  seed?: number;
  /**
   * Identifiers of the queries (default 0..n-1): each query's random draws depend on (seed, its id) only,
   * so a query gets the same result in any batch, shard or resumed run.
   */
  queryIds?: readonly number[];
  /** Queries per GPU pass (default: all, up to 100). */
  batch?: number;
  /** Report progress every this many iterations (default 50; 0 = never). Each report reads the codes back. */
  progressEvery?: number;
  /**
   * Called every `progressEvery` iterations and after the last. An exception thrown by it stops the attack
   * (the tensors of the pass are released) and propagates to the caller: a way to cancel a run.
   */
  onProgress?: (progress: AttackProgress) => void;
}

export interface AttackProgress {
  method: AttackMethod;
  iteration: number;
  iterations: number;
  queriesDone: number;
  queries: number;
  /** Queries in the batch being attacked. */
  batch: number;
  /** Mean Hamming distance of the current codes to the anchors (HAG: to the benign codes). */
  meanDistance: number;
  /** Query-iterations per second so far. */
  queryIterationsPerSecond: number;
  /** f(x + delta) of the batch's queries at this iteration (batch x bits); their codes are its signs. */
  features: Float32Array;
}

export interface AttackResult {
  /** Adversarial queries in pixel space [0, 1], the layout of the input. */
  adversarial: Float32Array;
  /** sign(f(x + delta)) after the last step, ±1, n x bits. */
  codes: Int8Array;
  /** f(x + delta), n x bits. */
  features: Float32Array;
  /** The codes the loss pulled towards (DHTA/P2P) or pushed from (HAG: the benign codes); empty for Noise. */
  anchors: Int8Array;
  iterations: number;
  seconds: number;
}

/** The resolved settings of an attack (defaults filled in), for reports. */
export interface ResolvedAttackSettings {
  method: AttackMethod;
  iterations: number;
  lr: number;
  step: AttackStepMode;
  eps: number;
  epsSpace: EpsSpace;
  alpha: AlphaSchedule;
  randomStart: boolean;
  seed: number;
}

export function resolveAttackSettings(
  task: 'image' | 'video',
  options: AttackOptions,
): ResolvedAttackSettings {
  const s: ResolvedAttackSettings = {
    method: options.method,
    iterations: options.iterations ?? (task === 'video' ? 500 : 2000),
    lr: options.lr ?? 1,
    step: options.step ?? 'l2',
    eps: options.eps ?? 0.032,
    epsSpace: options.epsSpace ?? 'normalized',
    alpha: options.alpha ?? (task === 'video' ? 0.1 : 'paper'),
    randomStart: options.randomStart ?? false,
    seed: options.seed ?? 0,
  };
  if (!['dhta', 'p2p', 'hag', 'noise'].includes(s.method)) {
    throw new AttackError(
      'BAD_OPTION',
      `method must be dhta, p2p, hag or noise, found '${String(s.method)}'`,
    );
  }
  if (!Number.isInteger(s.iterations) || s.iterations < 1) {
    throw new AttackError('BAD_OPTION', `iterations must be a positive integer, found ${s.iterations}`);
  }
  if (!(s.eps > 0) || !Number.isFinite(s.eps)) {
    throw new AttackError('BAD_OPTION', `eps must be a finite number > 0, found ${s.eps}`);
  }
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) {
    throw new AttackError('BAD_OPTION', `lr must be a finite number > 0, found ${s.lr}`);
  }
  if (!['l2', 'sign', 'raw'].includes(s.step)) {
    throw new AttackError('BAD_OPTION', `step must be l2, sign or raw, found '${String(s.step)}'`);
  }
  if (s.epsSpace !== 'normalized' && s.epsSpace !== 'pixel') {
    throw new AttackError(
      'BAD_OPTION',
      `eps space must be normalized or pixel, found '${String(s.epsSpace)}'`,
    );
  }
  if (typeof s.alpha === 'number' ? !(s.alpha > 0) || !Number.isFinite(s.alpha) : s.alpha !== 'paper') {
    throw new AttackError('BAD_OPTION', `alpha must be 'paper' or a number > 0, found '${String(s.alpha)}'`);
  }
  if (!Number.isInteger(s.seed))
    throw new AttackError('BAD_OPTION', `seed must be an integer, found ${s.seed}`);
  return s;
}

/** The query's own random stream: a seed derived from (seed, query id) only. */
export function querySeed(seed: number, queryId: number): number {
  return pcgHash((pcgHash(seed >>> 0) ^ Math.imul(queryId >>> 0, 0x9e3779b1)) >>> 0);
}

/** What the attack needs to know of a network, on either engine. */
type NetworkShape = Pick<HashingNetwork, 'spec' | 'bits' | 'inputSize' | 'channels' | 'planeSize'>;

/** Per-channel eps in the normalised space. */
function epsPerChannel(net: NetworkShape, eps: number, space: EpsSpace): number[] {
  const std = net.spec.input.std;
  return std.map((s) => (space === 'pixel' ? eps / s : eps));
}

/** Per-channel box of the normalised image: the pixel box [0, 1] through (x - mean) / std. */
function normalizedBox(net: NetworkShape): { lo: number[]; hi: number[] } {
  const { mean, std } = net.spec.input;
  return { lo: mean.map((m, c) => (0 - m) / std[c]), hi: mean.map((m, c) => (1 - m) / std[c]) };
}

function checkInputs(net: NetworkShape, pixels: Float32Array, n: number): void {
  if (!Number.isInteger(n) || n < 0)
    throw new AttackError('BAD_INPUT', `query count must be an integer >= 0, found ${n}`);
  if (pixels.length !== n * net.inputSize) {
    throw new AttackError(
      'BAD_INPUT',
      `expected ${n} queries of ${net.inputSize} values (${n * net.inputSize} in all) for this model, found ${pixels.length}`,
    );
  }
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i];
    if (!(v >= 0 && v <= 1)) {
      const q = Math.floor(i / net.inputSize);
      throw new AttackError(
        'BAD_INPUT',
        `queries must be pixels in [0, 1]; query ${q} holds ${v} at element ${i - q * net.inputSize} ` +
          '(scale 8-bit images by 1/255 first)',
      );
    }
  }
}

function checkCodes(name: string, codes: Int8Array, n: number, bits: number): void {
  if (codes.length !== n * bits) {
    throw new AttackError(
      'BAD_INPUT',
      `${name} must hold ${n} codes of ${bits} bits (the model's code length), found ${codes.length} values` +
        (n > 0 && codes.length % n === 0 ? ` (${codes.length / n} bits per query)` : ''),
    );
  }
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] !== 1 && codes[i] !== -1) {
      throw new AttackError('BAD_INPUT', `${name} must hold ±1 values, found ${codes[i]} at position ${i}`);
    }
  }
}

/** sign with sign(0) = +1, as codes are defined (PROTOCOL.md). */
export function signCodes(features: Float32Array): Int8Array {
  const out = new Int8Array(features.length);
  for (let i = 0; i < features.length; i++) out[i] = features[i] >= 0 ? 1 : -1;
  return out;
}

function meanHamming(features: Float32Array, anchors: Int8Array, rows: number, bits: number): number {
  let total = 0;
  for (let i = 0; i < rows * bits; i++) if ((features[i] >= 0 ? 1 : -1) !== anchors[i]) total++;
  return rows === 0 ? 0 : total / rows;
}

/**
 * Attacks n queries (pixels in [0, 1], n x net.inputSize). `anchors` (n x bits, ±1) are the target codes for
 * DHTA and P2P (vote them first with the anchor module); HAG and Noise ignore them. `net` is a WebGPU network
 * or an image network on the WebAssembly CPU engine (the same attack, float32 on either).
 */
export async function runAttack(
  net: HashingNetwork,
  pixels: Float32Array,
  n: number,
  anchors: Int8Array | undefined,
  options: AttackOptions,
): Promise<AttackResult> {
  const settings = resolveAttackSettings(net.spec.task, options);
  checkInputs(net, pixels, n);
  const bits = net.bits;
  const ids = options.queryIds ?? Array.from({ length: n }, (_, i) => i);
  if (ids.length !== n)
    throw new AttackError('BAD_INPUT', `queryIds must name ${n} queries, found ${ids.length}`);
  const targeted = settings.method === 'dhta' || settings.method === 'p2p';
  if (targeted) {
    if (!anchors) throw new AttackError('BAD_INPUT', `${settings.method} needs anchor codes (n x ${bits})`);
    checkCodes('anchors', anchors, n, bits);
  }
  const asked = options.batch ?? Math.min(100, Math.max(1, n));
  if (!Number.isInteger(asked) || asked < 1) {
    throw new AttackError('BAD_OPTION', `batch must be a positive integer, found ${asked}`);
  }
  // An engine holds a bounded batch (the WebAssembly engine's memory: a few VGG-11 images); results do not
  // depend on the batch.
  const batch = Math.min(asked, net.maxBatch);
  const started = performance.now();
  const adversarial = new Float32Array(n * net.inputSize);
  const features = new Float32Array(n * bits);
  const usedAnchors = settings.method === 'noise' ? new Int8Array(0) : new Int8Array(n * bits);
  let queryIterations = 0;

  for (let first = 0; first < n; first += batch) {
    const rows = Math.min(batch, n - first);
    const x = pixels.subarray(first * net.inputSize, (first + rows) * net.inputSize);
    const batchIds = ids.slice(first, first + rows);
    let batchAnchors: Int8Array | undefined;
    if (targeted && anchors) batchAnchors = anchors.subarray(first * bits, (first + rows) * bits);
    else if (settings.method === 'hag') {
      // HAG pushes away from the benign code.
      batchAnchors = (await net.encode(x, rows)).codes;
    }
    if (batchAnchors) usedAnchors.set(batchAnchors, first * bits);
    const report = (iteration: number, f: Float32Array): void => {
      if (!options.onProgress) return;
      const now = performance.now();
      options.onProgress({
        method: settings.method,
        iteration,
        iterations: settings.method === 'noise' ? 0 : settings.iterations,
        queriesDone: first,
        queries: n,
        batch: rows,
        meanDistance: batchAnchors ? meanHamming(f, batchAnchors, rows, bits) : 0,
        queryIterationsPerSecond:
          ((queryIterations + rows * iteration) * 1000) / Math.max(1e-9, now - started),
        features: f,
      });
    };
    const every = options.progressEvery ?? 50;
    const out = await attackBatch(net, x, rows, batchIds, batchAnchors, settings, report, every);
    if (settings.method !== 'noise') queryIterations += rows * settings.iterations;
    adversarial.set(out.adversarial, first * net.inputSize);
    features.set(out.features, first * bits);
  }
  return {
    adversarial,
    codes: signCodes(features),
    features,
    anchors: usedAnchors,
    iterations: settings.method === 'noise' ? 0 : settings.iterations,
    seconds: (performance.now() - started) / 1000,
  };
}

/** delta for the random start or the Noise baseline: uniform in [-eps_c, eps_c] from each query's own stream. */
function uniformDelta(net: NetworkShape, ids: readonly number[], seed: number, epsC: number[]): Float32Array {
  const size = net.inputSize;
  const out = new Float32Array(ids.length * size);
  for (let r = 0; r < ids.length; r++) {
    const s = querySeed(seed, ids[r]);
    for (let j = 0; j < size; j++) {
      const c = Math.floor(j / net.planeSize) % net.channels;
      out[r * size + j] = epsC[c] * (2 * uniformAt(s, j) - 1);
    }
  }
  return out;
}

async function attackBatch(
  net: HashingNetwork,
  x: Float32Array,
  rows: number,
  ids: readonly number[],
  anchors: Int8Array | undefined,
  s: ResolvedAttackSettings,
  progress: (iteration: number, features: Float32Array) => void,
  progressEvery: number,
): Promise<{ adversarial: Float32Array; features: Float32Array }> {
  const engine = net.engine;
  const bits = net.bits;
  const shape = [rows, net.inputSize];
  const epsC = epsPerChannel(net, s.eps, s.epsSpace);
  const { lo, hi } = normalizedBox(net);
  const project = { channels: net.channels, planeSize: net.planeSize, lo, hi, eps: epsC };
  const tensors: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => {
    tensors.push(t);
    return t;
  };
  try {
    const xPixels = engine.tensor(shape, x);
    const xn = keep(net.normalize(xPixels, rows));
    xPixels.release();
    const delta = keep(
      s.method === 'noise' || s.randomStart
        ? engine.tensor(shape, uniformDelta(net, ids, s.seed, epsC))
        : engine.zeros(shape),
    );
    engine.attackProject(delta, xn, project);
    const xAdv = keep(engine.empty(shape));
    const setAdversarial = (): void => {
      engine.copy(xn, xAdv);
      engine.axpy(1, delta, xAdv);
    };
    if (s.method !== 'noise' && anchors) {
      // dL/dtanh = -(1/K) * a for DHTA/P2P, +(1/K) * b for HAG; constant over the iterations.
      const coef = s.method === 'hag' ? 1 / bits : -1 / bits;
      const dTanh = keep(
        engine.tensor(
          [rows, bits],
          Float32Array.from(anchors, (a) => coef * a),
        ),
      );
      const dF = keep(engine.empty([rows, bits]));
      setAdversarial();
      for (let it = 0; it < s.iterations; it++) {
        const { output: f, tape } = net.forward(xAdv, rows, { tape: true });
        if (!tape) throw new AttackError('INTERNAL', 'the network returned no tape for a taped forward pass');
        if (progressEvery > 0 && it % progressEvery === 0) {
          try {
            progress(it, await engine.read(f));
          } catch (e) {
            // A cancel from the progress callback: this pass's tape and output are not in `tensors`.
            tape.release();
            f.release();
            throw e;
          }
        }
        engine.tanhScaledBackward(dTanh, f, alphaAt(it, s.iterations, s.alpha), dF);
        const g = net.backward(tape, dF, { input: true });
        tape.release();
        f.release();
        if (!g) throw new AttackError('INTERNAL', 'the network returned no input gradient');
        if (s.step === 'l2') {
          // Step, both clamps and the next input xn + delta in one dispatch (same f32 result as apart).
          engine.attackStepProject(delta, g, xn, xAdv, rows, { ...project, lr: s.lr });
        } else {
          engine.attackStep(delta, g, rows, { mode: s.step, lr: s.lr });
          engine.attackProject(delta, xn, project);
          setAdversarial();
        }
        g.release();
      }
    } else setAdversarial();
    const { output: f } = net.forward(xAdv, rows);
    const features = await engine.read(f);
    f.release();
    if (s.method !== 'noise' && progressEvery > 0) progress(s.iterations, features);
    return { adversarial: toPixels(net, x, await engine.read(delta)), features };
  } finally {
    for (const t of tensors) t.release();
  }
}

/** Pixels x + delta * std[c], clamped to [0, 1] against float rounding at the box edges. */
function toPixels(net: NetworkShape, x: Float32Array, d: Float32Array): Float32Array {
  const std = net.spec.input.std;
  const adversarial = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor((i % net.inputSize) / net.planeSize) % net.channels;
    adversarial[i] = Math.min(1, Math.max(0, x[i] + d[i] * std[c]));
  }
  return adversarial;
}
