// Training a hashing network with the pairwise loss (PROTOCOL.md, "Threat models"): u = tanh(f(x)), the
// DPSH-style likelihood against a memory bank of the training set's latest u, plus a quantisation term;
// SGD with momentum and weight decay (torch.optim.SGD semantics) and a step learning-rate schedule.
// Checkpoints hold everything a resumed run needs (weights, momentum, bank, epoch), written atomically.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineTensor as Tensor } from '@dhta/kernels';
import { pcgHash, SeededRandom } from '@dhta/kernels/reference';
import { loadBundle, replaceDirAtomic, saveBundle } from './bundle.js';
import { ModelError } from './errors.js';
import { type EngineBank, pairwiseLoss, pairwiseLossOnEngine } from './loss.js';
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
  /**
   * Resume even where the checkpoint was trained with other options (learning rate, seed, epochs, ...): the
   * rest of the run uses these options. Without it such a resume is refused, naming the options that differ.
   */
  allowChangedOptions?: boolean;
  /** JSON the caller keeps with each checkpoint (state.json's `info`), e.g. what the run trains on. */
  checkpointInfo?: Record<string, unknown>;
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

export interface ResolvedTrainOptions {
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

/** state.json of a checkpoint. */
export interface CheckpointState {
  format: 'dhta-checkpoint/1';
  /** Epochs completed (1 to options.epochs). */
  epoch: number;
  /** Mean loss of each completed epoch (`epoch` of them). */
  losses: number[];
  /** The options the epochs so far were trained with (the last call's, on a resumed run). */
  options: ResolvedTrainOptions;
  /** The caller's own record (TrainOptions.checkpointInfo), when it gave one. */
  info?: Record<string, unknown>;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks parsed state.json against the checkpoint schema, naming the file and the field at fault: a
 * damaged or edited checkpoint is refused rather than trained on (an epoch of -5 or 1e9 would otherwise
 * skip training and claim every epoch done).
 */
export function validateCheckpointState(value: unknown, file: string): CheckpointState {
  const bad = (what: string, v: unknown): never => {
    throw new ModelError(
      'BAD_FILE',
      `${file}: ${what}, found ${describe(v)} (a damaged or edited checkpoint: delete its folder to start over)`,
    );
  };
  if (!isRecord(value)) return bad('expected a JSON object', value);
  if (value['format'] !== 'dhta-checkpoint/1')
    return bad('not a dhta checkpoint: \'format\' must be "dhta-checkpoint/1"', value['format']);
  const o = value['options'];
  if (!isRecord(o)) return bad("'options' must be an object", o);
  const int = (name: string, min: number) => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      bad(`'options.${name}' must be an integer >= ${min}`, v);
  };
  int('epochs', 1);
  int('batch', 1);
  int('seed', 0);
  for (const name of ['lr', 'momentum', 'weightDecay', 'eta', 'gamma']) {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      bad(`'options.${name}' must be a finite number >= 0`, v);
  }
  const m = o['milestones'];
  if (!Array.isArray(m) || m.some((x) => typeof x !== 'number' || !(x >= 0 && x <= 1)))
    bad("'options.milestones' must be a list of fractions between 0 and 1", m);
  if (typeof o['balance'] !== 'boolean') bad("'options.balance' must be true or false", o['balance']);
  const epochs = o['epochs'] as number;
  const epoch = value['epoch'];
  if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 1 || epoch > epochs)
    bad(`'epoch' (epochs completed) must be an integer from 1 to the run's ${epochs} epochs`, epoch);
  const losses = value['losses'];
  if (!Array.isArray(losses) || losses.length !== epoch)
    bad(`'losses' must be a list of ${String(epoch)} numbers (one per completed epoch)`, losses);
  if ((losses as unknown[]).some((l) => typeof l !== 'number' || !Number.isFinite(l)))
    bad("'losses' must hold finite numbers", losses);
  if (value['info'] !== undefined && !isRecord(value['info']))
    bad("'info' must be an object when present", value['info']);
  return value as unknown as CheckpointState;
}

/** The options of a checkpoint that differ from `now`: name, the checkpoint's value and the new one. */
export function changedTrainOptions(
  saved: ResolvedTrainOptions,
  now: ResolvedTrainOptions,
): Array<{ name: keyof ResolvedTrainOptions; checkpoint: unknown; now: unknown }> {
  const out: Array<{ name: keyof ResolvedTrainOptions; checkpoint: unknown; now: unknown }> = [];
  for (const name of Object.keys(now) as Array<keyof ResolvedTrainOptions>) {
    if (JSON.stringify(saved[name]) !== JSON.stringify(now[name]))
      out.push({ name, checkpoint: saved[name], now: now[name] });
  }
  return out;
}

