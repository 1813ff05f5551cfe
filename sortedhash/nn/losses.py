"""Losses of NSH: SortedNCE on the soft-sorted list, code-level NT-Xent, quantization, and
two terms that keep the inputs' neighbours (listwise distillation, similarity preservation).

Each loss is a plain function of tensors; :class:`NSHLoss` combines them for training.
"""

import torch
import torch.nn.functional as F

from .gather import LevelRuns

__all__ = ["sorted_nce", "code_nt_xent", "neighbor_distillation", "similarity_preservation", "quantization_loss",
           "hamming_similarity", "input_similarity", "NSHLoss"]


def sorted_nce(c_sorted, n_positives, temperature):
    """SortedNCE: the first ``m`` sorted positions are positives, the rest negatives.

    For each anchor ``i`` and positive position ``k <= m``::

        -log( exp(c_ik / tau) / (exp(c_ik / tau) + sum_{l > m} exp(c_il / tau)) )

    averaged over positives and anchors. Logits go straight to the log-sum-exp (no softmax
    before it).

    Parameters
    ----------
    c_sorted : Tensor of shape (n, K) or LevelRuns
        Similarities between each anchor and its soft-sorted list (``K > n_positives``),
        dense or as runs of equal values (:class:`~sortedhash.nn.gather.LevelRuns`, what
        the sorters' ``sorted_list`` gives on the Hamming grid): the same loss either way.
    n_positives : int
        ``m``, the number of leading positions treated as positives.
    temperature : float
        ``tau``.
    """
    m = int(n_positives)
    length = c_sorted.length if isinstance(c_sorted, LevelRuns) else c_sorted.shape[1]
    if not 0 < m < length:
        raise ValueError(f"n_positives={m} must be in [1, {length - 1}] for lists of {length}")
    if isinstance(c_sorted, LevelRuns):
        return _sorted_nce_runs(c_sorted, m, temperature)
    logits = c_sorted / temperature
    pos = logits[:, :m]
    neg = torch.logsumexp(logits[:, m:], dim=1, keepdim=True)
    return (torch.logaddexp(pos, neg) - pos).mean()


def _sorted_nce_runs(runs, m, temperature):
    """SortedNCE of lists given as runs: each run splits into its positive and negative positions."""
    logits = runs.values / temperature
    before = torch.cumsum(runs.counts, dim=1) - runs.counts
    positives = torch.minimum(runs.counts, (m - before).clamp_min(0))
    negatives = runs.counts - positives
    # A run of n negatives adds n exp(logit) to the sum; one with none, nothing.
    neg_logits = torch.where(negatives > 0, logits + torch.log(negatives.clamp_min(1)), -torch.inf)
    neg = torch.logsumexp(neg_logits, dim=1, keepdim=True)
    per_run = torch.logaddexp(logits, neg) - logits
    return (positives * per_run).sum(dim=1).mean() / m


def code_nt_xent(codes_a, codes_b, temperature):
    """NT-Xent (SimCLR) between the two views' codes, each code normalised to unit length.

    Every sample's positive is its other view; the other ``2n - 2`` codes are negatives.
    """
    u = F.normalize(torch.cat([codes_a, codes_b]), dim=1)
    n = codes_a.shape[0]
    logits = (u @ u.T) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(u.device)
    return F.cross_entropy(logits, target)


def input_similarity(inputs):
    """Cosine similarity of every pair of rows of a batch of inputs (flattened per sample)."""
    unit = F.normalize(inputs.flatten(1).float(), dim=1)
    return unit @ unit.T


def neighbor_distillation(codes_a, codes_b, teacher, temperature, teacher_temperature):
    """Listwise distillation of the input's neighbours into the codes.

    For each anchor ``i`` of view a, the distribution ``softmax(teacher_i / teacher_temperature)``
    over the candidates of view b (``teacher``: the inputs' cosine similarities, its
    diagonal the anchor's own other view) is matched by ``softmax(cos(a_i, b_j) /
    temperature)`` of the codes: ``KL(teacher || codes)``, averaged over anchors. It asks
    the Hamming ranking to follow the input's ranking at its top, where a search reads it.
    """
    logits = F.normalize(codes_a, dim=1) @ F.normalize(codes_b, dim=1).T / temperature
    target = F.softmax(teacher / teacher_temperature, dim=1)
    return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")


def similarity_preservation(codes_a, codes_b, teacher):
    """How much of the inputs' pairwise similarities the codes miss.

    Over every pair of distinct rows of the two views' codes stacked (``2n`` rows), the
    squared gap between the codes' cosine similarity (``1 - 2 Hamming / n_bits`` for binary
    codes) and ``teacher``, the clean inputs' cosine similarity of the two samples (1 for a
    sample's two views), divided by the variance of ``teacher`` over distinct samples: 0
    when the codes reproduce the inputs' similarities, about 1 when they ignore them. It
    asks the whole Hamming order to follow the input's, the angle preservation ITQ gets from
    PCA, which is what a search re-ranking the float vectors relies on.
    """
    n = teacher.shape[0]
    unit = F.normalize(torch.cat([codes_a, codes_b]), dim=1)
    gap = (unit @ unit.T - teacher.repeat(2, 2)) ** 2
    distinct = ~torch.eye(2 * n, dtype=torch.bool, device=unit.device)
    spread = teacher[~torch.eye(n, dtype=torch.bool, device=teacher.device)].var().detach()
    return gap[distinct].mean() / spread.clamp_min(1e-12)


