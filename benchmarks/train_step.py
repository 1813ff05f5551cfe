"""Training cost of NSH: a sorted step against a plain NCE step, skorch against a bare loop.

Prints, in one run on the same machine:
1. the time of one NSH training step (two views, encoder forward and backward, sorter,
   SortedNCE, Adam) for each sorter at batch sizes 64 and 256, against a plain NCE step
   (no sorting, one positive) on the same encoder, and their ratio;
2. the time of one epoch through skorch (the net NSHTransformer builds) against a
   hand-written PyTorch loop doing the same work, and their ratio.

Run: ``python benchmarks/train_step.py [--n-features 512] [--n-bits 64]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from sortedhash import NSHTransformer
from sortedhash.nn import FeatureNoise, HashingNetwork, MLPBackbone, NSHLoss, make_sorter


def make_step(n_features, n_bits, sorter, n_positives):
    torch.manual_seed(0)
    module = HashingNetwork(MLPBackbone(n_features, (1024,)), 1024, n_bits, 256)
    loss_fn = NSHLoss(make_sorter(sorter, n_bits), n_positives=n_positives, temperature=0.2)
    augment = FeatureNoise(0.3, 0.1)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)

    def step(x):
        optimizer.zero_grad()
        loss = loss_fn(module(augment(x)), module(augment(x)))
        loss.backward()
        optimizer.step()
        return loss

    return step


def time_steps(step, x, repeats):
    for _ in range(3):
        step(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_epoch(model, X, batch_size):
    """One epoch of the same work as NSHNet, without skorch."""
    net = model.net_
    module, criterion, optimizer, augment = net.module_, net.criterion_, net.optimizer_, net.augment
    module.train()
    X = torch.as_tensor(X)
    perm = torch.randperm(len(X))
    for start in range(0, len(X) - batch_size + 1, batch_size):
        x = X[perm[start:start + batch_size]]
        optimizer.zero_grad()
        loss = criterion(module(augment(x)), module(augment(x)))
        loss.backward()
        optimizer.step()
        loss.item()  # skorch reads the loss every batch too


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-bits", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, d={args.n_features}, "
          f"b={args.n_bits}, MLP d->1024->(b, 256)")

    print("\n1. one training step (median), NSH (m=8) vs plain NCE (no sort, m=1)")
    print(f"{'batch':>6} | {'plain NCE ms':>12} | {'sorter':>9} | {'NSH ms':>8} | ratio")
    for batch in (64, 256):
        x = torch.randn(batch, args.n_features)
        base = time_steps(make_step(args.n_features, args.n_bits, "none", 1), x, args.repeats)
        for sorter in ("softsort", "torchsort"):
            t = time_steps(make_step(args.n_features, args.n_bits, sorter, 8), x, args.repeats)
            print(f"{batch:>6} | {1e3 * base:12.2f} | {sorter:>9} | {1e3 * t:8.2f} | {t / base:5.2f}x")

    print("\n2. one epoch, skorch (NSHTransformer's net) vs a bare PyTorch loop")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8192, args.n_features)).astype(np.float32)
    for batch in (64, 256):
        model = NSHTransformer(n_bits=args.n_bits, batch_size=batch, max_epochs=1, random_state=0,
                               sorted_weight=1.0, code_nce_weight=0.0).fit(X[:batch * 2])
        skorch_times, bare_times = [], []
        for _ in range(3):
            start = time.perf_counter()
            model.net_.partial_fit(X, epochs=1)
            skorch_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            bare_epoch(model, X, batch)
            bare_times.append(time.perf_counter() - start)
        s, b = min(skorch_times), min(bare_times)
        print(f"batch {batch:>4}: skorch {s:6.2f} s, bare loop {b:6.2f} s, ratio {s / b:5.2f}x")


if __name__ == "__main__":
    main()
