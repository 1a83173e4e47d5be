// One Network, two engines: the same model code on the WebAssembly engine and on WebGPU gives the same
// normalisation, features, codes, input gradients, weight gradients (dropout masks included) and training
// steps, for image and video models.
import { type Engine, type EngineTensor, WebGpuEngine } from '@dhta/kernels';
import { SeededRandom } from '@dhta/kernels/reference';
import { WasmEngine } from '@dhta/kernels/wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { createNetwork, initWeights, type ModelSpec, smallCnn, videoNet } from '../src/index.js';
import { relativeError, useGpu } from './helpers.js';

// What smallCnn lacks: a standalone ReLU, a stride-2 conv without padding, an overlapping pool (kernel 3,
// stride 2), dropout, three channels with their own normalisation, and odd sizes.
function oddNet(): ModelSpec {
  return {
    format: 'dhta-model/1',
    task: 'image',
    bits: 12,
    input: { channels: 3, height: 15, width: 13, mean: [0.5, 0.4, 0.3], std: [0.3, 0.2, 0.25] },
    layers: [
      { type: 'conv2d', out: 7, kernel: 3, padding: 1 },
      { type: 'relu' },
      { type: 'maxpool2d', kernel: 3, stride: 2 },
      { type: 'conv2d', out: 5, kernel: 2, stride: 2 },
      { type: 'relu' },
      { type: 'dropout', p: 0.3 },
      { type: 'flatten' },
      { type: 'linear', out: 9 },
      { type: 'relu' },
      { type: 'linear', out: 12 },
    ],
  };
}

const smallVideo = (pool: 'last' | 'mean') =>
  videoNet(10, { frames: 3, size: 12, hidden: 6, pool, channels: 2, mean: [0.5, 0.4], std: [0.3, 0.2] });

const CASES: Array<[string, ModelSpec, number]> = [
  ['small CNN, 16 bits', smallCnn(16), 5],
  ['odd shapes', oddNet(), 6],
  ['video, last state', smallVideo('last'), 3],
  ['video, mean over time', smallVideo('mean'), 2],
];

describe('Network on the WebAssembly engine against the same Network on WebGPU', () => {
  const gpu = useGpu();
  const engines: Engine[] = [];
  afterAll(() => {
    for (const e of engines) e.destroy();
  });

  for (const [label, spec, n] of CASES) {
    for (const threads of [1, 2]) {
      it(`${label}, ${threads} thread(s): forward, codes, input and weight gradients in training mode, an SGD step`, async () => {
        const web = new WebGpuEngine(gpu());
        const cpu = await WasmEngine.create({ threads });
        engines.push(cpu);
        const weights = initWeights(spec, 4);
        const nets = [createNetwork(web, spec, weights), createNetwork(cpu, spec, weights)];
        const rng = new SeededRandom(9);
        const pixels = Float32Array.from(rng.uniformArray(n * nets[0].inputSize, 0, 1));
        const dF = Float32Array.from(rng.uniformArray(n * spec.bits, -1, 1));
        const results = [];
        for (const net of nets) {
          const e = net.engine;
          const x = e.tensor([n, net.inputSize], pixels);
          const xn = net.normalize(x, n);
          const { output, tape } = net.forward(xn, n, { train: true, seed: 7, tape: true });
          const g = e.tensor([n, spec.bits], dF);
          net.zeroGradients();
          const dx = net.backward(tape as NonNullable<typeof tape>, g, { input: true, weights: true });
          const grads = new Map<string, Float32Array>();
          for (const [name, t] of net.gradients()) grads.set(name, await e.read(t));
          // One SGD step on every parameter, then the eval-mode features.
          const momentum = new Map<string, EngineTensor>();
          for (const [name, p] of net.parameters()) {
            const v = e.zeros(p.shape);
            momentum.set(name, v);
            e.sgdMomentumStep(p, net.gradients().get(name) as EngineTensor, v, {
              lr: 0.05,
              momentum: 0.9,
              weightDecay: 1e-4,
            });
          }
          results.push({
            xn: await e.read(xn),
            train: await e.read(output),
            dx: await e.read(dx as EngineTensor),
            grads,
            encoded: await net.encode(pixels, n, { batch: 2 }),
            weights: await net.readWeights(),
          });
          for (const t of [x, xn, output, g, dx, ...momentum.values()]) t?.release();
          tape?.release();
          net.destroy();
        }
        const [a, b] = results;
        expect(relativeError(b.xn, a.xn)).toBeLessThan(1e-6);
        expect(relativeError(b.train, a.train)).toBeLessThan(1e-4);
        expect(relativeError(b.dx, a.dx)).toBeLessThan(1e-4);
        expect([...b.grads.keys()]).toEqual([...a.grads.keys()]);
        for (const [name, ga] of a.grads) {
          expect(relativeError(b.grads.get(name) as Float32Array, ga), name).toBeLessThan(1e-4);
        }
        for (const [name, wa] of a.weights) {
          expect(relativeError(b.weights.get(name)?.data as Float32Array, wa.data), name).toBeLessThan(1e-5);
        }
        expect(relativeError(b.encoded.features, a.encoded.features)).toBeLessThan(1e-4);
        expect(Array.from(b.encoded.codes)).toEqual(Array.from(a.encoded.codes));
      });
    }
  }

  it('sizes its batches to the WebAssembly engine memory and refuses bad inputs with clear errors', async () => {
    const cpu = await WasmEngine.create({ threads: 1 });
    engines.push(cpu);
    const spec = smallCnn(8);
    const net = createNetwork(cpu, spec, initWeights(spec, 1));
    // The small CNN needs about 1 MB per object in a round: thousands fit the engine's 2 GiB.
    expect(net.maxBatch).toBeGreaterThan(1000);
    expect(net.maxBatch).toBeLessThan(5000);
    const x = cpu.tensor([1, 784], new Float32Array(784));
    expect(() => net.forward(x, 2)).toThrow(/expected 2 objects of 784 floats/);
    await expect(net.encode(new Float32Array(784), 1, { batch: 0 })).rejects.toThrow(
      /batch must be an integer/,
    );
    net.destroy();
    expect(() => net.normalize(x, 1)).toThrow(/destroyed/);
    const capped = createNetwork(cpu, spec, initWeights(spec, 1), { maxBatch: 3 });
    expect(capped.maxBatch).toBe(3);
    capped.destroy();
    // A tensor of one engine given to the other engine's network.
    const web = createNetwork(gpu(), spec, initWeights(spec, 1));
    expect(() => web.forward(x, 1)).toThrow(/another engine/);
    web.destroy();
    x.release();
  });
});