/** A checkpoint's state.json, checked (see validateCheckpointState); null when `dir` holds none. */
export async function readCheckpointState(dir: string): Promise<CheckpointState | null> {
  const file = join(dir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ModelError('BAD_FILE', `${file}: cannot be read (${(e as Error).message})`, { cause: e });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ModelError(
      'BAD_FILE',
      `${file}: not valid JSON (${(e as Error).message}); the checkpoint is damaged: delete its folder to start over`,
      { cause: e },
    );
  }
  return validateCheckpointState(parsed, file);
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
      data: await net.engine.read(v),
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
  const state = await readCheckpointState(dir);
  if (!state) return null;
  const { weights } = await loadBundle(join(dir, MODEL_DIR));
  const tensorsFile = join(dir, TENSORS_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(tensorsFile);
  } catch (e) {
    throw new ModelError('BAD_FILE', `${tensorsFile}: cannot be read (${(e as Error).message})`, {
      cause: e,
    });
  }
  const { weights: tensors } = readSafetensors(bytes, tensorsFile);
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
  const { engine, bits: K } = net;
  const C = data.classes;
  const N = data.length;
  if (N < 1) throw new ModelError('BAD_INPUT', 'the training set is empty');
  const labels = data.labels();
  const params = net.parameters();
  const grads = net.gradients();
  const momentum = new Map<string, Tensor>();
  let engineBank: EngineBank | null = null;
  // Every engine tensor of the run, released at its end or when anything before the loop fails.
  const release = (): void => {
    for (const v of momentum.values()) v.release();
    engineBank?.codes.release();
    engineBank?.labels.release();
  };
  try {
    for (const [name, p] of params) momentum.set(name, engine.zeros(p.shape));
    return await trainLoop();
  } finally {
    release();
  }

  async function trainLoop(): Promise<TrainResult> {
    // The memory bank starts at zero, as in DPSH (theta = 0 until an object's first visit).
    let bank: Float32Array = new Float32Array(N * K);
    let startEpoch = 0;
    const losses: number[] = [];

    if (options.resume && options.checkpointDir) {
      const dir = options.checkpointDir;
      const ckpt = await loadCheckpoint(dir);
      if (ckpt) {
        const stateFile = join(dir, STATE_FILE);
        const changed = changedTrainOptions(ckpt.state.options, o);
        if (changed.length && !options.allowChangedOptions) {
          throw new ModelError(
            'BAD_INPUT',
            `${stateFile}: the checkpoint was trained with other options: ` +
              `${changed.map((c) => `${c.name} ${describe(c.checkpoint)} (now ${describe(c.now)})`).join(', ')}; ` +
              'resume with the same options, or allow the change (allowChangedOptions)',
          );
        }
        if (ckpt.state.epoch > o.epochs) {
          throw new ModelError(
            'BAD_INPUT',
            `${stateFile}: the checkpoint has ${ckpt.state.epoch} epochs done, more than the ${o.epochs} asked for`,
          );
        }
        const weightsFile = join(dir, MODEL_DIR, 'weights.safetensors');
        for (const [name, p] of params) {
          const w = ckpt.weights.get(name);
          if (!w || w.data.length !== p.size) {
            throw new ModelError(
              'BAD_FILE',
              `${weightsFile}: the checkpoint's ${name} is missing or has the wrong size for this model`,
            );
          }
          engine.write(p, w.data);
        }
        const tensorsFile = join(dir, TENSORS_FILE);
        for (const [name, v] of momentum) {
          const saved = ckpt.tensors.get(`momentum.${name}`);
          if (!saved || saved.data.length !== v.size) {
            throw new ModelError(
              'BAD_FILE',
              `${tensorsFile}: momentum for ${name} is missing or has the wrong size`,
            );
          }
          engine.write(v, saved.data);
        }
        const savedBank = ckpt.tensors.get('bank');
        if (!savedBank || savedBank.data.length !== N * K) {
          throw new ModelError(
            'BAD_FILE',
            `${tensorsFile}: the memory bank does not match this training set (${N} x ${K})`,
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
    // The loss runs on the engine (a copy of the bank there, its codes rewritten each step) unless the bank or
    // the batch's B x N pair matrices are too big for one tensor; then on the CPU (the float64 reference).
    const largest = Math.max(N * K, N * C, o.batch * N) * 4;
    const needed = (N * K + N * C + 3 * o.batch * N) * 4;
    if (largest <= engine.maxTensorBytes && 2 * needed <= engine.memoryBytesLeft) {
      const codes = engine.empty([N, K]);
      try {
        engineBank = { codes, labels: engine.tensor([N, C], Float32Array.from(labels)) };
      } catch (e) {
        codes.release(); // nothing of the bank stays behind when its second tensor cannot be had
        throw e;
      }
    }
    const totalSamples = (o.epochs - startEpoch) * N;
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
        const x = engine.tensor([B, net.inputSize], pixels);
        const xn = net.normalize(x, B);
        x.release();
        const seed = pcgHash((o.seed + epoch * 1_000_003 + step) >>> 0);
        const { output, tape } = net.forward(xn, B, { train: true, seed, tape: true });
        const f = await engine.read(output);
        const u = Float64Array.from(f, tanh);
        const batchLabels = new Uint8Array(B * C);
        for (let i = 0; i < B; i++) {
          batchLabels.set(labels.subarray(idx[i] * C, (idx[i] + 1) * C), i * C);
          for (let k = 0; k < K; k++) bank[idx[i] * K + k] = u[i * K + k];
        }
        const lossInput = {
          u,
          labels: batchLabels,
          bank,
          bankLabels: labels,
          bits: K,
          classes: C,
          eta: o.eta,
          balance: o.balance,
        };
        if (engineBank) engine.write(engineBank.codes, bank);
        const { loss, grad } = engineBank
          ? await pairwiseLossOnEngine(engine, lossInput, engineBank)
          : pairwiseLoss(lossInput);
        // Through u = tanh(f): dL/df = dL/du * (1 - u^2).
        const dF = engine.tensor(
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
          engine.sgdMomentumStep(p, grads.get(name)!, momentum.get(name)!, {
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
          ...(options.checkpointInfo ? { info: options.checkpointInfo } : {}),
        });
      }
      if (options.stopAfterEpochs !== undefined && epoch + 1 - startEpoch >= options.stopAfterEpochs) break;
    }
    return {
      losses,
      epochs: o.epochs,
      seconds: (performance.now() - started) / 1000,
      resumedFrom: startEpoch,
    };
  }
}