def quantization_loss(h):
    """Mean squared distance of the relaxed codes ``h`` from their signs."""
    return ((h.abs() - 1.0) ** 2).mean()


def hamming_similarity(codes_a, codes_b):
    """``1 - Hamming / n_bits`` between {-1, +1} codes: ``<a, b> / (2 b) + 1/2``, in [0, 1]."""
    n_bits = codes_a.shape[1]
    return (codes_a @ codes_b.T) / (2.0 * n_bits) + 0.5


class NSHLoss(torch.nn.Module):
    """The NSH training objective for one pair of views.

    ``sorted_weight * SortedNCE + code_nce_weight * NT-Xent(codes) + quantization_weight * Q
    + neighbor_weight * N + similarity_weight * S``. SortedNCE is applied from the anchors of
    each view over the other view's candidates, and the two directions are averaged; so is
    ``N``, :func:`neighbor_distillation` of the clean inputs' cosine similarities into the
    codes; ``S`` is :func:`similarity_preservation` of those similarities. A term whose
    weight is 0 is not computed.

    To try another objective, subclass it (or write a new module with the same call
    signature) and return it from :meth:`sortedhash.NSHTransformer._make_criterion`.

    Parameters
    ----------
    sorter : callable
        A sorter from :mod:`sortedhash.nn.sorters`.
    n_positives : int
        ``m`` of SortedNCE.
    temperature : float
        ``tau`` of SortedNCE.
    sorted_weight, code_nce_weight, quantization_weight : float
        Weights of the three terms.
    code_temperature : float
        Temperature of the code-level NT-Xent.
    neighbor_weight : float
        Weight of the neighbour distillation term (it needs ``inputs``).
    neighbor_temperature, neighbor_teacher_temperature : float
        Temperatures of the codes' and of the inputs' similarities in that term.
    similarity_weight : float
        Weight of the similarity preservation term (it needs ``inputs``).
    """

    def __init__(self, sorter, *, n_positives, temperature, sorted_weight=1.0, code_nce_weight=0.0,
                 code_temperature=0.5, quantization_weight=0.0, neighbor_weight=0.0, neighbor_temperature=0.1,
                 neighbor_teacher_temperature=0.05, similarity_weight=0.0):
        super().__init__()
        self.sorter = sorter
        self.n_positives = n_positives
        self.temperature = temperature
        self.sorted_weight = sorted_weight
        self.code_nce_weight = code_nce_weight
        self.code_temperature = code_temperature
        self.quantization_weight = quantization_weight
        self.neighbor_weight = neighbor_weight
        self.neighbor_temperature = neighbor_temperature
        self.neighbor_teacher_temperature = neighbor_teacher_temperature
        self.similarity_weight = similarity_weight

    def neighbor_term(self, codes_a, codes_b, inputs):
        """Neighbour distillation from both views' anchors, averaged."""
        teacher = input_similarity(inputs)
        temperatures = self.neighbor_temperature, self.neighbor_teacher_temperature
        return 0.5 * (neighbor_distillation(codes_a, codes_b, teacher, *temperatures)
                      + neighbor_distillation(codes_b, codes_a, teacher.T, *temperatures))

    def sorted_term(self, codes_a, z_a, codes_b, z_b):
        """SortedNCE from both views' anchors, averaged.

        The sorters work row by row, so both directions go through one call as ``2n`` rows
        (view a's anchors, then view b's): the mean of the two directions' losses with half
        the small tensor operations of two calls. A sorter's ``sorted_list`` (its cheapest
        exact form of the sorted lists) is used when it has one.
        """
        scores = hamming_similarity(codes_a, codes_b)
        values = z_a @ z_b.T
        sort = getattr(self.sorter, "sorted_list", self.sorter)
        c_sorted = sort(torch.cat([scores, scores.T]), torch.cat([values, values.T]))
        return sorted_nce(c_sorted, self.n_positives, self.temperature)

    def forward(self, view_a, view_b, inputs=None):
        """The loss of two views' network outputs ``(h, b, z)``; ``inputs``: the clean batch."""
        (h_a, b_a, z_a), (h_b, b_b, z_b) = view_a, view_b
        loss = h_a.new_zeros(())
        if self.sorted_weight:
            loss = loss + self.sorted_weight * self.sorted_term(b_a, z_a, b_b, z_b)
        if self.code_nce_weight:
            loss = loss + self.code_nce_weight * code_nt_xent(b_a, b_b, self.code_temperature)
        if self.quantization_weight:
            loss = loss + self.quantization_weight * 0.5 * (quantization_loss(h_a) + quantization_loss(h_b))
        for name in ("neighbor_weight", "similarity_weight"):
            if getattr(self, name) and inputs is None:
                raise ValueError(f"{name} > 0 needs the clean inputs: call the loss with inputs=")
        if self.neighbor_weight:
            loss = loss + self.neighbor_weight * self.neighbor_term(b_a, b_b, inputs)
        if self.similarity_weight:
            loss = loss + self.similarity_weight * similarity_preservation(b_a, b_b, input_similarity(inputs))
        return loss
