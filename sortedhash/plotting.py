"""Plots of codes and retrieval results (needs matplotlib: ``pip install sortedhash[plot]``).

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is None) and
returns it, so plots can be combined and saved by the caller.
"""

import numpy as np

from .metrics._ranking import _relevance, _validate, hamming_distances

__all__ = [
    "plot_precision_recall",
    "plot_map_vs_bits",
    "plot_hamming_histogram",
    "plot_soft_permutation",
    "plot_retrieval_grid",
]


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5, 4))[1]


def plot_precision_recall(curves, ax=None):
    """Precision against recall of Hamming-radius retrieval, one line per method.

    Parameters
    ----------
    curves : dict of str to (precision, recall) or (precision, recall, radius)
        As returned by :func:`sortedhash.metrics.precision_recall_curve`.
    ax : matplotlib Axes, default=None
    """
    ax = _axes(ax)
    for name, (precision, recall, *_) in curves.items():
        keep = ~np.isnan(precision)
        ax.plot(recall[keep], precision[keep], marker=".", label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_map_vs_bits(results, ax=None, ylabel="mAP"):
    """mAP against code length, one line per method.

    Parameters
    ----------
    results : dict of str to dict of int to float or (mean, std)
        ``{method: {n_bits: map}}``; a ``(mean, std)`` pair draws an error bar.
    ax : matplotlib Axes, default=None
    ylabel : str, default="mAP"
    """
    ax = _axes(ax)
    for name, by_bits in results.items():
        bits = sorted(by_bits)
        values = [by_bits[b] for b in bits]
        if isinstance(values[0], (tuple, list)):
            mean, std = np.array(values, dtype=float).T
            ax.errorbar(bits, mean, yerr=std, marker="o", capsize=3, label=name)
        else:
            ax.plot(bits, values, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({b for v in results.values() for b in v}))
    ax.set_xticklabels([str(b) for b in ax.get_xticks()])
    ax.set_xlabel("bits")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_hamming_histogram(query_codes, query_labels, database_codes, database_labels, ax=None):
    """Histogram of Hamming distances from queries to relevant and to irrelevant items.

    Good codes put relevant items (same label) at small distances and the others far away;
    the overlap of the two histograms is what ranking cannot separate.
    """
    q, ql, db, dl = _validate(query_codes, query_labels, database_codes, database_labels)
    dist = hamming_distances(q, db)
    rel = _relevance(ql, dl)
    n_bits = 8 * q.shape[1]
    bins = np.arange(n_bits + 2) - 0.5
    ax = _axes(ax)
    ax.hist(dist[rel], bins=bins, density=True, alpha=0.6, label="relevant (same label)")
    ax.hist(dist[~rel], bins=bins, density=True, alpha=0.6, label="irrelevant")
    ax.set_xlabel("Hamming distance")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def plot_soft_permutation(permutation, ax=None, title=None):
    """Heat map of one anchor's soft permutation (sorted positions x candidates).

    Parameters
    ----------
    permutation : array-like of shape (n, n)
        E.g. ``SoftSort(n_bits).soft_permutation(scores)[i]`` as numpy.
    """
    ax = _axes(ax)
    image = ax.imshow(np.asarray(permutation), cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("candidate j")
    ax.set_ylabel("sorted position k")
    if title:
        ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax


def plot_retrieval_grid(query_images, database_images, neighbours, n_neighbours=8, query_labels=None,
                        database_labels=None):
    """A grid: each row a query image, then its nearest database images.

    Parameters
    ----------
    query_images : array of shape (n_queries, H, W[, 3])
    database_images : array of shape (n_database, H, W[, 3])
    neighbours : array of int of shape (n_queries, >= n_neighbours)
        Database indices, nearest first (``HammingNeighbors.kneighbors(...)[1]``).
    n_neighbours : int, default=8
    query_labels, database_labels : array-like, default=None
        When given, neighbours with another label than the query are framed in red.

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    n_queries = len(query_images)
    fig, axes = plt.subplots(n_queries, n_neighbours + 1, figsize=(1.1 * (n_neighbours + 1), 1.15 * n_queries),
                             squeeze=False)
    # Grey-level images (H, W) read best dark on light, as digits are written.
    cmap = "gray_r" if np.ndim(query_images[0]) == 2 else None
    for i in range(n_queries):
        axes[i, 0].imshow(query_images[i], cmap=cmap)
        axes[i, 0].set_title("query" if i == 0 else "", fontsize=8)
        for j in range(n_neighbours):
            ax = axes[i, j + 1]
            idx = neighbours[i, j]
            ax.imshow(database_images[idx], cmap=cmap)
            if query_labels is not None and database_labels is not None:
                colour = "tab:green" if database_labels[idx] == query_labels[i] else "tab:red"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2.5)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
