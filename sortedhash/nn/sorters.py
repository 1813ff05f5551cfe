"""Differentiable sorters of in-batch Hamming similarities.

A sorter takes the similarity matrix ``S`` (anchor rows x candidate columns, values on the
Hamming grid ``q / n_bits``) and the latent similarities ``C`` and returns ``c_sorted``: row
``i`` holds ``C_i`` soft-gathered in the order of anchor ``i``'s Hamming ranking, most
similar first. ``sorted_list(S, C)`` gives the same lists in the cheapest exact form the
sorter has: on the Hamming grid, with ``split_ties``, one value and one count a level
(:class:`~sortedhash.nn.gather.LevelRuns`), computed without sorting at all; this is what
training uses. Each sorter can also return its dense soft permutation (``n x n`` a row)
for inspection and tests; training never builds it (see :mod:`sortedhash.nn.gather`).

Candidates with equal Hamming similarity (ties, the common case with short codes) hold
interchangeable sorted positions: the loss does not depend on which tied candidate takes
which position, but the gradient that reaches each one through its position does. By
default (``split_ties=True``) the sorters give every tied candidate the mean gradient of
its group's positions, so the gradient depends on no tie order (a sort's own order is
arbitrary: index order for a stable sort, anything for torchsort); the loss and the
gradient summed over each group are unchanged.

- :class:`SoftSort` (Prillo & Eisenschlos, 2020): anchors are the hard-sorted similarities.
- :class:`TorchsortSorter`: anchors are torchsort's soft-sorted similarities
  (Blondel et al., 2020), which also pass gradients to the scores.
- :class:`NoSort`: the identity order with the anchor's own other view first; with one
  positive, SortedNCE on it is plain InfoNCE (the ablation without sorting).
"""

import warnings

import torch

from .gather import anchored_soft_gather, grid_level_gather, grid_soft_gather, levels_of

__all__ = ["SoftSort", "TorchsortSorter", "NoSort", "make_sorter", "split_tie_gradient"]


def _hard_sort(scores):
    """Sorted similarities and column order of each row, most similar first, ties by lower index."""
    return torch.sort(scores.detach(), dim=1, descending=True, stable=True)


class _EvenTieGradient(torch.autograd.Function):
    """Identity forward; backward gives each sorted position its tie group's mean gradient."""

    @staticmethod
    def forward(ctx, c_sorted, sorted_levels, n_levels):
        ctx.save_for_backward(sorted_levels)
        ctx.n_levels = n_levels
        return c_sorted.view_as(c_sorted)

    @staticmethod
    def backward(ctx, grad):
        (levels,) = ctx.saved_tensors
        shape = (grad.shape[0], ctx.n_levels)
        sums = grad.new_zeros(shape).scatter_add_(1, levels, grad)
        counts = grad.new_zeros(shape).scatter_add_(1, levels, torch.ones_like(grad))
        return (sums / counts.clamp_min(1)).gather(1, levels), None, None


def split_tie_gradient(c_sorted, sorted_levels, n_levels):
    """Share the gradient of tied sorted positions evenly among them.

    Parameters
    ----------
    c_sorted : Tensor of shape (n, K)
        Sorted outputs; positions of one tie group hold equal values.
    sorted_levels : LongTensor of shape (n, K)
        Hamming level (``q`` of ``q / n_bits``) of each sorted position.
    n_levels : int
        Number of levels (``n_bits + 1``).

    Returns
    -------
    Tensor
        ``c_sorted`` unchanged; in backward each position gets its group's mean gradient.
    """
    return _EvenTieGradient.apply(c_sorted, sorted_levels, int(n_levels))


def _kernel_permutation(anchors, scores, tau):
    """Dense soft permutation ``P[i, k, j] = softmax_j(-|a_ik - S_ij| / tau)``."""
    return torch.softmax(-(anchors[:, :, None] - scores[:, None, :]).abs() / tau, dim=2)


class SoftSort:
    """SoftSort of each row: the hard-sorted similarities anchor a Laplace kernel.

    Parameters
    ----------
    n_bits : int
        Code length; similarities lie on the grid ``q / n_bits``.
    temperature : float, default=1.0
        Kernel temperature in Hamming steps (``tau_s = temperature / n_bits``);
        ``temperature -> 0`` gives the hard permutation.
    split_ties : bool, default=True
        Give tied candidates the mean gradient of their positions (see the module's
        docstring); False keeps the stable sort's assignment (ties in index order).
    """

    def __init__(self, n_bits, temperature=1.0, split_ties=True):
        self.n_bits = int(n_bits)
        self.temperature = float(temperature)
        self.split_ties = bool(split_ties)

    @property
    def tau(self):
        return self.temperature / self.n_bits

    def soft_permutation(self, scores):
        anchors = torch.sort(scores, dim=1, descending=True, stable=True).values
        return _kernel_permutation(anchors, scores, self.tau)

    def __call__(self, scores, values):
        n_levels = self.n_bits + 1
        c_by_sample = grid_soft_gather(scores, values, n_levels=n_levels, temperature=self.tau)
        hard = _hard_sort(scores)
        c_sorted = c_by_sample.gather(1, hard.indices)
        if self.split_ties:
            c_sorted = split_tie_gradient(c_sorted, levels_of(hard.values, n_levels), n_levels)
        return c_sorted

    def sorted_list(self, scores, values):
        """The sorted lists of ``self(scores, values)``: :class:`~sortedhash.nn.gather.LevelRuns`
        with ``split_ties`` (no sort; same loss and gradients), else the dense tensor."""
        if self.split_ties:
            return grid_level_gather(scores, values, n_levels=self.n_bits + 1, temperature=self.tau)
        return self(scores, values)


