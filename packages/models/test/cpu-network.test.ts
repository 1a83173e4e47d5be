import { SeededRandom } from '@dhta/kernels/reference';
import { describe, expect, it } from 'vitest';
import {
  CpuImageNetwork,
  createNetwork,
  initWeights,
  type ModelSpec,
  smallCnn,
  videoNet,
} from '../src/index.js';
import { relativeError, useGpu } from './helpers.js';

// A spec with what smallCnn lacks: a standalone ReLU, a stride-2 conv without padding, an overlapping pool
// (kernel 3, stride 2), dropout, three channels with their own normalisation, and odd sizes.
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

describe('CpuImageNetwork (WebAssembly engine) against the WebGPU network', () => {
  const gpu = useGpu();
  for (const [label, spec, n] of [
    ['small CNN, 16 bits', smallCnn(16), 9],
    ['odd shapes', oddNet(), 6],
  ] as const) {
    for (const threads of [1, 2]) {
      it(`${label}, ${threads} thread(s): normalisation, features, codes and the input gradient`, async () => {
        const g = gpu();
        const weights = initWeights(spec, 4);
        const ref = createNetwork(g, spec, weights);
        const net = await CpuImageNetwork.create(spec, weights, { threads });
        try {
          const rng = new SeededRandom(9);
          const pixels = Float32Array.from(rng.uniformArray(n * net.inputSize, 0, 1));
          const xt = g.tensor([n, ref.inputSize], pixels);
          const xnRef = ref.normalize(xt, n);
          const xn = net.normalize(pixels, n);
          expect(relativeError(xn, await g.readF32(xnRef))).toBeLessThan(1e-6);

          const { output: fRef, tape: tapeRef } = ref.forward(xnRef, n, { tape: true });
          const x = net.cpu.upload(xn);
          const { output: f, tape } = net.forward(x, n, { tape: true });
          expect(relativeError(net.cpu.read(f), await g.readF32(fRef))).toBeLessThan(1e-4);

          const dF = Float32Array.from(rng.uniformArray(n * spec.bits, -1, 1));
          const dxRef = await g.readF32(
            ref.backward(tapeRef!, g.tensor([n, spec.bits], dF), { input: true })!,
          );
          const dx = net.cpu.read(net.backward(tape!, net.cpu.upload(dF)));
          expect(dx.length).toBe(n * net.inputSize);
          expect(relativeError(dx, dxRef)).toBeLessThan(1e-4);

          const enc = net.encode(pixels, n, { batch: 4 });
          const encRef = await ref.encode(pixels, n);
          expect(relativeError(enc.features, encRef.features)).toBeLessThan(1e-4);
          expect(Array.from(enc.codes)).toEqual(Array.from(encRef.codes));
        } finally {
          net.destroy();
          ref.destroy();
        }
      });
    }
  }

  it('refuses video models and bad inputs with clear errors', async () => {
    const video = videoNet(32);
    await expect(CpuImageNetwork.create(video, initWeights(video, 1))).rejects.toThrow(/image models only/);
    const spec = smallCnn(8);
    const net = await CpuImageNetwork.create(spec, initWeights(spec, 1), { threads: 1 });
    try {
      expect(() => net.normalize(new Float32Array(10), 1)).toThrow(/expected 1 objects of 784 floats/);
      expect(() => net.forward(net.cpu.upload(new Float32Array(784)), 2)).toThrow(/expected 2 objects/);
      expect(() => net.encode(new Float32Array(784), 1, { batch: 0 })).toThrow(/batch must be an integer/);
      // The small CNN needs about 1 MB per object: thousands fit the engine's 2 GiB.
      expect(net.maxBatch).toBeGreaterThan(1000);
    } finally {
      net.destroy();
    }
    expect(() => net.normalize(new Float32Array(784), 1)).toThrow(/destroyed/);
    await expect(CpuImageNetwork.create(spec, initWeights(spec, 1), { maxBatch: 0 })).rejects.toThrow(
      /maxBatch must be an integer >= 1, found 0/,
    );
    const capped = await CpuImageNetwork.create(spec, initWeights(spec, 1), { threads: 1, maxBatch: 3 });
    expect(capped.maxBatch).toBe(3);
    capped.destroy();
  });
});
