// `dhta bench encode`: the ONNX writer's bytes decoded by a protobuf reader written here (independently of the
// writer) and evaluated by a small float64 interpreter against our engine's encode; option checks; the
// installer's errors without npm or network; a run without a peer. ONNX Runtime itself is not needed (the
// run with --peer onnxruntime is the benchmark's, not the tests').
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SeededRandom } from '@dhta/kernels/reference';
import { type ImageModelSpec, initWeights, saveBundle, videoNet } from '@dhta/models';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { benchEncode, registerBenchEncode } from '../src/bench-encode.js';
import { openNetwork } from '../src/gpu.js';
import { imageModelToOnnx, ProtoWriter } from '../src/peers/onnx.js';
import { ensureOnnxRuntime } from '../src/peers/onnxruntime.js';

// ---- A protobuf reader (wire format only) and the ONNX messages read with onnx.proto's field numbers ----

type Field = { field: number; wire: number; value: bigint | Uint8Array | number };

function readVarint(b: Uint8Array, at: { i: number }): bigint {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (at.i >= b.length) throw new Error('truncated varint');
    const x = b[at.i++];
    v |= BigInt(x & 0x7f) << shift;
    if (x < 0x80) return v;
    shift += 7n;
  }
}

function decode(b: Uint8Array): Field[] {
  const out: Field[] = [];
  const at = { i: 0 };
  while (at.i < b.length) {
    const tag = Number(readVarint(b, at));
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ field, wire, value: readVarint(b, at) });
    else if (wire === 2) {
      const len = Number(readVarint(b, at));
      if (at.i + len > b.length) throw new Error('truncated bytes');
      out.push({ field, wire, value: b.subarray(at.i, at.i + len) });
      at.i += len;
    } else if (wire === 5) {
      out.push({ field, wire, value: new DataView(b.buffer, b.byteOffset + at.i, 4).getFloat32(0, true) });
      at.i += 4;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

const all = (fs: Field[], n: number) => fs.filter((f) => f.field === n);
const str = (f: Field) => new TextDecoder().decode(f.value as Uint8Array);
const strs = (fs: Field[], n: number) => all(fs, n).map(str);
const int = (fs: Field[], n: number) => {
  const f = all(fs, n);
  expect(f).toHaveLength(1);
  expect(f[0].wire).toBe(0);
  return Number(BigInt.asIntN(64, f[0].value as bigint));
};
const ints = (fs: Field[], n: number) => all(fs, n).map((f) => Number(BigInt.asIntN(64, f.value as bigint)));
const sub = (fs: Field[], n: number) => all(fs, n).map((f) => decode(f.value as Uint8Array));

interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, { type: number; i?: number; ints?: number[]; f?: number }>;
}
interface OnnxModel {
  irVersion: number;
  opsets: Array<{ domain: string; version: number }>;
  nodes: OnnxNode[];
  inits: Map<string, { dims: number[]; dataType: number; data: Float32Array }>;
  inputs: Array<{ name: string; elemType: number; dims: Array<number | string> }>;
  outputs: Array<{ name: string; elemType: number; dims: Array<number | string> }>;
}

function valueInfo(fs: Field[]) {
  const [type] = sub(fs, 2);
  const [tensor] = sub(type, 1);
  const [shape] = sub(tensor, 2);
  const dims = sub(shape, 1).map((d) => (all(d, 2).length ? strs(d, 2)[0] : int(d, 1)));
  return { name: strs(fs, 1)[0], elemType: int(tensor, 1), dims };
}

