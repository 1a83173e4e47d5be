#!/usr/bin/env python3
"""PyTorch's time for the same training steps as `dhta bench train` (apps/cli/src/bench-train.ts).

The training loop of packages/models/src/train.ts (trainHashingNetwork) and the loss of
packages/models/src/loss.ts, step for step, in PyTorch on the CPU:

  per step (the batch idx of the order that our run took):
    xn = x[idx] * (1 / std_c) + (-mean_c / std_c)
    f = model(xn) in training mode (dropout on, with our masks: see below); u = tanh(f)
    bank[idx] = u (detached: the memory bank, N x K, zero at the start, is a constant in the loss)
    theta = u bank^T / 2; s_ij = 1 where i and j share a label
    balance (default): w_ij = N / (2 n_sim_i) for similar pairs, N / (2 (N - n_sim_i)) for the others
                       (1 when row i has no similar or no dissimilar object); --no-balance: w = 1
    L = -sum_ij w_ij (s_ij theta_ij - softplus(theta_ij)) / (B N) + eta sum_i ||sign(u_i) - u_i||^2 / (B N)
        (sign(0) = +1)
    L.backward(); torch.optim.SGD(lr, momentum, weight_decay).step()

Dropout uses our counter-based masks (pcgHash of the step's seed, the layer and the element index, as the
WGSL and WebAssembly kernels do), so that both sides drop the same units and the losses of the first steps
can be compared; the masks cost a few hundred microseconds per step here (numpy), as they do on our side.

The model (model.json + weights.safetensors, our initial weights), the training set (x.npy float32
[N, C, H, W] or [N, T, C, H, W], labels.npy uint8 [N, C] multi-hot) and the order of the objects as our run
took them (order.npy int32: --batch objects per step) come from the TypeScript side. First a check run of
--check-steps steps from the initial weights (also the warm-up), whose losses are printed, then the timed run
of --steps steps from the initial weights again (fresh momentum and bank). Prints one JSON line:
{"peer": "torch", "version", "threads", "env" (torch_attack.PEER_ENV's variables that are set), "seconds", "samples",
"samples_per_second", "check_losses": [...], "losses_head": [...]}.

Usage:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_train.py \
      --bundle DIR --x x.npy --labels labels.npy --order order.npy --batch B --steps S [--check-steps 3] \
      --lr LR --momentum M --weight-decay W --eta E [--no-balance] --seed S [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_attack import build_module, channel_view, load_safetensors, peer_env  # noqa: E402

M32 = 0xFFFFFFFF


def pcg_hash(v):
    """pcgHash of @dhta/kernels/reference on one unsigned 32-bit integer."""
    state = (v * 747796405 + 2891336453) & M32
    word = ((((state >> ((state >> 28) + 4)) ^ state) & M32) * 277803737) & M32
    return ((word >> 22) ^ word) & M32


def pcg_hash_array(v):
    """The same on a uint64 array of values below 2^32 (products stay below 2^62)."""
    state = (v * np.uint64(747796405) + np.uint64(2891336453)) & np.uint64(M32)
    word = ((((state >> ((state >> np.uint64(28)) + np.uint64(4))) ^ state)) * np.uint64(277803737)) & np.uint64(M32)
    return (word >> np.uint64(22)) ^ word


def step_seed(seed, epoch, step):
    """The seed of one training step's pass (train.ts)."""
    return pcg_hash((seed + epoch * 1000003 + step) & M32)


def layer_seed(seed, section, index):
    """The seed of one dropout layer's mask in a pass (network.ts layerSeed)."""
    return pcg_hash((pcg_hash(seed) ^ pcg_hash((section * 65536 + index + 1) & M32)) & M32)


class PcgDropout(nn.Module):
    """Inverted dropout with our mask: element i is kept where (pcgHash(i ^ pcgHash(seed)) >> 8) / 2^24 >= p
    (p as float32), and scaled by float32(1 / (1 - p)). The pass seed is set per step in `state`."""

    def __init__(self, p, section, index, state):
        super().__init__()
        self.p, self.section, self.index, self.state = p, section, index, state
        self.p32 = float(np.float32(p))
        self.scale = float(np.float32(1.0 / (1.0 - p)))

    def forward(self, x):
        if not self.training or self.p <= 0:
            return x
        hs = pcg_hash(layer_seed(self.state['seed'], self.section, self.index))
        i = np.arange(x.numel(), dtype=np.uint64)
        unit = (pcg_hash_array(i ^ np.uint64(hs)) >> np.uint64(8)).astype(np.float64) / 16777216.0
        mask = torch.from_numpy(np.where(unit >= self.p32, self.scale, 0.0).astype(np.float32))
        return x * mask.view(x.shape)


