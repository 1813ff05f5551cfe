"""Training cost of NSH: what the sorted term costs over a plain contrastive fit.

Prints, in one run on the same machine:
1. the headline: the fit time of ``NSHTransformer()`` with its defaults against plain
   contrastive hashing (``sorted_weight=0``, the same estimator without the sorted term) on
   a (10000, d) array for ``--fit-epochs`` epochs, best of two, round robin, and their
   ratio; on the CPU and, when there is one, on the GPU;
2. where the difference goes, one training step (median) at batch 64, 128 and 256:
   the plain contrastive step; the same step that also trains the latent head through
   InfoNCE on the latent similarities (``sorter="none"``, one positive: the values NSH
   sorts, without any sort); and the NSH step. The second column minus the first is the
   latent head's cost, the third minus the second the sort's;
3. unless ``--skip-epoch``, one epoch through skorch (the net NSHTransformer builds) against
   a hand-written PyTorch loop doing the same work.

Run: ``python benchmarks/train_step.py [--n-features 384] [--n-bits 64] [--fit-epochs 50]
[--latent-dim 64]``.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from sortedhash import NSHTransformer

# Each fit's and step's sorted-term parameters; everything else is shared.
STEPS = {
    "plain": dict(sorted_weight=0.0),
    "+ latent head": dict(sorter="none", n_positives=1),
    "NSH": {},
}


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def fit_times(X, n_bits, epochs, device, shared, rounds=2):
    """Best fit time of the defaults and of sorted_weight=0 over ``rounds`` round-robin rounds."""
    best = {}
    for _ in range(rounds):  # round robin: slow drifts of the machine hit both alike
        for label in ("plain", "NSH"):
            start = time.perf_counter()
            NSHTransformer(n_bits=n_bits, max_epochs=epochs, device=device, random_state=0, **shared,
                           **STEPS[label]).fit(X)
            synchronize(device)
            best[label] = min(best.get(label, np.inf), time.perf_counter() - start)
    return best


def make_step(X, n_bits, batch, device, params):
    """One training step of the net NSHTransformer builds, on a fixed batch (views by feature
    noise alone: drawing neighbour-mixed views is an indexing, the same in every step)."""
    model = NSHTransformer(n_bits=n_bits, batch_size=batch, max_epochs=1, random_state=0, device=device,
                           mix_neighbors=0, **params).fit(X[:batch])
    net = model.net_
    x = torch.as_tensor(X[:batch]).to(net.device)

    def step():
        net.optimizer_.zero_grad()
        loss = net.train_step_single((x, None))["loss"]
        net.optimizer_.step()
        loss.item()  # skorch reads the loss every batch too

    return step


def median_step_times(steps, device, repeats):
    """Median time of each step, the steps interleaved so that drifts hit all alike."""
    for step in steps.values():
        for _ in range(3):
            step()  # warm-up
    times = {label: [] for label in steps}
    for _ in range(repeats):
        for label, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


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


def describe(device):
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu, {torch.get_num_threads()} threads"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-features", type=int, default=384)
    parser.add_argument("--n-bits", type=int, default=64)
    parser.add_argument("--n-samples", type=int, default=10000, help="rows of the fits of part 1")
    parser.add_argument("--fit-epochs", type=int, default=50,
                        help="epochs of the fits of part 1 (50: NSHTransformer's default)")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256], help="batch sizes of part 2")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default=None,
                        help='"cpu" or "cuda"; by default the CPU, and the GPU too when there is one')
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latent head width of every fit and step (default: NSHTransformer's, 256)")
    parser.add_argument("--skip-epoch", action="store_true", help="skip part 3 (skorch against a bare loop)")
    args = parser.parse_args(argv)
    shared = {} if args.latent_dim is None else {"latent_dim": args.latent_dim}
    latent_dim = args.latent_dim or NSHTransformer().latent_dim
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    X = np.random.default_rng(0).standard_normal((args.n_samples, args.n_features)).astype(np.float32)
    print(f"torch {torch.__version__}, {args.n_samples} x {args.n_features} -> {args.n_bits} bits, "
          f"NSHTransformer defaults (MLP d->1024->(bits, {latent_dim}), batch 128)")

    print(f"\n1. fit, {args.fit_epochs} epochs, best of two: NSH defaults against sorted_weight=0")
    for device in devices:
        best = fit_times(X, args.n_bits, args.fit_epochs, device, shared)
        print(f"{describe(device)}: NSH {best['NSH']:.2f} s, plain {best['plain']:.2f} s, "
              f"ratio {best['NSH'] / best['plain']:.2f}x", flush=True)

    print("\n2. one training step (median ms): plain, + latent head (InfoNCE on the latents, no sort), NSH")
    for device in devices:
        print(describe(device))
        print(f"{'batch':>6} | {'plain':>7} | {'+ latent head':>13} | {'NSH':>7} | latent head | sort | NSH / plain")
        for batch in args.batches:
            steps = {label: make_step(X, args.n_bits, batch, device, {**shared, **params})
                     for label, params in STEPS.items()}
            t = median_step_times(steps, device, args.repeats)
            plain, latent, nsh = t["plain"], t["+ latent head"], t["NSH"]
            print(f"{batch:>6} | {1e3 * plain:7.2f} | {1e3 * latent:13.2f} | {1e3 * nsh:7.2f} | "
                  f"{(latent - plain) / plain:+10.0%} | {(nsh - latent) / plain:+4.0%} | {nsh / plain:10.2f}x",
                  flush=True)

    if not args.skip_epoch:
        print("\n3. one epoch, skorch (NSHTransformer's net) vs a bare PyTorch loop")
        for device in devices:
            for batch in (64, 256):
                model = NSHTransformer(n_bits=args.n_bits, batch_size=batch, max_epochs=1, random_state=0,
                                       device=device, mix_neighbors=0, **shared).fit(X[:batch * 2])
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
                print(f"{describe(device)}, batch {batch:>4}: skorch {s:6.2f} s, bare loop {b:6.2f} s, "
                      f"ratio {s / b:5.2f}x")


if __name__ == "__main__":
    main()
