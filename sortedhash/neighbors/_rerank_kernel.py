"""Compiled exact float re-ranking of each query's Hamming candidates (numba).

The second stage of :class:`~sortedhash.neighbors.RerankedNeighbors`: for each query, the
float distance to each of its candidate rows (read in place from the database, which may be
a memory map), then the k nearest, ties by lower index (a few kept by insertion as the
candidates are read, more by sorting them all). Dot products accumulate in float64
whatever the rows' dtype; the sum is reassociated (vectorised), so a distance may differ
from a sequential sum in its last bits.
"""

import numpy as np
from numba import prange

from ._jit import njit
from ._kernels import _prefetch_l2
from ._threads import run_on_threads

__all__ = ["rerank"]

# Candidate rows requested this many rows ahead of their use: random rows of a large database
# miss every cache, and a row's lines load while the rows before it are summed (1, 2, 4, 8
# and 16 rows measured on 1M x 384 float32 rows, AMD EPYC; 4 the fastest). They are
# requested into L2, not L1: on an Intel Xeon, prefetches into L1 ran 12-18 % slower a
# candidate at k = 10 and 3-20 % at k = 100 (research/rerank_kernel_ab.py).
_AHEAD = 4
# Up to this many neighbours, one pass over the candidates keeps the k best in order; more
# sort all candidates by distance.
_INSERT_MAX_K = 32


@njit(inline="always")
def _precedes(d, row, other_d, other_row):
    """Whether (d, row) ranks before (other_d, other_row): nearer, or as near and lower."""
    return d < other_d or (d == other_d and row < other_row)


@njit(inline="always")
def _insert(best_d, best_i, kept, d, row):
    """Insert (d, row) into the ``kept`` best so far (sorted, at most ``len(best_d)``) if it
    ranks among them; returns the new count."""
    k = best_d.shape[0]
    if kept == k and not _precedes(d, row, best_d[k - 1], best_i[k - 1]):
        return kept
    kept = min(kept + 1, k)
    p = kept - 1
    while p > 0 and _precedes(d, row, best_d[p - 1], best_i[p - 1]):
        best_d[p] = best_d[p - 1]
        best_i[p] = best_i[p - 1]
        p -= 1
    best_d[p] = d
    best_i[p] = row
    return kept


@njit(inline="always")
def _prefetch_row(X, norms, row, line):
    """Start loading ``row``'s cache lines (``line`` entries each) and its squared norm."""
    for j in range(0, X.shape[1], line):
        _prefetch_l2(X, row, j)
    _prefetch_l2(norms, row, 0)


@njit(inline="always", fastmath={"reassoc", "contract"})
def _distance(X, squared_norms, query, query_norm, row, cosine):
    n_features = X.shape[1]
    values = X[row]
    dot = 0.0
    for j in range(n_features):
        dot += values[j] * query[j]
    if cosine:
        return 1.0 - dot / max(np.sqrt(query_norm * squared_norms[row]), 1e-300)
    return np.sqrt(max(query_norm - 2.0 * dot + squared_norms[row], 0.0))


@njit(parallel=True, nogil=True, fastmath={"reassoc", "contract"})
def _rerank(X, squared_norms, queries, candidates, k, cosine, out_dist, out_ind):
    n_queries, n_candidates = candidates.shape
    n_features = X.shape[1]
    line = 64 // X.itemsize  # entries a cache line
    norms = squared_norms.reshape((-1, 1))  # as _prefetch_l2 takes it
    insert = k <= _INSERT_MAX_K
    for q in prange(n_queries):
        query = queries[q]
        query_norm = 0.0
        for j in range(n_features):
            query_norm += query[j] * query[j]
        # Sorting by distance keeps ties in index order when the candidates are in it; a few
        # neighbours are kept by insertion instead, ties broken by index explicitly (a sort
        # of the candidates and of their distances took ~40 % of the time at k = 10 of 1,000).
        rows = candidates[q] if insert else np.sort(candidates[q])
        dist = np.empty(0 if insert else n_candidates)
        kept = 0
        for c in range(min(_AHEAD, n_candidates)):
            _prefetch_row(X, norms, rows[c], line)
        for c in range(n_candidates):
            if c + _AHEAD < n_candidates:
                _prefetch_row(X, norms, rows[c + _AHEAD], line)
            d = _distance(X, squared_norms, query, query_norm, rows[c], cosine)
            if insert:
                kept = _insert(out_dist[q], out_ind[q], kept, d, rows[c])
            else:
                dist[c] = d
        if not insert:
            order = np.argsort(dist, kind="mergesort")
            for i in range(k):
                out_dist[q, i] = dist[order[i]]
                out_ind[q, i] = rows[order[i]]


def rerank(X, squared_norms, queries, candidates, k, metric, n_threads=None):
    """The ``k`` rows of ``X`` nearest each query among its candidates, ties by lower index.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features), float32 or float64
        The database, C-contiguous (a memory map is read in place).
    squared_norms : ndarray of shape (n_rows,), float64
    queries : ndarray of shape (n_queries, n_features), float64
    candidates : ndarray of shape (n_queries, n_candidates), int64
        Each query's candidate rows, distinct, in any order.
    k : int
        Rows returned per query (<= n_candidates).
    metric : {"cosine", "euclidean"}
    n_threads : int, default=None
        numba threads; None uses numba's current setting.

    Returns
    -------
    dist : ndarray of shape (n_queries, k), float64
        ``1 - cos`` or the Euclidean distance, ascending.
    ind : ndarray of shape (n_queries, k), int64
    """
    n_queries = len(queries)
    out_dist = np.empty((n_queries, k))
    out_ind = np.empty((n_queries, k), dtype=np.int64)
    run_on_threads(n_threads, _rerank, X, squared_norms, np.ascontiguousarray(queries, dtype=np.float64),
                   np.ascontiguousarray(candidates, dtype=np.int64), k, metric == "cosine", out_dist, out_ind)
    return out_dist, out_ind
