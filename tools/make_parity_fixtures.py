#!/usr/bin/python3
"""Parity fixtures: PyTorch (the oracle) runs small models of every layer type, the VGG-11 topology at 32x32
with narrowed widths, and LSTM video models; this writes, per case, a bundle (model.json +
weights.safetensors) and data.safetensors holding

  x            pixels in [0, 1], [n, C, H, W] (or [n, T, C, H, W])
  f            f(x) in evaluation mode, [n, K]
  anchor       an anchor code (+-1), [K];  alpha in the metadata
  grad_input   dL/d(normalised input) of the DHTA loss summed over queries,
               L_i = -(1/K) sum_j a_j tanh(alpha f_ij)
  r            a fixed random [n, K]
  grad.<name>  d/dW of sum(f * r) for every weight (evaluation mode)

Reference values are computed in float64 from the float32 weights and inputs. Also imports two
checkpoints with tools/import_pytorch.py (a VGG-style state dict and a pickled nn.Sequential) and checks
the bundles. Run: /usr/bin/python3 tools/make_parity_fixtures.py [OUT_DIR]
(default packages/models/test/fixtures/parity).
"""
import json
import os
import shutil
import sys
import tempfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import import_pytorch as ip  # noqa: E402


def build_sequential(layers, in_c):
    mods = []
    c = in_c
    for l in layers:
        t = l['type']
        if t == 'conv2d':
            mods.append(nn.Conv2d(c, l['out'], l['kernel'], l.get('stride', 1), l.get('padding', 0)))
            c = l['out']
        elif t == 'relu':
            mods.append(nn.ReLU())
        elif t == 'maxpool2d':
            mods.append(nn.MaxPool2d(l['kernel'], l.get('stride', l['kernel'])))
        elif t == 'flatten':
            mods.append(nn.Flatten())
        elif t == 'linear':
            mods.append(nn.LazyLinear(l['out']))
        elif t == 'dropout':
            mods.append(nn.Dropout(l['p']))
    return nn.Sequential(*mods)


class VideoNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        i = spec['input']
        self.spec = spec
        self.frame = build_sequential(spec['frame'], i['channels'])
        with torch.no_grad():
            feat = self.frame(torch.zeros(1, i['channels'], i['height'], i['width'])).shape[1]
        self.lstm = nn.LSTM(feat, spec['lstm']['hidden'], num_layers=1, batch_first=True)
        self.head = build_sequential(spec['head'], spec['lstm']['hidden'])
        with torch.no_grad():
            self.head(torch.zeros(1, spec['lstm']['hidden']))

    def forward(self, x):
        n, t = x.shape[:2]
        f = self.frame(x.reshape(n * t, *x.shape[2:])).reshape(n, t, -1)
        h, _ = self.lstm(f)
        pooled = h[:, -1] if self.spec['lstm']['pool'] == 'last' else h.mean(dim=1)
        return self.head(pooled)


def build(spec):
    i = spec['input']
    if spec['task'] == 'image':
        m = build_sequential(spec['layers'], i['channels'])
        with torch.no_grad():
            m(torch.zeros(1, i['channels'], i['height'], i['width']))  # materialise the lazy layers
        return m
    return VideoNet(spec)


def dhta_names(model, spec):
    """Weights under DHTA's names (layers.<i>.* for an image Sequential; VideoNet's names already match)."""
    sd = model.state_dict()
    if spec['task'] == 'image':
        return {f'layers.{k}': v for k, v in sd.items()}
    return dict(sd)


def make_case(out_dir, name, spec, n, seed, alpha=0.3):
    torch.manual_seed(seed)
    model = build(spec)
    weights = dhta_names(model, spec)
    bundle = os.path.join(out_dir, name)
    ip.write_bundle(bundle, spec, weights)
    return compute_case(bundle, model, spec, n, seed, alpha)


