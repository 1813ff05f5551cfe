"""Soft sorted gather over Hamming similarities, without the n x n x n tensor.

A soft sorter turns row ``i`` of a similarity matrix ``S`` into a soft permutation
``P_i`` (positions x samples) with the SoftSort kernel

    P_ikj = softmax_j(-|a_ik - S_ij| / tau),

where ``a_ik`` is the anchor of sorted position ``k`` (the k-th largest similarity for
SoftSort, a soft-sorted value for the torchsort sorter). NSH then needs only
``c_ik = sum_j P_ikj C_ij`` with ``C_ij = <z_hat_i, z_tilde_j>`` (the soft gather followed
by the dot product with the anchor's latent vector).

Hamming similarities take only ``L = n_bits + 1`` values ``v_q = q / n_bits``, so the sum
over samples ``j`` groups by level: with ``A_iq = sum_{j: S_ij = v_q} C_ij`` and the level
counts ``N_iq``,

    c_ik = sum_q w(a_ik - v_q) A_iq / sum_q w(a_ik - v_q) N_iq.

This is exact, not an approximation. The forward pass costs O(n^2) to build ``A`` and
``N`` plus O(n L^2) for the kernel: when the anchors are levels (SoftSort) the kernel is a
constant L x L matrix, and for arbitrary anchors (torchsort) the Laplace kernel is separable
on each side of an anchor, so sums over levels become lookups into decayed prefix sums. The backward passes below give the gradients that dense autograd would
give, including those that reach ``S`` through the kernel, so the hash head learns
through the sorter; ``tests/nn/test_gather.py`` checks both against the dense n^3 form.
"""

import functools
from typing import NamedTuple

import torch

__all__ = ["LevelRuns", "grid_soft_gather", "grid_level_gather", "anchored_soft_gather", "levels_of"]


class LevelRuns(NamedTuple):
    """A batch of sorted lists stored as runs, one run per Hamming level.

    Sorted positions whose candidates share a Hamming level hold equal values, so a sorted
    list of ``length`` positions is fully given by one value and one count a level, most
    similar level first. :func:`~sortedhash.nn.sorted_nce` reads this form directly, and
    :meth:`dense` expands it.

    Attributes
    ----------
    values : Tensor of shape (n, L)
        ``values[i, r]``: the value of every sorted position of row ``i`` at the ``r``-th most
        similar level (any finite number where the level is empty).
    counts : Tensor of shape (n, L)
        Number of positions at that level (float; each row sums to ``length``).
    length : int
        Positions in each sorted list (candidates a row).
    """

    values: torch.Tensor
    counts: torch.Tensor
    length: int

    def dense(self):
        """The sorted lists as an (n, length) tensor, most similar first."""
        ends = torch.cumsum(self.counts, dim=1).long()
        positions = torch.arange(self.length, device=ends.device).expand(ends.shape[0], -1)
        run = torch.searchsorted(ends, positions.contiguous(), right=True)
        return self.values.gather(1, run)


def levels_of(scores, n_levels):
    """Integer level index of each similarity on the grid ``0, 1/(L-1), ..., 1``."""
    return torch.round(scores.detach() * (n_levels - 1)).long().clamp_(0, n_levels - 1)


def _level_sums(level, values, n_levels):
    """``A`` (sums of ``values`` per level) and ``N`` (counts per level), shape (n, L)."""
    n = values.shape[0]
    A = values.new_zeros(n, n_levels).scatter_add_(1, level, values)
    N = values.new_zeros(n, n_levels).scatter_add_(1, level, torch.ones_like(values))
    return A, N


@functools.lru_cache(maxsize=16)
def _grid_kernel(n_levels, tau, dtype, device):
    """The SoftSort kernel between levels, ``K[p, q] = exp(-|v_p - v_q| / tau)``, and
    ``D = d K[p, q] / d v_q``: constants of a fit, built once."""
    grid = torch.linspace(0.0, 1.0, n_levels, dtype=dtype, device=device)
    diff = grid[:, None] - grid[None, :]  # diff[p, q] = v_p - v_q
    K = torch.exp(-diff.abs() / tau)
    return K, K * torch.sign(diff) / tau


