#!/usr/bin/python3
"""Generate the PyTorch reference fixtures that ctnn's C++ tests compare against.

Run with Debian's Python (torch 1.13, torchvision 0.14):

    /usr/bin/python3 tools/make_reference_fixtures.py [--out tests/fixtures]

Everything is written under tests/fixtures/ (or --out) and committed, so CI never needs torch.
The output is deterministic: running the script twice on the same machine gives identical bytes.
tests/fixtures/README.md (also written by this script) documents every file, key and formula.

Contents (see the README for the exact format):
  keys/*.txt                          state_dict() keys and shapes of the seed's MNIST net and
                                      torchvision resnet18/34/50/101/152
  parity/mnist_resnet18.safetensors   seed MNIST net: full state, input, logits, loss, all grads
  parity/resnet{18,50}.safetensors    torchvision nets with formula weights: logits, loss,
                                      BN buffers after a train step, gradient samples
  parity/pytorch_saved_mnist.safetensors  plain state_dict of the MNIST net (checkpoint test)
  layers.safetensors                  single-layer forward/backward reference values
"""

import argparse
import copy
import json
import math
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# The seed article's MNIST network, exactly as written there (tools/seed_resnet.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_resnet import ResNet18  # noqa: E402


TORCHVISION_MODELS = OrderedDict([
    ("resnet18", torchvision.models.resnet18),
    ("resnet34", torchvision.models.resnet34),
    ("resnet50", torchvision.models.resnet50),
    ("resnet101", torchvision.models.resnet101),
    ("resnet152", torchvision.models.resnet152),
])

# ---------------------------------------------------------------------------------------------
# Minimal safetensors writer / reader.
#   [u64 little-endian N][N bytes UTF-8 JSON header, padded with spaces so 8+N % 8 == 0][data]
#   header: {"<name>": {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, ...,
#            "__metadata__": {"<str>": "<str>", ...}}
#   offsets are relative to the start of the data section; tensors are packed in the order they
#   are given, with no gaps; data is little-endian, row-major (C order).
# ---------------------------------------------------------------------------------------------

_DTYPES = {  # safetensors name -> numpy little-endian dtype
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_NUMPY_TO_ST = {np.dtype(v).newbyteorder("<") if np.dtype(v).itemsize > 1 else np.dtype(v): k
                for k, v in _DTYPES.items()}


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


WRITTEN = []  # every file this script wrote, for the README's size table


def write_safetensors(path, tensors, metadata=None):
    """tensors: sequence of (name, array-like) pairs, written in that order."""
    header = OrderedDict()
    blobs = []
    offset = 0
    for name, value in tensors:
        if name in header or name == "__metadata__":
            raise ValueError("duplicate or reserved tensor name: " + name)
        arr = _to_numpy(value)
        st = _NUMPY_TO_ST.get(arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype)
        if st is None:
            raise TypeError("unsupported dtype %s for %s" % (arr.dtype, name))
        shape = [int(d) for d in arr.shape]
        data = np.array(arr, dtype=_DTYPES[st], order="C", copy=True).tobytes(order="C")
        assert len(data) == int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[st]).itemsize
        header[name] = OrderedDict([("dtype", st), ("shape", shape),
                                    ("data_offsets", [offset, offset + len(data)])])
        blobs.append(data)
        offset += len(data)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("__metadata__ must map str to str")
        header["__metadata__"] = OrderedDict(metadata)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    WRITTEN.append(path)


def read_safetensors(path):
    """Returns (OrderedDict name -> numpy array, metadata dict), checking the layout rules."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    if (8 + n) % 8 != 0:
        raise ValueError("header not padded to a multiple of 8")
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = OrderedDict()
    expected = 0
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if begin != expected:
            raise ValueError("gap or overlap before " + name)
        dt = np.dtype(_DTYPES[info["dtype"]])
        count = int(np.prod(info["shape"], dtype=np.int64))
        if end - begin != count * dt.itemsize:
            raise ValueError("size mismatch for " + name)
        out[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(info["shape"]).copy()
        expected = end
    if expected != len(data):
        raise ValueError("trailing bytes after the last tensor")
    return out, metadata


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

GOLDEN = 2654435761  # Knuth's multiplicative hash constant, used for gradient sampling
SAMPLE_COUNT = 64


def sample_indices(numel):
    """idx_j = (j * 2654435761 + 12345) % numel for j = 0..63, or 0..numel-1 if numel < 64."""
    if numel < SAMPLE_COUNT:
        return list(range(numel))
    return [(j * GOLDEN + 12345) % numel for j in range(SAMPLE_COUNT)]


def flat_sample(t):
    flat = t.detach().reshape(-1)
    return flat[torch.tensor(sample_indices(flat.numel()), dtype=torch.int64)].to(torch.float32)


def sumsq64(t):
    return (t.detach().to(torch.float64) ** 2).sum()


def absmax32(t):
    return t.detach().abs().max().to(torch.float32)


def f32(t):
    """A float32 copy (never an alias: module buffers change in place during a train forward)."""
    return t.detach().to(torch.float32).clone()


def state_tensors(sd, prefix=""):
    """state_dict entries as (prefix+key, tensor): float tensors F32, num_batches_tracked I64."""
    out = []
    for k, v in sd.items():
        if v.dtype == torch.int64:
            out.append((prefix + k, v.detach().clone()))
        else:
            out.append((prefix + k, f32(v)))
    return out


def bn_buffer_keys(sd):
    return [k for k in sd.keys() if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")]


def shape_str(shape):
    return ",".join(str(int(d)) for d in shape)


def dtype_name(arr):
    arr = _to_numpy(arr)
    return _NUMPY_TO_ST[arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype]


def stage_hooks(model, names, store, rms=None):
    """Record sum of squares (F64) and a 64-element sample of each named child's output."""
    handles = []
    for name in names:
        module = dict(model.named_children())[name]

        def hook(mod, inputs, output, name=name):
            ss = sumsq64(output)
            store.append(("stage_sumsq." + name, ss))
            store.append(("stage_sample." + name, flat_sample(output)))
            if rms is not None:
                rms[name] = math.sqrt(float(ss) / output.numel())
        handles.append(module.register_forward_hook(hook))
    return handles