class TorchsortSorter:
    """Soft sort by torchsort; its soft-sorted values anchor the SoftSort kernel.

    Parameters
    ----------
    n_bits : int
        Code length.
    temperature : float, default=1.0
        Kernel temperature in Hamming steps, as for :class:`SoftSort`.
    regularization_strength : float, default=1.0
        torchsort's ``regularization_strength`` (l2); smaller is harder. torchsort pulls two
        neighbouring sorted values together only where their gap exceeds about
        ``1 / regularization_strength``; similarities lie in [0, 1], so at 1.0 and below the
        anchors are exactly the hard-sorted similarities (and only the gradient's assignment
        of tied positions could differ from :class:`SoftSort`, and ``split_ties`` makes it
        the same). Gaps of one Hamming step (``1 / n_bits``) start to be pulled from about
        ``n_bits``.
    split_ties : bool, default=True
        Give tied candidates the mean gradient of their positions (see the module's
        docstring); False keeps torchsort's own assignment of tied positions.
    """

    _warned_cpu_fallback = False

    def __init__(self, n_bits, temperature=1.0, regularization_strength=1.0, split_ties=True):
        self.n_bits = int(n_bits)
        self.temperature = float(temperature)
        self.regularization_strength = float(regularization_strength)
        self.split_ties = bool(split_ties)

    @property
    def tau(self):
        return self.temperature / self.n_bits

    def soft_sorted(self, scores):
        """Soft-sorted similarities of each row, most similar first (2-D, float32/64)."""
        import torchsort

        # torchsort sorts ascending and has no bfloat16/half kernels: sort -S in float32.
        x = -scores.float() if scores.dtype not in (torch.float32, torch.float64) else -scores
        if x.is_cuda and not _torchsort_has_cuda():
            # torchsort built without its CUDA kernels: its isotonic solve is O(n log n)
            # a row, cheap next to the rest of the step, so run it on the CPU.
            if not TorchsortSorter._warned_cpu_fallback:
                warnings.warn(
                    "torchsort was built without CUDA kernels; soft sorting runs on the CPU. "
                    "Reinstall torchsort with nvcc on the PATH to build them.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                TorchsortSorter._warned_cpu_fallback = True
            out = torchsort.soft_sort(x.cpu(), regularization_strength=self.regularization_strength)
            out = out.to(scores.device)
        else:
            out = torchsort.soft_sort(x, regularization_strength=self.regularization_strength)
        return (-out).to(scores.dtype)

    def soft_permutation(self, scores):
        return _kernel_permutation(self.soft_sorted(scores), scores, self.tau)

    def __call__(self, scores, values):
        n_levels = self.n_bits + 1
        anchors = self.soft_sorted(scores)
        c_sorted = anchored_soft_gather(anchors, scores, values, n_levels=n_levels, temperature=self.tau)
        if self.split_ties:
            c_sorted = split_tie_gradient(c_sorted, levels_of(_hard_sort(scores).values, n_levels), n_levels)
        return c_sorted

    def sorted_list(self, scores, values):
        """The sorted lists of ``self(scores, values)`` in their cheapest exact form.

        Similarities lie in [0, 1], so up to ``regularization_strength=1`` torchsort's
        anchors are the hard-sorted similarities and the lists are :class:`SoftSort`'s: with
        ``split_ties`` they come as :class:`~sortedhash.nn.gather.LevelRuns`, without calling
        torchsort or sorting (same loss and gradients). Otherwise the dense tensor.
        """
        if self.split_ties and self.regularization_strength <= 1.0:
            return grid_level_gather(scores, values, n_levels=self.n_bits + 1, temperature=self.tau)
        return self(scores, values)


class NoSort:
    """No sorting: the anchor's own other view first, then the other samples in index order.

    Row ``i`` is the anchor of sample ``i % m`` (m candidates), so both directions of a
    symmetric loss can be stacked as 2m rows. It needs no parameter: the order does not
    depend on the code length or a temperature.
    """

    @staticmethod
    def _order(n, m, device):
        idx = torch.arange(m, device=device).expand(n, m)
        first = torch.arange(n, device=device)[:, None] % m
        rest = idx[idx != first].view(n, m - 1)
        return torch.cat([first, rest], dim=1)

    def soft_permutation(self, scores):
        n, m = scores.shape
        order = self._order(n, m, scores.device)
        return torch.nn.functional.one_hot(order, m).to(scores.dtype)

    def __call__(self, scores, values):
        n, m = values.shape
        return values.gather(1, self._order(n, m, values.device))

    sorted_list = __call__


def _torchsort_has_cuda():
    try:
        from torchsort import isotonic_cuda  # noqa: F401
    except ImportError:
        return False
    return True


def make_sorter(name, n_bits, temperature=1.0, regularization_strength=1.0):
    """Build a sorter from its name: ``"torchsort"``, ``"softsort"`` or ``"none"``."""
    if name == "torchsort":
        return TorchsortSorter(n_bits, temperature, regularization_strength)
    if name == "softsort":
        return SoftSort(n_bits, temperature)
    if name == "none":
        return NoSort()
    raise ValueError(f"sorter must be 'torchsort', 'softsort' or 'none', got {name!r}")
