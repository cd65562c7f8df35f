#!/usr/bin/python3
"""PyTorch's faster inference modes for the seed's MNIST net, batch 128: how far eager mode (what
bench/compare_pytorch.sh compares against) is from what PyTorch can do on this machine.
    /usr/bin/python3 bench/pytorch_mnist_variants.py --threads 2
"""
import argparse
import statistics
import time

import torch

from pytorch_workloads import SeedResNet18


def images_per_second(f, runs=15, batch=128):
    # TorchScript's profiling executor specialises the graph over the first calls: warm up longer.
    for _ in range(10):
        f()
    wall = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        wall.append(time.perf_counter() - start)
    return batch / statistics.median(wall)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    x = torch.randn(128, 1, 28, 28)
    with torch.no_grad():
        eager = SeedResNet18().eval()
        print(f"eager            {images_per_second(lambda: eager(x)):8.1f} img/s")
        last = SeedResNet18().eval().to(memory_format=torch.channels_last)
        x_last = x.contiguous(memory_format=torch.channels_last)
        print(f"channels_last    {images_per_second(lambda: last(x_last)):8.1f} img/s")
        frozen = torch.jit.freeze(torch.jit.script(SeedResNet18().eval()))
        print(f"jit.freeze       {images_per_second(lambda: frozen(x)):8.1f} img/s")
        optimized = torch.jit.optimize_for_inference(torch.jit.script(SeedResNet18().eval()))
        print(f"optimize_for_inference {images_per_second(lambda: optimized(x)):8.1f} img/s")


if __name__ == "__main__":
    main()
