"""Try: SortedNCE ranks two weakly augmented views; code NT-Xent keeps the strong ones.

The method note measured that the sorted loss wants weak feature augmentation (noise 0.3,
dropout 0.1) and plain contrastive hashing strong (0.6, 0.4); the defaults feed both terms
the same strong views. Here each step passes two more views of the batch, augmented weakly,
through the network and applies the (symmetric) SortedNCE to them, while the code-level
NT-Xent stays on the strong views. ``--params`` takes ``retrieval.py``'s variant keys, e.g.
``m_set=4/8/16`` (SortedNCE averaged over several ``m``).
A try for issue #4, not a library feature (see docs/benchmarks.md).

    python benchmarks/weak_sort_views.py newsgroups --data PATH --cache DIR --bits 32 --seeds 2 --params m_set=4/8/16
"""

import contextlib
import os
import sys

from skorch.dataset import unpack_data
from skorch.utils import to_tensor

import sortedhash.nsh
from sortedhash import NSHTransformer
from sortedhash._skorch import NSHNet
from sortedhash.nn import FeatureNoise, code_nt_xent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import retrieval  # noqa: E402


class WeakSortNet(NSHNet):
    """NT-Xent on the strong views, SortedNCE on two extra weakly augmented views.

    Only the two default terms are computed (the quantization and latent terms are off).
    """

    weak_augment = None

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        X = to_tensor(unpack_data(batch)[0], device=self.device)
        crit = self.criterion_
        (_, b_a, _), (_, b_b, _) = (self.module_(v) for v in self._views(X))
        (_, w_a, z_a), (_, w_b, z_b) = self.module_(self.weak_augment(X)), self.module_(self.weak_augment(X))
        sorted_term = crit._sorted_term(w_a, z_a, w_b, z_b, symmetric=True)
        loss = crit.code_nce_weight * code_nt_xent(b_a, b_b, crit.code_temperature) + crit.sorted_weight * sorted_term
        loss.backward()
        return {"loss": loss, "y_pred": None}


@contextlib.contextmanager
def _weak_sort_net(weak_augment):
    # NSHTransformer builds its NSHNet inside _build_net; swap the class for this try only.
    original = sortedhash.nsh.NSHNet
    net_class = type("WeakSortNet", (WeakSortNet,), {"weak_augment": weak_augment})
    sortedhash.nsh.NSHNet = net_class
    try:
        yield
    finally:
        sortedhash.nsh.NSHNet = original


class WeakSortNSH(NSHTransformer):
    """``NSHTransformer`` trained by :class:`WeakSortNet`; ``weak`` = (noise_std, dropout)."""

    weak = (0.3, 0.1)

    def _build_net(self, X, device, batch_size, multi_view):
        retrieval.require_feature_vectors(X, "WeakSortNSH")
        with _weak_sort_net(FeatureNoise(*self.weak)):
            return super()._build_net(X, device, batch_size, multi_view)


def main():
    parser = retrieval.try_parser(__doc__.splitlines()[0], bits=[32])
    parser.add_argument("--weak", type=float, nargs=2, default=[0.3, 0.1], metavar=("NOISE_STD", "DROPOUT"))
    args = parser.parse_args()
    WeakSortNSH.weak = tuple(args.weak)
    retrieval.run_try(args, WeakSortNSH)


if __name__ == "__main__":
    main()
