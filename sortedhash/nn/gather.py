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
``N`` plus O(n K L) for the kernel (O(n L^2) when the anchors are themselves levels, as
with SoftSort). The backward passes below give the gradients that dense autograd would
give, including those that reach ``S`` through the kernel, so the hash head learns
through the sorter; ``tests/nn/test_gather.py`` checks both against the dense n^3 form.
"""

import torch

__all__ = ["grid_soft_gather", "anchored_soft_gather", "levels_of"]

# Rows per chunk in the anchored gather: bounds the (rows, K, L) temporaries.
_MAX_CHUNK_ELEMENTS = 1 << 22


def levels_of(scores, n_levels):
    """Integer level index of each similarity on the grid ``0, 1/(L-1), ..., 1``."""
    return torch.round(scores.detach() * (n_levels - 1)).long().clamp_(0, n_levels - 1)


def _level_sums(level, values, n_levels):
    """``A`` (sums of ``values`` per level) and ``N`` (counts per level), shape (n, L)."""
    n = values.shape[0]
    A = values.new_zeros(n, n_levels).scatter_add_(1, level, values)
    N = values.new_zeros(n, n_levels).scatter_add_(1, level, torch.ones_like(values))
    return A, N


def _grid(n_levels, like):
    return torch.linspace(0.0, 1.0, n_levels, dtype=like.dtype, device=like.device)


class _GridSoftGather(torch.autograd.Function):
    """``c_ij = sum_j' softmax_j'(-|S_ij - S_ij'| / tau) C_ij'``: each sample is its own anchor.

    This is SoftSort in sample space: sorted position ``k`` of row ``i`` holds sample
    ``pi_i(k)`` and its anchor is ``S_{i, pi_i(k)}``, so ``c[:, pi]`` is the sorted list.
    Anchors are levels too, so the kernel is a constant ``L x L`` matrix.
    """

    @staticmethod
    def forward(ctx, scores, values, n_levels, tau):
        level = levels_of(scores, n_levels)
        A, N = _level_sums(level, values, n_levels)
        grid = _grid(n_levels, values)
        diff = grid[:, None] - grid[None, :]  # diff[p, q] = v_p - v_q
        K = torch.exp(-diff.abs() / tau)
        D = K * torch.sign(diff) / tau  # d K[p, q] / d v_q
        # A populated anchor level p has K[p, p] = 1 with N_ip >= 1, so Z >= 1 there.
        Z = torch.where(N > 0, N @ K, torch.ones_like(N))
        c_level = (A @ K) / Z
        ctx.save_for_backward(level, values, A, N, Z, c_level, K, D)
        return c_level.gather(1, level)

    @staticmethod
    def backward(ctx, grad_out):
        level, values, A, N, Z, c_level, K, D = ctx.saved_tensors
        n_levels = K.shape[0]
        g_level = grad_out.new_zeros(grad_out.shape[0], n_levels).scatter_add_(1, level, grad_out)
        g_num = g_level / Z
        g_den = -g_level * c_level / Z
        grad_values = (g_num @ K).gather(1, level)
        # Sample j as a member of every anchor's kernel ...
        grad_scores = (g_num @ D).gather(1, level) * values + (g_den @ D).gather(1, level)
        # ... and as the anchor of its own sorted position (d K[p, q] / d v_p = -D[p, q]).
        R = -((A @ D.T) - c_level * (N @ D.T)) / Z
        grad_scores = grad_scores + grad_out * R.gather(1, level)
        return grad_scores, grad_values, None, None


class _AnchoredSoftGather(torch.autograd.Function):
    """``c_ik = sum_j softmax_j(-|a_ik - S_ij| / tau) C_ij`` for arbitrary anchors ``a``."""

    @staticmethod
    def _weights(anchors, N, grid, tau):
        logits = -(anchors[:, :, None] - grid).abs() / tau
        # Only populated levels take part; subtracting the row maximum keeps exp finite.
        logits = logits.masked_fill((N == 0)[:, None, :], float("-inf"))
        W = torch.exp(logits - logits.amax(dim=2, keepdim=True))
        return W, torch.sign(anchors[:, :, None] - grid)

    @staticmethod
    def _chunks(n, k, n_levels):
        step = max(1, _MAX_CHUNK_ELEMENTS // max(1, k * n_levels))
        return [slice(i, min(n, i + step)) for i in range(0, n, step)]

    @staticmethod
    def forward(ctx, anchors, scores, values, n_levels, tau):
        level = levels_of(scores, n_levels)
        A, N = _level_sums(level, values, n_levels)
        grid = _grid(n_levels, values)
        out = values.new_empty(anchors.shape)
        for rows in _AnchoredSoftGather._chunks(*anchors.shape, n_levels):
            W, _ = _AnchoredSoftGather._weights(anchors[rows], N[rows], grid, tau)
            num = torch.einsum("ikq,iq->ik", W, A[rows])
            den = torch.einsum("ikq,iq->ik", W, N[rows])
            out[rows] = num / den
        ctx.save_for_backward(anchors, level, values, A, N, out)
        ctx.tau = tau
        return out

    @staticmethod
    def backward(ctx, grad_out):
        anchors, level, values, A, N, c = ctx.saved_tensors
        tau, n_levels = ctx.tau, A.shape[1]
        grid = _grid(n_levels, values)
        g_values_level = torch.empty_like(A)
        alpha = torch.empty_like(A)
        beta = torch.empty_like(A)
        grad_anchors = torch.empty_like(anchors)
        # W is recomputed chunk by chunk rather than stored: memory stays O(chunk K L).
        for rows in _AnchoredSoftGather._chunks(*anchors.shape, n_levels):
            W, sgn = _AnchoredSoftGather._weights(anchors[rows], N[rows], grid, tau)
            P = W / torch.einsum("ikq,iq->ik", W, N[rows])[:, :, None]  # weight of one member
            Q = P * sgn / tau
            g, cr = grad_out[rows], c[rows]
            g_values_level[rows] = torch.einsum("ik,ikq->iq", g, P)
            alpha[rows] = torch.einsum("ik,ikq->iq", g, Q)
            beta[rows] = torch.einsum("ik,ikq->iq", g * cr, Q)
            spread = A[rows][:, None, :] - N[rows][:, None, :] * cr[:, :, None]
            grad_anchors[rows] = -g * (Q * spread).sum(dim=2)
        grad_values = g_values_level.gather(1, level)
        grad_scores = alpha.gather(1, level) * values - beta.gather(1, level)
        return grad_anchors, grad_scores, grad_values, None, None


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
