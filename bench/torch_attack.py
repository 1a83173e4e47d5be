#!/usr/bin/env python3
"""PyTorch's time for the same DHTA loop as `dhta bench attack` (apps/cli/src/bench-attack.ts).

Rebuilds the bundle's network (model.json + weights.safetensors, PyTorch names and layouts) in eval mode with
frozen weights (only the input gradient is needed, as in our loop): an image network as an nn.Sequential, a
video network as VideoHashing (the frame network on every frame, nn.LSTM batch_first, its last state or the
mean over time, the head; dropout off in eval). Reads the pixels (float32 [N, C, H, W] or [N, T, C, H, W] in
[0, 1]) and anchors (int8 +-1) that the TypeScript side wrote, and runs the DHTA loop of PROTOCOL.md exactly:

  xn = (x - mean) / std; delta = 0
  per iteration: f = model(xn + delta); L = sum_q -(1/K) sum_j a_qj tanh(alpha f_qj)
                 g = dL/d(delta); delta -= lr * g / ||g_q||_2 (per query; a zero row stays)
                 delta = clamp(clamp(xn + delta, lo_c, hi_c) - xn, -eps_c, eps_c)
  alpha (--alpha paper, image models): 0.1 for the first half, then 0.2, 0.3, 0.5, 0.7, 1.0 for five equal
  blocks (floor(N*b/10) bounds); a number (video models: 0.1, the attack's default there) is held constant
  codes = sign(model(xn + delta)), sign(0) = +1

First a short check run (--check-iters) whose codes and delta (normalised space) go to OUT_DIR for the
comparison, then the timed run of --iters iterations (from delta = 0; the final forward is included, as on
our side). Prints one JSON line: {"peer": "torch", "version", "threads", "device", "env" (the variables of
PEER_ENV that are set), "seconds", "query_iterations_per_second", ...}.

--device cpu (the default) or cuda[:N]; its default comes from the environment variable DHTA_TORCH_DEVICE, since
`dhta bench attack` passes its environment on but no device (scripts/gpu-run.sh sets it on GPU hosts). On CUDA
the timings synchronise the device, and TF32 is off (float32 throughout, as our kernels; DHTA_TORCH_TF32=1
allows it, PyTorch's default for convolutions).

Usage:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_attack.py \
      --bundle DIR --x x.npy --anchors anchors.npy --iters N [--check-iters 10] [--threads 2] [--device cpu] \
      [--alpha paper|A] --out-dir DIR
"""
import argparse
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn


# Variables that change PyTorch's times several-fold on a shared machine (bench/README.md): libgomp's waiting
# threads spin unless OMP_WAIT_POLICY=PASSIVE, and glibc returns large tensors to the system after each use
# (page faults on every reuse) unless MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ say otherwise.
PEER_ENV = ('OMP_WAIT_POLICY', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_ARENA_MAX',
            'LD_PRELOAD', 'OMP_NUM_THREADS', 'GOMP_SPINCOUNT')


def peer_env():
    """The variables of PEER_ENV that are set, as the report records them."""
    return {k: os.environ[k] for k in PEER_ENV if k in os.environ}


def load_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        if info['dtype'] != 'F32':
            raise SystemExit('expected F32 weights, found %s for %s' % (info['dtype'], name))
        b, e = info['data_offsets']
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype='<f4').reshape(info['shape'])
        out[name] = torch.from_numpy(arr.copy())
    return out


