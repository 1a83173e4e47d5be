#!/usr/bin/python3
"""Turn a PyTorch checkpoint into a DHTA model bundle (a folder with model.json + weights.safetensors).

Needs only torch (Debian's python3-torch; run it with /usr/bin/python3). Two kinds of checkpoint:

  vgg11       the paper's image threat model: torchvision VGG-11 `features` (conv indices 0-18), a classifier
              with fc6 and fc7 (Linear 25088 -> 4096 and 4096 -> 4096), and a hash Linear(4096 -> K), either
              as classifier's third Linear or as a separate top-level module (hash_layer, hash, fc, ...).
              A state dict (also inside {'state_dict': ...} / {'model': ...}, 'module.' prefixes dropped) or
              a pickled module. Input 3x224x224 with ImageNet mean/std unless told otherwise.
  sequential  a pickled nn.Sequential (torch.save(model)) of Conv2d, ReLU, MaxPool2d, Flatten, Linear and
              Dropout; or a state dict together with --layers FILE (a JSON list of DHTA layers, or a whole
              model.json whose weights use DHTA's names, e.g. a video model).

  /usr/bin/python3 tools/import_pytorch.py vgg11 CKPT.pt OUT_DIR [--input 3,224,224] [--mean ..] [--std ..]
  /usr/bin/python3 tools/import_pytorch.py sequential CKPT.pt OUT_DIR --input C,H,W --mean M[,M..] --std S[,S..]
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys
import tempfile

import torch
import torch.nn as nn

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
VGG11_CFG = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']


class ImportError_(Exception):
    pass


def save_safetensors(path, tensors, metadata=None):
    """Writes float32 tensors (name -> torch tensor) as .safetensors, names sorted, header padded to 8 bytes."""
    header = {}
    if metadata:
        header['__metadata__'] = metadata
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu()
        data = t.numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Reads an F32 .safetensors file into name -> torch tensor (for checks)."""
    import numpy as np
    with open(path, 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        b, e = info['data_offsets']
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype='<f4').reshape(info['shape'])
        out[name] = torch.from_numpy(arr.copy())
    return out


def infer_flat(layers, c, h, w):
    """Per-object feature count after the layers (to check Linear in-features)."""
    shape = [c, h, w]
    for layer in layers:
        t = layer['type']
        if t in ('conv2d', 'maxpool2d'):
            k = layer['kernel']
            s = layer.get('stride', 1 if t == 'conv2d' else k)
            p = layer.get('padding', 0) if t == 'conv2d' else 0
            shape = [layer['out'] if t == 'conv2d' else shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif t == 'flatten':
            n = 1
            for d in shape:
                n *= d
            shape = [n]
        elif t == 'linear':
            shape = [layer['out']]
    return shape


def module_layers(seq):
    """DHTA layers and weights (by layer index) of an nn.Sequential."""
    layers, weights = [], {}
    for i, m in enumerate(seq.children()):
        if isinstance(m, nn.Conv2d):
            k, s, p = m.kernel_size, m.stride, m.padding
            if k[0] != k[1] or s[0] != s[1] or (isinstance(p, str) or p[0] != p[1]) or m.groups != 1 or m.dilation != (1, 1):
                raise ImportError_(f'layer {i}: {m} has non-square kernel/stride/padding, groups or dilation; not supported')
            layers.append({'type': 'conv2d', 'out': m.out_channels, 'kernel': k[0], 'stride': s[0], 'padding': p[0]})
            weights[f'layers.{i}.weight'] = m.weight
            weights[f'layers.{i}.bias'] = m.bias if m.bias is not None else torch.zeros(m.out_channels)
        elif isinstance(m, nn.Linear):
            layers.append({'type': 'linear', 'out': m.out_features})
            weights[f'layers.{i}.weight'] = m.weight
            weights[f'layers.{i}.bias'] = m.bias if m.bias is not None else torch.zeros(m.out_features)
        elif isinstance(m, nn.ReLU):
            layers.append({'type': 'relu'})
        elif isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            k = k if isinstance(k, int) else k[0]
            s = s if isinstance(s, int) else s[0]
            if m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)) or m.ceil_mode:
                raise ImportError_(f'layer {i}: {m}: only MaxPool2d without padding, dilation or ceil_mode is supported')
            layers.append({'type': 'maxpool2d', 'kernel': k, 'stride': s})
        elif isinstance(m, nn.Flatten):
            layers.append({'type': 'flatten'})
        elif isinstance(m, nn.Dropout):
            layers.append({'type': 'dropout', 'p': m.p})
        elif isinstance(m, nn.Identity) or isinstance(m, nn.AdaptiveAvgPool2d):
            raise ImportError_(f'layer {i}: {type(m).__name__} is not a DHTA layer; remove it (an AdaptiveAvgPool2d is the identity only when its input already has its output size)')
        else:
            raise ImportError_(f'layer {i}: unsupported module {type(m).__name__}; supported: Conv2d, ReLU, MaxPool2d, Flatten, Linear, Dropout')
    return layers, weights


