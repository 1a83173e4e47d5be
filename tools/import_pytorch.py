#!/usr/bin/python3
"""Turn a PyTorch checkpoint into a DHTA model bundle (a folder with model.json + weights.safetensors).

Needs only torch (Debian's python3-torch; run it with /usr/bin/python3), and Node.js 20+ for the check at the
end. Two kinds of checkpoint:

  vgg11       the paper's image threat model: torchvision VGG-11 `features` (conv indices 0-18), a classifier
              with fc6 and fc7 (Linear 25088 -> 4096 and 4096 -> 4096), and a hash Linear(4096 -> K), either
              as classifier's third Linear or as a separate top-level module (hash_layer, hash, fc, ...).
              A state dict (also inside {'state_dict': ...} / {'model': ...}, 'module.' prefixes dropped) or
              (with --trust-pickle) a pickled module. Input 3x224x224 with ImageNet mean/std unless told otherwise.
  sequential  a state dict (model.state_dict(): keys such as 0.weight, features.3.bias or layers.0.weight)
              together with --layers FILE (a JSON list of DHTA layers, or a whole model.json, e.g. of a video
              model); or, with --trust-pickle, a pickled nn.Sequential (torch.save(model)) of Conv2d, ReLU,
              MaxPool2d, Flatten, Linear and Dropout.

  /usr/bin/python3 tools/import_pytorch.py vgg11 CKPT.pt OUT_DIR [--input 3,224,224] [--mean ..] [--std ..]
  /usr/bin/python3 tools/import_pytorch.py sequential STATE.pt OUT_DIR --layers LAYERS.json --input C,H,W --mean M[,M..] --std S[,S..]
  /usr/bin/python3 tools/import_pytorch.py sequential MODEL.pt OUT_DIR --trust-pickle --input C,H,W --mean .. --std ..

State-dict names are matched to the layers of --layers by index: the bundle's own names (layers.<i>.weight), or
<prefix><i>.weight with i the layer's index in --layers (the state dict of an nn.Sequential built from the same
layer list: 0.weight, features.0.weight). Anything else is refused with the unmatched names of both sides;
--match-by-order pairs the checkpoint's weighted modules with the layers in order instead (shapes must agree).

Checkpoints are loaded weights-only: tensors, containers and numbers, never code. A pickled module needs
--trust-pickle, which unpickles the file as torch.save wrote it and so runs whatever code the file names: use
it only for files you trust.

Before the bundle is put in place it is checked: 4 seeded random inputs (2 for video) run through PyTorch (in
float64: the pickled module itself, or the layers rebuilt from the spec and the checkpoint's tensors) and
through `dhta encode` on the written bundle (apps/cli/run.mjs, as `pnpm dhta`; the WebAssembly engine for
image models, WebGPU for video); the features must agree within a normwise relative error
max|f_dhta - f_torch| / max|f_torch| <= 1e-4 (--tolerance). Otherwise nothing is written (an existing OUT_DIR
is left as it was) and the exit status is 1. --no-verify skips the check (hosts without Node).
"""
import argparse
import copy
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
VGG11_CFG = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TOLERANCE = 1e-4  # normwise relative error of f(x), as the parity tests (packages/models/test/parity.test.ts)


class ImportError_(Exception):
    pass


# --- Loading checkpoints -----------------------------------------------------------------------------------

# What the fallback weights-only load may construct: containers, tensors and their storages, dtypes and sizes.
# Anything else the pickle names (a module class, os.system, builtins.open, ...) is refused before it is
# looked up, so nothing from the file runs.
_SAFE_GLOBALS = {
    ('collections', 'OrderedDict'),
    ('torch._utils', '_rebuild_tensor'),
    ('torch._utils', '_rebuild_tensor_v2'),
    ('torch._utils', '_rebuild_parameter'),
    ('torch', 'Size'),
    ('torch', 'device'),
    ('torch.serialization', '_get_layout'),
}
_SAFE_GLOBALS |= {('torch', str(t).split('.')[-1]) for t in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
    torch.int64, torch.uint8, torch.bool)}


class _WeightsOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS or (module == 'torch' and name.endswith('Storage')):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'Unsupported class {module}.{name}')


