"""Training cost of NSH: a sorted step against a plain NCE step, skorch against a bare loop.

Prints, in one run on the same machine:
1. the time of one NSH training step (two views, encoder forward and backward, sorter,
   SortedNCE, Adam) for each sorter at batch sizes 64, 128 and 256, against a plain NCE step
   (no sorting, one positive) on the same encoder, and their ratio;
2. the time of one epoch through skorch (the net NSHTransformer builds) against a
   hand-written PyTorch loop doing the same work, and their ratio;
3. with ``--fit-epochs E``, the fit time of NSHTransformer with its defaults against plain
   NCE (``sorted_weight=0``) on a (10000, d) array for E epochs (best of two, round robin).

Part 1's "plain NCE" step is InfoNCE on the latents with no sort (the faithful form at m = 1);
the defaults' plain contrastive step (code NT-Xent only) is cheaper, so part 3 is the one to
read for what the defaults cost.

Run: ``python benchmarks/train_step.py [--n-features 512] [--n-bits 64] [--device cuda]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from sortedhash import NSHTransformer
from sortedhash.nn import FeatureNoise, HashingNetwork, MLPBackbone, NSHLoss, make_sorter


def make_step(n_features, n_bits, sorter, n_positives, device="cpu"):
    torch.manual_seed(0)
    module = HashingNetwork(MLPBackbone(n_features, (1024,)), 1024, n_bits, 256).to(device)
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


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, x, repeats):
    for _ in range(3):
        step(x)  # warm-up
    times = []
    for _ in range(repeats):
        synchronize(x.device)
        start = time.perf_counter()
        step(x)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_epoch(model, X, batch_size):
    """One epoch of the same work as NSHNet, without skorch."""
    net = model.net_
    module, criterion, optimizer, views = net.module_, net.criterion_, net.optimizer_, net.views
    module.train()
    X = torch.as_tensor(X)
    perm = torch.randperm(len(X))
    for start in range(0, len(X) - batch_size + 1, batch_size):
        x = X[perm[start:start + batch_size]].to(net.device)
        optimizer.zero_grad()
        view_a, view_b = views(x)
        loss = criterion(module(view_a), module(view_b))
        loss.backward()
        optimizer.step()
        loss.item()  # skorch reads the loss every batch too


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-bits", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu", help='"cpu", "cuda" or "auto"')
    parser.add_argument("--fit-epochs", type=int, default=0, help="also time whole fits of this many epochs")
    parser.add_argument("--skip-epoch", action="store_true", help="skip part 2 (skorch against a bare loop)")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    on_cuda = torch.device(device).type == "cuda"
    name = torch.cuda.get_device_name() if on_cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}, d={args.n_features}, b={args.n_bits}, MLP d->1024->(b, 256)")

    print("\n1. one training step (median), NSH (m=8) vs plain NCE (no sort, m=1)")
    print(f"{'batch':>6} | {'plain NCE ms':>12} | {'sorter':>15} | {'NSH ms':>8} | ratio")
    for batch in (64, 128, 256):
        x = torch.randn(batch, args.n_features, device=device)
        base = time_steps(make_step(args.n_features, args.n_bits, "none", 1, device), x, args.repeats)
        for sorter in ("softsort", "torchsort"):
            t = time_steps(make_step(args.n_features, args.n_bits, sorter, 8, device), x, args.repeats)
            print(f"{batch:>6} | {1e3 * base:12.2f} | {sorter:>15} | {1e3 * t:8.2f} | {t / base:5.2f}x", flush=True)

    if not args.skip_epoch:
        print("\n2. one epoch, skorch (NSHTransformer's net) vs a bare PyTorch loop")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((8192, args.n_features)).astype(np.float32)
        for batch in (64, 256):
            model = NSHTransformer(n_bits=args.n_bits, batch_size=batch, max_epochs=1, random_state=0,
                                   device=device, sorted_weight=1.0, code_nce_weight=0.0).fit(X[:batch * 2])
            skorch_times, bare_times = [], []
            for _ in range(3):
                start = time.perf_counter()
                model.net_.partial_fit(X, epochs=1)
                synchronize(device)
                skorch_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                bare_epoch(model, X, batch)
                synchronize(device)
                bare_times.append(time.perf_counter() - start)
            s, b = min(skorch_times), min(bare_times)
            print(f"batch {batch:>4}: skorch {s:6.2f} s, bare loop {b:6.2f} s, ratio {s / b:5.2f}x")

    if args.fit_epochs:
        print(f"\n3. fit, 10000 x {args.n_features}, {args.fit_epochs} epochs, {args.n_bits} bits, defaults")
        X = np.random.default_rng(0).standard_normal((10000, args.n_features)).astype(np.float32)
        fits = [("plain NCE", dict(sorted_weight=0.0)), ("NSH torchsort", {}), ("NSH softsort", dict(sorter="softsort"))]
        best = {}
        for _ in range(2):  # round robin, best of two: slow drifts of the machine hit all alike
            for label, params in fits:
                start = time.perf_counter()
                NSHTransformer(n_bits=args.n_bits, max_epochs=args.fit_epochs, device=device, random_state=0,
                               **params).fit(X)
                synchronize(device)
                best[label] = min(best.get(label, np.inf), time.perf_counter() - start)
        for label, t in best.items():
            print(f"{label:>26}: {t:7.1f} s  ({t / best['plain NCE']:4.2f}x plain)", flush=True)


if __name__ == "__main__":
    main()
