"""Loss variants tried against NSH's defaults, kept runnable.

Each was measured and not adopted (docs: research/NOTES.md); they reach the library only
through its hooks: :class:`VariantLoss` subclasses :class:`sortedhash.nn.NSHLoss`, and
:func:`nsh_with_loss` makes an :class:`sortedhash.NSHTransformer` subclass whose
``_make_criterion`` builds it.

- ``symmetric=False``: SortedNCE from one view's anchors only.
- ``latent_nce_weight``: an NT-Xent term between the two views' latent vectors.
- ``gather="codes"``: the sorted list gathers the normalised relaxed codes, not the latents.
- ``spare_sorted_positives``: an anchor's first m candidates in Hamming order leave its
  negatives in the code NT-Xent, so the two terms stop pulling them apart.
- ``n_positives`` as a tuple: SortedNCE averaged over several m.

Run: ``python research/loss_variants.py --params '{"gather": "codes", "symmetric": false}'``
(digits, 32 bits; a list for ``n_positives`` averages SortedNCE over several m).
"""

import argparse
import json
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from sortedhash import NSHTransformer
from sortedhash.nn import NSHLoss, hamming_similarity, sorted_nce


def sorted_nce_several(c_sorted, n_positives, temperature):
    """SortedNCE for one m, or the mean over several."""
    if isinstance(n_positives, numbers.Integral):
        return sorted_nce(c_sorted, n_positives, temperature)
    return torch.stack([sorted_nce(c_sorted, m, temperature) for m in n_positives]).mean()


def code_nt_xent_spared(codes_a, codes_b, temperature, spared=None):
    """NT-Xent between the two views' codes; ``spared`` (a pair of boolean (n, n) masks for the
    anchors of view a and of view b) takes both views of sample j out of anchor i's negatives
    where ``spared[.][i, j]`` (the diagonal is ignored: the other view stays the positive)."""
    u = F.normalize(torch.cat([codes_a, codes_b]), dim=1)
    n = codes_a.shape[0]
    logits = (u @ u.T) / temperature
    mask = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    if spared is not None:
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=u.device)
        mask = mask | torch.cat([(m & off_diagonal).repeat(1, 2) for m in spared])
    logits = logits.masked_fill(mask, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(u.device)
    return F.cross_entropy(logits, target)


class VariantLoss(NSHLoss):
    """:class:`NSHLoss` with the switches of the tries (defaults give NSHLoss itself)."""

    def __init__(self, sorter, *, symmetric=True, latent_nce_weight=0.0, gather="latent",
                 spare_sorted_positives=False, **kwargs):
        super().__init__(sorter, **kwargs)
        if gather not in ("latent", "codes"):
            raise ValueError(f"gather must be 'latent' or 'codes', got {gather!r}")
        self.symmetric = symmetric
        self.latent_nce_weight = latent_nce_weight
        self.gather = gather
        self.spare_sorted_positives = spare_sorted_positives

    def _one_direction(self, codes_anchor, z_anchor, codes_other, z_other):
        c_sorted = self.sorter(hamming_similarity(codes_anchor, codes_other), z_anchor @ z_other.T)
        return sorted_nce_several(c_sorted, self.n_positives, self.temperature)

    def sorted_term(self, codes_a, z_a, codes_b, z_b):
        if self.symmetric and isinstance(self.n_positives, numbers.Integral):
            return super().sorted_term(codes_a, z_a, codes_b, z_b)
        term = self._one_direction(codes_a, z_a, codes_b, z_b)
        if self.symmetric:
            term = 0.5 * (term + self._one_direction(codes_b, z_b, codes_a, z_a))
        return term

    def sorted_positives(self, codes_a, codes_b):
        """Boolean (n, n) masks of each anchor's first m candidates in Hamming order, per view
        (the largest m when several; a tie at the m-th place is broken by ``topk``)."""
        m = self.n_positives if isinstance(self.n_positives, numbers.Integral) else max(self.n_positives)
        scores = hamming_similarity(codes_a.detach(), codes_b.detach())
        masks = []
        for s in (scores, scores.T):
            top = s.topk(int(m), dim=1).indices
            masks.append(torch.zeros_like(s, dtype=torch.bool).scatter_(1, top, True))
        return masks

    def forward(self, view_a, view_b):
        (h_a, b_a, z_a), (h_b, b_b, z_b) = view_a, view_b
        loss = h_a.new_zeros(())
        if self.sorted_weight:
            g_a, g_b = (z_a, z_b) if self.gather == "latent" else (F.normalize(h_a, dim=1), F.normalize(h_b, dim=1))
            loss = loss + self.sorted_weight * self.sorted_term(b_a, g_a, b_b, g_b)
        if self.code_nce_weight:
            spared = self.sorted_positives(b_a, b_b) if self.spare_sorted_positives else None
            loss = loss + self.code_nce_weight * code_nt_xent_spared(b_a, b_b, self.code_temperature, spared)
        if self.latent_nce_weight:
            loss = loss + self.latent_nce_weight * code_nt_xent_spared(z_a, z_b, self.code_temperature)
        if self.quantization_weight:
            loss = loss + self.quantization_weight * 0.5 * ((h_a.abs() - 1) ** 2 + (h_b.abs() - 1) ** 2).mean()
        return loss


def nsh_with_loss(**options):
    """An NSHTransformer subclass whose criterion is ``VariantLoss(**options)``.

    ``n_positives`` in ``options`` (e.g. a tuple) overrides the estimator's.
    """

    class VariantNSH(NSHTransformer):
        def _make_criterion(self):
            base = super()._make_criterion()
            params = dict(n_positives=base.n_positives, temperature=base.temperature,
                          sorted_weight=base.sorted_weight, code_nce_weight=base.code_nce_weight,
                          code_temperature=base.code_temperature, quantization_weight=base.quantization_weight)
            return VariantLoss(base.sorter, **{**params, **options})

    VariantNSH.__name__ = VariantNSH.__qualname__ = "VariantNSH"
    return VariantNSH


def main():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from sortedhash.metrics import mean_average_precision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="{}", help='VariantLoss options as JSON, e.g. {"n_positives": [4, 8]}')
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(X))
    X = StandardScaler().fit_transform(X[perm]).astype(np.float32)
    y = y[perm]
    options = {key: tuple(value) if isinstance(value, list) else value
               for key, value in json.loads(args.params).items()}
    for name, estimator in (("defaults", NSHTransformer), ("variant", nsh_with_loss(**options))):
        scores = []
        for seed in range(args.seeds):
            model = estimator(n_bits=args.bits, max_epochs=args.epochs, random_state=seed).fit(X[200:])
            codes = model.transform(X)
            scores.append(mean_average_precision(codes[:200], y[:200], codes[200:], y[200:], k=100))
        print(f"{name:<9} mAP@100 {np.mean(scores):.4f} ± {np.std(scores):.4f}")


if __name__ == "__main__":
    main()
