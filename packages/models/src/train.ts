// Training a hashing network with the pairwise loss (PROTOCOL.md, "Threat models"): u = tanh(f(x)), the
// DPSH-style likelihood against a memory bank of the training set's latest u, plus a quantisation term;
// SGD with momentum and weight decay (torch.optim.SGD semantics) and a step learning-rate schedule.
// Checkpoints hold everything a resumed run needs (weights, momentum, bank, epoch), written atomically.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sgdMomentumStep, type Tensor } from '@dhta/kernels';
import { pcgHash, SeededRandom } from '@dhta/kernels/reference';
import { loadBundle, replaceDirAtomic, saveBundle } from './bundle.js';
import { ModelError } from './errors.js';
import { pairwiseLoss } from './loss.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import type { HashingNetwork, Weights } from './types.js';

/** What training needs of a data set (the data package's splits satisfy it structurally). */
export interface TrainingData {
  readonly length: number;
  readonly classes: number;
  /** length x classes multi-hot. */
  labels(): Uint8Array;
  /** Pixels in [0, 1] of the given objects, in the model's input layout. */
  load(indices: number[]): Promise<Float32Array>;
}

export interface TrainOptions {
  epochs: number;
  /** Default: 24 (image, the paper's), 100 (video). */
  batch?: number;
  /** Default: 0.01 (image), 0.05 (video). */
  lr?: number;
  momentum?: number;
  /** Default: 5e-4 (image), 1e-4 (video). */
  weightDecay?: number;
  /** Weight of the quantisation term. Default: 0.1 (image), 1e-4 (video, the paper's). */
  eta?: number;
  /** Balance similar and dissimilar pairs in the loss (default true; false = DPSH's loss exactly). */
  balance?: boolean;
  /** Epoch fractions at which the learning rate is multiplied by `gamma` (default [0.5, 0.75], gamma 0.1). */
  milestones?: number[];
  gamma?: number;
  seed?: number;
  /** Where checkpoints go (one folder, replaced atomically after every epoch); none when absent. */
  checkpointDir?: string;
  /** Continue from `checkpointDir` when it holds a checkpoint. */
  resume?: boolean;
  /** Stop after this many epochs of this call (a later call with `resume` continues from the checkpoint). */
  stopAfterEpochs?: number;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  /** Mean loss over the epoch so far. */
  loss: number;
  samplesPerSecond: number;
  /** Seconds left for the whole run, from the rate so far. */
  etaSeconds: number;
}

export interface TrainResult {
  /** Mean loss of each epoch (all epochs, resumed ones included). */
  losses: number[];
  epochs: number;
  seconds: number;
  resumedFrom: number;
}

interface ResolvedTrainOptions {
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  eta: number;
  milestones: number[];
  gamma: number;
  seed: number;
  balance: boolean;
}

export function resolveTrainOptions(task: 'image' | 'video', o: TrainOptions): ResolvedTrainOptions {
  const video = task === 'video';
  const r: ResolvedTrainOptions = {
    epochs: o.epochs,
    batch: o.batch ?? (video ? 100 : 24),
    lr: o.lr ?? (video ? 0.05 : 0.01),
    momentum: o.momentum ?? 0.9,
    weightDecay: o.weightDecay ?? (video ? 1e-4 : 5e-4),
    eta: o.eta ?? (video ? 1e-4 : 0.1),
    milestones: o.milestones ?? [0.5, 0.75],
    gamma: o.gamma ?? 0.1,
    seed: o.seed ?? 0,
    balance: o.balance ?? true,
  };
  if (!Number.isInteger(r.epochs) || r.epochs < 1)
    throw new ModelError('BAD_INPUT', `epochs must be a positive integer, found ${r.epochs}`);
  if (!Number.isInteger(r.batch) || r.batch < 1)
    throw new ModelError('BAD_INPUT', `batch must be a positive integer, found ${r.batch}`);
  for (const [name, v] of [
    ['lr', r.lr],
    ['momentum', r.momentum],
    ['weight decay', r.weightDecay],
    ['eta', r.eta],
    ['gamma', r.gamma],
  ] as const) {
    if (!(v >= 0) || !Number.isFinite(v))
      throw new ModelError('BAD_INPUT', `${name} must be a finite number >= 0, found ${v}`);
  }
  return r;
}

