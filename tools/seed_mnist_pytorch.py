#!/usr/bin/python3
"""The seed article's MNIST experiment in PyTorch: the peer for the README's accuracy table.

Trains the seed's ResNet18 (tools/seed_resnet.py's ResNet18: PyTorch's default
init, as the seed's code) on the four IDX files that scripts/get-mnist writes, with the seed's
defaults (SGD lr 0.1, batch 128, shuffled every epoch, last partial batch kept) and prints the
eval-mode test accuracy after each epoch: with the running averages as trained (model.eval()),
and with BatchNorm statistics recomputed by torch.optim.swa_utils.update_bn over the same
training images train_mnist --recompute-bn N uses (N spread evenly, batches of 128 to 255; the
recomputation is done on a copy, so training continues exactly as without it). Needs Debian's
python3-torch (never needed by CI):

    /usr/bin/python3 tools/seed_mnist_pytorch.py --data data/mnist --seeds 0 1 2 --epochs 1
"""

import argparse
import copy as copy_module
import os
import statistics
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_resnet import ResNet18  # noqa: E402


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    (magic,) = struct.unpack(">I", raw[:4])
    dims = struct.unpack(">" + "I" * (magic & 0xFF), raw[4:4 + 4 * (magic & 0xFF)])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load_split(data, prefix):
    images = torch.tensor(read_idx(os.path.join(data, prefix + "-images-idx3-ubyte")), dtype=torch.float32) / 255
    labels = torch.tensor(read_idx(os.path.join(data, prefix + "-labels-idx1-ubyte")), dtype=torch.int64)
    return images.unsqueeze(1), labels


def accuracy(model, images, labels):
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(images[i:i + 500]).argmax(1) == labels[i:i + 500]).sum())
                      for i in range(0, len(labels), 500))
    model.train()
    return correct / len(labels)


def recomputed_accuracy(model, train_x, images, batch_size, test_x, test_y):
    """Eval-mode accuracy of a copy of `model` whose BatchNorm statistics update_bn recomputed."""
    count = len(train_x)
    n = min(images, count)
    parts = max(1, n // batch_size)
    loader = [train_x[[i * count // n for i in range(part * n // parts, (part + 1) * n // parts)]] for part in range(parts)]
    copy = copy_module.deepcopy(model)
    torch.optim.swa_utils.update_bn(loader, copy)
    return accuracy(copy, test_x, test_y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recompute-bn", type=int, default=4096, help="images for update_bn (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_x, train_y = load_split(args.data, "train")
    test_x, test_y = load_split(args.data, "t10k")
    finals, finals_recomputed = [], []
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = ResNet18()
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(args.epochs):
            order = torch.randperm(len(train_y))
            for begin in range(0, len(order), args.batch_size):
                batch = order[begin:begin + args.batch_size]
                loss = loss_fn(model(train_x[batch]), train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            result = accuracy(model, test_x, test_y)
            line = "seed %d epoch %d: test accuracy %.4f (eval mode)" % (seed, epoch + 1, result)
            if args.recompute_bn:
                recomputed = recomputed_accuracy(model, train_x, args.recompute_bn, args.batch_size, test_x, test_y)
                line += ", %.4f with recomputed BatchNorm statistics" % recomputed
            print(line, flush=True)
        finals.append(result)
        if args.recompute_bn:
            finals_recomputed.append(recomputed)
    for name, values in (("eval mode", finals), ("recomputed statistics", finals_recomputed)):
        if len(values) > 1:
            print("%s: median %.4f, min %.4f, max %.4f over seeds %s" % (name, statistics.median(values), min(values),
                                                                        max(values), args.seeds))


if __name__ == "__main__":
    main()