def _grid_forward(scores, values, n_levels, tau):
    """Level tables and the SoftSort kernel on the grid: what both grid gathers compute.

    Returns ``c_level`` and what backward needs: (level, values, A, N, Z, c_level, K, D).
    """
    level = levels_of(scores, n_levels)
    A, N = _level_sums(level, values, n_levels)
    K, D = _grid_kernel(n_levels, tau, values.dtype, values.device)
    # A populated anchor level p has K[p, p] = 1 with N_ip >= 1, so Z >= 1 there.
    Z = torch.where(N > 0, N @ K, 1.0)
    c_level = (A @ K) / Z
    return c_level, (level, values, A, N, Z, c_level, K, D)


def _grid_backward(saved, g_level):
    """Backward of ``c_level`` given its gradient ``g_level`` (n, L).

    Returns the scores' gradient through each sample's membership of every anchor's kernel,
    the values' gradient, and ``R`` (n, L): ``d c_level / d v`` at the level's own anchor.
    How much of ``R`` reaches a sample depends on which positions it anchors: the caller's.
    """
    level, values, A, N, Z, c_level, K, D = saved
    g_num = g_level / Z
    g_den = -g_level * c_level / Z
    grad_values = (g_num @ K).gather(1, level)
    grad_scores = (g_num @ D).gather(1, level) * values + (g_den @ D).gather(1, level)
    R = -((A @ D.T) - c_level * (N @ D.T)) / Z  # d K[p, q] / d v_p = -D[p, q]
    return grad_scores, grad_values, R


class _GridSoftGather(torch.autograd.Function):
    """``c_ij = sum_j' softmax_j'(-|S_ij - S_ij'| / tau) C_ij'``: each sample is its own anchor.

    This is SoftSort in sample space: sorted position ``k`` of row ``i`` holds sample
    ``pi_i(k)`` and its anchor is ``S_{i, pi_i(k)}``, so ``c[:, pi]`` is the sorted list.
    Anchors are levels too, so the kernel is a constant ``L x L`` matrix.
    """

    @staticmethod
    def forward(ctx, scores, values, n_levels, tau):
        c_level, saved = _grid_forward(scores, values, n_levels, tau)
        ctx.save_for_backward(*saved)
        level = saved[0]
        return c_level.gather(1, level)

    @staticmethod
    def backward(ctx, grad_out):
        saved = ctx.saved_tensors
        level, N = saved[0], saved[3]
        g_level = torch.zeros_like(N).scatter_add_(1, level, grad_out)
        grad_scores, grad_values, R = _grid_backward(saved, g_level)
        # Each sample anchors the position it holds: its own gradient times its level's R.
        return grad_scores + grad_out * R.gather(1, level), grad_values, None, None


class _GridLevelGather(torch.autograd.Function):
    """The sorted list of :class:`_GridSoftGather` as runs: ``c_level`` (n, L), one value a level.

    Tied positions hold equal values, so a level's value is enough; a level's gradient is
    shared evenly among its samples as anchors (the even tie split of the sorters).
    """

    @staticmethod
    def forward(ctx, scores, values, n_levels, tau):
        c_level, saved = _grid_forward(scores, values, n_levels, tau)
        ctx.save_for_backward(*saved)
        N = saved[3]
        ctx.mark_non_differentiable(N)
        return c_level, N

    @staticmethod
    def backward(ctx, g_level, _):
        saved = ctx.saved_tensors
        level, N = saved[0], saved[3]
        g_level = torch.where(N > 0, g_level, 0.0)  # an empty level is no position
        grad_scores, grad_values, R = _grid_backward(saved, g_level)
        grad_scores = grad_scores + (g_level / N.clamp_min(1) * R).gather(1, level)
        return grad_scores, grad_values, None, None