def _sequential(layers, c, h, w, dropout, section):
    """nn.Sequential of a layer list (our names: `<prefix>.<index>`), and the output shape."""
    mods = []
    for index, l in enumerate(layers):
        t = l['type']
        if t == 'conv2d':
            s, p, k = l.get('stride', 1), l.get('padding', 0), l['kernel']
            mods.append(nn.Conv2d(c, l['out'], k, s, p))
            c = l['out']
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif t == 'relu':
            mods.append(nn.ReLU())
        elif t == 'maxpool2d':
            k, s = l['kernel'], l.get('stride', l['kernel'])
            mods.append(nn.MaxPool2d(k, s))
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif t == 'flatten':
            mods.append(nn.Flatten())
            c, h, w = c * h * w, 1, 1
        elif t == 'linear':
            mods.append(nn.Linear(c, l['out']))
            c = l['out']
        elif t == 'dropout':
            mods.append(dropout(l['p'], section, index) if dropout else nn.Dropout(l['p']))
        else:
            raise SystemExit('unknown layer type %r' % t)
    return nn.Sequential(*mods), (c, h, w)


class VideoHashing(nn.Module):
    """Our video network: a frame network on every frame ([N*T, C, H, W]), a batch-first LSTM over the
    per-frame features, its last state (or the mean over time), a head. Weight names as ours: frame.i.*,
    lstm.*_l0, head.i.*."""

    def __init__(self, spec, dropout=None):
        super().__init__()
        i = spec['input']
        self.frames = spec['frames']
        self.shape = (i['channels'], i['height'], i['width'])
        # Sections as our Network numbers them (dropout seeds): 1 = frame network, 2 = head.
        self.frame, (f, _, _) = _sequential(spec['frame'], *self.shape, dropout, 1)
        hidden = spec['lstm']['hidden']
        self.lstm = nn.LSTM(f, hidden, batch_first=True)
        self.pool = spec['lstm'].get('pool', 'last')
        self.head, _ = _sequential(spec['head'], hidden, 1, 1, dropout, 2)

    def forward(self, x):
        n, t = x.shape[0], x.shape[1]
        f = self.frame(x.reshape(n * t, *self.shape)).reshape(n, t, -1)
        out, _ = self.lstm(f)
        pooled = out[:, -1] if self.pool == 'last' else out.mean(dim=1)
        return self.head(pooled)


def build_module(spec, weights, dropout=None):
    """The bundle's network as a torch module with our weights loaded (strict), in training mode.
    dropout(p, section, index): a module for each dropout layer (default nn.Dropout)."""
    i = spec['input']
    if spec['task'] == 'image':
        model, _ = _sequential(spec['layers'], i['channels'], i['height'], i['width'], dropout, 0)
        state = {k[len('layers.'):]: v for k, v in weights.items()}
    elif spec['task'] == 'video':
        model = VideoHashing(spec, dropout)
        state = dict(weights)
    else:
        raise SystemExit('unknown task %r' % spec['task'])
    model.load_state_dict(state, strict=True)
    return model


def build(spec, weights):
    """The network in eval mode with frozen weights (only the input gradient is computed, as in our loop)."""
    model = build_module(spec, weights)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def channel_view(spec):
    """The shape that broadcasts a per-channel vector over a batch: [N, C, H, W] or [N, T, C, H, W]."""
    return (1, -1, 1, 1) if spec['task'] == 'image' else (1, 1, -1, 1, 1)


def alpha_at(it, iters, alpha='paper'):
    if alpha != 'paper':
        return float(alpha)
    block = 0
    for b in range(1, 10):
        if it >= (iters * b) // 10:
            block = b
    return 0.1 if block < 5 else [0.2, 0.3, 0.5, 0.7, 1.0][block - 5]


