"""Try: batches built from neighbourhoods, so the sorted lists hold more true neighbours.

SortedNCE calls the ``m`` nearest codes of an anchor's list its positives; it can only pay
where a batch holds that many items of the anchor's kind. A random batch of 128 holds ~13
same-class images on CIFAR-10 but ~6 same-group posts on 20 Newsgroups, where the sorted
term gains least. Here each epoch partitions the training set into groups of ``--group``
items, an anchor and ``group - 1`` of its ``--neighbors`` nearest neighbours by cosine on the
input features (drawn without replacement within the epoch), and batches are runs of those
groups. ``--params`` takes ``retrieval.py``'s variant keys; ``sorted_weight=0`` gives plain
contrastive hashing on the same batches, the control.
A try for issue #4, not a library feature (see docs/benchmarks.md).

    python benchmarks/neighbour_batches.py newsgroups --data PATH --cache DIR --bits 32 --seeds 2
"""

import os
import sys

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from sortedhash import NSHTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import retrieval  # noqa: E402


class NeighbourGroups(torch.utils.data.Sampler):
    """An epoch's order: groups of an anchor and up to ``group - 1`` of its unused neighbours.

    Every sample appears once an epoch. ``neighbours`` is (n_samples, n_neighbors), nearest first.
    The draw follows torch's random state, so the fit's ``random_state`` fixes it.
    """

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


class NeighbourBatchNSH(NSHTransformer):
    """``NSHTransformer`` whose training batches are runs of :class:`NeighbourGroups`."""

    group = 4
    n_neighbors = 10

    def _build_net(self, X, device, batch_size, multi_view):
        retrieval.require_feature_vectors(X, "NeighbourBatchNSH")
        net = super()._build_net(X, device, batch_size, multi_view)
        nn = NearestNeighbors(n_neighbors=self.n_neighbors + 1, metric="cosine").fit(X)
        neighbours = nn.kneighbors(X, return_distance=False)[:, 1:]  # drop the sample itself
        net.set_params(iterator_train__sampler=NeighbourGroups(neighbours, self.group),
                       iterator_train__shuffle=False)
        return net


def main():
    parser = retrieval.try_parser(__doc__.splitlines()[0], bits=[32])
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--neighbors", type=int, default=10)
    args = parser.parse_args()
    NeighbourBatchNSH.group, NeighbourBatchNSH.n_neighbors = args.group, args.neighbors
    retrieval.run_try(args, NeighbourBatchNSH)


if __name__ == "__main__":
    main()