# ---------------------------------------------------------------------------------------------
# 2. Key lists
# ---------------------------------------------------------------------------------------------

def write_key_list(path, sd):
    lines = ["%s\t%s\n" % (k, shape_str(v.shape)) for k, v in sd.items()]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    WRITTEN.append(path)


def make_key_lists(out):
    torch.manual_seed(0)
    write_key_list(os.path.join(out, "keys", "mnist_resnet18.txt"), ResNet18().state_dict())
    for name, ctor in TORCHVISION_MODELS.items():
        torch.manual_seed(0)
        write_key_list(os.path.join(out, "keys", name + ".txt"), ctor(weights=None).state_dict())
    torch.manual_seed(0)
    m = torchvision.models.resnet50(weights=None, num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    write_key_list(os.path.join(out, "keys", "resnet50_10c_1ch.txt"), m.state_dict())


# ---------------------------------------------------------------------------------------------
# 4. Parity runs (shared by the MNIST net and the torchvision nets)
# ---------------------------------------------------------------------------------------------

def f32err(x32, x64):
    """max |x32 - x64| / max |x64| as a 0-d F32: how far PyTorch's own float32 result is from the
    same computation in float64, i.e. a floor for any float32 implementation's tolerance."""
    x32 = x32.detach().to(torch.float64)
    x64 = x64.detach().to(torch.float64)
    den = x64.abs().max()
    return ((x32 - x64).abs().max() / den if float(den) > 0 else (x32 - x64).abs().max()).to(torch.float32)


def parity_run(model, x, labels, dtype, stages, eval_grads):
    """One eval forward (optionally with backward) and one train forward + backward, each on its
    own copy of `model` converted to `dtype`. Returns a dict of results."""
    r = {}
    xin = x.to(dtype)

    m = copy.deepcopy(model).to(dtype)
    m.eval()
    r["eval_stats"], r["eval_rms"] = [], OrderedDict()
    hs = stage_hooks(m, stages, r["eval_stats"], r["eval_rms"])
    if eval_grads:
        logits = m(xin)
        loss = nn.CrossEntropyLoss()(logits, labels)
        loss.backward()
        r["eval_loss"] = loss.detach()
        r["eval_grads"] = OrderedDict((n, p.grad.detach().clone()) for n, p in m.named_parameters())
    else:
        with torch.no_grad():
            logits = m(xin)
    for h in hs:
        h.remove()
    r["eval_logits"] = logits.detach()

    m = copy.deepcopy(model).to(dtype)
    m.train()
    r["train_stats"] = []
    hs = stage_hooks(m, stages, r["train_stats"])
    logits = m(xin)
    for h in hs:
        h.remove()
    loss = nn.CrossEntropyLoss()(logits, labels)
    loss.backward()
    r["train_logits"] = logits.detach()
    r["train_loss"] = loss.detach()
    r["grads"] = OrderedDict((n, p.grad.detach().clone()) for n, p in m.named_parameters())
    after = m.state_dict()
    r["after"] = OrderedDict((k, after[k].detach().clone()) for k in bn_buffer_keys(after))
    return r


def after_tensors(after):
    return [("after_train." + k, v if v.dtype == torch.int64 else f32(v)) for k, v in after.items()]


def summary(r32, r64):
    g = r32["grads"]
    return OrderedDict([
        ("eval_absmax", float(r32["eval_logits"].abs().max())),
        ("train_absmax", float(r32["train_logits"].abs().max())),
        ("loss", float(r32["train_loss"])),
        ("grad_absmax_range", [min(float(v.abs().max()) for v in g.values()),
                               max(float(v.abs().max()) for v in g.values())]),
        ("f32err_eval_logits", float(f32err(r32["eval_logits"], r64["eval_logits"]))),
        ("f32err_train_logits", float(f32err(r32["train_logits"], r64["train_logits"]))),
        ("f32err_grad_max", max(float(f32err(g[n], r64["grads"][n])) for n in g)),
        ("f32err_grad_median", float(np.median([float(f32err(g[n], r64["grads"][n])) for n in g]))),
        ("eval_stage_rms", OrderedDict((n, round(v, 4)) for n, v in r32["eval_rms"].items())),
    ])


# ---------------------------------------------------------------------------------------------
# 4a / 4c. The seed's MNIST network
# ---------------------------------------------------------------------------------------------

MNIST_STAGES = ["conv1", "layer1", "layer2", "layer3", "layer4"]


def make_mnist_model():
    torch.manual_seed(0)
    model = ResNet18()  # PyTorch default init, drawn from the seed-0 generator
    with torch.no_grad():
        for m in model.modules():  # modules() order = state_dict order
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c))
                m.bias.copy_(0.1 * torch.randn(c))
                m.running_mean.copy_(0.1 * torch.randn(c))
                m.running_var.copy_(0.5 + torch.rand(c))
                m.num_batches_tracked.fill_(7)
    x = torch.rand(4, 1, 28, 28)
    labels = torch.randint(0, 10, (4,), dtype=torch.int64)
    return model, x, labels


