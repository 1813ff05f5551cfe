"""Try: SortedNCE gathers a frozen teacher's similarities instead of the learned latent head.

The sorted list of each anchor normally gathers the latent vectors ``z`` of a head trained
with the codes. Here ``z`` is the clean (un-augmented) input feature vector, L2-normalised,
so the sorter learns to rank the in-batch Hamming neighbours by the float features' cosine
similarity: ranking distillation from the features into the codes, with everything else at
the defaults. A try for issue #4, not a library feature (see docs/benchmarks.md).

    python benchmarks/teacher_target.py newsgroups --data PATH --cache DIR --bits 16 32 --seeds 2
"""

import argparse
import contextlib
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler

import sortedhash.nsh
from sortedhash import NSHTransformer
from sortedhash._skorch import _Augmentation
from sortedhash.metrics import mean_average_precision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import retrieval  # noqa: E402


class TeacherLatent(torch.nn.Module):
    """Hash the augmented half of the input; return the clean half as the latent ``z``."""

    def __init__(self, network, n_features):
        super().__init__()
        self.network = network
        self.n_features = n_features

    def forward(self, x):
        h, b, _ = self.network(x[:, : self.n_features])
        return h, b, F.normalize(x[:, self.n_features:], dim=1)

    def encode(self, x):
        return self.network.encode(x)


class KeepClean:
    """Augment a batch and append the clean batch: (n, 2 d)."""

    def __init__(self, augment):
        self.augment = augment

    def __call__(self, x):
        return torch.cat([self.augment(x), x], dim=1)


@contextlib.contextmanager
def _teacher_network(n_features):
    # NSHTransformer builds its HashingNetwork inside _build_net; wrap it for this try only.
    original = sortedhash.nsh.HashingNetwork
    sortedhash.nsh.HashingNetwork = lambda *a, **k: TeacherLatent(original(*a, **k), n_features)
    try:
        yield
    finally:
        sortedhash.nsh.HashingNetwork = original


class TeacherNSH(NSHTransformer):
    def _build_net(self, X, device, batch_size, multi_view):
        with _teacher_network(X.shape[1]):
            net = super()._build_net(X, device, batch_size, multi_view)
        net.augment = _Augmentation(KeepClean(net.augment.fn))
        return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["digits", "newsgroups", "cifar10"])
    parser.add_argument("--data")
    parser.add_argument("--cache")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--database-size", type=int, default=50000)
    parser.add_argument("--train-size", type=int, default=10000)
    args = parser.parse_args()
    args.views = 0
    data = {"digits": retrieval.digits_data, "newsgroups": retrieval.newsgroups_data,
            "cifar10": retrieval.cifar_data}[args.dataset](args)
    scaler = StandardScaler().fit(data["train"])
    train, query, db = (scaler.transform(data[k]).astype(np.float32) for k in ("train", "query", "db"))
    for bits in args.bits:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            model = TeacherNSH(n_bits=bits, random_state=seed, max_epochs=args.epochs).fit(train)
            fit_s = time.perf_counter() - start
            q, d = model.transform(query), model.transform(db)
            map_k = mean_average_precision(q, data["query_y"], d, data["db_y"], k=data["k"])
            full = mean_average_precision(q, data["query_y"], d, data["db_y"])
            print(f"{bits:>3} bits seed {seed}  mAP@{data['k']} {map_k:.4f}  mAP {full:.4f}  fit {fit_s:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
