#!/usr/bin/env python3
"""PyTorch's time for the same DHTA loop as `dhta bench attack` (apps/cli/src/bench-attack.ts).

Rebuilds the bundle's image network (model.json + weights.safetensors, PyTorch names and layouts) as an
nn.Sequential in eval mode with frozen weights (only the input gradient is needed, as in our loop), reads the
pixels (float32 NCHW in [0, 1]) and anchors (int8 +-1) that the TypeScript side wrote, and runs the DHTA loop
of PROTOCOL.md exactly:

  xn = (x - mean) / std; delta = 0
  per iteration: f = model(xn + delta); L = sum_q -(1/K) sum_j a_qj tanh(alpha f_qj)
                 g = dL/d(delta); delta -= lr * g / ||g_q||_2 (per query; a zero row stays)
                 delta = clamp(clamp(xn + delta, lo_c, hi_c) - xn, -eps_c, eps_c)
  alpha: 0.1 for the first half, then 0.2, 0.3, 0.5, 0.7, 1.0 for five equal blocks (floor(N*b/10) bounds)
  codes = sign(model(xn + delta)), sign(0) = +1

First a short check run (--check-iters) whose codes and delta (normalised space) go to OUT_DIR for the
comparison, then the timed run of --iters iterations (from delta = 0; the final forward is included, as on
our side). Prints one JSON line: {"peer": "torch", "version", "threads", "device", "seconds",
"query_iterations_per_second", ...}.

--device cpu (the default) or cuda[:N]; its default comes from the environment variable DHTA_TORCH_DEVICE, since
`dhta bench attack` passes its environment on but no device (scripts/gpu-run.sh sets it on GPU hosts). On CUDA
the timings synchronise the device, and TF32 is off (float32 throughout, as our kernels; DHTA_TORCH_TF32=1
allows it, PyTorch's default for convolutions).

Usage:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_attack.py \
      --bundle DIR --x x.npy --anchors anchors.npy --iters N [--check-iters 10] [--threads 2] [--device cpu] \
      --out-dir DIR
"""
import argparse
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn


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


def build(spec, weights):
    if spec['task'] != 'image':
        raise SystemExit('torch_attack.py: only image models, found task %r' % spec['task'])
    i = spec['input']
    c, h, w = i['channels'], i['height'], i['width']
    mods = []
    for l in spec['layers']:
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
            mods.append(nn.Dropout(l['p']))
    model = nn.Sequential(*mods)
    state = {k[len('layers.'):]: v for k, v in weights.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def alpha_at(it, iters):
    block = 0
    for b in range(1, 10):
        if it >= (iters * b) // 10:
            block = b
    return 0.1 if block < 5 else [0.2, 0.3, 0.5, 0.7, 1.0][block - 5]


def dhta(model, xn, anchors, lo, hi, eps, iters, lr):
    n, K = anchors.shape
    delta = torch.zeros_like(xn)
    for it in range(iters):
        alpha = alpha_at(it, iters)
        d = delta.clone().requires_grad_(True)
        f = model(xn + d)
        loss = (-(1.0 / K) * (anchors * torch.tanh(alpha * f))).sum()
        (g,) = torch.autograd.grad(loss, d)
        with torch.no_grad():
            norm = g.reshape(n, -1).norm(dim=1).reshape(n, 1, 1, 1)
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
    shape = (1, -1, 1, 1)
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
              'n': int(x.shape[0]), 'bits': int(anchors.shape[1]), 'iters': args.iters, 'device': str(dev)}
    if dev.type == 'cuda':
        result['device_name'] = torch.cuda.get_device_name(dev)
        result['tf32'] = torch.backends.cudnn.allow_tf32
    if args.check_iters > 0:
        sync()
        t0 = time.perf_counter()
        delta, f = dhta(model, xn, anchors, lo, hi, eps, args.check_iters, args.lr)
        sync()
        result['check_seconds'] = time.perf_counter() - t0
        codes = torch.where(f >= 0, 1, -1).to(torch.int8)
        np.save(os.path.join(args.out_dir, 'check_codes.npy'), codes.cpu().numpy())
        np.save(os.path.join(args.out_dir, 'check_delta.npy'), delta.cpu().numpy().astype(np.float32))
        np.save(os.path.join(args.out_dir, 'check_features.npy'), f.cpu().numpy().astype(np.float32))
    sync()
    t0 = time.perf_counter()
    dhta(model, xn, anchors, lo, hi, eps, args.iters, args.lr)
    sync()
    seconds = time.perf_counter() - t0
    result['seconds'] = seconds
    result['query_iterations_per_second'] = x.shape[0] * args.iters / seconds
    print(json.dumps(result))


if __name__ == '__main__':
    main()
