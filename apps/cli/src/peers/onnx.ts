// An ONNX model writer for dhta's image models: the protobuf encoding of onnx.proto's ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto and ValueInfoProto (only the fields an inference graph of these layers
// needs), so that `dhta bench encode --peer onnxruntime` can run the same network on ONNX Runtime without
// any Python or converter. Field numbers are onnx.proto's (proto2; repeated scalars written unpacked, which
// every protobuf parser accepts).
import type { ImageModelSpec, LayerSpec, ModelSpec, Weights } from '@dhta/models';
import { CliError } from '../errors.js';

/** ONNX operator set the graph is written for (Conv, MaxPool, Flatten, Gemm, Mul, Add, Relu, Identity). */
export const ONNX_OPSET = 13;
/** IR version 7 is the one that goes with opset 13 (ONNX 1.8). */
export const ONNX_IR_VERSION = 7;
/** The graph's input (float32 [n, C, H, W], pixels in [0, 1]) and output (float32 [n, bits], f(x)). */
export const ONNX_INPUT = 'pixels';
export const ONNX_OUTPUT = 'features';

/** onnx.proto field numbers (the subset written here). */
export const FIELDS = {
  model: { irVersion: 1, producerName: 2, producerVersion: 3, docString: 6, graph: 7, opsetImport: 8 },
  opset: { domain: 1, version: 2 },
  graph: { node: 1, name: 2, initializer: 5, input: 11, output: 12 },
  node: { input: 1, output: 2, name: 3, opType: 4, attribute: 5 },
  attribute: { name: 1, f: 2, i: 3, ints: 8, type: 20 },
  tensor: { dims: 1, dataType: 2, name: 8, rawData: 9 },
  valueInfo: { name: 1, type: 2 },
  type: { tensorType: 1 },
  tensorType: { elemType: 1, shape: 2 },
  shape: { dim: 1 },
  dim: { value: 1, param: 2 },
} as const;

/** AttributeProto.AttributeType values used here. */
export const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, INTS: 7 } as const;
/** TensorProto.DataType.FLOAT. */
export const DATA_TYPE_FLOAT = 1;

const WIRE_VARINT = 0;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

/**
 * A protobuf message being written: a list of chunks (nested messages and large byte fields are kept by
 * reference and copied once, in `finish`).
 */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private pending: number[] = [];
  length = 0;

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  private byte(b: number): void {
    this.pending.push(b);
    this.length++;
  }

  /** A varint: non-negative integers up to 2^53 directly; negative ones as 64-bit two's complement. */
  private varint(v: number | bigint): void {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      let x = v;
      while (x >= 0x80) {
        this.byte((x % 0x80) | 0x80);
        x = Math.floor(x / 0x80);
      }
      this.byte(x);
      return;
    }
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** An int32 / int64 / enum field. */
  int(field: number, v: number): this {
    if (!Number.isSafeInteger(v)) throw new Error(`ProtoWriter: ${v} is not an integer`);
    this.tag(field, WIRE_VARINT);
    this.varint(v);
    return this;
  }

  /** A repeated int64 field, one tag per element (proto2's default, unpacked). */
  ints(field: number, vs: readonly number[]): this {
    for (const v of vs) this.int(field, v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.byte(x);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LENGTH);
    this.varint(data.length);
    this.flush();
    this.chunks.push(data);
    this.length += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    m.flush();
    this.tag(field, WIRE_LENGTH);
    this.varint(m.length);
    this.flush();
    this.chunks.push(...m.chunks);
    this.length += m.length;
    return this;
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

type Attribute = { name: string } & ({ int: number } | { ints: number[] } | { float: number });

function attribute(a: Attribute): ProtoWriter {
  const f = FIELDS.attribute;
  const w = new ProtoWriter().string(f.name, a.name);
  if ('int' in a) w.int(f.i, a.int).int(f.type, ATTRIBUTE_TYPE.INT);
  else if ('ints' in a) w.ints(f.ints, a.ints).int(f.type, ATTRIBUTE_TYPE.INTS);
  else w.float(f.f, a.float).int(f.type, ATTRIBUTE_TYPE.FLOAT);
  return w;
}

function node(
  opType: string,
  name: string,
  inputs: string[],
  outputs: string[],
  attributes: Attribute[] = [],
): ProtoWriter {
  const f = FIELDS.node;
  const w = new ProtoWriter();
  for (const i of inputs) w.string(f.input, i);
  for (const o of outputs) w.string(f.output, o);
  w.string(f.name, name).string(f.opType, opType);
  for (const a of attributes) w.message(f.attribute, attribute(a));
  return w;
}

/** A float32 initializer, its values as raw little-endian bytes. */
function floatTensor(name: string, dims: number[], data: Float32Array): ProtoWriter {
  const f = FIELDS.tensor;
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`floatTensor ${name}: dims [${dims}] hold ${count} values, found ${data.length}`);
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  return new ProtoWriter()
    .ints(f.dims, dims)
    .int(f.dataType, DATA_TYPE_FLOAT)
    .string(f.name, name)
    .bytes(f.rawData, raw);
}

/** A float32 tensor's ValueInfoProto; a string dimension is symbolic (dim_param), a number fixed. */
function valueInfo(name: string, dims: Array<number | string>): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(FIELDS.dim.value, d);
    else dim.string(FIELDS.dim.param, d);
    shape.message(FIELDS.shape.dim, dim);
  }
  const tensorType = new ProtoWriter()
    .int(FIELDS.tensorType.elemType, DATA_TYPE_FLOAT)
    .message(FIELDS.tensorType.shape, shape);
  const type = new ProtoWriter().message(FIELDS.type.tensorType, tensorType);
  return new ProtoWriter().string(FIELDS.valueInfo.name, name).message(FIELDS.valueInfo.type, type);
}

