"""Compiled exact float re-ranking of each query's Hamming candidates (numba).

The second stage of :class:`~sortedhash.neighbors.RerankedNeighbors`: for each query, the
float distance to each of its candidate rows (read in place from the database, which may be
a memory map), then the k nearest, ties by lower index. Dot products accumulate in float64
whatever the rows' dtype; the sum is reassociated (vectorised), so a distance may differ
from a sequential sum in its last bits.
"""

import numpy as np
from numba import prange

from ._jit import njit
from ._kernels import _prefetch, _with_threads

__all__ = ["rerank"]

# Candidate rows requested this many rows ahead of their use: random rows of a large database
# miss every cache, and a row's lines load while the rows before it are summed.
_AHEAD = 4


@njit(parallel=True, nogil=True, fastmath={"reassoc", "contract"})
def _rerank(X, squared_norms, queries, candidates, k, cosine, out_dist, out_ind):
    n_queries, n_candidates = candidates.shape
    n_features = X.shape[1]
    line = 64 // X.itemsize  # entries a cache line
    for q in prange(n_queries):
        query = queries[q]
        query_norm = 0.0
        for j in range(n_features):
            query_norm += query[j] * query[j]
        # Candidates in index order, so the stable sort by distance breaks ties by index.
        rows = np.sort(candidates[q])
        dist = np.empty(n_candidates)
        for c in range(min(_AHEAD, n_candidates)):
            for j in range(0, n_features, line):
                _prefetch(X, rows[c], j)
        for c in range(n_candidates):
            if c + _AHEAD < n_candidates:
                for j in range(0, n_features, line):
                    _prefetch(X, rows[c + _AHEAD], j)
            row = X[rows[c]]
            dot = 0.0
            for j in range(n_features):
                dot += row[j] * query[j]
            if cosine:
                dist[c] = 1.0 - dot / max(np.sqrt(query_norm * squared_norms[rows[c]]), 1e-300)
            else:
                dist[c] = np.sqrt(max(query_norm - 2.0 * dot + squared_norms[rows[c]], 0.0))
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
    _with_threads(n_threads, _rerank, X, squared_norms, np.ascontiguousarray(queries, dtype=np.float64),
                  np.ascontiguousarray(candidates, dtype=np.int64), k, metric == "cosine", out_dist, out_ind)
    return out_dist, out_ind