# A pickle module for torch's loaders: they subclass its Unpickler and resolve storages themselves.
_weights_only_pickle = types.ModuleType('dhta_weights_only_pickle')
_weights_only_pickle.Unpickler = _WeightsOnlyUnpickler
_weights_only_pickle.load = lambda f, **kw: _WeightsOnlyUnpickler(f, **kw).load()
_weights_only_pickle.UnpicklingError = pickle.UnpicklingError


def _restricted_load(path):
    """torch.load's own readers with _WeightsOnlyUnpickler (torch 1.13's torch.load ignores pickle_module)."""
    ser = torch.serialization
    try:
        with open(path, 'rb') as f:
            if ser._is_zipfile(f):
                with ser._open_zipfile_reader(f) as z:
                    if ser._is_torchscript_zip(z):
                        raise pickle.UnpicklingError('a TorchScript archive, not a checkpoint')
                    return ser._load(z, 'cpu', _weights_only_pickle, encoding='utf-8')
            return ser._legacy_load(f, 'cpu', _weights_only_pickle, encoding='utf-8')
    except AttributeError as e:  # a torch whose internals differ
        raise pickle.UnpicklingError(f'this torch cannot load it weights-only ({e})')


def load_checkpoint(path, trust_pickle=False):
    """torch.load, weights-only unless trust_pickle (then warns: unpickling runs the file's code)."""
    if trust_pickle:
        print(f'import_pytorch: warning: --trust-pickle: unpickling {path} runs any code the file names; '
              'use it only for files you trust (from an untrusted source, ask for a state_dict instead)',
              file=sys.stderr)
        try:
            return torch.load(path, map_location='cpu', weights_only=False)
        except TypeError:  # a torch without the weights_only argument (before 1.13) always unpickles
            return torch.load(path, map_location='cpu')
    try:
        try:
            return torch.load(path, map_location='cpu', weights_only=True)
        except (TypeError, pickle.UnpicklingError):
            # torch's own weights-only unpickler in 1.13 (Debian's) refuses even a float in a training
            # checkpoint ({'state_dict': ..., 'lr': 0.1}); ours takes every pickle opcode, but only the
            # globals above. (TypeError: a torch before 1.13, without weights_only.)
            return _restricted_load(path)
    except pickle.UnpicklingError as e:
        m = re.search(r'Unsupported class ([\w.]+)', str(e))
        what = f'the Python object {m.group(1)}' if m else f'something other than tensors ({e})'
        raise ImportError_(
            f'{path}: refused to unpickle {what}: checkpoints are loaded weights-only (tensors, containers, '
            'numbers), because unpickling anything else can run code from the file. Save model.state_dict() '
            'instead (with --layers for sequential), or, only for a file you trust, pass --trust-pickle')
    except (RuntimeError, EOFError, ValueError) as e:
        raise ImportError_(f'{path}: not a PyTorch checkpoint torch.load can read ({e})')


# --- .safetensors ------------------------------------------------------------------------------------------

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


# --- Shapes and names of a spec ----------------------------------------------------------------------------