def make_mnist_parity(out):
    model, x, labels = make_mnist_model()
    initial = copy.deepcopy(model.state_dict())

    r = parity_run(model, x, labels, torch.float32, MNIST_STAGES, eval_grads=False)
    r64 = parity_run(model, x, labels, torch.float64, MNIST_STAGES, eval_grads=False)

    tensors = state_tensors(initial, "state.")
    tensors += [("input", x), ("labels", labels)]
    tensors.append(("eval.logits", f32(r["eval_logits"])))
    tensors += [("eval." + k, v) for k, v in r["eval_stats"]]
    tensors.append(("train.logits", f32(r["train_logits"])))
    tensors.append(("train.loss", f32(r["train_loss"])))
    tensors += [("train." + k, v) for k, v in r["train_stats"]]
    tensors += [("grad." + n, f32(g)) for n, g in r["grads"].items()]
    tensors += after_tensors(r["after"])
    tensors.append(("f32err.eval.logits", f32err(r["eval_logits"], r64["eval_logits"])))
    tensors.append(("f32err.train.logits", f32err(r["train_logits"], r64["train_logits"])))
    tensors.append(("f32err.train.loss", f32err(r["train_loss"], r64["train_loss"])))
    tensors += [("f32err.grad." + n, f32err(g, r64["grads"][n])) for n, g in r["grads"].items()]

    meta = OrderedDict([
        ("format", "pt"),
        ("generator", "tools/make_reference_fixtures.py"),
        ("model", "seed article ResNet18() for MNIST (ResidualBlock left/shortcut)"),
        ("torch", torch.__version__),
        ("loss", "nn.CrossEntropyLoss() mean over batch"),
    ])
    write_safetensors(os.path.join(out, "parity", "mnist_resnet18.safetensors"), tensors, meta)

    # 4c: the same initial state_dict under PyTorch's plain keys.
    write_safetensors(os.path.join(out, "parity", "pytorch_saved_mnist.safetensors"),
                      state_tensors(initial),
                      OrderedDict([("format", "pt"), ("generator", "tools/make_reference_fixtures.py"),
                                   ("model", "seed article ResNet18() for MNIST")]))
    st = summary(r, r64)
    st["params"] = sum(p.numel() for p in model.parameters())
    return st


# ---------------------------------------------------------------------------------------------
# 4b. torchvision ResNets with formula weights
# ---------------------------------------------------------------------------------------------

CONV_SCALE = 0.5  # conv weight = float32(s * (sqrt(6.0 / fan_in) * CONV_SCALE))
FORMULA_MODULUS = 65521  # h = (i * i) mod 65521; 0 would mean h = i (the rank-2 linear phase)
TV_STAGES = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]


def formula_sin(n, k):
    """s_i = sin(0.731 * h_i + 1.37 * k), h_i = (i * i) mod 65521, for i in 0..n-1, in float64
    with the C library's sin."""
    i = np.arange(n, dtype=np.int64)
    h = (i * i) % FORMULA_MODULUS if FORMULA_MODULUS else i  # exact integers (n^2 < 2^63)
    arg = 0.731 * h.astype(np.float64) + 1.37 * float(k)  # two rounded products, one rounded add
    return np.fromiter(map(math.sin, arg.tolist()), dtype=np.float64, count=n)


def formula_state(model):
    """The deterministic weights documented in tests/fixtures/README.md."""
    modules = dict(model.named_modules())
    sd = model.state_dict()
    state = OrderedDict()
    for k, (key, t) in enumerate(sd.items()):
        owner, attr = key.rsplit(".", 1)
        m = modules[owner]
        shape = tuple(t.shape)
        if isinstance(m, nn.BatchNorm2d) and attr == "num_batches_tracked":
            state[key] = torch.tensor(k, dtype=torch.int64)
            continue
        s = formula_sin(t.numel(), k)
        if isinstance(m, nn.Conv2d) and attr == "weight":
            assert len(shape) == 4 and m.bias is None
            fan_in = shape[1] * shape[2] * shape[3]
            v = s * (math.sqrt(6.0 / fan_in) * CONV_SCALE)
        elif isinstance(m, nn.BatchNorm2d) and attr == "weight":
            v = 1.0 + 0.2 * s
        elif isinstance(m, nn.BatchNorm2d) and attr == "bias":
            v = 0.1 * s
        elif isinstance(m, nn.BatchNorm2d) and attr == "running_mean":
            v = 0.1 * s
        elif isinstance(m, nn.BatchNorm2d) and attr == "running_var":
            v = 1.0 + 0.5 * s
        elif isinstance(m, nn.Linear) and attr == "weight":
            v = s / math.sqrt(shape[1])
        elif isinstance(m, nn.Linear) and attr == "bias":
            v = 0.1 * s
        else:
            raise ValueError("no formula for %s (%s)" % (key, type(m).__name__))
        state[key] = torch.from_numpy(v.astype(np.float32).reshape(shape))
    return state


def make_torchvision_model(name):
    torch.manual_seed(0)
    model = TORCHVISION_MODELS[name](weights=None)
    state = formula_state(model)
    model.load_state_dict(state, strict=True)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    labels = torch.randint(0, 1000, (2,), dtype=torch.int64)
    return model, state, x, labels


def grad_summaries(prefix, grads):
    out = [(prefix + "grad_sample." + n, flat_sample(g)) for n, g in grads.items()]
    out += [(prefix + "grad_absmax." + n, absmax32(g)) for n, g in grads.items()]
    out += [(prefix + "grad_sumsq." + n, sumsq64(g)) for n, g in grads.items()]
    return out


