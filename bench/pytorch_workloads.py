#!/usr/bin/python3
"""The workloads of bench_mnist and bench_resnet50 in PyTorch, printing the same RESULT lines.

The MNIST net is the seed article's ResNet18 (16/32/64/128 channels, F.avg_pool2d(out, 4));
ResNet50 is torchvision's. Training: forward in train mode, cross-entropy, backward, plain SGD.
Inference: eval mode under torch.no_grad(). Run with Debian's /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 bench/pytorch_workloads.py --threads 2 --workload mnist_train
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from seed_resnet import ResNet18 as SeedResNet18  # noqa: E402

MNIST_MULTIPLY_ADDS = 28_573_184
RESNET50_MULTIPLY_ADDS = 4_089_184_256


def median_seconds(args, f):
    """(median wall, fastest wall, median process CPU time) of args.runs runs after args.warmup."""
    for _ in range(args.warmup):
        f()
    wall, cpu = [], []
    for _ in range(args.runs):
        cpu_start, start = time.process_time(), time.perf_counter()
        f()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def report(args, workload, batch, timing, flop_per_image):
    seconds, best, cpu = timing
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ips = batch / seconds
    print(f"RESULT workload={workload} threads={args.threads} batch={batch} ms={seconds * 1e3:.3f} "
          f"best_ms={best * 1e3:.3f} cpu_ms={cpu * 1e3:.3f} images_per_s={ips:.1f} "
          f"gflops={ips * flop_per_image * 1e-9:.1f} rss_mib={rss:.0f}", flush=True)


def train_step(model, x, labels, lr=0.01):
    model.zero_grad()
    F.cross_entropy(model(x), labels).backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(lr * p.grad)


# The MNIST net's convolutions as bench_conv_layers times them: (C, H, K, S, M, uses per training
# step, whether training needs the input gradient).
MNIST_CONV_LAYERS = [(1, 28, 3, 1, 16, 1, False), (16, 28, 3, 1, 16, 4, True), (16, 28, 3, 2, 32, 1, True),
                     (16, 28, 1, 2, 32, 1, True), (32, 14, 3, 1, 32, 3, True), (32, 14, 3, 2, 64, 1, True),
                     (32, 14, 1, 2, 64, 1, True), (64, 7, 3, 1, 64, 3, True), (64, 7, 3, 2, 128, 1, True),
                     (64, 7, 1, 2, 128, 1, True), (128, 4, 3, 1, 128, 3, True)]


def conv_layers(args):
    """Forward, and the backward that training runs, of each layer alone at batch 128."""
    for c, h, k, s, m, uses, input_gradient in MNIST_CONV_LAYERS:
        conv = nn.Conv2d(c, m, k, s, (k - 1) // 2, bias=False)
        x = torch.randn(128, c, h, h, requires_grad=input_gradient)
        y = conv(x)
        dy = torch.randn_like(y)
        flop = 2.0 * m * c * k * k * y.shape[2] * y.shape[3] * 128
        wrt = [conv.weight, x] if input_gradient else [conv.weight]
        layer = f"{c}x{h}x{h}-{k}x{k}s{s}-{m}"
        with torch.no_grad():
            forward = median_seconds(args, lambda: conv(x))
        backward = median_seconds(args, lambda: torch.autograd.grad(y, wrt, dy, retain_graph=True))
        for name, (seconds, best, _), pass_flop in (("forward", forward, flop),
                                                     ("backward", backward, flop * len(wrt))):
            print(f"RESULT workload=mnist_conv_layers layer={layer} uses={uses} pass={name} threads={args.threads} "
                  f"ms={seconds * 1e3:.3f} best_ms={best * 1e3:.3f} gflops={pass_flop / seconds * 1e-9:.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workload", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    wanted = lambda name: not args.workload or args.workload == name

    if wanted("mnist_train") or wanted("mnist_infer"):
        model = SeedResNet18()
        x = torch.randn(128, 1, 28, 28)
        labels = torch.arange(128) % 10
        if wanted("mnist_train"):
            model.train()
            s = median_seconds(args, lambda: train_step(model, x, labels))
            report(args, "mnist_train", 128, s, 6.0 * MNIST_MULTIPLY_ADDS)
        if wanted("mnist_infer"):
            model.eval()
            with torch.no_grad():
                s = median_seconds(args, lambda: model(x))
            report(args, "mnist_infer", 128, s, 2.0 * MNIST_MULTIPLY_ADDS)

    if wanted("mnist_conv_layers"):
        conv_layers(args)

    if any(wanted(w) for w in ("resnet50_latency", "resnet50_infer", "resnet50_train")):
        model = torchvision.models.resnet50()
        flop = 2.0 * RESNET50_MULTIPLY_ADDS
        model.eval()
        with torch.no_grad():
            for name, batch in (("resnet50_latency", 1), ("resnet50_infer", 8)):
                if wanted(name):
                    x = torch.randn(batch, 3, 224, 224)
                    report(args, name, batch, median_seconds(args, lambda: model(x)), flop)
        if wanted("resnet50_train"):
            model.train()
            x = torch.randn(8, 3, 224, 224)
            labels = torch.arange(1, 9)
            report(args, "resnet50_train", 8, median_seconds(args, lambda: train_step(model, x, labels)), 3.0 * flop)


if __name__ == "__main__":
    main()