/** Refuses what the writer cannot express (video models: the LSTM is not written), in the CLI's words. */
export function assertOnnxWritable(spec: ModelSpec): asserts spec is ImageModelSpec {
  if (spec.task !== 'image') {
    throw new CliError(
      'bench encode: video models (frame CNN + LSTM) cannot be written as ONNX here; the ONNX writer covers ' +
        'image models (conv2d, relu, maxpool2d, flatten, linear, dropout)',
      'use an image model bundle, or --preset small-cnn',
    );
  }
}

function weight(weights: Weights, name: string): { shape: number[]; data: Float32Array } {
  const w = weights.get(name);
  if (!w) throw new CliError(`bench encode: the weights have no tensor "${name}" that the model needs`);
  return w;
}

/**
 * The ONNX model (bytes of a ModelProto) computing f(x) of an image model on pixels in [0, 1]: the model's
 * normalisation as Mul by 1/std and Add of -mean/std per channel (the same float32 constants and order as
 * our engine's), then per layer Conv (pads, strides), Relu, MaxPool (floor mode), Flatten (axis 1), Gemm
 * (transB = 1, PyTorch's [out, in] weights), dropout left out (the identity at inference). Opset 13, batch
 * dimension symbolic ("n"). Initializers carry the PyTorch weight names.
 */
export function imageModelToOnnx(spec: ModelSpec, weights: Weights, producerVersion = '0.1.0'): Uint8Array {
  assertOnnxWritable(spec);
  const { channels: C, height: H, width: W, mean, std } = spec.input;
  const graph = new ProtoWriter();
  const nodes: ProtoWriter[] = [];
  const inits: ProtoWriter[] = [];
  const perChannel = [1, C, 1, 1];
  inits.push(
    floatTensor(
      'input.scale',
      perChannel,
      Float32Array.from(std, (s) => 1 / s),
    ),
    floatTensor(
      'input.shift',
      perChannel,
      Float32Array.from(mean, (m, c) => -m / std[c]),
    ),
  );
  nodes.push(node('Mul', 'input.mul', [ONNX_INPUT, 'input.scale'], ['input.scaled']));
  nodes.push(node('Add', 'input.add', ['input.scaled', 'input.shift'], ['input.normalized']));
  let x = 'input.normalized';
  spec.layers.forEach((layer: LayerSpec, i) => {
    const name = `layers.${i}`;
    const out = `${name}.out`;
    switch (layer.type) {
      case 'conv2d': {
        const w = weight(weights, `${name}.weight`);
        const b = weight(weights, `${name}.bias`);
        inits.push(
          floatTensor(`${name}.weight`, w.shape, w.data),
          floatTensor(`${name}.bias`, b.shape, b.data),
        );
        const p = layer.padding ?? 0;
        const s = layer.stride ?? 1;
        nodes.push(
          node(
            'Conv',
            name,
            [x, `${name}.weight`, `${name}.bias`],
            [out],
            [
              { name: 'kernel_shape', ints: [layer.kernel, layer.kernel] },
              { name: 'pads', ints: [p, p, p, p] },
              { name: 'strides', ints: [s, s] },
            ],
          ),
        );
        break;
      }
      case 'relu':
        nodes.push(node('Relu', name, [x], [out]));
        break;
      case 'maxpool2d': {
        const s = layer.stride ?? layer.kernel;
        nodes.push(
          node(
            'MaxPool',
            name,
            [x],
            [out],
            [
              { name: 'kernel_shape', ints: [layer.kernel, layer.kernel] },
              { name: 'strides', ints: [s, s] },
            ],
          ),
        );
        break;
      }
      case 'flatten':
        nodes.push(node('Flatten', name, [x], [out], [{ name: 'axis', int: 1 }]));
        break;
      case 'linear': {
        const w = weight(weights, `${name}.weight`);
        const b = weight(weights, `${name}.bias`);
        inits.push(
          floatTensor(`${name}.weight`, w.shape, w.data),
          floatTensor(`${name}.bias`, b.shape, b.data),
        );
        nodes.push(
          node('Gemm', name, [x, `${name}.weight`, `${name}.bias`], [out], [{ name: 'transB', int: 1 }]),
        );
        break;
      }
      case 'dropout':
        return; // the identity at inference: no node, x stays the same tensor
    }
    x = out;
  });
  nodes.push(node('Identity', 'output', [x], [ONNX_OUTPUT]));

  const g = FIELDS.graph;
  for (const n of nodes) graph.message(g.node, n);
  graph.string(g.name, 'dhta');
  for (const t of inits) graph.message(g.initializer, t);
  graph.message(g.input, valueInfo(ONNX_INPUT, ['n', C, H, W]));
  graph.message(g.output, valueInfo(ONNX_OUTPUT, ['n', spec.bits]));

  const m = FIELDS.model;
  const opset = new ProtoWriter().string(FIELDS.opset.domain, '').int(FIELDS.opset.version, ONNX_OPSET);
  return new ProtoWriter()
    .int(m.irVersion, ONNX_IR_VERSION)
    .string(m.producerName, 'dhta')
    .string(m.producerVersion, producerVersion)
    .string(
      m.docString,
      `f(x) of a dhta ${spec.bits}-bit image hashing model; codes are sign(f(x)), sign(0) = +1`,
    )
    .message(m.graph, graph)
    .message(m.opsetImport, opset)
    .finish();
}