/** The learning rate of an epoch under the step schedule. */
export function learningRateAt(epoch: number, o: ResolvedTrainOptions): number {
  let lr = o.lr;
  for (const m of o.milestones) if (epoch >= Math.round(m * o.epochs)) lr *= o.gamma;
  return lr;
}

const STATE_FILE = 'state.json';
const TENSORS_FILE = 'state.safetensors';
const MODEL_DIR = 'model';

interface CheckpointState {
  format: 'dhta-checkpoint/1';
  epoch: number;
  losses: number[];
  options: ResolvedTrainOptions;
}

/** Writes a checkpoint folder atomically: model bundle, momentum buffers and bank, and the epoch reached. */
async function saveCheckpoint(
  dir: string,
  net: HashingNetwork,
  momentum: Map<string, Tensor>,
  bank: Float32Array,
  state: CheckpointState,
): Promise<void> {
  const tensors: Weights = new Map();
  for (const [name, v] of momentum) {
    tensors.set(`momentum.${name}`, {
      shape: [...v.shape],
      data: (await net.gpu.readF32(v)) as Float32Array,
    });
  }
  tensors.set('bank', { shape: [bank.length / net.bits, net.bits], data: bank });
  await replaceDirAtomic(dir, 'checkpoint', async (tmp) => {
    await saveBundle(join(tmp, MODEL_DIR), { spec: net.spec, weights: await net.readWeights() });
    await writeFile(join(tmp, TENSORS_FILE), writeSafetensors(tensors));
    await writeFile(join(tmp, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  });
}

/** A checkpoint, or null when `dir` holds none. */
export async function loadCheckpoint(dir: string): Promise<{
  state: CheckpointState;
  weights: Weights;
  tensors: Weights;
} | null> {
  let text: string;
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch {
    return null;
  }
  const state = JSON.parse(text) as CheckpointState;
  if (state.format !== 'dhta-checkpoint/1') {
    throw new ModelError(
      'BAD_FILE',
      `${join(dir, STATE_FILE)}: not a dhta checkpoint (format '${String(state.format)}')`,
    );
  }
  const { weights } = await loadBundle(join(dir, MODEL_DIR));
  const { weights: tensors } = readSafetensors(
    await readFile(join(dir, TENSORS_FILE)),
    join(dir, TENSORS_FILE),
  );
  return { state, weights, tensors };
}

function tanh(x: number): number {
  return Math.tanh(x);
}

/**
 * Trains `net` in place on `data`, from its current weights, or, with `resume` and a checkpoint in
 * `checkpointDir`, from the checkpoint's weights, momentum, memory bank and epoch.
 */
export async function trainHashingNetwork(
  net: HashingNetwork,
  data: TrainingData,
  options: TrainOptions,
): Promise<TrainResult> {
  const o = resolveTrainOptions(net.spec.task, options);
  const { gpu, bits: K } = net;
  const C = data.classes;
  const N = data.length;
  if (N < 1) throw new ModelError('BAD_INPUT', 'the training set is empty');
  const labels = data.labels();
  const params = net.parameters();
  const grads = net.gradients();
  const momentum = new Map<string, Tensor>();
  for (const [name, p] of params) momentum.set(name, gpu.zeros(p.shape));
  // The memory bank starts at zero, as in DPSH (theta = 0 until an object's first visit).
  let bank: Float32Array = new Float32Array(N * K);
  let startEpoch = 0;
  const losses: number[] = [];

  if (options.resume && options.checkpointDir) {
    const ckpt = await loadCheckpoint(options.checkpointDir);
    if (ckpt) {
      for (const [name, p] of params) {
        const w = ckpt.weights.get(name);
        if (!w || w.data.length !== p.size) {
          throw new ModelError(
            'BAD_FILE',
            `${options.checkpointDir}: the checkpoint's ${name} is missing or has the wrong size for this model`,
          );
        }
        gpu.write(p, w.data);
      }
      for (const [name, v] of momentum) {
        const saved = ckpt.tensors.get(`momentum.${name}`);
        if (!saved || saved.data.length !== v.size) {
          throw new ModelError(
            'BAD_FILE',
            `${options.checkpointDir}: momentum for ${name} is missing or has the wrong size`,
          );
        }
        gpu.write(v, saved.data);
      }
      const savedBank = ckpt.tensors.get('bank');
      if (!savedBank || savedBank.data.length !== N * K) {
        throw new ModelError(
          'BAD_FILE',
          `${options.checkpointDir}: the memory bank does not match this training set (${N} x ${K})`,
        );
      }
      bank = savedBank.data;
      startEpoch = ckpt.state.epoch;
      losses.push(...ckpt.state.losses);
    }
  }

  const started = performance.now();
  let samplesDone = 0;
  const steps = Math.ceil(N / o.batch);
  const totalSamples = (o.epochs - startEpoch) * N;
  try {
    for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      const lr = learningRateAt(epoch, o);
      // A fresh permutation per epoch from (seed, epoch) only, so a resumed run takes the same batches.
      const order = Array.from({ length: N }, (_, i) => i);
      const rng = new SeededRandom(pcgHash((o.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0));
      for (let i = N - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      let lossSum = 0;
      let next = data.load(order.slice(0, o.batch));
      for (let step = 0; step < steps; step++) {
        const idx = order.slice(step * o.batch, (step + 1) * o.batch);
        const B = idx.length;
        const pixels = await next;
        if (step + 1 < steps) next = data.load(order.slice((step + 1) * o.batch, (step + 2) * o.batch));
        const x = gpu.tensor([B, net.inputSize], pixels);
        const xn = net.normalize(x, B);
        x.release();
        const seed = pcgHash((o.seed + epoch * 1_000_003 + step) >>> 0);
        const { output, tape } = net.forward(xn, B, { train: true, seed, tape: true });
        const f = (await gpu.readF32(output)) as Float32Array;
        const u = Float64Array.from(f, tanh);
        const batchLabels = new Uint8Array(B * C);
        for (let i = 0; i < B; i++) {
          batchLabels.set(labels.subarray(idx[i] * C, (idx[i] + 1) * C), i * C);
          for (let k = 0; k < K; k++) bank[idx[i] * K + k] = u[i * K + k];
        }
        const { loss, grad } = pairwiseLoss({
          u,
          labels: batchLabels,
          bank,
          bankLabels: labels,
          bits: K,
          classes: C,
          eta: o.eta,
          balance: o.balance,
        });
        // Through u = tanh(f): dL/df = dL/du * (1 - u^2).
        const dF = gpu.tensor(
          [B, K],
          Float32Array.from(grad, (g, i) => g * (1 - u[i] * u[i])),
        );
        net.zeroGradients();
        net.backward(tape!, dF, { input: false, weights: true });
        tape!.release();
        output.release();
        xn.release();
        dF.release();
        for (const [name, p] of params) {
          sgdMomentumStep(gpu, p, grads.get(name)!, momentum.get(name)!, {
            lr,
            momentum: o.momentum,
            weightDecay: o.weightDecay,
          });
        }
        lossSum += loss;
        samplesDone += B;
        if (options.onProgress) {
          const seconds = (performance.now() - started) / 1000;
          const rate = samplesDone / Math.max(seconds, 1e-9);
          options.onProgress({
            epoch,
            epochs: o.epochs,
            step: step + 1,
            steps,
            loss: lossSum / (step + 1),
            samplesPerSecond: rate,
            etaSeconds: (totalSamples - samplesDone) / rate,
          });
        }
      }
      if (!Number.isFinite(lossSum)) {
        throw new ModelError(
          'BAD_INPUT',
          `training diverged in epoch ${epoch + 1} (loss ${lossSum}); lower the learning rate`,
        );
      }
      losses.push(lossSum / steps);
      if (options.checkpointDir) {
        await saveCheckpoint(options.checkpointDir, net, momentum, bank, {
          format: 'dhta-checkpoint/1',
          epoch: epoch + 1,
          losses,
          options: o,
        });
      }
      if (options.stopAfterEpochs !== undefined && epoch + 1 - startEpoch >= options.stopAfterEpochs) break;
    }
  } finally {
    for (const v of momentum.values()) v.release();
  }
  return { losses, epochs: o.epochs, seconds: (performance.now() - started) / 1000, resumedFrom: startEpoch };
}