function readOnnx(bytes: Uint8Array): OnnxModel {
  const m = decode(bytes);
  const [g] = sub(m, 7);
  return {
    irVersion: int(m, 1),
    opsets: sub(m, 8).map((o) => ({ domain: strs(o, 1)[0] ?? '', version: int(o, 2) })),
    nodes: sub(g, 1).map((n) => ({
      op: strs(n, 4)[0],
      inputs: strs(n, 1),
      outputs: strs(n, 2),
      attrs: new Map(
        sub(n, 5).map((a) => {
          const type = int(a, 20);
          const fl = all(a, 2);
          return [
            strs(a, 1)[0],
            {
              type,
              i: all(a, 3).length ? int(a, 3) : undefined,
              ints: all(a, 8).length ? ints(a, 8) : undefined,
              f: fl.length ? (fl[0].value as number) : undefined,
            },
          ];
        }),
      ),
    })),
    inits: new Map(
      sub(g, 5).map((t) => {
        const raw = all(t, 9)[0].value as Uint8Array;
        const data = new Float32Array(raw.length / 4);
        const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
        for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(4 * i, true);
        return [strs(t, 8)[0], { dims: ints(t, 1), dataType: int(t, 2), data }];
      }),
    ),
    inputs: sub(g, 11).map(valueInfo),
    outputs: sub(g, 12).map(valueInfo),
  };
}

// ---- A float64 interpreter of the ops the writer emits (ONNX semantics as the operator docs give them) ----

interface Tensor64 {
  dims: number[];
  data: Float64Array;
}

function runOnnx(model: OnnxModel, pixels: Float32Array, dims: number[]): Float64Array {
  const env = new Map<string, Tensor64>();
  for (const [name, t] of model.inits) env.set(name, { dims: t.dims, data: Float64Array.from(t.data) });
  env.set(model.inputs[0].name, { dims, data: Float64Array.from(pixels) });
  const get = (name: string) => {
    const t = env.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t;
  };
  for (const node of model.nodes) {
    const x = get(node.inputs[0]);
    let y: Tensor64;
    switch (node.op) {
      case 'Mul':
      case 'Add': {
        const p = get(node.inputs[1]); // [1, C, 1, 1] per channel
        const [, C, H, W] = x.dims;
        expect(p.dims).toEqual([1, C, 1, 1]);
        const data = x.data.map((v, i) => {
          const c = Math.floor(i / (H * W)) % C;
          return node.op === 'Mul' ? v * p.data[c] : v + p.data[c];
        });
        y = { dims: x.dims, data };
        break;
      }
      case 'Conv': {
        const w = get(node.inputs[1]);
        const b = get(node.inputs[2]);
        const [N, C, H, W] = x.dims;
        const [O, , KH, KW] = w.dims;
        expect(node.attrs.get('kernel_shape')?.ints).toEqual([KH, KW]);
        const [pt, pl, pb, pr] = node.attrs.get('pads')?.ints ?? [0, 0, 0, 0];
        const [sh, sw] = node.attrs.get('strides')?.ints ?? [1, 1];
        const OH = Math.floor((H + pt + pb - KH) / sh) + 1;
        const OW = Math.floor((W + pl + pr - KW) / sw) + 1;
        const data = new Float64Array(N * O * OH * OW);
        for (let n = 0; n < N; n++)
          for (let o = 0; o < O; o++)
            for (let oy = 0; oy < OH; oy++)
              for (let ox = 0; ox < OW; ox++) {
                let s = b.data[o];
                for (let c = 0; c < C; c++)
                  for (let ky = 0; ky < KH; ky++)
                    for (let kx = 0; kx < KW; kx++) {
                      const iy = oy * sh - pt + ky;
                      const ix = ox * sw - pl + kx;
                      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                      s +=
                        x.data[((n * C + c) * H + iy) * W + ix] * w.data[((o * C + c) * KH + ky) * KW + kx];
                    }
                data[((n * O + o) * OH + oy) * OW + ox] = s;
              }
        y = { dims: [N, O, OH, OW], data };
        break;
      }
      case 'Relu':
        y = { dims: x.dims, data: x.data.map((v) => Math.max(0, v)) };
        break;
      case 'MaxPool': {
        const [N, C, H, W] = x.dims;
        const [KH, KW] = node.attrs.get('kernel_shape')?.ints ?? [];
        const [sh, sw] = node.attrs.get('strides')?.ints ?? [1, 1];
        const OH = Math.floor((H - KH) / sh) + 1;
        const OW = Math.floor((W - KW) / sw) + 1;
        const data = new Float64Array(N * C * OH * OW);
        for (let p = 0; p < N * C; p++)
          for (let oy = 0; oy < OH; oy++)
            for (let ox = 0; ox < OW; ox++) {
              let m = Number.NEGATIVE_INFINITY;
              for (let ky = 0; ky < KH; ky++)
                for (let kx = 0; kx < KW; kx++)
                  m = Math.max(m, x.data[(p * H + oy * sh + ky) * W + ox * sw + kx]);
              data[(p * OH + oy) * OW + ox] = m;
            }
        y = { dims: [N, C, OH, OW], data };
        break;
      }
      case 'Flatten':
        expect(node.attrs.get('axis')?.i).toBe(1);
        y = { dims: [x.dims[0], x.dims.slice(1).reduce((a, b) => a * b, 1)], data: x.data };
        break;
      case 'Gemm': {
        expect(node.attrs.get('transB')?.i).toBe(1);
        const w = get(node.inputs[1]);
        const b = get(node.inputs[2]);
        const [N, K] = x.dims;
        const [O, K2] = w.dims;
        expect(K2).toBe(K);
        const data = new Float64Array(N * O);
        for (let n = 0; n < N; n++)
          for (let o = 0; o < O; o++) {
            let s = b.data[o];
            for (let k = 0; k < K; k++) s += x.data[n * K + k] * w.data[o * K + k];
            data[n * O + o] = s;
          }
        y = { dims: [N, O], data };
        break;
      }
      case 'Identity':
        y = x;
        break;
      default:
        throw new Error(`the interpreter has no ${node.op}`);
    }
    env.set(node.outputs[0], y);
  }
  return get(model.outputs[0].name).data;
}