def state_dict_of(obj):
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ('state_dict', 'model', 'model_state_dict', 'net'):
            if key in obj and isinstance(obj[key], (dict, nn.Module)):
                return state_dict_of(obj[key])
    if not isinstance(obj, dict):
        raise ImportError_(f'expected a state dict or a module, found {type(obj).__name__}')
    return {re.sub(r'^module\.', '', k): v for k, v in obj.items() if torch.is_tensor(v)}


def import_vgg11(sd, bits_hint=None, size=(3, 224, 224), mean=None, std=None, widths=None):
    """The paper's VGG-11 hashing model from a state dict -> (spec, weights)."""
    layers, weights = [], {}
    cfg = VGG11_CFG
    idx = 0
    in_c = size[0]
    for item in cfg:
        if item == 'M':
            layers.append({'type': 'maxpool2d', 'kernel': 2, 'stride': 2})
            idx += 1
            continue
        w = sd.get(f'features.{idx}.weight')
        if w is None:
            raise ImportError_(f'missing features.{idx}.weight (VGG-11 conv); keys seen: {sorted(sd)[:8]}...')
        if w.dim() != 4 or w.shape[1] != in_c or w.shape[2:] != (3, 3):
            raise ImportError_(f'features.{idx}.weight has shape {tuple(w.shape)}; expected [out, {in_c}, 3, 3]')
        layers.append({'type': 'conv2d', 'out': int(w.shape[0]), 'kernel': 3, 'stride': 1, 'padding': 1})
        weights[f'layers.{idx}.weight'] = w
        weights[f'layers.{idx}.bias'] = sd[f'features.{idx}.bias']
        layers.append({'type': 'relu'})
        in_c = int(w.shape[0])
        idx += 2
    layers.append({'type': 'flatten'})
    # The classifier's Linear layers in index order, then any other Linear-shaped pair as the hash layer.
    lin = sorted({int(m.group(1)) for k in sd for m in [re.match(r'classifier\.(\d+)\.weight$', k)] if m})
    linears = [(f'classifier.{i}', sd[f'classifier.{i}.weight'], sd[f'classifier.{i}.bias']) for i in lin if sd[f'classifier.{i}.weight'].dim() == 2]
    others = [k[:-len('.weight')] for k in sd if k.endswith('.weight') and not k.startswith(('features.', 'classifier.')) and sd[k].dim() == 2]
    if len(linears) == 2 and len(others) == 1:
        linears.append((others[0], sd[f'{others[0]}.weight'], sd[f'{others[0]}.bias']))
    if len(linears) != 3:
        raise ImportError_(f'expected fc6, fc7 and a hash Linear (classifier Linear layers {lin}, other Linear modules {others})')
    flat = infer_flat(layers, *size)[0]
    if linears[0][1].shape[1] != flat:
        raise ImportError_(f'{linears[0][0]}.weight takes {linears[0][1].shape[1]} inputs but the features give {flat} at input {size[1]}x{size[2]}; pass --input C,H,W')
    for j, (name, w, b) in enumerate(linears):
        layers.append({'type': 'linear', 'out': int(w.shape[0])})
        weights[f'layers.{len(layers) - 1}.weight'] = w
        weights[f'layers.{len(layers) - 1}.bias'] = b
        if j < 2:
            layers.append({'type': 'relu'})
            layers.append({'type': 'dropout', 'p': 0.5})
    bits = int(linears[2][1].shape[0])
    if bits_hint is not None and bits_hint != bits:
        raise ImportError_(f'the hash layer has {bits} outputs, not {bits_hint}')
    spec = {
        'format': 'dhta-model/1', 'task': 'image', 'bits': bits,
        'input': {'channels': size[0], 'height': size[1], 'width': size[2],
                  'mean': mean or IMAGENET_MEAN, 'std': std or IMAGENET_STD},
        'layers': layers,
    }
    return spec, weights


