// model.json: validation (with errors that name the layer and the field), shape inference through the
// layers, and the weight names and shapes a model implies.
import { ModelError } from './errors.js';
import type { ImageModelSpec, InputSpec, LayerSpec, ModelSpec, VideoModelSpec, Weights } from './types.js';

export const MODEL_FORMAT = 'dhta-model/1';
export const LAYER_TYPES = ['conv2d', 'relu', 'maxpool2d', 'flatten', 'linear', 'dropout'] as const;

const LAYER_KEYS: Record<LayerSpec['type'], string[]> = {
  conv2d: ['out', 'kernel', 'stride', 'padding'],
  relu: [],
  maxpool2d: ['kernel', 'stride'],
  flatten: [],
  linear: ['out'],
  dropout: ['p'],
};

function specError(where: string, message: string): ModelError {
  return new ModelError('BAD_SPEC', `${where}: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The largest size a model may have anywhere: a field's value, the values of one object at any layer, a
 * weight tensor's values (2^31 - 1; larger would not fit a typed array or a GPU buffer).
 */
export const MAX_MODEL_SIZE = 2 ** 31 - 1;

function int(where: string, field: string, v: unknown, min: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_MODEL_SIZE) {
    throw specError(
      where,
      `"${field}" must be an integer >= ${min} (and at most ${MAX_MODEL_SIZE}), found ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/** Refuses a size over MAX_MODEL_SIZE (SHAPE_MISMATCH), naming what it is the size of. */
function checkSize(where: string, what: string, shape: number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n > MAX_MODEL_SIZE) {
    throw new ModelError(
      'SHAPE_MISMATCH',
      `${where}: ${what} [${shape.join(', ')}] holds ${n} values, over the limit of ${MAX_MODEL_SIZE}; use smaller layers or inputs`,
    );
  }
}

function noExtraKeys(where: string, o: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw specError(where, `unknown field "${k}"; allowed: ${allowed.join(', ') || '(none)'}`);
    }
  }
}

function validateLayer(where: string, v: unknown): LayerSpec {
  if (!isObject(v)) throw specError(where, `expected a layer object, found ${JSON.stringify(v)}`);
  const type = v['type'];
  if (typeof type !== 'string' || !(LAYER_TYPES as readonly string[]).includes(type)) {
    throw new ModelError(
      'UNKNOWN_LAYER',
      `${where}: unknown layer type ${JSON.stringify(type)}; the supported types are ${LAYER_TYPES.join(', ')}`,
    );
  }
  const t = type as LayerSpec['type'];
  noExtraKeys(where, v, ['type', ...LAYER_KEYS[t]]);
  switch (t) {
    case 'conv2d':
      return {
        type: t,
        out: int(where, 'out', v['out'], 1),
        kernel: int(where, 'kernel', v['kernel'], 1),
        stride: int(where, 'stride', v['stride'], 1, 1),
        padding: int(where, 'padding', v['padding'], 0, 0),
      };
    case 'maxpool2d': {
      const kernel = int(where, 'kernel', v['kernel'], 1);
      return { type: t, kernel, stride: int(where, 'stride', v['stride'], 1, kernel) };
    }
    case 'linear':
      return { type: t, out: int(where, 'out', v['out'], 1) };
    case 'dropout': {
      const p = v['p'];
      if (typeof p !== 'number' || !(p >= 0 && p < 1)) {
        throw specError(where, `"p" must be a number in [0, 1), found ${JSON.stringify(p)}`);
      }
      return { type: t, p };
    }
    default:
      return { type: t } as LayerSpec;
  }
}

function validateLayers(where: string, v: unknown): LayerSpec[] {
  if (!Array.isArray(v)) throw specError(where, `expected a list of layers, found ${JSON.stringify(v)}`);
  return v.map((l, i) => validateLayer(`${where}[${i}]`, l));
}