def make_torchvision_parity(out, name):
    model, state, x, labels = make_torchvision_model(name)
    r = parity_run(model, x, labels, torch.float32, TV_STAGES, eval_grads=True)
    r64 = parity_run(model, x, labels, torch.float64, TV_STAGES, eval_grads=True)

    tensors = [("input", x), ("labels", labels)]
    tensors.append(("eval.logits", f32(r["eval_logits"])))
    tensors.append(("train.logits", f32(r["train_logits"])))
    tensors.append(("train.loss", f32(r["train_loss"])))
    tensors += after_tensors(r["after"])
    tensors += grad_summaries("", r["grads"])
    tensors.append(("eval.loss", f32(r["eval_loss"])))
    tensors += grad_summaries("eval_", r["eval_grads"])
    tensors += [("eval." + k, v) for k, v in r["eval_stats"]]
    tensors += [("train." + k, v) for k, v in r["train_stats"]]
    tensors.append(("f32err.eval.logits", f32err(r["eval_logits"], r64["eval_logits"])))
    tensors.append(("f32err.train.logits", f32err(r["train_logits"], r64["train_logits"])))
    tensors.append(("f32err.train.loss", f32err(r["train_loss"], r64["train_loss"])))
    tensors.append(("f32err.eval.loss", f32err(r["eval_loss"], r64["eval_loss"])))
    tensors += [("f32err.grad." + n, f32err(g, r64["grads"][n])) for n, g in r["grads"].items()]
    tensors += [("f32err.eval_grad." + n, f32err(g, r64["eval_grads"][n])) for n, g in r["eval_grads"].items()]
    for key, v in state.items():
        tensors.append(("formula_head." + key, v.reshape(-1)[:8].clone() if v.dim() > 0 else v.clone()))

    meta = OrderedDict([
        ("format", "pt"),
        ("generator", "tools/make_reference_fixtures.py"),
        ("model", "torchvision.models.%s(num_classes=1000), 3 input channels" % name),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("weights", "formula, see tests/fixtures/README.md"),
        ("conv_scale", repr(CONV_SCALE)),
        ("formula_modulus", str(FORMULA_MODULUS)),
    ])
    write_safetensors(os.path.join(out, "parity", name + ".safetensors"), tensors, meta)
    st = summary(r, r64)
    st["f32err_eval_grad_max"] = max(float(f32err(g, r64["eval_grads"][n])) for n, g in r["eval_grads"].items())
    return st


# ---------------------------------------------------------------------------------------------
# 5. Layer-level cases
# ---------------------------------------------------------------------------------------------

def _module_case(name, seed, module, x_shape, x_scale=1.0, x_shift=0.0, train=True, extra=None):
    """Forward a module on x, backprop a random dy, store x, params, y, dy, dx, d<param>."""
    torch.manual_seed(seed)
    x = (torch.randn(*x_shape) * x_scale + x_shift)
    if extra is not None:
        extra(module)
    module.train(train)
    out = []
    out.append((name + ".x", x.clone()))
    for pn, p in module.named_parameters():
        out.append(("%s.%s" % (name, pn), f32(p)))
    for bn, b in module.named_buffers():
        out.append(("%s.%s" % (name, bn), b.detach().clone() if b.dtype == torch.int64 else f32(b)))
    xg = x.clone().requires_grad_(True)
    y = module(xg)
    dy = torch.randn(*y.shape)
    (y * dy).sum().backward()
    out.append((name + ".y", f32(y)))
    out.append((name + ".dy", dy))
    out.append((name + ".dx", f32(xg.grad)))
    for pn, p in module.named_parameters():
        out.append(("%s.d%s" % (name, pn), f32(p.grad)))
    return out, module


def _bn_setup(m):
    with torch.no_grad():
        m.weight.copy_(torch.tensor([1.5, 0.75, -0.5]))
        m.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        m.running_mean.copy_(torch.tensor([0.2, -0.1, 0.05]))
        m.running_var.copy_(torch.tensor([1.2, 0.8, 2.0]))
        m.num_batches_tracked.fill_(3)


