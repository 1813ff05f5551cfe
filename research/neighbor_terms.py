"""Which neighbour-preserving term makes codes keep the float neighbours? A try.

Each term sees the clean batch (NSHNet passes ``inputs`` to the criterion) and the inputs'
cosine similarities as the teacher:

- ``kl``: the library's ``NSHTransformer(neighbor_weight=...)``
  (:func:`sortedhash.nn.losses.neighbor_distillation`, listwise KL between the teacher's and
  the codes' softmax over each anchor's candidates), the term the first try chose;
- ``similarity``: the library's ``NSHTransformer(similarity_weight=...)``
  (:func:`sortedhash.nn.losses.similarity_preservation`, the squared gap between the codes'
  and the teacher's similarities over every pair), the term the second try chose;
- ``sorted``: SortedNCE over the teacher similarities gathered in Hamming order (through
  the soft sort): the first m Hamming positions should hold the input's nearest;
- ``kl-clean``: the ``kl`` term on the codes of the clean batch (one more forward pass a
  step), through an NSHNet subclass (the ``net_class`` hook).

With ``--group G`` (G > 1) the training batches are runs of neighbourhoods instead of random
rows: each epoch partitions the training set into groups of an anchor and ``G - 1`` of its
``--neighbors`` nearest rows (cosine on the training features), given to skorch's training
iterator through ``net_kwargs``. A random batch holds about ``batch / N`` of an anchor's
nearest rows, so the terms see a neighbourhood's order only coarsely; the groups put a few of
the nearest in every anchor's candidates.

Prints mAP@k and recall@10 among the top 10 / 100 / 1,000 Hamming candidates.
Run: ``python research/neighbor_terms.py newsgroups --data PATH --cache DIR --term kl --weight 1``.
"""

import argparse
import importlib.util
import pathlib
import time

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from sortedhash import NSHTransformer
from sortedhash._skorch import NSHNet
from sortedhash.metrics import mean_average_precision, neighbor_recall
from sortedhash.nn import NSHLoss, hamming_similarity, sorted_nce
from sortedhash.nn.losses import input_similarity, neighbor_distillation

ROOT = pathlib.Path(__file__).resolve().parents[1]


class SortedNeighborLoss(NSHLoss):
    """NSHLoss plus SortedNCE over the inputs' similarities gathered in Hamming order."""

    def __init__(self, sorter, *, weight=1.0, term_temperature=0.1, **kwargs):
        super().__init__(sorter, **kwargs)
        self.weight, self.term_temperature = weight, term_temperature

    def forward(self, view_a, view_b, inputs=None):
        loss = super().forward(view_a, view_b, inputs)
        teacher = input_similarity(inputs)
        scores = hamming_similarity(view_a[1], view_b[1])
        c_sorted = self.sorter(torch.cat([scores, scores.T]), torch.cat([teacher, teacher.T]))
        return loss + self.weight * sorted_nce(c_sorted, self.n_positives, self.term_temperature)


class CleanStudentNet(NSHNet):
    """The neighbour term on the codes of the clean batch (one more forward pass a step)."""

    weight, term_temperature, teacher_temperature = 5.0, 0.1, 0.05

    def _view_loss(self, batch):
        loss = super()._view_loss(batch)
        if not self.module_.training:
            return loss
        Xi, _ = unpack_data(batch)
        clean = self.views.clean(to_tensor(Xi, device=self.device).float())
        _, codes, _ = self.module_(clean)
        teacher = input_similarity(clean)
        return loss + self.weight * neighbor_distillation(codes, codes, teacher, self.term_temperature,
                                                          self.teacher_temperature)


def nsh_with_clean_student(weight):
    net = type("CleanStudentNet", (CleanStudentNet,), {"weight": weight})
    return type("CleanStudentNSH", (NSHTransformer,), {"net_class": net})