def _next_shape(layer, shape):
    t = layer['type']
    if t in ('conv2d', 'maxpool2d'):
        k = layer['kernel']
        s = layer.get('stride', 1 if t == 'conv2d' else k)
        p = layer.get('padding', 0) if t == 'conv2d' else 0
        return [layer['out'] if t == 'conv2d' else shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
    if t == 'flatten':
        n = 1
        for d in shape:
            n *= d
        return [n]
    if t == 'linear':
        return [layer['out']]
    return shape


def infer_flat(layers, c, h, w):
    """Per-object feature count after the layers (to check Linear in-features)."""
    shape = [c, h, w]
    for layer in layers:
        shape = _next_shape(layer, shape)
    return shape


def _weighted(prefix, layers, shape, out):
    for i, layer in enumerate(layers):
        t = layer.get('type')
        if t in ('conv2d', 'linear'):
            n_in = shape[0]
            w = [layer['out'], n_in, layer['kernel'], layer['kernel']] if t == 'conv2d' else [layer['out'], n_in]
            out.append((f'{prefix}.{i}', f'{prefix}[{i}] {t}', {'weight': w, 'bias': [layer['out']]}))
        shape = _next_shape(layer, shape)
    return shape


def weight_groups(spec):
    """The bundle's weighted modules in model order: [(name, where, {suffix: shape})], as expectedWeights in
    packages/models/src/spec.ts names them."""
    i = spec['input']
    out = []
    if spec.get('task', 'image') == 'image':
        _weighted('layers', spec['layers'], [i['channels'], i['height'], i['width']], out)
    else:
        feat = _weighted('frame', spec['frame'], [i['channels'], i['height'], i['width']], out)
        H = spec['lstm']['hidden']
        out.append(('lstm', 'lstm', {'weight_ih_l0': [4 * H, feat[0]], 'weight_hh_l0': [4 * H, H],
                                     'bias_ih_l0': [4 * H], 'bias_hh_l0': [4 * H]}))
        _weighted('head', spec['head'], [H], out)
    return out


# --- Matching a state dict to the layers -------------------------------------------------------------------

def _split(name):
    i = name.rfind('.')
    return (name[:i], name[i + 1:]) if i >= 0 else ('', name)


def _shape(t):
    return list(t.shape)


def _fmt(names):
    return ', '.join(names) if names else '(none)'


def _is_bias(suffix):
    return suffix.startswith('bias')


def map_state_dict(sd, spec, by_order=False):
    """State dict (name -> tensor) -> (bundle weights, how). Refuses, naming the unmatched tensors of both
    sides, unless the names match by index (see the module doc) or by_order pairs them consistently."""
    groups = weight_groups(spec)
    expected = {f'{g}.{s}': (shape, where) for g, where, shapes in groups for s, shape in shapes.items()}
    sd_mods = {}
    for k, v in sd.items():
        mod, suffix = _split(k)
        sd_mods.setdefault(mod, {})[suffix] = k

    def finish(pairs, how):
        """pairs: state-dict name -> bundle name. Checks shapes, fills missing biases with zeros."""
        weights = {}
        for src, dst in pairs.items():
            shape, where = expected[dst]
            if _shape(sd[src]) != shape:
                raise ImportError_(f'{src} has shape {_shape(sd[src])}, but {dst} ({where}), which it maps to, '
                                   f'needs {shape}; check --layers (and --input)')
            weights[dst] = sd[src]
        zeros = []
        for dst, (shape, where) in expected.items():
            if dst not in weights:
                if not _is_bias(_split(dst)[1]):
                    raise ImportError_(f'{dst} ({where}) has no tensor in the state dict')
                weights[dst] = torch.zeros(shape)
                zeros.append(dst)
        return weights, how + (f'; no bias in the checkpoint, zeros for {_fmt(zeros)}' if zeros else '')

    def complete(pairs):
        """Every state-dict tensor mapped onto a distinct expected name, every expected weight covered."""
        got = set(pairs.values())
        return (len(pairs) == len(sd) and all(d in expected for d in got) and len(got) == len(pairs)
                and all(n in got for n in expected if not _is_bias(_split(n)[1])))

    # 1. The bundle's own names.
    identity = {k: k for k in sd}
    if complete(identity):
        return finish(identity, 'names as in the bundle')
    # 2. <prefix><i>.<weight|bias>, i the layer index: an nn.Sequential's state dict (0.weight, features.0.weight).
    attempt = None
    if spec.get('task', 'image') == 'image':
        prefixes = set()
        for mod in sd_mods:
            m = re.fullmatch(r'((?:.*\.)?)(\d+)', mod)
            prefixes.add(m.group(1) if m else None)
        if len(prefixes) == 1 and None not in prefixes:
            (prefix,) = prefixes
            attempt = {k: f'layers.{_split(k)[0][len(prefix):]}.{_split(k)[1]}' for k in sd}
            if complete(attempt):
                how = 'by layer index' + (f' (prefix "{prefix}" -> "layers.")' if prefix != 'layers.' else '')
                return finish(attempt, how)
    # 3. --match-by-order: the checkpoint's weighted modules, in its order, onto the layers' in model order.
    order = None
    if len(sd_mods) == len(groups):
        order = {}
        for (mod, suffixes), (g, where, shapes) in zip(sd_mods.items(), groups):
            if 'weight' in shapes:
                want = {'weight': 'weight', 'bias': 'bias'}
            else:
                want = {s: s for s in shapes}
            if not set(suffixes) <= set(want) or any(s not in suffixes for s in want if not _is_bias(s)):
                order = None
                break
            for s, src in suffixes.items():
                if _shape(sd[src]) != shapes[want[s]]:
                    order = None
                    break
                order[src] = f'{g}.{want[s]}'
            if order is None:
                break
    pairs_text = None
    if order is not None:
        seen = []
        for src, dst in order.items():
            a, b = _split(src)[0], _split(dst)[0]
            if (a, b) not in seen:
                seen.append((a, b))
        pairs_text = ', '.join(f'{a or "(top)"} -> {b}' for a, b in seen)
        if by_order:
            return finish(order, f'by order: {pairs_text}')
    # Refuse: the unmatched names on both sides (after the index mapping, when there was one).
    tried = attempt or identity
    back = {}
    for src, dst in tried.items():
        back.setdefault(dst, []).append(src)
    sd_unmatched = [f'{src} {_shape(sd[src])}' for src, dst in tried.items() if dst not in expected or len(back[dst]) > 1]
    # (a missing bias beside a matched weight is no mismatch: it becomes zeros)
    layer_unmatched = [f'{n} {shape} ({where})' for n, (shape, where) in expected.items()
                       if n not in back and not (_is_bias(_split(n)[1]) and _split(n)[0] + '.weight' in back)]
    msg = ('the state dict does not match the layers of --layers by name'
           + (' (nor by order, which --match-by-order asked for)' if by_order else '') + ':\n'
           f'  in the state dict, matching no layer: {_fmt(sd_unmatched)}\n'
           f'  needed by the layers, not in the state dict: {_fmt(layer_unmatched)}\n'
           '  names match as the bundle\'s own (layers.<i>.weight) or as <prefix><i>.weight with i the index of '
           'the layer in --layers')
    if pairs_text and not by_order:
        msg += (f'\n  in the checkpoint\'s order the shapes agree; --match-by-order would pair {pairs_text} '
                '(check that this is the order the model runs them in)')
    raise ImportError_(msg)


# --- From a module -----------------------------------------------------------------------------------------

def module_layers(seq):
    """DHTA layers and weights (by layer index) of an nn.Sequential."""
    layers, weights = [], {}
    for i, m in enumerate(seq.children()):
        if isinstance(m, nn.Conv2d):
            k, s, p = m.kernel_size, m.stride, m.padding
            if k[0] != k[1] or s[0] != s[1] or (isinstance(p, str) or p[0] != p[1]) or m.groups != 1 or m.dilation != (1, 1):
                raise ImportError_(f'layer {i}: {m} has non-square kernel/stride/padding, groups or dilation; not supported')
            if getattr(m, 'padding_mode', 'zeros') != 'zeros':
                raise ImportError_(f'layer {i}: {m}: only zero padding is supported, not padding_mode={m.padding_mode!r}')
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


# --- The check: PyTorch against dhta encode ----------------------------------------------------------------

def _run_layers(prefix, layers, h, w):
    for i, layer in enumerate(layers):
        t = layer['type']
        if t == 'conv2d':
            h = F.conv2d(h, w(f'{prefix}.{i}.weight'), w(f'{prefix}.{i}.bias'), stride=layer.get('stride', 1),
                         padding=layer.get('padding', 0))
        elif t == 'relu':
            h = F.relu(h)
        elif t == 'maxpool2d':
            h = F.max_pool2d(h, layer['kernel'], layer.get('stride', layer['kernel']))
        elif t == 'flatten':
            h = h.flatten(1)
        elif t == 'linear':
            h = F.linear(h, w(f'{prefix}.{i}.weight'), w(f'{prefix}.{i}.bias'))
        # dropout: the identity at inference
    return h


def spec_forward(spec, weights, xn):
    """f(x) of the spec with the given weights (bundle names) on normalised input, in float64: DHTA's
    semantics written in PyTorch (the reference for bundles made from a state dict)."""
    def w(name):
        return weights[name].detach().to(torch.float32).to(torch.float64)

    if spec.get('task', 'image') == 'image':
        return _run_layers('layers', spec['layers'], xn, w)
    n, t = xn.shape[:2]
    f = _run_layers('frame', spec['frame'], xn.reshape(n * t, *xn.shape[2:]), w).reshape(n, t, -1)
    H = spec['lstm']['hidden']
    h = torch.zeros(n, H, dtype=torch.float64)
    c = torch.zeros(n, H, dtype=torch.float64)
    hs = []
    for s in range(t):
        gates = F.linear(f[:, s], w('lstm.weight_ih_l0'), w('lstm.bias_ih_l0')) + F.linear(h, w('lstm.weight_hh_l0'), w('lstm.bias_hh_l0'))
        i, fg, g, o = gates.chunk(4, dim=1)  # nn.LSTM's gate order
        c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
    pooled = h if spec['lstm']['pool'] == 'last' else torch.stack(hs, 1).mean(1)
    return _run_layers('head', spec['head'], pooled, w)


def find_node(node):
    path = shutil.which(node) if node else None
    if not path:
        raise ImportError_(f'checking the bundle needs Node.js 20 or newer ("{node}" was not found); install it, '
                           'pass --node PATH, or skip the check with --no-verify')
    return path


def verify_bundle(bundle_dir, spec, reference, node, tolerance, n=None):
    """Runs n seeded random inputs through reference (normalised float64 input -> f) and through
    `dhta encode` on bundle_dir; raises ImportError_ unless the features agree within tolerance. Returns a
    one-line summary."""
    import numpy as np
    i = spec['input']
    video = spec.get('task', 'image') == 'video'
    n = n or (2 if video else 4)
    shape = [n, i['channels'], i['height'], i['width']]
    if video:
        shape = [n, spec['frames']] + shape[1:]
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    cshape = [1, 1, -1, 1, 1] if video else [1, -1, 1, 1]
    mean = torch.tensor(i['mean'], dtype=torch.float64).view(cshape)
    std = torch.tensor(i['std'], dtype=torch.float64).view(cshape)
    try:
        with torch.no_grad():
            want = reference((x.double() - mean) / std).double().reshape(n, -1)
    except RuntimeError as e:
        raise ImportError_(f'checking the bundle: PyTorch could not run the model on inputs of shape {shape} ({e})')
    engine = 'auto' if video else 'wasm'
    work = tempfile.mkdtemp(prefix='dhta-import-check-')
    try:
        xp, fp, cp = (os.path.join(work, f) for f in ('x.npy', 'f.npy', 'codes.npy'))
        np.save(xp, x.numpy())
        cli = os.path.join(ROOT, 'apps', 'cli', 'run.mjs')
        cmd = [node, cli, 'encode', '--model', bundle_dir, '--input', xp, '--out', cp, '--features', fp,
               '--engine', engine, '--quiet']
        try:
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ImportError_(f'checking the bundle: could not run dhta encode ({e}); --no-verify skips the check')
        if r.returncode != 0:
            tail = (r.stderr.strip() or r.stdout.strip())[-2000:]
            raise ImportError_(f'checking the bundle: dhta encode could not run it (exit {r.returncode}):\n{tail}'
                               + ('\n(video models run on WebGPU: without an adapter, --no-verify skips the check)' if video else ''))
        got = torch.from_numpy(np.load(fp)).double()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if tuple(got.shape) != tuple(want.shape):
        raise ImportError_(f'checking the bundle: dhta encode gave features of shape {list(got.shape)}, PyTorch {list(want.shape)}')
    scale = want.abs().max().item()
    diff = (got - want).abs().max().item()
    err = diff / scale if scale > 0 else diff
    if not err <= tolerance:  # also catches NaN
        k = int((got - want).abs().reshape(-1).argmax())
        raise ImportError_(
            f'the bundle does not compute what the PyTorch model computes: on {n} random inputs dhta encode '
            f'({engine}) differs from PyTorch by a normwise relative error of {err:.3g} (tolerance {tolerance:g}); '
            f'e.g. input {k // want.shape[1]} feature {k % want.shape[1]}: dhta {got.reshape(-1)[k].item():.6g}, '
            f'PyTorch {want.reshape(-1)[k].item():.6g}. The model does something the bundle does not describe '
            '(a module subclass with its own forward, a different input size or normalisation, a wrong layer '
            'list); nothing was written')
    return f'checked: dhta encode ({engine}) matches PyTorch on {n} random inputs, normwise relative error {err:.2g} (tolerance {tolerance:g})'


# --- Writing -----------------------------------------------------------------------------------------------

def write_bundle(out_dir, spec, weights, check=None):
    """Writes model.json + weights.safetensors atomically (a temporary folder beside out_dir, then a rename).
    check(tmp_dir), when given, runs on the complete folder before the rename; if it raises, the folder is
    removed and out_dir is left as it was. Returns check's result."""
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
        result = check(tmp) if check else None
        if os.path.exists(out_dir):
            old = tmp + '-old'
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def floats(text):
    return [float(v) for v in text.split(',')]


def image_spec(layers, size, mean, std, what):
    if size is None or mean is None or std is None:
        raise ImportError_(f'{what} needs --input C,H,W, --mean and --std')
    last = [l for l in layers if l.get('type') == 'linear']
    if not last:
        raise ImportError_('the model has no Linear layer to give the hash output')
    return {'format': 'dhta-model/1', 'task': 'image', 'bits': last[-1]['out'],
            'input': {'channels': size[0], 'height': size[1], 'width': size[2], 'mean': mean, 'std': std},
            'layers': layers}


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
    ap.add_argument('--match-by-order', action='store_true',
                    help="with --layers: pair the state dict's weighted modules with the layers in the checkpoint's order "
                         '(shapes must agree) when their names do not match by index')
    ap.add_argument('--trust-pickle', action='store_true',
                    help='unpickle the checkpoint fully (needed for a pickled module); runs code from the file: '
                         'only for files you trust')
    ap.add_argument('--no-verify', action='store_true',
                    help='skip the check that dhta encode on the bundle gives PyTorch\'s features (hosts without Node)')
    ap.add_argument('--node', default='node', help='the Node.js 20+ that runs the check (default: node on PATH)')
    ap.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                    help=f'the check\'s largest normwise relative error of f(x) (default {DEFAULT_TOLERANCE:g})')
    a = ap.parse_args(argv)
    try:
        node = None if a.no_verify else find_node(a.node)
        obj = load_checkpoint(a.checkpoint, a.trust_pickle)
        size = tuple(int(v) for v in a.input.split(',')) if a.input else None
        if size is not None and len(size) != 3:
            raise ImportError_(f'--input must be C,H,W, found {a.input}')
        how = None
        reference = None  # normalised float64 input -> f(x); None: the spec rebuilt in PyTorch
        if a.kind == 'vgg11':
            spec, weights = import_vgg11(state_dict_of(obj), a.bits, size or (3, 224, 224), a.mean, a.std)
        elif a.layers:
            with open(a.layers) as f:
                given = json.load(f)
            spec = given if isinstance(given, dict) else image_spec(given, size, a.mean, a.std, '--layers with a list')
            weights, how = map_state_dict(state_dict_of(obj), spec, a.match_by_order)
        else:
            if not isinstance(obj, nn.Sequential):
                raise ImportError_('sequential: expected a state dict with --layers FILE (the layer list), or a '
                                   'pickled nn.Sequential (torch.save(model)) with --trust-pickle')
            layers, weights = module_layers(obj)
            spec = image_spec(layers, size, a.mean, a.std, 'sequential')
            module = copy.deepcopy(obj).double().eval()
            reference = module
        if len(spec['input']['mean']) != spec['input']['channels'] or len(spec['input']['std']) != spec['input']['channels']:
            raise ImportError_(f"--mean and --std need {spec['input']['channels']} values")
        if reference is None:
            def reference(xn):
                return spec_forward(spec, weights, xn)
        check = None if a.no_verify else (lambda tmp: verify_bundle(tmp, spec, reference, node, a.tolerance))
        checked = write_bundle(a.out_dir, spec, weights, check)
    except (ImportError_, OSError, KeyError, ValueError) as e:  # ValueError: a --layers file that is not JSON
        print(f'import_pytorch: error: {e}', file=sys.stderr)
        return 1
    if how:
        print(f'state dict matched {how}')
    print(checked or 'not checked against PyTorch (--no-verify)')
    print(f"wrote {a.out_dir}: {spec['task']} model, {spec['bits']} bits, {len(weights)} tensors")
    return 0


if __name__ == '__main__':
    sys.exit(main())