def make_layer_cases(out):
    torch.manual_seed(0)
    tensors = []
    cases = []  # (case name, description)

    def add(name, desc, seed, module_ctor, x_shape, **kw):
        torch.manual_seed(seed)
        module = module_ctor()  # default PyTorch init, drawn after seeding
        t, m = _module_case(name, seed + 1, module, x_shape, **kw)
        tensors.extend(t)
        cases.append((name, desc))
        return m

    add("conv_s2p1", "nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1, bias=True) on x [2,3,7,7]",
        10, lambda: nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1, bias=True), (2, 3, 7, 7))
    add("conv1x1_s2", "nn.Conv2d(2, 3, kernel_size=1, stride=2, bias=False) on x [2,2,5,5]",
        20, lambda: nn.Conv2d(2, 3, kernel_size=1, stride=2, bias=False), (2, 2, 5, 5))
    add("conv_k3s1p1", "nn.Conv2d(3, 5, kernel_size=3, stride=1, padding=1, bias=False) on x [2,3,6,6] "
        "(extra: the ResNet body conv)",
        30, lambda: nn.Conv2d(3, 5, kernel_size=3, stride=1, padding=1, bias=False), (2, 3, 6, 6))
    add("conv_k7s2p3", "nn.Conv2d(3, 2, kernel_size=7, stride=2, padding=3, bias=False) on x [1,3,11,11] "
        "(extra: torchvision's stem conv)",
        40, lambda: nn.Conv2d(3, 2, kernel_size=7, stride=2, padding=3, bias=False), (1, 3, 11, 11))

    # BatchNorm2d train mode: also the running statistics after the step.
    bn = add("bn_train", "nn.BatchNorm2d(3), train mode, on x [4,3,5,5] (x = 2*randn + 0.5); "
             "weight/bias/running stats set to fixed values before the forward",
             50, lambda: nn.BatchNorm2d(3), (4, 3, 5, 5), x_scale=2.0, x_shift=0.5, train=True, extra=_bn_setup)
    x = dict(tensors)["bn_train.x"]
    tensors.append(("bn_train.batch_mean", x.mean(dim=(0, 2, 3))))
    tensors.append(("bn_train.batch_var_biased", x.var(dim=(0, 2, 3), unbiased=False)))
    tensors.append(("bn_train.running_mean_after", f32(bn.running_mean)))
    tensors.append(("bn_train.running_var_after", f32(bn.running_var)))
    tensors.append(("bn_train.num_batches_tracked_after", bn.num_batches_tracked.detach().clone()))
    bn = add("bn_eval", "nn.BatchNorm2d(3), eval mode, on x [4,3,5,5] (x = 2*randn + 0.5); "
             "same fixed weight/bias/running stats as bn_train (running stats unchanged by eval)",
             60, lambda: nn.BatchNorm2d(3), (4, 3, 5, 5), x_scale=2.0, x_shift=0.5, train=False, extra=_bn_setup)

    add("relu", "nn.ReLU() on x [2,3,4,4] (extra)", 70, lambda: nn.ReLU(), (2, 3, 4, 4))
    add("maxpool_k3s2p1", "nn.MaxPool2d(kernel_size=3, stride=2, padding=1) on x [2,2,7,7]",
        80, lambda: nn.MaxPool2d(kernel_size=3, stride=2, padding=1), (2, 2, 7, 7))
    add("avgpool_k3s2p1", "nn.AvgPool2d(kernel_size=3, stride=2, padding=1) on x [2,2,7,7] "
        "(count_include_pad=True: every window divides by 9)",
        90, lambda: nn.AvgPool2d(kernel_size=3, stride=2, padding=1), (2, 2, 7, 7))
    add("avgpool_k4", "nn.AvgPool2d(4) (stride 4, as F.avg_pool2d(out, 4)) on x [1,2,8,8]",
        100, lambda: nn.AvgPool2d(4), (1, 2, 8, 8))
    add("adaptive_avgpool", "nn.AdaptiveAvgPool2d(1) on x [2,3,5,5]",
        110, lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 5, 5))
    add("linear", "nn.Linear(5, 3) on x [4,5]", 120, lambda: nn.Linear(5, 3), (4, 5))

    # CrossEntropyLoss: scalar output, upstream gradient 1.
    torch.manual_seed(130)
    logits = torch.randn(3, 4) * 2.0
    labels = torch.tensor([2, 0, 3], dtype=torch.int64)
    lg = logits.clone().requires_grad_(True)
    loss = nn.CrossEntropyLoss()(lg, labels)
    loss.backward()
    tensors += [("cross_entropy.logits", logits), ("cross_entropy.labels", labels),
                ("cross_entropy.loss", f32(loss)), ("cross_entropy.dlogits", f32(lg.grad))]
    cases.append(("cross_entropy", "nn.CrossEntropyLoss() (mean over the batch) on logits [3,4] and labels [3]; "
                  "dlogits = d loss / d logits (upstream gradient 1, no dy)"))

    torch.manual_seed(140)
    x = torch.randn(3, 4) * 2.0
    xg = x.clone().requires_grad_(True)
    y = F.softmax(xg, dim=1)
    dy = torch.randn(3, 4)
    (y * dy).sum().backward()
    tensors += [("softmax.x", x), ("softmax.y", f32(y)), ("softmax.dy", dy), ("softmax.dx", f32(xg.grad))]
    cases.append(("softmax", "F.softmax(x, dim=1) on x [3,4]"))

    meta = OrderedDict([("format", "pt"), ("generator", "tools/make_reference_fixtures.py"),
                        ("torch", torch.__version__)])
    path = os.path.join(out, "layers.safetensors")
    write_safetensors(path, tensors, meta)
    return cases


# ---------------------------------------------------------------------------------------------
# 6. README
# ---------------------------------------------------------------------------------------------