def nsh_with_sorted_term(**options):
    class SortedNeighborNSH(NSHTransformer):
        def _make_criterion(self):
            base = super()._make_criterion()
            return SortedNeighborLoss(base.sorter, n_positives=base.n_positives, temperature=base.temperature,
                                      sorted_weight=base.sorted_weight, code_nce_weight=base.code_nce_weight,
                                      code_temperature=base.code_temperature,
                                      quantization_weight=base.quantization_weight, **options)

    return SortedNeighborNSH


class NeighbourGroups(torch.utils.data.Sampler):
    """An epoch's order: groups of an anchor and up to ``group - 1`` of its neighbours not yet
    drawn this epoch. Every sample appears once an epoch. ``neighbours`` is (n_samples,
    n_neighbors). The draw follows torch's random state, so the fit's ``random_state`` fixes it."""

    def __init__(self, neighbours, group):
        self.neighbours = np.asarray(neighbours)
        self.group = int(group)

    def __len__(self):
        return len(self.neighbours)

    def __iter__(self):
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        used = np.zeros(len(self.neighbours), dtype=bool)
        order = []
        for anchor in rng.permutation(len(self.neighbours)):
            if used[anchor]:
                continue
            free = self.neighbours[anchor][~used[self.neighbours[anchor]]]
            members = [anchor, *rng.permutation(free)[: self.group - 1]]
            used[members] = True
            order.extend(members)
        return iter(int(i) for i in order)


def neighbourhood_batches(train, group, n_neighbors):
    """``net_kwargs`` making the training batches runs of :class:`NeighbourGroups` of ``train``."""
    nearest = NearestNeighbors(n_neighbors=n_neighbors + 1, metric="cosine").fit(train)
    neighbours = nearest.kneighbors(train, return_distance=False)[:, 1:]  # each row's own index first
    return {"iterator_train__sampler": NeighbourGroups(neighbours, group), "iterator_train__shuffle": False}


def main():
    spec = importlib.util.spec_from_file_location("retrieval", ROOT / "benchmarks" / "retrieval.py")
    retrieval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(retrieval)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["digits", "newsgroups", "cifar10"])
    parser.add_argument("--data")
    parser.add_argument("--cache")
    parser.add_argument("--bits", type=int, nargs="+", default=[64])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--database-size", type=int, default=50000)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--term", choices=["none", "kl", "similarity", "sorted", "kl-clean"], default="kl")
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--term-temperature", type=float, default=0.1)
    parser.add_argument("--group", type=int, default=1, help="rows a neighbourhood group (1: random batches)")
    parser.add_argument("--neighbors", type=int, default=16, help="nearest rows a group's members come from")
    parser.add_argument("--params", default="", help="estimator parameters, e.g. sorted_weight=0,mix_neighbors=0")
    args = parser.parse_args()
    args.views = 0
    data, _, train, query, db = retrieval.load_standardised(args)
    params = retrieval.parse_params(args.params)
    estimator = NSHTransformer
    if args.term == "kl":
        params["neighbor_weight"] = args.weight
    elif args.term == "similarity":
        params["similarity_weight"] = args.weight
    elif args.term == "kl-clean":
        estimator = nsh_with_clean_student(args.weight)
    elif args.term == "sorted":
        estimator = nsh_with_sorted_term(weight=args.weight, term_temperature=args.term_temperature)
    if args.group > 1:
        params["net_kwargs"] = neighbourhood_batches(train, args.group, args.neighbors)
    for bits in args.bits:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            model = estimator(n_bits=bits, max_epochs=args.epochs, random_state=seed, **params).fit(train)
            fit_s = time.perf_counter() - start
            q, d = model.transform(query), model.transform(db)
            map_k = mean_average_precision(q, data["query_y"], d, data["db_y"], k=data["k"])
            recall = [neighbor_recall(q, d, query, db, k=10, n_candidates=c) for c in (10, 100, 1000)]
            print(f"{args.term} w={args.weight} group {args.group}/{args.neighbors} {bits} bits seed {seed}: "
                  f"mAP@{data['k']} {map_k:.4f}  recall@10 in 10/100/1000 "
                  f"{recall[0]:.3f}/{recall[1]:.3f}/{recall[2]:.3f}  fit {fit_s:.0f} s", flush=True)


if __name__ == "__main__":
    main()
