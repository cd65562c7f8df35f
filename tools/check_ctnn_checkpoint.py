#!/usr/bin/python3
"""Check that a checkpoint written by ctnn::save() loads into PyTorch and computes the same thing.

Needs Debian's python3-torch and python3-torchvision (not needed by CI). Usage:

    /usr/bin/python3 tools/check_ctnn_checkpoint.py CHECKPOINT --model mnist \
        [--reference REF.safetensors] [--tolerance 1e-4]

CHECKPOINT is loaded with load_state_dict(strict=True) into one of
  mnist                     the seed article's ResNet18 for 1x28x28 MNIST digits
  resnet18 ... resnet152    torchvision's ResNet (--num-classes, --in-channels adjust fc and conv1)
REF, if given, is a safetensors file with "input" [N, C, H, W] (F32) and "logits" [N, K] or
[N, K, 1, 1] (F32), the eval-mode logits ctnn computed for that input; the script runs the
PyTorch model in eval mode on the same input and compares: max |torch - ctnn| / max |torch|.
Exit status 0 when the checkpoint loads strictly (and the logits agree within the tolerance).
The safetensors reader is written here so the check needs nothing beyond torch.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_resnet import ResNet18  # noqa: E402

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
          "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """Returns ({name: torch.Tensor}, metadata) in file order; BF16 is widened to float32."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("%s: header length %d runs past the end of the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        shape = [int(d) for d in info["shape"]]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(data[begin:end], dtype=np.dtype(DTYPES[info["dtype"]]))
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: tensor %s: data does not match its shape" % (path, name))
        tensors[name] = torch.from_numpy(array.reshape(shape).copy())
    return tensors, metadata


def build_model(name, num_classes, in_channels):
    if name == "mnist":
        return ResNet18(num_classes)
    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--model", default="mnist",
                        choices=["mnist", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
    parser.add_argument("--num-classes", type=int, default=None, help="default: 10 for mnist, 1000 otherwise")
    parser.add_argument("--in-channels", type=int, default=3, help="torchvision models only")
    parser.add_argument("--reference", help="safetensors file with ctnn's 'input' and eval-mode 'logits'")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    num_classes = args.num_classes or (10 if args.model == "mnist" else 1000)
    model = build_model(args.model, num_classes, args.in_channels)
    state, metadata = read_safetensors(args.checkpoint)
    float_keys = [k for k, v in state.items() if v.is_floating_point() and v.dtype != torch.float32]
    if float_keys:
        print("note: %d tensors are not F32 (e.g. %s); load_state_dict converts them" % (len(float_keys), float_keys[0]))
    result = model.load_state_dict(state, strict=True)  # raises on any missing/unexpected key or shape
    print("load_state_dict(strict=True): OK (%d tensors, missing=%s, unexpected=%s, metadata=%s)"
          % (len(state), list(result.missing_keys), list(result.unexpected_keys), dict(metadata)))
    counters = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    if counters:
        print("num_batches_tracked: %s" % sorted(set(counters.values())))

    if not args.reference:
        return 0
    reference, _ = read_safetensors(args.reference)
    x = reference["input"].to(torch.float32)
    expected = reference["logits"].to(torch.float32).reshape(x.shape[0], -1)
    model.eval()
    logits = model(x)
    error = float((logits - expected).abs().max())
    scale = float(logits.abs().max())
    relative = error / scale if scale > 0 else error
    agree = relative <= args.tolerance
    print("eval logits, batch %d: max |torch - ctnn| = %.3g, max |torch| = %.3g, relative %.3g (tolerance %g): %s"
          % (x.shape[0], error, scale, relative, args.tolerance, "OK" if agree else "MISMATCH"))
    print("argmax torch %s, ctnn %s" % (logits.argmax(1).tolist(), expected.argmax(1).tolist()))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