README_HEAD = r"""# Reference fixtures from PyTorch

Everything in this directory is generated by

    /usr/bin/python3 tools/make_reference_fixtures.py

(Debian's Python: torch 1.13, torchvision 0.14; the `python3` on a pyenv PATH has no torch). The
script sets `torch.manual_seed` before every random draw and `torch.set_num_threads(1)`, writes
every file below (this README included), and is byte-for-byte deterministic on one machine; PyTorch
builds on other CPUs may differ in the last bits of the floating-point results. CI never runs it:
the files are committed. Do not edit them by hand; this README is generated too (edit
`README_HEAD` / `make_readme` in the script instead).

## safetensors layout (all `.safetensors` files here)

    bytes [0, 8)        N, u64 little-endian
    bytes [8, 8+N)      UTF-8 JSON header, padded with trailing spaces (0x20) so that 8+N % 8 == 0
    bytes [8+N, end)    data section: raw little-endian, row-major (C order) tensor data

The header is one JSON object. Every member except `__metadata__` is a tensor:
`"name": {"dtype": "F32", "shape": [4, 10], "data_offsets": [begin, end]}`. Offsets are byte
offsets relative to the start of the data section (`8+N`), `end - begin = numel * itemsize`, and
the tensors are packed back to back **in the order their members appear in the header** (the order
listed in this README), with no gaps, the last one ending at end of file. Consequently an I64/F64
tensor may start at an offset that is not a multiple of 8: read with `memcpy`, not a cast.
dtypes used: `F32` (float), `F64` (double), `I64` (int64_t). A 0-d tensor has `"shape": []` and
one element. `__metadata__` (written last) maps strings to strings only (`format`, `generator`,
`torch`, ...); nothing in it is needed to use the data. The JSON is compact
(`separators=(",", ":")`), but a reader should not depend on whitespace or member order of the
inner objects. This is the official `safetensors` format (that package is not installed here, so
compatibility with it is by construction, not tested).

Everywhere below: `num_batches_tracked` tensors are I64 0-d, every other tensor of a state dict is
F32, `labels` are I64, losses are F32 0-d.

## keys/*.txt — state_dict() key lists

`keys/<model>.txt` holds one line per `state_dict()` entry, in PyTorch's order:
`<key>` TAB `<shape as comma-separated ints>` LF. A 0-d tensor has an empty shape, so the line is
the key, a tab, and the newline (`bn1.num_batches_tracked\t`). Every line, the last included, ends
with `\n`.

| file | model |
|---|---|
| `mnist_resnet18.txt` | the seed article's `ResNet18()` (MNIST, 1x28x28, 10 classes) |
| `resnet18.txt` ... `resnet152.txt` | `torchvision.models.resnetNN(weights=None)`: 1000 classes, 3 input channels |
| `resnet50_10c_1ch.txt` | `torchvision.models.resnet50(num_classes=10)` with `conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)` (the seed's grayscale variant) |

## Batch-norm and loss semantics (PyTorch's, for all parity files)

* BatchNorm2d: eps = 1e-5, momentum = 0.1. Train mode normalises with the batch mean and the
  **biased** batch variance (divide by N*H*W), then updates
  `running_mean = 0.9*running_mean + 0.1*batch_mean`,
  `running_var = 0.9*running_var + 0.1*batch_var_unbiased` (divide by N*H*W - 1),
  `num_batches_tracked += 1`. Eval mode uses the running statistics.
* Loss: `nn.CrossEntropyLoss()` = mean over the batch of `logsumexp(logits) - logits[label]`.
* `eval.*` is a forward in eval mode; `train.*`, `grad*.*` and `after_train.*` come from one
  forward in train mode **on a separate copy of the same initial state** (the eval forward does not
  touch any state), then `loss.backward()`. No optimizer step is taken, so parameters are
  unchanged; only the BN buffers change.
* Gradients are of `train.loss` (the batch mean), i.e. what `loss.backward()` leaves in `.grad`.
* `__metadata__` is informational only.

## parity/mnist_resnet18.safetensors — the seed's MNIST network

The network is the seed article's (`ResidualBlock` with `left`/`shortcut`, `ResNet` with `conv1 =
Sequential(conv3x3 1->16, BN, ReLU)`, `layer1..4` from `make_layer` with 16/32/64/128 channels and
strides 1/2/2/2, `F.avg_pool2d(out, 4)`, `fc` 128->10). Construction:

1. `torch.manual_seed(0)`; `model = ResNet18()` (PyTorch default init).
2. For every `BatchNorm2d` in `model.modules()` order (C channels), from the same generator:
   `weight = 1 + 0.2*randn(C)`, `bias = 0.1*randn(C)`, `running_mean = 0.1*randn(C)`,
   `running_var = 0.5 + rand(C)`, `num_batches_tracked = 7`.
3. `input = torch.rand(4, 1, 28, 28)`, `labels = torch.randint(0, 10, (4,))`.

The C++ side does not need to reproduce any of this: the full state is stored.

Keys, in file order (`<k>` runs over `state_dict()` keys in order = `keys/mnist_resnet18.txt`;
`<p>` over `named_parameters()` in order, i.e. the state keys minus the BN buffers; `<b>` over the
BN buffer keys, i.e. the keys ending in `running_mean`, `running_var`, `num_batches_tracked`):

| key | dtype | shape | meaning |
|---|---|---|---|
| `state.<k>` | F32 / I64 | as in the key list | the full state dict before any forward |
| `input` | F32 | [4,1,28,28] | |
| `labels` | I64 | [4] | |
| `eval.logits` | F32 | [4,10] | `model.eval()` forward |
| `eval.stage_sumsq.<s>`, `eval.stage_sample.<s>` | F64 0-d, F32 [64] | | debugging aids, see below; `<s>` in conv1, layer1, layer2, layer3, layer4 |
| `train.logits` | F32 | [4,10] | train-mode forward on a fresh copy |
| `train.loss` | F32 | [] | mean cross-entropy of `train.logits` vs `labels` |
| `train.stage_sumsq.<s>`, `train.stage_sample.<s>` | F64 0-d, F32 [64] | | as for eval, in the train forward |
| `grad.<p>` | F32 | shape of `<p>` | every parameter's full gradient after `loss.backward()` |
| `after_train.<b>` | F32 / I64 | shape of `<b>` | BN buffers after the single train forward (`num_batches_tracked` = 8) |
| `f32err.eval.logits`, `f32err.train.logits`, `f32err.train.loss` | F32 | [] | conditioning estimates, see below |
| `f32err.grad.<p>` | F32 | [] | conditioning estimate of `grad.<p>` |

Stage debugging aids (also in the torchvision parity files): for a top-level child module `<s>`
of the model, `stage_sumsq.<s>` is the float64 sum of squares of that module's whole output (batch
included) and `stage_sample.<s>` is its output at the 64 flat indices of the sampling rule below
(applied to the output's numel, batch included).

Conditioning estimates `f32err.<q>` (all parity files): the whole computation is repeated in
float64 (`model.double()`, `input.double()`, same state), and `f32err.<q>` =
`max|q_f32 - q_f64| / max|q_f64|` over the whole tensor (for gradients: the whole gradient, not
just the stored sample). It measures how far PyTorch's *own* float32 result is from exact, so a
float32 implementation such as ctnn cannot be expected to match PyTorch more closely than about
`f32err` either; a reasonable per-tensor tolerance is `max(1e-4, 10 * f32err)` relative to the
tensor's absmax. The stored values themselves are always PyTorch's float32 results.

## parity/pytorch_saved_mnist.safetensors

Exactly `state.<k>` of `mnist_resnet18.safetensors` under PyTorch's plain `state_dict()` keys
(`conv1.0.weight`, ..., `fc.bias`), in `state_dict()` order, with
`__metadata__ = {"format": "pt", ...}`: what `safetensors.torch.save_file(model.state_dict(), ...)`
would hold for that model. Loading it with `model.load_state_dict(..., strict=True)` works.

## parity/resnet18.safetensors, parity/resnet50.safetensors — torchvision with formula weights

Model: `torchvision.models.resnet18(weights=None)` / `resnet50(weights=None)`: 1000 classes, 3
input channels, BasicBlock / Bottleneck v1.5 (stride on the 3x3 conv). **The weights are not
stored**: they follow this formula, which the C++ side reproduces.

Iterate over `state_dict()` keys in order (exactly the lines of `keys/resnet18.txt` /
`keys/resnet50.txt`) with k = 0, 1, 2, .... For tensor k and its flat row-major element index
i = 0 .. numel-1:

    h = (i * i) % 65521                           // exact, in uint64_t (i*i < 2^63)
    a = 0.731 * (double)h + 1.37 * (double)k      // IEEE double: two rounded products, one rounded add
    s = sin(a)                                    // double; C library sin (Python math.sin = glibc sin)

and the stored float32 value is `(float)(v)` (round to nearest even) with `v`, in double:

| tensor | v |
|---|---|
| conv weight (4-d, [out, in, kh, kw]) | `s * (sqrt(6.0 / fan_in) * 0.5)`, fan_in = in*kh*kw (the bracket is one double computed first; the `* 0.5` is exact) |
| BN `weight` | `1.0 + 0.2 * s` |
| BN `bias` | `0.1 * s` |
| BN `running_mean` | `0.1 * s` |
| BN `running_var` | `1.0 + 0.5 * s` |
| BN `num_batches_tracked` | `k` itself (I64), no sin |
| fc `weight` ([out, in]) | `s / sqrt((double)in)` |
| fc `bias` | `0.1 * s` |

(torchvision ResNets have no conv biases.) Note k counts *every* state_dict entry, buffers and
`num_batches_tracked` included, e.g. in resnet18 `conv1.weight` is k=0, `bn1.weight` k=1,
`bn1.num_batches_tracked` k=5, `layer1.0.conv1.weight` k=6.

The conv factor 0.5 keeps activations O(1): with it the eval-mode stage outputs have RMS 0.4-2.3
and max |eval.logits| is 1.6 (resnet18) and 12.6 (resnet50).

65521 is the largest prime below 2^16, so 0 <= h < 65521 and |a| < 5e4 + 1.37 k. Why `h` and not
`i` itself: with a phase linear in i, `sin(0.731 (o*F + j) + c) = cos(0.731 o F + c) sin(0.731 j)
+ sin(0.731 o F + c) cos(0.731 j)`, so every conv/fc weight matrix [out, fan_in] would have rank
exactly 2; all output channels of every conv become combinations of two signals, train-mode BN
then divides near-constant channels by a tiny batch variance, and the float32 result of PyTorch
itself disagreed with float64 by 17% in `train.logits` and by more than 100% in gradients. The
quadratic residue `h` gives weight matrices whose singular values look like a random matrix's.

Reproducing bit-exactly in C++: evaluate exactly the operations shown, in double, with `std::sin`
(glibc), and without FMA contraction. Checked: a straightforward C++ loop built with
`g++ -O2` (or `-O2 -march=native -ffp-contract=off`) reproduces all 25,610,152 float32 values of
resnet50 bit for bit; the same loop built with `-O2 -march=native` (GCC contracts `x*y + z` into an
FMA) differed in 2,562 of them (relative difference at most 3e-6, all near zeros of the sine):
harmless for the logits, but it breaks an exact `formula_head` comparison. To check the
implementation, each file stores `formula_head.<k>`: the first min(8, numel) elements of every
generated tensor (F32 [<=8]; for `num_batches_tracked` the I64 0-d value k).

Input: `torch.manual_seed(1)`; `input = torch.rand(2, 3, 64, 64)` (stored, F32, 96 KiB);
`labels = torch.randint(0, 1000, (2,))` (stored, I64 [2]). Both files use the same input and labels.

Besides the train-mode gradients (`grad_*`), these files hold **eval-mode gradients** (`eval_grad_*`):
a forward in eval mode (BN with running statistics) on its own copy of the initial state, the
cross-entropy `eval.loss` of `eval.logits`, then `loss.backward()`. Reason: ResNet50's train-mode
gradients are chaotic at this batch size, whatever the weights (also with torchvision's default
init, and also at batch 8 or 2x3x128x128): perturbing the input by 1e-7 relative in float64
changes some parameter gradients by 30-45%, and PyTorch's float32 gradients differ from float64 by
~2% (median over parameters) and up to ~46% (see `f32err.grad.*`). Train-mode BN in deep nets
amplifies perturbations exponentially with depth. Only the gradient norms (`grad_sumsq`, within a
few %) and the forward results (`train.logits`, `train.loss`, `after_train.*`, ~1e-5) are usable
for ResNet50 in train mode; the eval-mode gradients agree with float64 to ~1e-6 and test every
backward kernel except BN's batch-statistics path (covered by `layers.safetensors`, the MNIST file
and resnet18, whose train-mode gradients are well conditioned, ~1e-5).

Gradients are too big to store whole (11.7M / 25.6M parameters). For every parameter `<p>` (in
`named_parameters()` order) the file stores

* `grad_sample.<p>`: F32 [64], the gradient's flat row-major values at indices
  `idx_j = (j * 2654435761 + 12345) % numel`, j = 0..63 (compute in 64-bit unsigned: j*2654435761
  < 2^38; indices may repeat for small tensors). If numel < 64: all elements in order, shape [numel].
* `grad_absmax.<p>`: F32 0-d, max |grad| over the whole tensor.
* `grad_sumsq.<p>`: F64 0-d, sum of squares of the float32 gradient values, accumulated in
  float64 (summation order unspecified; compare with a relative tolerance).

Keys, in file order (`<b>` = BN buffer keys, `<p>` = parameter names, `<k>` = all state keys,
`<s>` = conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool):

| key | dtype | shape |
|---|---|---|
| `input` | F32 | [2,3,64,64] |
| `labels` | I64 | [2] |
| `eval.logits` | F32 | [2,1000] |
| `train.logits` | F32 | [2,1000] |
| `train.loss` | F32 | [] |
| `after_train.<b>` | F32 [C] / I64 [] | BN buffers after the train forward (`num_batches_tracked` = k+1) |
| `grad_sample.<p>` | F32 | [min(64, numel)] |
| `grad_absmax.<p>` | F32 | [] |
| `grad_sumsq.<p>` | F64 | [] |
| `eval.loss` | F32 | [] |
| `eval_grad_sample.<p>` | F32 | [min(64, numel)] |
| `eval_grad_absmax.<p>` | F32 | [] |
| `eval_grad_sumsq.<p>` | F64 | [] |
| `eval.stage_sumsq.<s>`, `eval.stage_sample.<s>` | F64 [], F32 [64] | stage debugging aids (see the MNIST section) |
| `train.stage_sumsq.<s>`, `train.stage_sample.<s>` | F64 [], F32 [64] | same, train forward |
| `f32err.eval.logits`, `f32err.train.logits`, `f32err.train.loss`, `f32err.eval.loss` | F32 | [] (conditioning estimates, see the MNIST section) |
| `f32err.grad.<p>` | F32 | [] (of the whole train-mode gradient) |
| `f32err.eval_grad.<p>` | F32 | [] (of the whole eval-mode gradient) |
| `formula_head.<k>` | F32 [min(8, numel)] / I64 [] | first elements of the generated weights |

Note the `bn1` stage output is captured before the in-place `relu` runs (so it is BN's output).
"""


