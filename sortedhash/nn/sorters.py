"""Differentiable sorters of in-batch Hamming similarities.

A sorter takes the similarity matrix ``S`` (anchor rows x candidate columns, values on the
Hamming grid ``q / n_bits``) and the latent similarities ``C`` and returns ``c_sorted``: row
``i`` holds ``C_i`` soft-gathered in the order of anchor ``i``'s Hamming ranking, most
similar first. Each sorter can also return its dense soft permutation (``n x n`` a row)
for inspection and tests; training never builds it (see :mod:`sortedhash.nn.gather`).

- :class:`SoftSort` (Prillo & Eisenschlos, 2020): anchors are the hard-sorted similarities.
- :class:`TorchsortSorter`: anchors are torchsort's soft-sorted similarities
  (Blondel et al., 2020), which also pass gradients to the scores.
- :class:`NoSort`: the identity order with the anchor's own other view first; with one
  positive, SortedNCE on it is plain InfoNCE (the ablation without sorting).
"""

import warnings

import torch

from .gather import anchored_soft_gather, grid_soft_gather

__all__ = ["SoftSort", "TorchsortSorter", "NoSort", "make_sorter"]


def _hard_order(scores):
    """Column order of each row, most similar first, ties broken by lower index."""
    return torch.sort(scores.detach(), dim=1, descending=True, stable=True).indices


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
    """

    def __init__(self, n_bits, temperature=1.0):
        self.n_bits = int(n_bits)
        self.temperature = float(temperature)

    @property
    def tau(self):
        return self.temperature / self.n_bits

    def soft_permutation(self, scores):
        anchors = torch.sort(scores, dim=1, descending=True, stable=True).values
        return _kernel_permutation(anchors, scores, self.tau)

    def __call__(self, scores, values):
        c_by_sample = grid_soft_gather(scores, values, n_levels=self.n_bits + 1, temperature=self.tau)
        return c_by_sample.gather(1, _hard_order(scores))


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
        of tied positions differs from :class:`SoftSort`). Gaps of one Hamming step
        (``1 / n_bits``) start to be pulled from about ``n_bits``.
    """

    _warned_cpu_fallback = False

    def __init__(self, n_bits, temperature=1.0, regularization_strength=1.0):
        self.n_bits = int(n_bits)
        self.temperature = float(temperature)
        self.regularization_strength = float(regularization_strength)

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
        anchors = self.soft_sorted(scores)
        return anchored_soft_gather(anchors, scores, values, n_levels=self.n_bits + 1, temperature=self.tau)


class NoSort:
    """No sorting: the anchor's own other view first, then the other samples in index order."""

    def __init__(self, n_bits=None):
        self.n_bits = n_bits

    @staticmethod
    def _order(n, m, device):
        idx = torch.arange(m, device=device).expand(n, m)
        first = torch.arange(n, device=device)[:, None]
        rest = idx[idx != first].view(n, m - 1)
        return torch.cat([first, rest], dim=1)

    def soft_permutation(self, scores):
        n, m = scores.shape
        order = self._order(n, m, scores.device)
        return torch.nn.functional.one_hot(order, m).to(scores.dtype)

    def __call__(self, scores, values):
        n, m = values.shape
        return values.gather(1, self._order(n, m, values.device))


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
        return NoSort(n_bits)
    raise ValueError(f"sorter must be 'torchsort', 'softsort' or 'none', got {name!r}")