def compute_case(bundle, model, spec, n, seed, alpha):
    g = torch.Generator().manual_seed(seed + 1000)
    i = spec['input']
    shape = [n, i['channels'], i['height'], i['width']]
    if spec['task'] == 'video':
        shape = [n, spec['frames']] + shape[1:]
    x = torch.rand(shape, generator=g, dtype=torch.float32)
    K = spec['bits']
    anchor = torch.where(torch.rand(K, generator=g) < 0.5, -1.0, 1.0)
    r = torch.randn(n, K, generator=g, dtype=torch.float32)
    m64 = model.double().eval()
    mean = torch.tensor(i['mean'], dtype=torch.float64)
    std = torch.tensor(i['std'], dtype=torch.float64)
    cshape = [1, -1, 1, 1] if spec['task'] == 'image' else [1, 1, -1, 1, 1]
    xn = ((x.double() - mean.view(cshape)) / std.view(cshape)).detach().requires_grad_(True)
    f = m64(xn)
    loss = (-(1.0 / K) * (anchor.double() * torch.tanh(alpha * f)).sum(dim=1)).sum()
    (grad_input,) = torch.autograd.grad(loss, xn)
    m64.zero_grad()
    f2 = m64(xn.detach())
    (f2 * r.double()).sum().backward()
    data = {'x': x, 'f': f.detach(), 'anchor': anchor, 'grad_input': grad_input, 'r': r}
    params = dict(m64.named_parameters())
    for k, p in params.items():
        name = f'layers.{k}' if spec['task'] == 'image' else k
        data[f'grad.{name}'] = p.grad
    ip.save_safetensors(os.path.join(bundle, 'data.safetensors'), data, {'alpha': str(alpha), 'n': str(n)})
    model.float()
    return data


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, '..', 'packages', 'models', 'test', 'fixtures', 'parity')
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)

    layers_spec = {
        'format': 'dhta-model/1', 'task': 'image', 'bits': 12,
        'input': {'channels': 3, 'height': 11, 'width': 13, 'mean': [0.4, 0.5, 0.6], 'std': [0.2, 0.25, 0.3]},
        'layers': [
            {'type': 'conv2d', 'out': 5, 'kernel': 5, 'stride': 1, 'padding': 2}, {'type': 'relu'},
            {'type': 'maxpool2d', 'kernel': 2, 'stride': 2},
            {'type': 'conv2d', 'out': 6, 'kernel': 3, 'stride': 2, 'padding': 1},
            {'type': 'maxpool2d', 'kernel': 2, 'stride': 1}, {'type': 'relu'},
            {'type': 'conv2d', 'out': 7, 'kernel': 1, 'stride': 1, 'padding': 0}, {'type': 'relu'},
            {'type': 'flatten'}, {'type': 'linear', 'out': 20}, {'type': 'relu'}, {'type': 'dropout', 'p': 0.3},
            {'type': 'linear', 'out': 12},
        ],
    }
    make_case(out_dir, 'layers', layers_spec, n=3, seed=1)

    vgg_layers = []
    for item in ip.VGG11_CFG:
        if item == 'M':
            vgg_layers.append({'type': 'maxpool2d', 'kernel': 2, 'stride': 2})
        else:
            vgg_layers += [{'type': 'conv2d', 'out': item // 16, 'kernel': 3, 'stride': 1, 'padding': 1}, {'type': 'relu'}]
    vgg_layers += [{'type': 'flatten'}, {'type': 'linear', 'out': 64}, {'type': 'relu'}, {'type': 'dropout', 'p': 0.5},
                   {'type': 'linear', 'out': 64}, {'type': 'relu'}, {'type': 'dropout', 'p': 0.5}, {'type': 'linear', 'out': 16}]
    vgg_spec = {'format': 'dhta-model/1', 'task': 'image', 'bits': 16,
                'input': {'channels': 3, 'height': 32, 'width': 32, 'mean': ip.IMAGENET_MEAN, 'std': ip.IMAGENET_STD},
                'layers': vgg_layers}
    make_case(out_dir, 'vgg11-narrow', vgg_spec, n=2, seed=2, alpha=0.1)

    video_mean = {
        'format': 'dhta-model/1', 'task': 'video', 'bits': 8, 'frames': 5,
        'input': {'channels': 1, 'height': 8, 'width': 8, 'mean': [0.5], 'std': [0.5]},
        'frame': [{'type': 'conv2d', 'out': 4, 'kernel': 3, 'stride': 1, 'padding': 1}, {'type': 'relu'},
                  {'type': 'maxpool2d', 'kernel': 2, 'stride': 2}, {'type': 'flatten'}, {'type': 'linear', 'out': 16},
                  {'type': 'relu'}],
        'lstm': {'hidden': 8, 'pool': 'mean'},
        'head': [{'type': 'dropout', 'p': 0.5}, {'type': 'linear', 'out': 8}],
    }
    make_case(out_dir, 'video-mean', video_mean, n=3, seed=3, alpha=0.5)
    video_last = {
        'format': 'dhta-model/1', 'task': 'video', 'bits': 6, 'frames': 4,
        'input': {'channels': 2, 'height': 6, 'width': 6, 'mean': [0.3, 0.6], 'std': [0.4, 0.2]},
        'frame': [{'type': 'conv2d', 'out': 3, 'kernel': 3, 'stride': 1, 'padding': 0}, {'type': 'relu'}, {'type': 'flatten'}],
        'lstm': {'hidden': 6, 'pool': 'last'},
        'head': [{'type': 'linear', 'out': 10}, {'type': 'relu'}, {'type': 'linear', 'out': 6}],
    }
    make_case(out_dir, 'video-last', video_last, n=2, seed=4, alpha=1.0)

    # Import: a VGG-style hashing module (features / classifier / hash_layer, as the authors' code) saved as
    # a state dict, and a pickled nn.Sequential; both through tools/import_pytorch.py.
    class VggHash(nn.Module):
        def __init__(self):
            super().__init__()
            feats, c = [], 3
            for item in ip.VGG11_CFG:
                if item == 'M':
                    feats.append(nn.MaxPool2d(2, 2))
                else:
                    feats += [nn.Conv2d(c, item // 32, 3, padding=1), nn.ReLU(inplace=True)]
                    c = item // 32
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Linear(c, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(True), nn.Dropout())
            self.hash_layer = nn.Linear(32, 24)

        def forward(self, x):
            return self.hash_layer(self.classifier(torch.flatten(self.features(x), 1)))

    torch.manual_seed(5)
    vgg = VggHash()
    tmp = tempfile.mkdtemp()
    try:
        ckpt = os.path.join(tmp, 'vgg.pt')
        torch.save({'state_dict': {'module.' + k: v for k, v in vgg.state_dict().items()}}, ckpt)
        bundle = os.path.join(out_dir, 'import-vgg')
        assert ip.main(['vgg11', ckpt, bundle, '--input', '3,32,32', '--bits', '24']) == 0
        with open(os.path.join(bundle, 'model.json')) as f:
            spec = json.load(f)
        assert [l['type'] for l in spec['layers']][-8:] == ['flatten', 'linear', 'relu', 'dropout', 'linear', 'relu', 'dropout', 'linear']
        imported = ip.load_safetensors(os.path.join(bundle, 'weights.safetensors'))
        assert torch.equal(imported['layers.28.weight'], vgg.hash_layer.weight.detach())
        assert torch.equal(imported['layers.22.weight'], vgg.classifier[0].weight.detach())

        class AsSeq(nn.Module):  # the same function, under DHTA's parameter names, for the oracle values
            def __init__(self):
                super().__init__()
                self.m = vgg

            def forward(self, x):
                return self.m(x)

            def named_parameters(self, *a, **k):
                mapping = {}
                for kk, p in vgg.named_parameters():
                    mapping[kk] = p
                out = []
                for name in imported:
                    src = name
                    idx = int(name.split('.')[1])
                    part = name.split('.')[2]
                    if idx <= 20:
                        src = f'features.{idx}.{part}'
                    elif idx == 22:
                        src = f'classifier.0.{part}'
                    elif idx == 25:
                        src = f'classifier.3.{part}'
                    else:
                        src = f'hash_layer.{part}'
                    out.append((name[len('layers.'):], mapping[src]))
                return iter(out)

        compute_case(bundle, AsSeq(), spec, n=2, seed=6, alpha=0.2)

        # A pickled nn.Sequential: import it, check the bundle equals the original 'layers' case.
        seq = build(layers_spec)
        seq.load_state_dict({k[len('layers.'):]: v for k, v in ip.load_safetensors(os.path.join(out_dir, 'layers', 'weights.safetensors')).items()})
        seq_ckpt = os.path.join(tmp, 'seq.pt')
        torch.save(seq, seq_ckpt)
        seq_bundle = os.path.join(tmp, 'seq-bundle')
        assert ip.main(['sequential', seq_ckpt, seq_bundle, '--input', '3,11,13', '--mean', '0.4,0.5,0.6', '--std', '0.2,0.25,0.3', '--trust-pickle']) == 0
        with open(os.path.join(seq_bundle, 'model.json')) as f:
            seq_spec = json.load(f)
        assert seq_spec == layers_spec, (seq_spec, layers_spec)
        a = ip.load_safetensors(os.path.join(seq_bundle, 'weights.safetensors'))
        b = ip.load_safetensors(os.path.join(out_dir, 'layers', 'weights.safetensors'))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

        # Unsupported modules and mismatched input sizes are refused with an error and no bundle.
        bad = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, 4))
        bad_ckpt = os.path.join(tmp, 'bad.pt')
        torch.save(bad, bad_ckpt)
        bad_out = os.path.join(tmp, 'bad-bundle')
        assert ip.main(['sequential', bad_ckpt, bad_out, '--input', '1,6,6', '--mean', '0', '--std', '1']) == 1
        assert ip.main(['vgg11', ckpt, bad_out, '--input', '3,64,64']) == 1  # fc6 takes 16 inputs, features give 64
        assert not os.path.exists(bad_out)
    finally:
        shutil.rmtree(tmp)

    total = 0
    for root, _, files in os.walk(out_dir):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    print(f'wrote parity fixtures to {out_dir} ({total / 1024:.0f} KiB)')


if __name__ == '__main__':
    main()
