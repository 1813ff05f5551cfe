"""DaskHammingNeighbors: exact Hamming search over codes sharded across dask workers."""

from numbers import Integral

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors._base import KNeighborsMixin, RadiusNeighborsMixin
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..bits import check_codes
from ..neighbors import HammingNeighbors
from ..neighbors._hamming import _split

__all__ = ["DaskHammingNeighbors"]

# Queries sent to the workers at once (one graph key each): bounds every shard's reply to
# _QUERY_BLOCK x k candidates.
_QUERY_BLOCK = 4096
# Partial results merged at once on a worker: a tree of merges, so the client receives one
# block of results per query block whatever the number of shards.
_MERGE_FAN_IN = 8
# Rows of a shard when fit is given an in-memory array.
_IN_MEMORY_SHARD = 1 << 20


class DaskHammingNeighbors(KNeighborsMixin, RadiusNeighborsMixin, BaseEstimator):
    """Exact Hamming k-NN and radius search over packed codes sharded across dask workers.

    Each chunk of rows of the fitted dask array is a shard: a :class:`HammingNeighbors`
    fitted and kept in the memory of a worker (persisted), with the same kernels and
    multi-index tables. A query block goes to the workers once per call; every shard
    answers with at most ``k`` candidates per query, merged exactly on the workers, so
    results (global indices, ties by the lower index) are identical to
    ``HammingNeighbors().fit(codes.compute())`` and the client never holds the database.

    Runs on the current :class:`distributed.Client` when there is one, else on dask's
    local scheduler.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours returned by :meth:`kneighbors` when not given there.
    radius : int, default=2
        Hamming radius (inclusive) of :meth:`radius_neighbors` when not given there.
    algorithm : {"auto", "brute", "mih"}, default="auto"
        Search of each shard, as in :class:`~sortedhash.HammingNeighbors`. Multi-index
        hashing is sublinear, so fewer, larger shards search faster with it.
    n_substrings : int or "auto", default="auto"
        Tables of each shard's multi-index, as in :class:`~sortedhash.HammingNeighbors`.
    backend : {"numba", "numpy", "faiss"}, default="numba"
        Search engine of each shard, as in :class:`~sortedhash.HammingNeighbors`.

    Attributes
    ----------
    n_samples_fit_ : int
        Codes in all shards.
    n_features_in_ : int
        Bytes of one code.
    n_bits_ : int
        ``8 * n_features_in_``.
    shard_sizes_ : ndarray of shape (n_chunks,)
        Codes of each chunk (empty chunks included, as 0).

    Notes
    -----
    Each shard searches with one thread; give the codes at least as many chunks as the
    cluster has worker threads. A worker lost mid-call has its shards recomputed from
    the graph by the scheduler (the result is still exact), or the call raises (e.g.
    :class:`distributed.KilledWorker`): it never returns a partial result.
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "radius": [Interval(Integral, 0, None, closed="left")],
        "algorithm": [StrOptions({"auto", "brute", "mih"})],
        "n_substrings": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "backend": [StrOptions({"numba", "numpy", "faiss"})],
    }

    def __init__(self, *, n_neighbors=5, radius=2, algorithm="auto", n_substrings="auto", backend="numba"):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.algorithm = algorithm
        self.n_substrings = n_substrings
        self.backend = backend

    def fit(self, X, y=None):
        """Index each chunk of codes on a worker and keep it there.

        Parameters
        ----------
        X : dask.array.Array or ndarray of shape (n_samples, n_bytes), dtype uint8
            Packed codes, chunked along rows (other chunking is undone). An in-memory
            array is cut into shards of 2**20 codes.
        y : None
            Ignored.

        Returns
        -------
        self : DaskHammingNeighbors
        """
        self._validate_params()
        if self.algorithm == "mih" and self.backend != "numba":
            raise ValueError(f"algorithm='mih' needs backend='numba', got backend={self.backend!r}")
        codes = _code_array(X)
        shard_params = {"algorithm": self.algorithm, "n_substrings": self.n_substrings, "backend": self.backend}
        fitted = [dask.delayed(_fit_shard, pure=True)(block, shard_params) for block in codes.to_delayed().ravel()]
        fitted = dask.persist(*fitted)
        sizes = np.array(dask.compute(*[dask.delayed(_shard_size, pure=True)(shard) for shard in fitted]),
                         dtype=np.int64)
        if sizes.sum() == 0:
            raise ValueError("X is empty (0 codes)")
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        keep = sizes > 0  # an empty chunk is no shard
        self._shards = [shard for shard, k in zip(fitted, keep) if k]
        self._offsets, self._sizes = offsets[keep], sizes[keep]
        self.shard_sizes_ = sizes
        self.n_samples_fit_ = int(sizes.sum())
        self.n_features_in_ = int(codes.shape[1])
        self.n_bits_ = 8 * self.n_features_in_
        return self

    def _queries(self, X):
        check_is_fitted(self, "_shards")
        if X is None:
            raise ValueError("DaskHammingNeighbors needs query codes X (leave-one-out over the whole database "
                             "would bring n_samples_fit x k results to the client): pass the codes to query")
        if isinstance(X, da.Array):
            X = X.compute()
        return check_codes(X, name="X", n_bytes=self.n_features_in_)

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the k nearest codes of each query over all shards.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_bytes), dtype uint8
            Query codes (in memory; a dask array is computed first).
        n_neighbors : int, default=None
            Defaults to the constructor's ``n_neighbors``.
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), int64
            Hamming distances, ascending; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Global indices (row numbers in the fitted array), ties by lower index.
        """
        queries = self._queries(X)
        k = check_scalar(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors", Integral,
                         min_val=1)
        if k > self.n_samples_fit_:
            raise ValueError(f"n_neighbors={k} is larger than the {self.n_samples_fit_} codes that can be "
                             f"returned (n_samples_fit={self.n_samples_fit_})")
        results = self._search(queries, _shard_knn, lambda size, offset: (min(k, size), offset), _merge_knn, k)
        dist = np.concatenate([r[0] for r in results])
        ind = np.concatenate([r[1] for r in results])
        return (dist, ind) if return_distance else ind

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Find all codes within a Hamming radius (``distance <= radius``) of each query.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_bytes), dtype uint8
            Query codes (in memory; a dask array is computed first).
        radius : int, default=None
            Defaults to the constructor's ``radius``.
        return_distance : bool, default=True
            Whether to return the distances.
        sort_results : bool, default=False
            Sort each query's results by distance (ties by index); otherwise by index.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,), dtype object
            Arrays of distances (int64); only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries,), dtype object
            Arrays of global indices (int64).
        """
        queries = self._queries(X)
        r = check_scalar(self.radius if radius is None else radius, "radius", Integral, min_val=0)
        results = self._search(queries, _shard_radius, lambda size, offset: (r, offset, sort_results), _merge_radius,
                               sort_results)
        offsets, dist, ind = _concat_csr(results)
        dists, inds = _split(dist, offsets), _split(ind, offsets)
        return (dists, inds) if return_distance else inds

    def _search(self, queries, task, task_args, merge, merge_arg):
        """``task(shard, block, *task_args(shard size, shard offset))`` on every shard for each
        block of queries, merged per block on the workers; the blocks' results, in order."""
        merged = []
        for block in _query_blocks(queries):
            parts = [dask.delayed(task, pure=True)(shard, block, *task_args(size, offset))
                     for shard, size, offset in zip(self._shards, self._sizes, self._offsets)]
            merged.append(_tree(parts, merge, merge_arg))
        return dask.compute(*merged)

    # The same tags as HammingNeighbors (packed codes, no NaN, dense).
    __sklearn_tags__ = HammingNeighbors.__sklearn_tags__