class _AnchoredSoftGather(torch.autograd.Function):
    """``c_ik = sum_j softmax_j(-|a_ik - S_ij| / tau) C_ij`` for arbitrary anchors ``a``.

    The Laplace kernel is separable on each side of an anchor: with ``a`` between levels
    ``v_q <= a <= v_{q+1}`` and ``r = exp(-step / tau)``, the weight of level ``l`` is
    ``alpha * r^(q - l)`` below and ``beta * r^(l - q - 1)`` above, where
    ``alpha = exp(-(a - v_q) / tau)`` and ``beta = exp(-(v_{q+1} - a) / tau)``. So every sum over
    levels is a lookup into decayed prefix (``Lo``) and suffix (``Hi``) sums of the level
    tables, and every sum over anchors is a scatter into buckets followed by the same
    filters: O(n K + n L^2) in all, exact. The smallest weight ratio is ``r^(L-1) =
    exp(-1 / tau)``; float32 holds it while ``1 / tau < 80`` (e.g. up to 80 bits at
    ``sort_temperature=1``), beyond that the work is done in float64 so nothing underflows.
    """

    @staticmethod
    def _work_dtype(tau, dtype):
        if dtype == torch.float64 or 1.0 / tau >= 80:
            return torch.float64
        return torch.float32

    @staticmethod
    def _setup(anchors, n_levels, tau, dtype):
        step = 1.0 / (n_levels - 1)
        a = anchors.detach().to(dtype)
        bucket = torch.clamp(torch.floor(a / step), 0, n_levels - 2).long()
        low = bucket.to(dtype) * step
        alpha = torch.exp(-(a - low) / tau)
        beta = torch.exp(-(low + step - a) / tau)
        idx = torch.arange(n_levels, dtype=dtype, device=anchors.device)
        gap = idx[None, :] - idx[:, None]  # gap[l, q] = q - l
        # Lo = X @ lower: Lo[q] = sum_{l <= q} r^(q - l) X[l]; Hi = X @ lower.T.
        lower = torch.where(gap >= 0, torch.exp(-gap.clamp(min=0) * step / tau), torch.zeros_like(gap))
        return a, bucket, alpha, beta, lower

    @staticmethod
    def forward(ctx, anchors, scores, values, n_levels, tau):
        level = levels_of(scores, n_levels)
        A, N = _level_sums(level, values, n_levels)
        work = _AnchoredSoftGather._work_dtype(tau, values.dtype)
        AN = torch.stack([A, N]).to(work)  # (2, n, L): both tables share every operation
        a, bucket, alpha, beta, lower = _AnchoredSoftGather._setup(anchors, n_levels, tau, work)
        idx = bucket.expand(2, -1, -1)
        lo = (AN @ lower).gather(2, idx)
        hi = (AN @ lower.T).gather(2, idx + 1)
        num, den = alpha * lo + beta * hi
        den = den.clamp_min(torch.finfo(work).tiny)
        c = num / den
        ctx.save_for_backward(anchors, level, values, a, bucket, alpha, beta, lower, lo, hi, den, c, AN)
        ctx.tau, ctx.n_levels = tau, n_levels
        return c.to(values.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        anchors, level, values, a, bucket, alpha, beta, lower, lo, hi, den, c, AN = ctx.saved_tensors
        tau, n_levels = ctx.tau, ctx.n_levels
        g = grad_out.to(a.dtype)
        n = g.shape[0]
        step = 1.0 / (n_levels - 1)
        # sign(0) = 0: an anchor exactly on a level neither pulls nor is pulled by it.
        on_low = (a == bucket.to(a.dtype) * step).to(a.dtype)
        on_high = (a == (bucket + 1).to(a.dtype) * step).to(a.dtype)

        # d c / d a through alpha (d/da = -alpha / tau) and beta (+beta / tau), less the
        # level the anchor sits on, if any (its weight there is 1).
        idx_low = bucket.expand(2, -1, -1)
        d_num, d_den = -alpha * lo + beta * hi
        if bool(on_low.any()) or bool(on_high.any()):
            d_num, d_den = (torch.stack([d_num, d_den]) + on_low * AN.gather(2, idx_low)
                            - on_high * AN.gather(2, idx_low + 1))
        d_num, d_den = d_num / tau, d_den / tau
        grad_anchors = g * (d_num - c * d_den) / den

        # Sums over anchors, per level l: scatter each anchor into the bucket below and above
        # it, then decay outwards. Both weightings (u, u * c) go through one scatter each.
        u = g / den
        weights = torch.stack([u, u * c])  # (2, n, K)
        below = g.new_zeros(2, n, n_levels).scatter_add_(2, idx_low, weights * alpha)
        above = g.new_zeros(2, n, n_levels).scatter_add_(2, idx_low + 1, weights * beta)
        from_below, from_above = below @ lower.T, above @ lower
        grad_values = (from_below[0] + from_above[0]).gather(1, level)
        # Sample j as a member at level l: d c / d v_l = w' sign(a - v_l) (C_ij - c_ik) / den.
        pull = from_below - from_above
        if bool(on_low.any()) or bool(on_high.any()):
            pull = pull - g.new_zeros(2, n, n_levels).scatter_add_(2, idx_low, weights * alpha * on_low)
            pull = pull + g.new_zeros(2, n, n_levels).scatter_add_(2, idx_low + 1, weights * beta * on_high)
        pull = pull / tau
        grad_scores = pull[0].gather(1, level) * values.to(a.dtype) - pull[1].gather(1, level)
        return (grad_anchors.to(anchors.dtype), grad_scores.to(values.dtype),
                grad_values.to(values.dtype), None, None)


def _check(scores, values):
    if scores.ndim != 2 or scores.shape != values.shape:
        raise ValueError(
            f"scores and values must be 2-D of one shape, got {tuple(scores.shape)} "
            f"and {tuple(values.shape)}"
        )


def grid_soft_gather(scores, values, *, n_levels, temperature):
    """SoftSort gather in sample space: each sample anchors its own sorted position.

    Parameters
    ----------
    scores : Tensor of shape (n, m)
        Similarities on the grid ``q / (n_levels - 1)``, e.g. ``1 - Hamming / n_bits``.
    values : Tensor of shape (n, m)
        Values to gather, e.g. ``C_ij = <z_hat_i, z_tilde_j>``.
    n_levels : int
        Number of grid levels (``n_bits + 1``).
    temperature : float
        SoftSort temperature on the [0, 1] scale.

    Returns
    -------
    c : Tensor of shape (n, m)
        ``c[i, j]`` is the soft-gathered value at the sorted position held by sample ``j``.
    """
    _check(scores, values)
    return _GridSoftGather.apply(scores, values, int(n_levels), float(temperature))


def grid_level_gather(scores, values, *, n_levels, temperature):
    """The sorted lists of :func:`grid_soft_gather` as :class:`LevelRuns`, without sorting.

    Position ``k`` of a sorted list holds a sample of the k-th largest similarity, and the
    soft-gathered value there depends only on that similarity's level; so the sorted list is
    the level values, most similar level first, each repeated by its count. O(n m + n L^2)
    and no sort. In backward a level's gradient is shared evenly among its samples (the
    sorters' ``split_ties``).

    Parameters
    ----------
    scores, values, n_levels, temperature
        As in :func:`grid_soft_gather`.

    Returns
    -------
    LevelRuns
    """
    _check(scores, values)
    c_level, counts = _GridLevelGather.apply(scores, values, int(n_levels), float(temperature))
    return LevelRuns(c_level.flip(1), counts.flip(1), scores.shape[1])


def anchored_soft_gather(anchors, scores, values, *, n_levels, temperature):
    """Soft gather of ``values`` at arbitrary anchors (e.g. soft-sorted similarities).

    Parameters
    ----------
    anchors : Tensor of shape (n, K)
        Kernel centres, one per sorted position.
    scores, values, n_levels, temperature
        As in :func:`grid_soft_gather`.

    Returns
    -------
    c : Tensor of shape (n, K)
    """
    _check(scores, values)
    if anchors.ndim != 2 or anchors.shape[0] != scores.shape[0]:
        raise ValueError(f"anchors must be (n, K) with n={scores.shape[0]}, got {tuple(anchors.shape)}")
    return _AnchoredSoftGather.apply(anchors, scores, values, int(n_levels), float(temperature))
