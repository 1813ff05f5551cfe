"""Losses of NSH: SortedNCE on the soft-sorted list, code-level NT-Xent, quantization.

Each loss is a plain function of tensors; :class:`NSHLoss` combines them for training.
"""

import numbers

import torch
import torch.nn.functional as F

__all__ = ["sorted_nce", "code_nt_xent", "quantization_loss", "hamming_similarity", "NSHLoss"]


def sorted_nce(c_sorted, n_positives, temperature):
    """SortedNCE: the first ``m`` sorted positions are positives, the rest negatives.

    For each anchor ``i`` and positive position ``k <= m``::

        -log( exp(c_ik / tau) / (exp(c_ik / tau) + sum_{l > m} exp(c_il / tau)) )

    averaged over positives and anchors. Logits go straight to the log-sum-exp (no softmax
    before it, unlike some reimplementations).

    Parameters
    ----------
    c_sorted : Tensor of shape (n, K)
        Similarities between each anchor and its soft-sorted list (``K > n_positives``).
    n_positives : int or sequence of int
        ``m``, the number of leading positions treated as positives. Several values give
        the mean of their losses (the split between positives and negatives then falls at
        each of them).
    temperature : float
        ``tau``.
    """
    if not isinstance(n_positives, numbers.Real):  # several m: the mean of their SortedNCEs
        return torch.stack([sorted_nce(c_sorted, m, temperature) for m in n_positives]).mean()
    m = int(n_positives)
    if not 0 < m < c_sorted.shape[1]:
        raise ValueError(f"n_positives={m} must be in [1, {c_sorted.shape[1] - 1}] for lists of {c_sorted.shape[1]}")
    logits = c_sorted / temperature
    pos = logits[:, :m]
    neg = torch.logsumexp(logits[:, m:], dim=1, keepdim=True)
    return (torch.logaddexp(pos, neg) - pos).mean()


def code_nt_xent(codes_a, codes_b, temperature, spared=None):
    """NT-Xent (SimCLR) between the two views' codes, each code normalised to unit length.

    Every sample's positive is its other view; the other ``2n - 2`` codes are negatives.
    ``spared``, a pair of boolean (n, n) masks for the anchors of view a and of view b,
    takes both views of sample ``j`` out of anchor ``i``'s negatives where ``spared[.][i, j]``
    (the diagonal is ignored: the other view stays the positive).
    """
    u = F.normalize(torch.cat([codes_a, codes_b]), dim=1)
    n = codes_a.shape[0]
    logits = (u @ u.T) / temperature
    mask = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    if spared is not None:
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=u.device)
        rows = [(m & off_diagonal).repeat(1, 2) for m in spared]
        mask = mask | torch.cat(rows)
    logits = logits.masked_fill(mask, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(u.device)
    return F.cross_entropy(logits, target)


def quantization_loss(h):
    """Mean squared distance of the relaxed codes ``h`` from their signs."""
    return ((h.abs() - 1.0) ** 2).mean()


def hamming_similarity(codes_a, codes_b):
    """``1 - Hamming / n_bits`` between {-1, +1} codes: ``<a, b> / (2 b) + 1/2``, in [0, 1]."""
    n_bits = codes_a.shape[1]
    return (codes_a @ codes_b.T) / (2.0 * n_bits) + 0.5


class NSHLoss(torch.nn.Module):
    """The NSH training objective for one pair of views.

    ``sorted_weight * SortedNCE + code_nce_weight * NT-Xent(codes)
    + latent_nce_weight * NT-Xent(latents) + quantization_weight * Q``, where SortedNCE is
    applied from each view's anchors (``symmetric``) and averaged. The last two terms,
    ``gather="codes"`` and ``spare_sorted_positives`` are off by default;
    ``benchmarks/retrieval.py --variant`` sets them to measure them.

    Parameters
    ----------
    sorter : callable
        A sorter from :mod:`sortedhash.nn.sorters`.
    n_positives : int or sequence of int
        ``m`` of SortedNCE (several: the mean of their losses, see :func:`sorted_nce`).
    temperature : float
        ``tau`` of SortedNCE.
    sorted_weight, code_nce_weight, quantization_weight : float
        Weights of the three terms.
    code_temperature : float
        Temperature of the code-level NT-Xent.
    symmetric : bool
        Apply SortedNCE from both views.
    latent_nce_weight : float
        Weight of an NT-Xent term between the two views' latent vectors (same temperature
        as the code term).
    gather : {"latent", "codes"}
        What the sorted list gathers: the latent vectors (NSH), or the relaxed codes
        themselves (normalised tanh outputs).
    spare_sorted_positives : bool
        Take the candidates among an anchor's first ``n_positives`` in Hamming order (the
        ones SortedNCE pulls closer) out of its negatives in the code NT-Xent, so the two
        terms stop pulling those neighbours in opposite directions (the largest ``m`` when
        several are given).
    """

    def __init__(self, sorter, *, n_positives, temperature, sorted_weight=1.0, code_nce_weight=0.0,
                 code_temperature=0.5, quantization_weight=0.0, symmetric=True, latent_nce_weight=0.0,
                 gather="latent", spare_sorted_positives=False):
        super().__init__()
        if gather not in ("latent", "codes"):
            raise ValueError(f"gather must be 'latent' or 'codes', got {gather!r}")
        self.sorter = sorter
        self.n_positives = n_positives
        self.temperature = temperature
        self.sorted_weight = sorted_weight
        self.code_nce_weight = code_nce_weight
        self.code_temperature = code_temperature
        self.quantization_weight = quantization_weight
        self.symmetric = symmetric
        self.latent_nce_weight = latent_nce_weight
        self.gather = gather
        self.spare_sorted_positives = spare_sorted_positives

    def _sorted_term(self, codes_anchor, z_anchor, codes_other, z_other, symmetric=False):
        """SortedNCE of one view's anchors over the other view's candidates; with
        ``symmetric`` the mean of both directions. The sorters work row by row, so both
        directions go through one call as 2n rows: the same loss with half the small
        tensor operations of two calls (docs/benchmarks.md, "Training cost")."""
        scores = hamming_similarity(codes_anchor, codes_other)
        values = z_anchor @ z_other.T
        if symmetric:  # the other direction's rows: scores.T, values.T
            scores, values = torch.cat([scores, scores.T]), torch.cat([values, values.T])
        c_sorted = self.sorter(scores, values)
        return sorted_nce(c_sorted, self.n_positives, self.temperature)

    def _sorted_positives(self, codes_a, codes_b):
        """Boolean (n, n) masks of each anchor's first m candidates in Hamming order, per view.

        A tie at the m-th place is broken by ``topk``, not shared: a mask is all or nothing.
        """
        m = self.n_positives if isinstance(self.n_positives, numbers.Real) else max(self.n_positives)
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
            if self.gather == "latent":
                g_a, g_b = z_a, z_b
            else:
                g_a, g_b = F.normalize(h_a, dim=1), F.normalize(h_b, dim=1)
            term = self._sorted_term(b_a, g_a, b_b, g_b, symmetric=self.symmetric)
            loss = loss + self.sorted_weight * term
        if self.code_nce_weight:
            spared = self._sorted_positives(b_a, b_b) if self.spare_sorted_positives else None
            loss = loss + self.code_nce_weight * code_nt_xent(b_a, b_b, self.code_temperature, spared)
        if self.latent_nce_weight:
            loss = loss + self.latent_nce_weight * code_nt_xent(z_a, z_b, self.code_temperature)
        if self.quantization_weight:
            loss = loss + self.quantization_weight * 0.5 * (quantization_loss(h_a) + quantization_loss(h_b))
        return loss