def write_bundle(out_dir, spec, weights):
    """Writes model.json + weights.safetensors atomically (a temporary folder, then a rename)."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(out_dir) + '.tmp-', dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; a bundle is an ordinary folder
    try:
        with open(os.path.join(tmp, 'model.json'), 'w') as f:
            json.dump(spec, f, indent=2)
            f.write('\n')
        save_safetensors(os.path.join(tmp, 'weights.safetensors'), weights, {'format': 'pt'})
        if os.path.exists(out_dir):
            old = tmp + '-old'
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def floats(text):
    return [float(v) for v in text.split(',')]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('kind', choices=['vgg11', 'sequential'])
    ap.add_argument('checkpoint')
    ap.add_argument('out_dir')
    ap.add_argument('--input', help='C,H,W of one image (vgg11 default 3,224,224)')
    ap.add_argument('--mean', type=floats, help='per-channel mean, comma-separated')
    ap.add_argument('--std', type=floats, help='per-channel std, comma-separated')
    ap.add_argument('--bits', type=int, help='check the hash layer has this many outputs')
    ap.add_argument('--layers', help='sequential from a state dict: a JSON list of layers, or a whole model.json')
    a = ap.parse_args(argv)
    try:
        obj = torch.load(a.checkpoint, map_location='cpu')
        size = tuple(int(v) for v in a.input.split(',')) if a.input else None
        if size is not None and len(size) != 3:
            raise ImportError_(f'--input must be C,H,W, found {a.input}')
        if a.kind == 'vgg11':
            spec, weights = import_vgg11(state_dict_of(obj), a.bits, size or (3, 224, 224), a.mean, a.std)
        else:
            if a.layers:
                with open(a.layers) as f:
                    given = json.load(f)
                sd = state_dict_of(obj)
                if isinstance(given, dict):
                    spec = given
                else:
                    if size is None or a.mean is None or a.std is None:
                        raise ImportError_('--layers with a list needs --input, --mean and --std')
                    last = [l for l in given if l['type'] == 'linear'][-1]
                    spec = {'format': 'dhta-model/1', 'task': 'image', 'bits': last['out'],
                            'input': {'channels': size[0], 'height': size[1], 'width': size[2], 'mean': a.mean, 'std': a.std},
                            'layers': given}
                weights = sd
            else:
                if not isinstance(obj, nn.Sequential):
                    raise ImportError_('sequential: expected a pickled nn.Sequential (torch.save(model)), or a state dict with --layers')
                if size is None or a.mean is None or a.std is None:
                    raise ImportError_('sequential needs --input C,H,W, --mean and --std')
                layers, weights = module_layers(obj)
                last = [l for l in layers if l['type'] == 'linear']
                if not last:
                    raise ImportError_('the model has no Linear layer to give the hash output')
                spec = {'format': 'dhta-model/1', 'task': 'image', 'bits': last[-1]['out'],
                        'input': {'channels': size[0], 'height': size[1], 'width': size[2], 'mean': a.mean, 'std': a.std},
                        'layers': layers}
        if len(spec['input']['mean']) != spec['input']['channels'] or len(spec['input']['std']) != spec['input']['channels']:
            raise ImportError_(f"--mean and --std need {spec['input']['channels']} values")
        write_bundle(a.out_dir, spec, weights)
    except (ImportError_, OSError, KeyError) as e:
        print(f'import_pytorch: error: {e}', file=sys.stderr)
        return 1
    print(f"wrote {a.out_dir}: {spec['task']} model, {spec['bits']} bits, {len(weights)} tensors")
    return 0


if __name__ == '__main__':
    sys.exit(main())
