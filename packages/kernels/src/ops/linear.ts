import { shapeError } from '../errors.js';
import type { Gpu } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { matmul } from './matmul.js';
import { sumRows } from './reduce.js';

function dims2(op: string, name: string, t: Tensor): [number, number] {
  if (t.shape.length !== 2) throw shapeError(op, `${name} of rank 2`, `[${t.shape.join(', ')}]`);
  return [t.shape[0], t.shape[1]];
}

/** y[N, Out] = x[N, In] W[Out, In]^T + b (PyTorch's nn.Linear layout), ReLU optionally fused into the write. */
export function linear(
  gpu: Gpu,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  opts: { relu?: boolean; out?: Tensor } = {},
): Tensor {
  const op = 'linear';
  const [N, In] = dims2(op, 'x', x);
  const [Out, InW] = dims2(op, 'weight', w);
  if (In !== InW) throw shapeError(op, `weight [Out, ${In}]`, `[${w.shape.join(', ')}]`);
  if (bias && bias.size !== Out) throw shapeError(op, `bias of ${Out}`, `${bias.size}`);
  const y = opts.out ?? gpu.empty([N, Out]);
  return matmul(gpu, x, w, N, In, Out, { transB: true, bias: bias ?? undefined, relu: opts.relu, out: y });
}

/** dx[N, In] = dy[N, Out] W[Out, In]. */
export function linearBackwardInput(gpu: Gpu, dy: Tensor, w: Tensor, out?: Tensor): Tensor {
  const op = 'linearBackwardInput';
  const [N, Out] = dims2(op, 'dy', dy);
  const [OutW, In] = dims2(op, 'weight', w);
  if (Out !== OutW) throw shapeError(op, `weight [${Out}, In]`, `[${w.shape.join(', ')}]`);
  return matmul(gpu, dy, w, N, Out, In, { out: out ?? gpu.empty([N, In]) });
}

/** dW[Out, In] = dy[N, Out]^T x[N, In]; with `accumulate`, added to `out` (gradient accumulation). */
export function linearBackwardWeight(
  gpu: Gpu,
  dy: Tensor,
  x: Tensor,
  opts: { out?: Tensor; accumulate?: boolean } = {},
): Tensor {
  const op = 'linearBackwardWeight';
  const [N, Out] = dims2(op, 'dy', dy);
  const [NX, In] = dims2(op, 'x', x);
  if (N !== NX) throw shapeError(op, `x with ${N} rows like dy`, `${NX}`);
  return matmul(gpu, dy, x, Out, N, In, {
    transA: true,
    out: opts.out ?? gpu.empty([Out, In]),
    accumulate: opts.accumulate,
  });
}

/** db[Out] = the column sums of dy[N, Out] (deterministic, no atomics). */
export function linearBackwardBias(gpu: Gpu, dy: Tensor): Tensor {
  dims2('linearBackwardBias', 'dy', dy);
  return sumRows(gpu, dy);
}
