import { PAIRWISE_CHUNK } from '../engine.js';
import { shapeError } from '../errors.js';
import type { Gpu } from '../gpu/context.js';
import { grid } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { checkDType, checkFinite, checkSameSize } from './check.js';
import { pairwiseCountShader, pairwiseTermsShader } from './pairwise.wgsl.js';

/** The pair terms of the pairwise loss (Engine.pairwiseTerms; reference pairwiseTerms), in two passes. */
export function pairwiseTerms(
  gpu: Gpu,
  theta: Tensor,
  sim: Tensor,
  o: { thetaScale: number; scale: number; balance: boolean },
): { coef: Tensor; likelihood: Tensor } {
  const op = 'pairwiseTerms';
  checkDType(op, 'theta', theta, 'f32');
  checkDType(op, 'sim', sim, 'f32');
  if (theta.shape.length !== 2) {
    throw shapeError(op, 'theta [B, N]', `[${theta.shape.join(', ')}]`);
  }
  checkSameSize(op, ['theta', theta], ['sim', sim]);
  checkFinite(op, 'thetaScale', o.thetaScale);
  checkFinite(op, 'scale', o.scale);
  const [rows, cols] = theta.shape;
  const chunks = Math.ceil(cols / PAIRWISE_CHUNK);
  const coef = gpu.empty([rows, cols]);
  const likelihood = gpu.empty([rows, chunks]);
  if (rows * cols === 0) {
    if (likelihood.size) gpu.fill(likelihood, 0);
    return { coef, likelihood };
  }
  const nSim = gpu.empty([rows]);
  try {
    gpu.run({
      op,
      key: 'count',
      code: pairwiseCountShader,
      buffers: [sim, nSim],
      uniforms: [rows, cols],
      workgroups: grid(rows),
    });
    gpu.run({
      op,
      key: 'terms',
      code: pairwiseTermsShader,
      buffers: [theta, sim, nSim, coef, likelihood],
      uniforms: [rows, cols, chunks, o.balance ? 1 : 0, { f32: o.thetaScale }, { f32: o.scale }],
      workgroups: grid(rows * chunks),
    });
  } finally {
    nSim.release();
  }
  return { coef, likelihood };
}
