import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/errors.js';
import { createGpu, type Gpu } from '../src/gpu/context.js';
import type { Tensor } from '../src/gpu/tensor.js';
import { type LstmWeightTensors, lstmBackward, lstmFlops, lstmForward } from '../src/ops/lstm.js';
import * as ref from '../src/reference/index.js';
import { expectClose, f32, useGpu } from './helpers.js';

interface Case {
  N: number;
  T: number;
  I: number;
  H: number;
  /** h0 and c0 given (else zeros) */
  initial: boolean;
  /** dh nonzero at every step (else only at the last one) */
  dhAll: boolean;
  /** dhT and dcT given */
  final: boolean;
  /** scale of x and the weights: large values saturate the gates */
  scale?: number;
}

const cases: Case[] = [
  { N: 1, T: 1, I: 1, H: 1, initial: false, dhAll: true, final: false },
  { N: 1, T: 1, I: 4, H: 3, initial: true, dhAll: true, final: true },
  { N: 3, T: 5, I: 7, H: 6, initial: true, dhAll: true, final: false },
  { N: 3, T: 5, I: 7, H: 6, initial: false, dhAll: false, final: false },
  { N: 2, T: 4, I: 5, H: 9, initial: false, dhAll: true, final: true },
  { N: 1, T: 6, I: 3, H: 5, initial: true, dhAll: false, final: true },
  { N: 5, T: 3, I: 11, H: 17, initial: true, dhAll: true, final: false },
  // Split-K on the dW GEMMs (N*T >= 512 with few output tiles); dh at every step so dh0 does not vanish.
  { N: 4, T: 130, I: 3, H: 2, initial: true, dhAll: true, final: false },
  // Saturated gates: huge pre-activations must give 0/1 gates, not NaN.
  { N: 2, T: 3, I: 4, H: 3, initial: true, dhAll: true, final: true, scale: 40 },
];

function data(rng: ref.SeededRandom, n: number, scale = 1): Float64Array {
  return f32(rng.uniformArray(n, -scale, scale));
}

function describeCase(c: Case): string {
  const parts = [`N=${c.N} T=${c.T} I=${c.I} H=${c.H}`];
  parts.push(c.initial ? 'h0/c0' : 'zero state');
  parts.push(c.dhAll ? 'dh at all steps' : 'dh at the last step');
  if (c.final) parts.push('dhT/dcT');
  if (c.scale) parts.push(`scale ${c.scale}`);
  return parts.join(', ');
}