def make_readme(out, cases, layer_tensors, stats):
    lines = [README_HEAD]
    lines.append("## Observed magnitudes (this machine)\n")
    lines.append("`f32err` as defined above (max over parameters / median over parameters for gradients).\n")
    for name, st in stats.items():
        lines.append("* `%s`: max |eval.logits| = %.4g, max |train.logits| = %.4g, train.loss = %.6g;"
                     % (name, st["eval_absmax"], st["train_absmax"], st["loss"]))
        lines.append("  f32err: eval.logits %.1e, train.logits %.1e, train gradients max %.1e / median %.1e%s"
                     % (st["f32err_eval_logits"], st["f32err_train_logits"], st["f32err_grad_max"],
                        st["f32err_grad_median"],
                        ", eval gradients max %.1e" % st["f32err_eval_grad_max"] if "f32err_eval_grad_max" in st else ""))
    lines.append("")
    lines.append("## layers.safetensors — single-layer reference values\n")
    lines.append(
        "Each case is one PyTorch module (default init after `torch.manual_seed`, then any fixed values\n"
        "stated), an input `x` drawn from `torch.randn`, its output `y`, a fixed upstream gradient `dy`\n"
        "(`torch.randn` of y's shape) and the gradients autograd gives for `(y * dy).sum()`: `dx` for the\n"
        "input and `d<param>` for each parameter. Keys are `<case>.<what>`. Parameters and buffers are\n"
        "stored with the values used in the forward (for `bn_train`, the running statistics before the\n"
        "step; `*_after` are after it). All F32 except `*.labels` and `*num_batches_tracked*` (I64).\n")
    lines.append("| case | what |")
    lines.append("|---|---|")
    for name, desc in cases:
        lines.append("| `%s` | %s |" % (name, desc))
    lines.append("")
    lines.append("Every key, in file order:\n")
    lines.append("| key | dtype | shape |")
    lines.append("|---|---|---|")
    for k, v in layer_tensors.items():
        lines.append("| `%s` | %s | [%s] |" % (k, dtype_name(v), shape_str(v.shape)))
    lines.append("")
    lines.append("## Files and sizes\n")
    lines.append("The files written by `tools/make_reference_fixtures.py` (other files in this directory, such as\n"
                 "`optim.json` from `tools/make_optimizer_fixtures.py`, come from other generators):\n")
    lines.append("| file | bytes | tensors / keys |")
    lines.append("|---|---:|---:|")
    total = 0
    for path in sorted(set(WRITTEN), key=lambda p: os.path.relpath(p, out)):
        rel = os.path.relpath(path, out)
        if rel.endswith(".safetensors"):
            count = str(len(read_safetensors(path)[0]))
        else:
            with open(path, encoding="utf-8") as f:
                count = str(sum(1 for _ in f)) + " keys"
        total += os.path.getsize(path)
        lines.append("| `%s` | %d | %s |" % (rel, os.path.getsize(path), count))
    lines.append("| total (without this README) | %d | |" % total)
    lines.append("")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