def _code_array(X):
    """``X`` as a dask array of packed codes chunked along rows only."""
    if not isinstance(X, da.Array):
        X = check_codes(X, name="X")
        return da.from_array(X, chunks=(_IN_MEMORY_SHARD, -1))
    if X.dtype != np.uint8:
        raise TypeError(f"X must be packed binary codes of dtype uint8 (as sortedhash.dask.encode returns), "
                        f"got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_bytes), got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError("X has zero bytes per code")
    return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X


def _query_blocks(queries):
    # One key per block: each worker fetches a block once, however many shards it holds.
    return [dask.delayed(queries[start:start + _QUERY_BLOCK], pure=True)
            for start in range(0, len(queries), _QUERY_BLOCK)]


def _tree(parts, merge, *args):
    """Merge ``parts`` in order, ``_MERGE_FAN_IN`` at a time, on the workers."""
    while len(parts) > 1:
        parts = [dask.delayed(merge, pure=True)(*args, *parts[i:i + _MERGE_FAN_IN])
                 for i in range(0, len(parts), _MERGE_FAN_IN)]
    return parts[0]


# ---------------------------------------------------------------- worker tasks
def _fit_shard(block, params):
    if len(block) == 0:
        return None
    return HammingNeighbors(**params).fit(block)


def _shard_size(shard):
    return 0 if shard is None else shard.n_samples_fit_


def _shard_knn(shard, queries, k, offset):
    dist, ind = shard.kneighbors(queries, n_neighbors=k)
    return dist, ind + offset


def _shard_radius(shard, queries, radius, offset, sort_results):
    """The shard's radius results as one CSR triple (offsets, distances, global indices)."""
    dist, ind = shard.radius_neighbors(queries, radius=radius, sort_results=sort_results)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in dist])])  # queries are never empty
    return offsets, np.concatenate(dist), np.concatenate(ind) + offset


def _merge_knn(k, *parts):
    """Parts cover ascending, disjoint index ranges and are each sorted by (distance,
    index): a stable sort by distance of their concatenation is sorted by (distance, index)."""
    dist = np.concatenate([p[0] for p in parts], axis=1)
    ind = np.concatenate([p[1] for p in parts], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)


def _merge_radius(sort_results, *parts):
    """One CSR result (offsets, distances, indices) from per-shard ones, each query's
    results by index, or by (distance, index) with ``sort_results``."""
    n_queries = len(parts[0][0]) - 1
    rows = np.concatenate([np.repeat(np.arange(n_queries), np.diff(p[0])) for p in parts])
    dist = np.concatenate([p[1] for p in parts])
    ind = np.concatenate([p[2] for p in parts])
    order = np.lexsort((ind, dist, rows) if sort_results else (ind, rows))
    offsets = np.searchsorted(rows[order], np.arange(n_queries + 1))
    return offsets, dist[order], ind[order]


def _concat_csr(blocks):
    offsets = [blocks[0][0]]
    for block in blocks[1:]:
        offsets.append(block[0][1:] + offsets[-1][-1])
    return np.concatenate(offsets), np.concatenate([b[1] for b in blocks]), np.concatenate([b[2] for b in blocks])