def pairwise_loss(u, bank, s, eta, balance):
    """The pairwise (DPSH-style) loss of loss.ts against the bank (a constant), in float32."""
    B, N = s.shape
    theta = (u @ bank.t()) * 0.5
    if balance:
        n_sim = s.sum(dim=1, keepdim=True)
        both = (n_sim > 0) & (n_sim < N)
        w_sim = torch.where(both, N / (2 * n_sim.clamp(min=1)), torch.ones_like(n_sim))
        w_dis = torch.where(both, N / (2 * (N - n_sim).clamp(min=1)), torch.ones_like(n_sim))
        w = s * w_sim + (1 - s) * w_dis
        likelihood = (w * (s * theta - F.softplus(theta))).sum()
    else:
        likelihood = (s * theta - F.softplus(theta)).sum()
    b = torch.where(u >= 0, 1.0, -1.0).detach()
    quantization = ((b - u) ** 2).sum()
    return (-likelihood + eta * quantization) / (B * N)


def train_steps(spec, weights, x, labels, order, args, steps):
    """`steps` steps from the initial weights (fresh momentum and bank). Returns the losses."""
    state = {'seed': 0}
    model = build_module(spec, weights, lambda p, section, index: PcgDropout(p, section, index, state))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay)
    N = x.shape[0]
    K = spec['bits']
    bank = torch.zeros(N, K)
    i = spec['input']
    view = channel_view(spec)
    inv = torch.tensor([1.0 / s for s in i['std']], dtype=torch.float32).view(view)
    shift = torch.tensor([-m / s for m, s in zip(i['mean'], i['std'])], dtype=torch.float32).view(view)
    losses = []
    for step in range(steps):
        idx = order[step * args.batch:(step + 1) * args.batch]
        xn = x[idx] * inv + shift
        state['seed'] = step_seed(args.seed, 0, step)
        f = model(xn)
        u = torch.tanh(f)
        bank[idx] = u.detach()
        s = ((labels[idx] @ labels.t()) > 0).to(torch.float32)
        loss = pairwise_loss(u, bank, s, args.eta, args.balance)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bundle', required=True)
    ap.add_argument('--x', required=True)
    ap.add_argument('--labels', required=True)
    ap.add_argument('--order', required=True)
    ap.add_argument('--batch', type=int, required=True)
    ap.add_argument('--steps', type=int, required=True)
    ap.add_argument('--check-steps', type=int, default=3)
    ap.add_argument('--lr', type=float, required=True)
    ap.add_argument('--momentum', type=float, default=0.9)
    ap.add_argument('--weight-decay', type=float, required=True)
    ap.add_argument('--eta', type=float, required=True)
    ap.add_argument('--no-balance', dest='balance', action='store_false')
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    with open(os.path.join(args.bundle, 'model.json')) as f:
        spec = json.load(f)
    weights = load_safetensors(os.path.join(args.bundle, 'weights.safetensors'))
    x = torch.from_numpy(np.load(args.x).astype(np.float32))
    labels = torch.from_numpy(np.load(args.labels).astype(np.float32))
    order = torch.from_numpy(np.load(args.order).astype(np.int64))
    steps = max(args.steps, args.check_steps)
    need = min(x.shape[0], steps * args.batch)
    if order.numel() < need:
        raise SystemExit('order.npy holds %d indices, %d steps of %d need %d'
                         % (order.numel(), steps, args.batch, need))

    result = {'peer': 'torch', 'version': torch.__version__, 'threads': torch.get_num_threads(),
              'n': int(x.shape[0]), 'bits': spec['bits'], 'batch': args.batch, 'steps': args.steps,
              'env': peer_env()}
    if args.check_steps > 0:
        t0 = time.perf_counter()
        result['check_losses'] = train_steps(spec, weights, x, labels, order, args, args.check_steps)
        result['check_seconds'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    losses = train_steps(spec, weights, x, labels, order, args, args.steps)
    seconds = time.perf_counter() - t0
    samples = int(min(order.numel(), args.steps * args.batch))
    result['seconds'] = seconds
    result['samples'] = samples
    result['samples_per_second'] = samples / seconds
    result['losses_head'] = losses[:10]
    print(json.dumps(result))


if __name__ == '__main__':
    main()
