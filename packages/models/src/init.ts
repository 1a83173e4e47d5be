// Seeded weight initialisation with PyTorch's defaults: nn.Conv2d and nn.Linear use kaiming_uniform_(a=√5),
// i.e. weights and biases uniform in ±1/√fan_in; nn.LSTM uses uniform in ±1/√hidden for every tensor.
import { SeededRandom } from '@dhta/kernels/reference';
import { expectedWeights } from './spec.js';
import type { ModelSpec, Weights } from './types.js';

function uniform(rng: SeededRandom, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng.next() - 1) * bound;
  return out;
}

export interface InitOptions {
  /**
   * Multiplies the initial weight and bias of the hash layer (the last linear layer) by this factor (default
   * 1). Larger initial outputs start the pairwise loss away from its all-zero saddle, so training from scratch
   * leaves it at a lower learning rate (see the package README, "Training").
   */
  hashScale?: number;
}

/** Fresh weights for a spec, reproducible from `seed` (each tensor draws from its own stream). */
export function initWeights(spec: ModelSpec, seed: number, options: InitOptions = {}): Weights {
  const weights: Weights = new Map();
  let stream = 0;
  const shapes = expectedWeights(spec);
  for (const [name, shape] of shapes) {
    stream++;
    const rng = new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) + stream * 0x85ebca6b) >>> 0);
    const n = shape.reduce((a, b) => a * b, 1);
    let fanIn: number;
    if (name.startsWith('lstm.')) fanIn = spec.task === 'video' ? spec.lstm.hidden : 1;
    else if (name.endsWith('.bias')) {
      const w = shapes.get(name.replace(/\.bias$/, '.weight')) as number[];
      fanIn = w.slice(1).reduce((a, b) => a * b, 1);
    } else fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    weights.set(name, { shape: [...shape], data: uniform(rng, n, 1 / Math.sqrt(fanIn)) });
  }
  const scale = options.hashScale ?? 1;
  if (scale !== 1) {
    const hashWeight = [...weights.keys()]
      .filter((k) => !k.startsWith('lstm.') && k.endsWith('.weight'))
      .pop();
    if (hashWeight) {
      for (const name of [hashWeight, hashWeight.replace(/\.weight$/, '.bias')]) {
        const t = weights.get(name);
        if (t) for (let i = 0; i < t.data.length; i++) t.data[i] *= scale;
      }
    }
  }
  return weights;
}
