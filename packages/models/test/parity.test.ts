// Parity with PyTorch (tools/make_parity_fixtures.py): outputs within 1e-4, gradients within 1e-3 (normwise
// relative error against float64 PyTorch values).
import { join } from 'node:path';
import { WasmEngine } from '@dhta/kernels/wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNetwork, type Network } from '../src/index.js';
import { FIXTURES, readCaseData, relativeError, useGpu } from './helpers.js';

const CASES = ['layers', 'vgg11-narrow', 'video-mean', 'video-last', 'import-vgg'];
const measured: Record<string, Record<string, number>> = {};

async function check(net: Network, name: string, label = name) {
  const g = net.engine;
  const d = readCaseData(name);
  const x = d.get('x');
  const n = x.shape[0];
  const K = net.bits;
  expect(x.data.length).toBe(n * net.inputSize);
  const xn = net.normalize(g.tensor([n, net.inputSize], x.data), n);
  const { output, tape } = net.forward(xn, n, { tape: true });
  const f = await g.read(output);
  const errs: Record<string, number> = { f: relativeError(f, d.get('f').data) };
  // DHTA loss gradient dL/df_ij = -(1/K) a_j alpha (1 - tanh^2(alpha f_ij)), from the GPU's own f.
  const a = d.get('anchor').data;
  const dL = new Float32Array(n * K);
  for (let i = 0; i < n * K; i++) {
    const t = Math.tanh(d.alpha * f[i]);
    dL[i] = -(1 / K) * a[i % K] * d.alpha * (1 - t * t);
  }
  const gIn = net.backward(tape!, g.tensor([n, K], dL), { input: true });
  errs['grad_input'] = relativeError(await g.read(gIn!), d.get('grad_input').data);
  gIn!.release();
  net.zeroGradients();
  const none = net.backward(tape!, g.tensor([n, K], d.get('r').data), { input: false, weights: true });
  expect(none).toBeUndefined();
  const grads = net.gradients();
  const weights = await net.readWeights();
  let worst = 0;
  for (const name of weights.keys()) {
    const want = d.get(`grad.${name}`).data;
    // Row-blocked weights (several GPU tensors) are compared block by block.
    let got: Float32Array;
    const t = grads.get(name);
    if (t) got = await g.read(t);
    else {
      const parts = [...grads.keys()].filter((k) => k.startsWith(`${name}[`));
      expect(parts.length, name).toBeGreaterThan(1);
      got = new Float32Array(want.length);
      let at = 0;
      for (const k of parts) {
        const v = await g.read(grads.get(k)!);
        got.set(v, at);
        at += v.length;
      }
    }
    const e = relativeError(got, want);
    expect(e, `${label}: grad ${name}`).toBeLessThan(1e-3);
    worst = Math.max(worst, e);
  }
  errs['grad_weights'] = worst;
  tape!.release();
  output.release();
  xn.release();
  measured[label] = errs;
  expect(errs['f'], `${label}: f`).toBeLessThan(1e-4);
  expect(errs['grad_input'], `${label}: grad_input`).toBeLessThan(1e-3);
}

describe('parity with PyTorch', () => {
  const gpu = useGpu();

  for (const name of CASES) {
    it(`${name}: f(x), input gradient of the DHTA loss, weight gradients`, async () => {
      const net = await loadNetwork(gpu(), join(FIXTURES, name));
      try {
        await check(net, name);
      } finally {
        net.destroy();
      }
    });
  }

  it('vgg11-narrow with the linear weights held as row blocks gives the same results', async () => {
    const net = await loadNetwork(gpu(), join(FIXTURES, 'vgg11-narrow'), { maxBlockBytes: 24 * 4 * 32 });
    try {
      const names = [...net.parameters().keys()];
      expect(names).toContain('layers.22.weight[0:22]');
      expect(names).toContain('layers.22.weight[44:64]');
      await check(net, 'vgg11-narrow', 'vgg11-narrow (row blocks)');
    } finally {
      net.destroy();
    }
  });

  it('reports the measured errors', () => {
    console.log(JSON.stringify(measured, null, 1));
    expect(Object.keys(measured).length).toBeGreaterThanOrEqual(CASES.length + 1);
  });
});

describe('parity with PyTorch on the WebAssembly engine (the same Network code)', () => {
  let engine: WasmEngine | null = null;
  beforeAll(async () => {
    engine = await WasmEngine.create({ threads: 2 });
  });
  afterAll(() => engine?.destroy());

  for (const name of CASES) {
    it(`${name}: f(x), input gradient of the DHTA loss, weight gradients`, async () => {
      const net = await loadNetwork(engine as WasmEngine, join(FIXTURES, name));
      try {
        await check(net, name, `${name} (wasm)`);
      } finally {
        net.destroy();
      }
    });
  }
});