// A tiny model with every layer type, non-square strides of work, two channels with their own mean/std.
const TINY: ImageModelSpec = {
  format: 'dhta-model/1',
  task: 'image',
  bits: 8,
  input: { channels: 2, height: 7, width: 7, mean: [0.25, 0.5], std: [0.5, 0.2] },
  layers: [
    { type: 'conv2d', out: 3, kernel: 3, stride: 1, padding: 1 },
    { type: 'relu' },
    { type: 'maxpool2d', kernel: 2, stride: 2 },
    { type: 'conv2d', out: 4, kernel: 3, stride: 2, padding: 1 },
    { type: 'relu' },
    { type: 'flatten' },
    { type: 'linear', out: 6 },
    { type: 'relu' },
    { type: 'dropout', p: 0.5 },
    { type: 'linear', out: 8 },
  ],
};

describe('the ONNX writer', () => {
  it('writes varints, negative int64, floats and nested messages that decode back', () => {
    const inner = new ProtoWriter().int(1, 300).string(2, 'ab');
    const bytes = new ProtoWriter()
      .int(1, 0)
      .int(2, 2 ** 40 + 5)
      .int(3, -1)
      .float(4, 1.5)
      .ints(5, [1, 128])
      .message(6, inner)
      .bytes(7, new Uint8Array([9, 8]))
      .finish();
    const fs = decode(bytes);
    expect(fs.map((f) => [f.field, f.wire])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 5],
      [5, 0],
      [5, 0],
      [6, 2],
      [7, 2],
    ]);
    expect(fs[1].value).toBe(2n ** 40n + 5n);
    expect(BigInt.asIntN(64, fs[2].value as bigint)).toBe(-1n);
    expect((fs[2].value as bigint) >> 63n).toBe(1n); // ten bytes, two's complement
    expect(fs[3].value).toBe(1.5);
    expect(ints(fs, 5)).toEqual([1, 128]);
    const sub6 = decode(fs[6].value as Uint8Array);
    expect(int(sub6, 1)).toBe(300);
    expect(strs(sub6, 2)).toEqual(['ab']);
    expect([...(fs[7].value as Uint8Array)]).toEqual([9, 8]);
    // Nested twice: the chunks of a nested message are copied once, in place.
    const outer = decode(new ProtoWriter().message(1, new ProtoWriter().bytes(1, bytes)).finish());
    expect([...(decode(outer[0].value as Uint8Array)[0].value as Uint8Array)]).toEqual([...bytes]);
  });

  it("a tiny model's ModelProto parses back: opset 13, symbolic batch, the layers as ONNX nodes, the weights", () => {
    const weights = initWeights(TINY, 3);
    const m = readOnnx(imageModelToOnnx(TINY, weights));
    expect(m.irVersion).toBe(7);
    expect(m.opsets).toEqual([{ domain: '', version: 13 }]);
    expect(m.nodes.map((n) => n.op)).toEqual([
      'Mul',
      'Add',
      'Conv',
      'Relu',
      'MaxPool',
      'Conv',
      'Relu',
      'Flatten',
      'Gemm',
      'Relu',
      'Gemm',
      'Identity',
    ]);
    expect(m.inputs).toEqual([{ name: 'pixels', elemType: 1, dims: ['n', 2, 7, 7] }]);
    expect(m.outputs).toEqual([{ name: 'features', elemType: 1, dims: ['n', 8] }]);
    const conv2 = m.nodes[5];
    expect(conv2.inputs).toEqual(['layers.2.out', 'layers.3.weight', 'layers.3.bias']);
    expect(conv2.attrs.get('pads')).toEqual({ type: 7, ints: [1, 1, 1, 1] });
    expect(conv2.attrs.get('strides')).toEqual({ type: 7, ints: [2, 2] });
    expect(m.nodes[4].attrs.get('kernel_shape')).toEqual({ type: 7, ints: [2, 2] });
    expect(m.nodes[7].attrs.get('axis')).toEqual({ type: 2, i: 1 });
    // Dropout is left out: the last Gemm reads the ReLU's output.
    expect(m.nodes[10].inputs[0]).toBe('layers.7.out');
    for (const [name, w] of weights) {
      const t = m.inits.get(name);
      expect(t?.dims).toEqual(w.shape);
      expect(t?.dataType).toBe(1);
      expect(t?.data).toEqual(w.data);
    }
    expect(m.inits.get('input.scale')?.data).toEqual(Float32Array.from([1 / 0.5, 1 / 0.2]));
    expect(m.inits.get('input.shift')?.data).toEqual(Float32Array.from([-0.25 / 0.5, -0.5 / 0.2]));
    // Every node input is the graph input, an initializer or an earlier node's output.
    const known = new Set(['pixels', ...m.inits.keys()]);
    for (const n of m.nodes) {
      for (const i of n.inputs) expect(known.has(i)).toBe(true);
      for (const o of n.outputs) known.add(o);
    }
  });

  it("the decoded graph, run by a float64 interpreter, gives our engine's features and codes", async () => {
    const weights = initWeights(TINY, 5);
    const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-encode-onnx-'));
    await saveBundle(join(dir, 'm'), { spec: TINY, weights });
    const n = 5;
    const rng = new SeededRandom(11);
    const pixels = Float32Array.from({ length: n * 2 * 7 * 7 }, () => rng.next());
    const f = runOnnx(readOnnx(imageModelToOnnx(TINY, weights)), pixels, [n, 2, 7, 7]);
    const net = await openNetwork(null, join(dir, 'm'), 'wasm', 1);
    try {
      const ours = await net.encode(pixels, n, { batch: 2 });
      let max = 0;
      for (let i = 0; i < f.length; i++) max = Math.max(max, Math.abs(f[i] - ours.features[i]));
      expect(max).toBeLessThan(1e-4);
      expect(Math.max(...f.map(Math.abs))).toBeGreaterThan(1e-3); // not all zeros
      for (let i = 0; i < f.length; i++)
        if (Math.abs(f[i]) > 1e-4) expect(ours.codes[i]).toBe(f[i] < 0 ? -1 : 1);
    } finally {
      net.destroy();
    }
  });
});