describe('lstm', () => {
  const gpu = useGpu();

  cases.forEach((c, index) => {
    it(`forward and backward match the float64 reference: ${describeCase(c)}`, async () => {
      const g = gpu();
      const rng = new ref.SeededRandom(1000 + index);
      const { N, T, I, H } = c;
      const scale = c.scale ?? 1;
      const dims = { N, T, I, H };
      const w: ref.LstmWeights = {
        wIh: data(rng, 4 * H * I, 0.6 * scale),
        wHh: data(rng, 4 * H * H, 0.6 * scale),
        bIh: data(rng, 4 * H, 0.5),
        bHh: data(rng, 4 * H, 0.5),
      };
      const x = data(rng, N * T * I, scale);
      const h0 = c.initial ? data(rng, N * H) : null;
      const c0 = c.initial ? data(rng, N * H, 2) : null;
      const dh = data(rng, N * T * H);
      if (!c.dhAll) {
        // Only the last step's output is used (a sequence classifier): zero dh elsewhere.
        for (let n = 0; n < N; n++) dh.fill(0, n * T * H, (n * T + T - 1) * H);
      }
      const dhT = c.final ? data(rng, N * H) : null;
      const dcT = c.final ? data(rng, N * H) : null;

      const expected = ref.lstmForward(x, dims, w, h0, c0);
      const grads = ref.lstmBackward(x, dims, w, h0, c0, expected, dh, dhT, dcT);

      const tensor = (shape: number[], v: Float64Array) => g.tensor(shape, v);
      const weights: LstmWeightTensors = {
        wIh: tensor([4 * H, I], w.wIh),
        wHh: tensor([4 * H, H], w.wHh),
        bIh: tensor([4 * H], w.bIh),
        bHh: tensor([4 * H], w.bHh),
      };
      const xT = tensor([N, T, I], x);
      const h0T = h0 ? tensor([N, H], h0) : null;
      const c0T = c0 ? tensor([N, H], c0) : null;
      const fwd = lstmForward(g, xT, weights, h0T, c0T);
      expect(fwd.h.shape).toEqual([N, T, H]);
      expect(fwd.gates.shape).toEqual([N, T, 4 * H]);
      expect(fwd.hT.shape).toEqual([N, H]);
      expectClose(await g.readF32(fwd.h), expected.h);
      expectClose(await g.readF32(fwd.c), expected.c);
      expectClose(await g.readF32(fwd.gates), expected.gates);
      expectClose(await g.readF32(fwd.hT), expected.hT);
      expectClose(await g.readF32(fwd.cT), expected.cT);

      const back = lstmBackward(
        g,
        xT,
        weights,
        h0T,
        c0T,
        fwd,
        tensor([N, T, H], dh),
        dhT ? tensor([N, H], dhT) : null,
        dcT ? tensor([N, H], dcT) : null,
      );
      const got: Record<keyof ref.LstmGradients, Tensor> = back;
      const shapes: Record<keyof ref.LstmGradients, number[]> = {
        dx: [N, T, I],
        dWih: [4 * H, I],
        dWhh: [4 * H, H],
        dbIh: [4 * H],
        dbHh: [4 * H],
        dh0: [N, H],
        dc0: [N, H],
      };
      for (const key of Object.keys(shapes) as (keyof ref.LstmGradients)[]) {
        expect(got[key].shape, key).toEqual(shapes[key]);
        const actual = await g.readF32(got[key]);
        const refMax = Math.max(...grads[key].map(Math.abs));
        if (refMax === 0) {
          // dW_hh with a zero state and T = 1: exactly zero, where a relative error means nothing.
          expect(
            [...actual].every((v) => v === 0),
            `${key} is all zeros`,
          ).toBe(true);
          continue;
        }
        try {
          expectClose(actual, grads[key]);
        } catch (err) {
          throw new Error(`${key}: ${(err as Error).message}`);
        }
      }
      await g.sync();
    });
  });

  it('encodes a whole forward and backward pass into one submit, with one GEMM for all input projections', async () => {
    // A context without poison: poisoning uploads NaN into every new tensor, which submits pending work.
    const g: Gpu = await createGpu({ checkErrors: true });
    try {
      const [N, T, I, H] = [2, 4, 3, 5];
      const rng = new ref.SeededRandom(5);
      const weights: LstmWeightTensors = {
        wIh: g.tensor([4 * H, I], data(rng, 4 * H * I)),
        wHh: g.tensor([4 * H, H], data(rng, 4 * H * H)),
        bIh: g.tensor([4 * H], data(rng, 4 * H)),
        bHh: g.tensor([4 * H], data(rng, 4 * H)),
      };
      const x = g.tensor([N, T, I], data(rng, N * T * I));
      const dh = g.tensor([N, T, H], data(rng, N * T * H));
      await g.sync();
      const queue = g.device.queue;
      const submit = queue.submit.bind(queue);
      let submits = 0;
      queue.submit = (cmds: Iterable<GPUCommandBuffer>) => {
        submits++;
        submit(cmds);
      };
      try {
        const before = g.dispatches;
        const fwd = lstmForward(g, x, weights);
        // 1 input projection, T-1 recurrent GEMMs (h0 absent), T gate kernels.
        expect(g.dispatches - before).toBe(1 + (T - 1) + T);
        lstmBackward(g, x, weights, null, null, fwd, dh);
        expect(submits).toBe(0);
        await g.sync();
        expect(submits).toBe(1);
      } finally {
        queue.submit = submit;
      }
    } finally {
      g.destroy();
    }
  });

  it('refuses mismatched shapes with a clear error', () => {
    const g = gpu();
    const [N, T, I, H] = [2, 3, 4, 5];
    const weights: LstmWeightTensors = {
      wIh: g.zeros([4 * H, I]),
      wHh: g.zeros([4 * H, H]),
      bIh: g.zeros([4 * H]),
      bHh: g.zeros([4 * H]),
    };
    const x = g.zeros([N, T, I]);
    const bad = (fn: () => unknown, pattern: RegExp) => {
      let error: unknown = null;
      try {
        fn();
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(KernelError);
      expect((error as KernelError).message).toMatch(pattern);
    };
    bad(() => lstmForward(g, g.zeros([N, T, I + 1]), weights), /wIh of shape \[20, 5\]/);
    bad(() => lstmForward(g, g.zeros([N * T, I]), weights), /x of shape \[N, T, I\]/);
    bad(() => lstmForward(g, x, { ...weights, wHh: g.zeros([4 * H, H + 1]) }), /wHh of shape \[4H, H\]/);
    bad(() => lstmForward(g, x, { ...weights, bHh: g.zeros([H]) }), /bHh of shape \[20\]/);
    bad(() => lstmForward(g, x, weights, g.zeros([N + 1, H])), /h0 of shape \[2, 5\]/);
    const fwd = lstmForward(g, x, weights);
    bad(() => lstmBackward(g, x, weights, null, null, fwd, g.zeros([N, T, H + 1])), /dh of shape/);
    bad(
      () => lstmBackward(g, x, weights, null, null, fwd, g.zeros([N, T, H]), g.zeros([N, 1])),
      /dhT of shape/,
    );
  });

  it('counts GEMM FLOPs', () => {
    // forward: x W_ih^T over all steps plus h W_hh^T per step; backward: four GEMMs of the same sizes.
    const { forward, backward } = lstmFlops(2, 3, 4, 5);
    expect(forward).toBe(2 * 2 * 3 * 20 * 4 + 2 * 2 * 3 * 20 * 5);
    expect(backward).toBe(2 * forward);
  });
});
