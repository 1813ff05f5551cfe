"""Try: SortedNCE gathers a frozen teacher's similarities instead of the learned latent head.

The sorted list of each anchor normally gathers the latent vectors ``z`` of a head trained
with the codes. Here ``z`` is the clean (un-augmented) input feature vector, L2-normalised,
so the sorter learns to rank the in-batch Hamming neighbours by the float features' cosine
similarity: ranking distillation from the features into the codes, with everything else at
the defaults. A try for issue #4, not a library feature (see docs/benchmarks.md).

    python benchmarks/teacher_target.py newsgroups --data PATH --cache DIR --bits 16 32 --seeds 2
"""

import os
import sys

import torch
import torch.nn.functional as F

from sortedhash import NSHTransformer
from sortedhash._skorch import _Augmentation

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


class TeacherNSH(NSHTransformer):
    def _build_net(self, X, device, batch_size, multi_view):
        retrieval.require_feature_vectors(X, "TeacherNSH")
        with retrieval.wrapped_network(lambda network: TeacherLatent(network, X.shape[1])):
            net = super()._build_net(X, device, batch_size, multi_view)
        net.augment = _Augmentation(KeepClean(net.augment.fn))
        return net


def main():
    parser = retrieval.try_parser(__doc__.splitlines()[0], bits=[16, 32])
    args = parser.parse_args()
    retrieval.run_try(args, TeacherNSH)


if __name__ == "__main__":
    main()