# ---------------------------------------------------------------------------------------------

def self_check(out):
    """Round-trip the files through the reader and reload the plain MNIST checkpoint."""
    sd, meta = read_safetensors(os.path.join(out, "parity", "pytorch_saved_mnist.safetensors"))
    model = ResNet18()
    model.load_state_dict(OrderedDict((k, torch.from_numpy(v)) for k, v in sd.items()), strict=True)
    full, _ = read_safetensors(os.path.join(out, "parity", "mnist_resnet18.safetensors"))
    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(full["input"]))
    assert torch.equal(y, torch.from_numpy(full["eval.logits"])), "MNIST eval logits do not reproduce"
    # formula weights reproduce the stored eval logits
    for name in ("resnet18", "resnet50"):
        data, _ = read_safetensors(os.path.join(out, "parity", name + ".safetensors"))
        m = TORCHVISION_MODELS[name](weights=None)
        m.load_state_dict(formula_state(m), strict=True)
        m.eval()
        with torch.no_grad():
            y = m(torch.from_numpy(data["input"]))
        assert torch.equal(y, torch.from_numpy(data["eval.logits"])), name + " eval logits do not reproduce"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    parser.add_argument("--no-check", action="store_true", help="skip the read-back self check")
    args = parser.parse_args()
    out = os.path.abspath(args.out)

    torch.set_num_threads(1)
    torch.manual_seed(0)

    make_key_lists(out)
    stats = OrderedDict()
    stats["mnist_resnet18"] = make_mnist_parity(out)
    for name in ("resnet18", "resnet50"):
        stats[name] = make_torchvision_parity(out, name)
    cases = make_layer_cases(out)
    layer_tensors, _ = read_safetensors(os.path.join(out, "layers.safetensors"))
    if not args.no_check:
        self_check(out)
    make_readme(out, cases, layer_tensors, stats)
    for name, st in stats.items():
        print(name, json.dumps(st))


if __name__ == "__main__":
    main()