def dhta(model, xn, anchors, lo, hi, eps, iters, lr, alpha='paper'):
    n, K = anchors.shape
    delta = torch.zeros_like(xn)
    per_query = (n,) + (1,) * (xn.dim() - 1)
    for it in range(iters):
        alpha_it = alpha_at(it, iters, alpha)
        d = delta.clone().requires_grad_(True)
        f = model(xn + d)
        loss = (-(1.0 / K) * (anchors * torch.tanh(alpha_it * f))).sum()
        (g,) = torch.autograd.grad(loss, d)
        with torch.no_grad():
            norm = g.reshape(n, -1).norm(dim=1).reshape(per_query)
            step = torch.where(norm > 0, g / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(g))
            delta = delta - lr * step
            image = torch.maximum(torch.minimum(xn + delta, hi), lo)
            delta = torch.maximum(torch.minimum(image - xn, eps), -eps)
    with torch.no_grad():
        f = model(xn + delta)
    return delta, f


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bundle', required=True)
    ap.add_argument('--x', required=True)
    ap.add_argument('--anchors', required=True)
    ap.add_argument('--iters', type=int, required=True)
    ap.add_argument('--check-iters', type=int, default=10)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--lr', type=float, default=1.0)
    ap.add_argument('--eps', type=float, default=0.032)
    ap.add_argument('--alpha', default='paper',
                    help="'paper' (the schedule above; image models) or a constant (video models: 0.1)")
    ap.add_argument('--device', default=os.environ.get('DHTA_TORCH_DEVICE') or 'cpu')
    ap.add_argument('--out-dir', required=True)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == 'cuda':
        tf32 = os.environ.get('DHTA_TORCH_TF32') == '1'
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        sync = lambda: torch.cuda.synchronize(dev)
    else:
        sync = lambda: None
    with open(os.path.join(args.bundle, 'model.json')) as f:
        spec = json.load(f)
    model = build(spec, load_safetensors(os.path.join(args.bundle, 'weights.safetensors'))).to(dev)
    x = torch.from_numpy(np.load(args.x).astype(np.float32)).to(dev)
    anchors = torch.from_numpy(np.load(args.anchors).astype(np.float32)).to(dev)
    i = spec['input']
    shape = channel_view(spec)
    mean = torch.tensor(i['mean'], dtype=torch.float32).view(shape)
    std = torch.tensor(i['std'], dtype=torch.float32).view(shape)
    # As our normalize kernel: x * (1 / std) + (-mean / std), the box (0 - m) / s and (1 - m) / s.
    inv = torch.tensor([1.0 / s for s in i['std']], dtype=torch.float32).view(shape).to(dev)
    shift = torch.tensor([-m / s for m, s in zip(i['mean'], i['std'])], dtype=torch.float32).view(shape).to(dev)
    xn = x * inv + shift
    lo = torch.tensor([(0 - m) / s for m, s in zip(i['mean'], i['std'])], dtype=torch.float32).view(shape).to(dev)
    hi = torch.tensor([(1 - m) / s for m, s in zip(i['mean'], i['std'])], dtype=torch.float32).view(shape).to(dev)
    eps = torch.full_like(lo, args.eps)
    del mean, std

    result = {'peer': 'torch', 'version': torch.__version__, 'threads': torch.get_num_threads(),
              'n': int(x.shape[0]), 'bits': int(anchors.shape[1]), 'iters': args.iters, 'device': str(dev),
              'env': peer_env()}
    if dev.type == 'cuda':
        result['device_name'] = torch.cuda.get_device_name(dev)
        result['tf32'] = torch.backends.cudnn.allow_tf32
    if args.check_iters > 0:
        sync()
        t0 = time.perf_counter()
        delta, f = dhta(model, xn, anchors, lo, hi, eps, args.check_iters, args.lr, args.alpha)
        sync()
        result['check_seconds'] = time.perf_counter() - t0
        codes = torch.where(f >= 0, 1, -1).to(torch.int8)
        np.save(os.path.join(args.out_dir, 'check_codes.npy'), codes.cpu().numpy())
        np.save(os.path.join(args.out_dir, 'check_delta.npy'), delta.cpu().numpy().astype(np.float32))
        np.save(os.path.join(args.out_dir, 'check_features.npy'), f.cpu().numpy().astype(np.float32))
    sync()
    t0 = time.perf_counter()
    dhta(model, xn, anchors, lo, hi, eps, args.iters, args.lr, args.alpha)
    sync()
    seconds = time.perf_counter() - t0
    result['seconds'] = seconds
    result['query_iterations_per_second'] = x.shape[0] * args.iters / seconds
    print(json.dumps(result))


if __name__ == '__main__':
    main()