/** Runs `dhta bench encode ARGS` in this process; returns stdout's lines. */
async function run(args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const p = new Command().exitOverride();
    registerBenchEncode(p.command('bench'));
    await p.parseAsync(['bench', 'encode', ...args], { from: 'user' });
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return lines;
}

describe('dhta bench encode', () => {
  it('without a peer: --json prints our images per second; --out writes the same JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-encode-'));
    const out = join(dir, 'r.json');
    const lines = await run([
      '--preset',
      'small-cnn',
      '--bits',
      '16',
      '--count',
      '6',
      '--batch',
      '4',
      '--rounds',
      '2',
      '--engine',
      'wasm',
      '--cpu-threads',
      '1',
      '--json',
      '--out',
      out,
    ]);
    const json = lines.filter((l) => l.trim().startsWith('{'));
    expect(json).toHaveLength(1);
    const r = JSON.parse(json[0]);
    expect(r).toMatchObject({
      model: 'preset small-cnn',
      input: [1, 28, 28],
      bits: 16,
      data: 'random (seed 1)',
      count: 6,
      batch: 4,
      rounds: 2,
      engine: 'wasm',
      device: 'WebAssembly SIMD, 1 CPU thread',
    });
    expect(r.runs.ours).toHaveLength(2);
    expect(r.ours.imagesPerSecond).toBe([...r.runs.ours].sort((a: number, b: number) => a - b)[1]);
    expect(r.ours.seconds).toBeCloseTo(6 / r.ours.imagesPerSecond, 9);
    expect(r.peer).toBeUndefined();
    expect(r.ratio).toBeUndefined();
    expect(r.check).toBeUndefined();
    expect(r.loadavg.start).toHaveLength(3);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(r);
    expect(readdirSync(dir)).toEqual(['r.json']);
  });

  it('refuses contradictory or bad options with one clear message, before any work', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--model', 'x', '--preset', 'small-cnn'], /--model DIR or --preset NAME, not both/],
      [['--model', 'x', '--bits', '8'], /--bits applies to --preset only/],
      [['--preset', 'resnet'], /--preset must be small-cnn or vgg11, found "resnet"/],
      [['--peer', 'torch'], /--peer must be onnxruntime, found "torch"/],
      [['--split', 'query'], /--split applies to --data only/],
      [['--split', 'test', '--data', 'mnist'], /--split must be one of train, database, query, found "test"/],
      [['--threads', '2'], /--threads sets the peer's threads/],
      [['--count', '0'], /--count must be an integer from 1 to 10000000, found "0"/],
      [['--batch', '1.5'], /--batch must be an integer/],
      [['--rounds', '1001'], /--rounds must be an integer from 1 to 1000/],
      [['--cpu-threads', '17'], /--cpu-threads must be an integer from 1 to 16/],
      [['--engine', 'cuda'], /unknown engine "cuda"/],
    ];
    for (const [args, message] of cases) await expect(run(args)).rejects.toThrow(message);
    await expect(benchEncode(null, { preset: 'small-cnn', count: 0 })).rejects.toThrow(
      /--count must be an integer >= 1, found 0/,
    );
  });

  it('refuses a video model, naming what the ONNX writer covers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-encode-video-'));
    const spec = videoNet(8, { frames: 2, size: 16 });
    await saveBundle(join(dir, 'v'), { spec, weights: initWeights(spec, 1) });
    await expect(benchEncode(null, { model: join(dir, 'v'), engine: 'wasm', count: 2 })).rejects.toThrow(
      /video models \(frame CNN \+ LSTM\) cannot be written as ONNX/,
    );
    expect(() => imageModelToOnnx(spec, new Map())).toThrow(/image models/);
  });

  it('refuses --data whose items do not fit the model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-bench-encode-data-'));
    await saveBundle(join(dir, 'm'), { spec: TINY, weights: initWeights(TINY, 1) });
    await expect(
      benchEncode(null, { model: join(dir, 'm'), data: 'mnist', engine: 'wasm', count: 2 }),
    ).rejects.toThrow(/--data mnist: the model takes 2x7x7 images, the data set's items are 1x28x28/);
  });
});