function validateInput(where: string, v: unknown): InputSpec {
  if (!isObject(v)) throw specError(where, 'expected {channels, height, width, mean, std}');
  noExtraKeys(where, v, ['channels', 'height', 'width', 'mean', 'std']);
  const channels = int(where, 'channels', v['channels'], 1);
  const height = int(where, 'height', v['height'], 1);
  const width = int(where, 'width', v['width'], 1);
  const vec = (field: 'mean' | 'std'): number[] => {
    const a = v[field];
    if (
      !Array.isArray(a) ||
      a.length !== channels ||
      a.some((x) => typeof x !== 'number' || !Number.isFinite(x))
    ) {
      throw specError(
        where,
        `"${field}" must be a list of ${channels} finite numbers (one per channel), found ${JSON.stringify(a)}`,
      );
    }
    if (field === 'std' && a.some((x) => x <= 0)) {
      throw specError(where, `"std" values must be > 0, found ${JSON.stringify(a)}`);
    }
    return [...a] as number[];
  };
  return { channels, height, width, mean: vec('mean'), std: vec('std') };
}

/**
 * Checks a parsed model.json and returns it as a ModelSpec (defaults filled in: conv stride 1, padding 0;
 * max-pool stride = kernel). Shapes are checked too (see `inferShapes`). `source` names the file in errors.
 */
export function validateSpec(value: unknown, source = 'model.json'): ModelSpec {
  if (!isObject(value)) throw specError(source, 'expected a JSON object');
  if (value['format'] !== MODEL_FORMAT) {
    throw specError(source, `"format" must be "${MODEL_FORMAT}", found ${JSON.stringify(value['format'])}`);
  }
  const task = value['task'];
  const bits = int(source, 'bits', value['bits'], 1);
  const input = validateInput(`${source} input`, value['input']);
  const card = value['card'];
  if (card !== undefined && !isObject(card)) throw specError(source, '"card" must be an object when present');
  let spec: ModelSpec;
  if (task === 'image') {
    noExtraKeys(source, value, ['format', 'task', 'bits', 'input', 'layers', 'card']);
    spec = {
      format: MODEL_FORMAT,
      task,
      bits,
      input,
      layers: validateLayers(`${source} layers`, value['layers']),
    };
  } else if (task === 'video') {
    noExtraKeys(source, value, [
      'format',
      'task',
      'bits',
      'frames',
      'input',
      'frame',
      'lstm',
      'head',
      'card',
    ]);
    const lstm = value['lstm'];
    if (!isObject(lstm)) throw specError(`${source} lstm`, 'expected {hidden, pool}');
    noExtraKeys(`${source} lstm`, lstm, ['hidden', 'pool']);
    const pool = lstm['pool'];
    if (pool !== 'last' && pool !== 'mean') {
      throw specError(`${source} lstm`, `"pool" must be "last" or "mean", found ${JSON.stringify(pool)}`);
    }
    spec = {
      format: MODEL_FORMAT,
      task,
      bits,
      frames: int(source, 'frames', value['frames'], 1),
      input,
      frame: validateLayers(`${source} frame`, value['frame']),
      lstm: { hidden: int(`${source} lstm`, 'hidden', lstm['hidden'], 1), pool },
      head: validateLayers(`${source} head`, value['head']),
    };
  } else {
    throw specError(source, `"task" must be "image" or "video", found ${JSON.stringify(task)}`);
  }
  if (card !== undefined) spec.card = card as Record<string, unknown>;
  inferShapes(spec);
  return spec;
}

/** A layer with the per-object shapes around it and the name prefix of its weights. */
export interface LayerInfo {
  layer: LayerSpec;
  /** Weight-name prefix and index: `layers.3`, `frame.0`, `head.1`. */
  name: string;
  /** Per-object input and output shapes: [C, H, W] or [F]. */
  input: number[];
  output: number[];
}