describe('installing the peer', () => {
  function peerDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'dhta-ort-peer-'));
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ dependencies: { 'onnxruntime-node': '1.30.0' } }),
    );
    writeFileSync(join(dir, 'package-lock.json'), '{}');
    return dir;
  }

  it('without npm: a clear error that says how to install the peer by hand', async () => {
    const dir = peerDir();
    const log: string[] = [];
    await expect(
      ensureOnnxRuntime({ dir, npm: join(dir, 'no-such-npm'), log: (t) => log.push(t) }),
    ).rejects.toThrow(/cannot run .*no-such-npm to install onnxruntime-node: no such program/);
    expect(log.join('')).toMatch(
      /installing the benchmark peer onnxruntime-node 1\.30\.0 .*npm ci --ignore-scripts/,
    );
  });

  it('when npm fails (no network): its last lines and a hint about the network', async () => {
    const dir = peerDir();
    const npm = join(dir, 'fake-npm');
    writeFileSync(
      npm,
      '#!/bin/sh\necho "npm error code ENOTFOUND" >&2\necho "npm error network request failed" >&2\nexit 1\n',
    );
    chmodSync(npm, 0o755);
    const err = (await ensureOnnxRuntime({ dir, npm, log: () => {} }).catch((e: unknown) => e)) as Error & {
      hint?: string;
    };
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toMatch(
      /npm ci --ignore-scripts --no-audit --no-fund` in .* failed \(exit code 1\): npm error code ENOTFOUND \| npm error network request failed/,
    );
    expect(err?.hint).toMatch(/check the network/);
  });

  it('when npm succeeds but installs nothing, and when the version is already there', async () => {
    const dir = peerDir();
    const npm = join(dir, 'fake-npm');
    writeFileSync(npm, '#!/bin/sh\nexit 0\n');
    chmodSync(npm, 0o755);
    await expect(ensureOnnxRuntime({ dir, npm, log: () => {} })).rejects.toThrow(
      /expected onnxruntime-node 1\.30\.0 in .*node_modules, found none/,
    );
    mkdirSync(join(dir, 'node_modules/onnxruntime-node'), { recursive: true });
    writeFileSync(
      join(dir, 'node_modules/onnxruntime-node/package.json'),
      JSON.stringify({ version: '1.30.0' }),
    );
    // Installed: npm is not run at all.
    await expect(ensureOnnxRuntime({ dir, npm: join(dir, 'no-such-npm'), log: () => {} })).resolves.toEqual({
      dir,
      version: '1.30.0',
    });
  });

  it('refuses a peer package.json that does not pin an exact version', async () => {
    const dir = peerDir();
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ dependencies: { 'onnxruntime-node': '^1.30.0' } }),
    );
    await expect(ensureOnnxRuntime({ dir, log: () => {} })).rejects.toThrow(
      /must pin onnxruntime-node at an exact version/,
    );
  });

  it("the repository's peer folder pins 1.30.x with a lockfile that names no registry host", () => {
    const dir = fileURLToPath(new URL('../../../bench/peers/onnxruntime', import.meta.url));
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(pkg.dependencies['onnxruntime-node']).toMatch(/^1\.30\.\d+$/);
    const lock = readFileSync(join(dir, 'package-lock.json'), 'utf8');
    expect(JSON.parse(lock).packages['node_modules/onnxruntime-node'].version).toBe(
      pkg.dependencies['onnxruntime-node'],
    );
    expect(lock).not.toMatch(/"resolved"/);
  });
});