export interface ShapeInfo {
  /** Image: the layers. Video: the frame network. */
  layers: LayerInfo[];
  /** Video only: the head. */
  head: LayerInfo[];
  /** Video only: features per frame (the LSTM's input size). */
  frameFeatures: number;
  /** The largest activation of one object, in floats (for chunking). */
  maxActivation: number;
}

function walk(prefix: string, layers: LayerSpec[], input: number[], where: string): LayerInfo[] {
  const out: LayerInfo[] = [];
  let shape = input;
  layers.forEach((layer, i) => {
    const at = `${where} layer ${i} (${layer.type})`;
    const mismatch = (msg: string) => new ModelError('SHAPE_MISMATCH', `${at}: ${msg}`);
    let next: number[];
    switch (layer.type) {
      case 'conv2d':
      case 'maxpool2d': {
        if (shape.length !== 3) {
          throw mismatch(
            `expects an image [C, H, W], found a flat vector of ${shape[0]}; put it before the flatten layer`,
          );
        }
        const [C, H, W] = shape;
        const k = layer.kernel;
        const s = layer.stride ?? (layer.type === 'conv2d' ? 1 : k);
        const p = layer.type === 'conv2d' ? (layer.padding ?? 0) : 0;
        const OH = Math.floor((H + 2 * p - k) / s) + 1;
        const OW = Math.floor((W + 2 * p - k) / s) + 1;
        if (OH < 1 || OW < 1 || (layer.type === 'maxpool2d' && (k > H || k > W))) {
          throw mismatch(
            `a ${k}x${k} kernel does not fit its ${H}x${W} input${p ? ` (padding ${p})` : ''}; use a larger input or fewer pooling layers`,
          );
        }
        next = [layer.type === 'conv2d' ? layer.out : C, OH, OW];
        break;
      }
      case 'flatten':
        next = [shape.reduce((a, b) => a * b, 1)];
        break;
      case 'linear':
        if (shape.length !== 1) {
          throw mismatch(`expects a flat vector, found [${shape.join(', ')}]; add a flatten layer before it`);
        }
        next = [layer.out];
        break;
      default:
        next = shape;
    }
    checkSize(at, 'its output', next);
    if (layer.type === 'conv2d')
      checkSize(at, 'its weight', [layer.out, shape[0], layer.kernel, layer.kernel]);
    if (layer.type === 'linear') checkSize(at, 'its weight', [layer.out, shape[0]]);
    out.push({ layer, name: `${prefix}.${i}`, input: shape, output: next });
    shape = next;
  });
  return out;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function outputOf(infos: LayerInfo[], input: number[]): number[] {
  return infos.length > 0 ? infos[infos.length - 1].output : input;
}

/** Per-object shapes through every layer; throws SHAPE_MISMATCH naming the layer that does not fit. */
export function inferShapes(spec: ModelSpec): ShapeInfo {
  const { channels, height, width } = spec.input;
  const input = [channels, height, width];
  checkSize('input', 'one image', input);
  if (spec.task === 'image') {
    const layers = walk('layers', spec.layers, input, 'layers');
    const out = outputOf(layers, input);
    if (out.length !== 1 || out[0] !== spec.bits) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `the network's output is [${out.join(', ')}] per object, but "bits" is ${spec.bits}; end with {"type": "linear", "out": ${spec.bits}}`,
      );
    }
    const maxActivation = Math.max(size(input), ...layers.map((l) => size(l.output)));
    return { layers, head: [], frameFeatures: 0, maxActivation };
  }
  const frame = walk('frame', spec.frame, input, 'frame');
  const feat = outputOf(frame, input);
  if (feat.length !== 1) {
    throw new ModelError(
      'SHAPE_MISMATCH',
      `the frame network's output is [${feat.join(', ')}] per frame; the LSTM needs a flat vector: end it with a flatten (or linear) layer`,
    );
  }
  const H = spec.lstm.hidden;
  const head = walk('head', spec.head, [H], 'head');
  const out = outputOf(head, [H]);
  if (out.length !== 1 || out[0] !== spec.bits) {
    throw new ModelError(
      'SHAPE_MISMATCH',
      `the head's output is [${out.join(', ')}] per video, but "bits" is ${spec.bits}; end the head with {"type": "linear", "out": ${spec.bits}}`,
    );
  }
  const T = spec.frames;
  checkSize('input', 'one video', [T, ...input]);
  checkSize('lstm', 'its input weight', [4 * H, feat[0]]);
  checkSize('lstm', 'its hidden weight', [4 * H, H]);
  const maxActivation = Math.max(
    T * size(input),
    ...frame.map((l) => T * size(l.output)),
    T * 4 * H,
    ...head.map((l) => size(l.output)),
  );
  checkSize('frame', 'the activations of one video', [maxActivation]);
  return { layers: frame, head, frameFeatures: feat[0], maxActivation };
}

function layerWeights(infos: LayerInfo[], into: Map<string, number[]>): void {
  for (const { layer, name, input } of infos) {
    if (layer.type === 'conv2d') {
      into.set(`${name}.weight`, [layer.out, input[0], layer.kernel, layer.kernel]);
      into.set(`${name}.bias`, [layer.out]);
    } else if (layer.type === 'linear') {
      into.set(`${name}.weight`, [layer.out, input[0]]);
      into.set(`${name}.bias`, [layer.out]);
    }
  }
}

/** Every weight the model needs, by PyTorch name, with its shape (in a stable order: layer by layer). */
export function expectedWeights(spec: ModelSpec): Map<string, number[]> {
  const shapes = inferShapes(spec);
  const out = new Map<string, number[]>();
  layerWeights(shapes.layers, out);
  if (spec.task === 'video') {
    const H = spec.lstm.hidden;
    out.set('lstm.weight_ih_l0', [4 * H, shapes.frameFeatures]);
    out.set('lstm.weight_hh_l0', [4 * H, H]);
    out.set('lstm.bias_ih_l0', [4 * H]);
    out.set('lstm.bias_hh_l0', [4 * H]);
    layerWeights(shapes.head, out);
  }
  return out;
}

/**
 * Checks that `weights` holds exactly the tensors the model needs, with the right shapes: MISSING_TENSOR,
 * SHAPE_MISMATCH or UNEXPECTED_TENSOR naming the tensor (and its layer).
 */
export function validateWeights(spec: ModelSpec, weights: Weights, source = 'weights.safetensors'): void {
  const expected = expectedWeights(spec);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (!t) {
      throw new ModelError(
        'MISSING_TENSOR',
        `${source}: the tensor "${name}" of shape [${shape.join(', ')}] is missing (the model.json layer ${describe(spec, name)} needs it)`,
      );
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `${source}: the tensor "${name}" has shape [${t.shape.join(', ')}], but the model.json layer ${describe(spec, name)} needs [${shape.join(', ')}]`,
      );
    }
    if (t.data.length !== size(shape)) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `${source}: the tensor "${name}" holds ${t.data.length} values, its shape ${size(shape)}`,
      );
    }
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) {
      throw new ModelError(
        'UNEXPECTED_TENSOR',
        `${source}: the tensor "${name}" is not used by the model (expected only ${[...expected.keys()].join(', ')}); check the layer indices in model.json`,
      );
    }
  }
}

function describe(spec: ModelSpec, name: string): string {
  const [section, index] = name.split('.');
  if (section === 'lstm') return 'lstm';
  const list =
    spec.task === 'image' ? spec.layers : section === 'frame' ? spec.frame : (spec as VideoModelSpec).head;
  const layer = list[Number(index)];
  return `${section}[${index}] (${layer?.type ?? '?'})`;
}

/** Floats per object (C*H*W, or T*C*H*W for video). */
export function inputSizeOf(spec: ModelSpec): number {
  const { channels, height, width } = spec.input;
  return (spec.task === 'video' ? spec.frames : 1) * channels * height * width;
}

export type { ImageModelSpec, VideoModelSpec };
