"""HammingNeighbors: exact nearest neighbours over packed binary codes."""

from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.neighbors._base import KNeighborsMixin, RadiusNeighborsMixin
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._safe_state import SafeStateMixin
from .._versions import VersionedMixin
from ..bits import check_codes, pairwise_hamming
from ._kernels import knn_search, pack_words, radius_search

__all__ = ["HammingNeighbors"]

# Rows of the database compared at once in the numpy paths: bounds memory to
# O(query chunk x _DB_CHUNK) whatever the database size.
_DB_CHUNK = 1 << 16
_QUERY_CHUNK = 256


class HammingNeighbors(KNeighborsMixin, RadiusNeighborsMixin, SafeStateMixin, VersionedMixin, BaseEstimator):
    """Exact nearest neighbours in Hamming distance over packed binary codes.

    Mirrors :class:`sklearn.neighbors.NearestNeighbors`, with two differences: input is
    packed ``uint8`` codes (as every sortedhash transformer returns, faiss's bit order), and
    distances are integer Hamming counts (not scikit-learn's fraction of differing bits).
    Ties in distance are broken by database index, so results equal a stable sort of all
    distances and are deterministic.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours returned by :meth:`kneighbors` when not given there.
    radius : int, default=2
        Hamming radius of :meth:`radius_neighbors` when not given there. Inclusive:
        distance ``<= radius`` (scikit-learn's convention; faiss's range search is strict).
    backend : {"numba", "numpy", "faiss"}, default="numba"
        Search engine: compiled blocked kernels, a chunked numpy reference (XOR +
        ``np.bitwise_count`` + stable sort), or faiss's ``IndexBinaryFlat`` for k-NN (when
        installed; its results are re-sorted so ties also go to the lower index within the
        k found; radius queries then use the numpy path).
    n_jobs : int, default=None
        Threads of the numba and faiss backends. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; -1 means all cores (scikit-learn's
        convention).

    Attributes
    ----------
    n_samples_fit_ : int
        Number of fitted codes.
    n_features_in_ : int
        Bytes of one code.
    n_bits_ : int
        ``8 * n_features_in_``.
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "radius": [Interval(Integral, 0, None, closed="left")],
        "backend": [StrOptions({"numba", "numpy", "faiss"})],
        "n_jobs": [Integral, None],
    }
    _safe_arrays = ("_fit_X",)
    _safe_values = ("n_samples_fit_", "n_features_in_", "n_bits_")

    def __init__(self, *, n_neighbors=5, radius=2, backend="numba", n_jobs=None):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.backend = backend
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Store the database codes.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_bytes), dtype uint8
            Packed codes.
        y : None
            Ignored.

        Returns
        -------
        self : HammingNeighbors
        """
        self._validate_params()
        codes = check_codes(X, name="X")
        self._fit_X = codes.copy()
        self.n_samples_fit_, self.n_features_in_ = codes.shape
        self.n_bits_ = 8 * self.n_features_in_
        self._build_index()
        self._record_versions()
        return self

    def _build_index(self):
        # Derived from _fit_X only, so pickles and safe files drop it and rebuild on load.
        if self.backend == "numba":
            self._index = pack_words(self._fit_X)
        elif self.backend == "faiss":
            import faiss

            self._index = faiss.IndexBinaryFlat(self.n_bits_)
            self._index.add(self._fit_X)
        else:
            self._index = None

    @classmethod
    def _from_safe_state(cls, params, arrays, values):
        estimator = super()._from_safe_state(params, arrays, values)
        estimator._build_index()
        return estimator

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_index", None)  # faiss indexes cannot be pickled; all are cheap to rebuild
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_fit_X" in state:
            self._build_index()

    @property
    def _threads(self):
        return effective_n_jobs(self.n_jobs)

    def _queries(self, X):
        """Query codes, and whether they are the fitted codes themselves (leave-one-out)."""
        check_is_fitted(self, "_fit_X")
        if X is None:
            return self._fit_X, True
        return check_codes(X, name="X", n_bytes=self.n_features_in_), False

    # ------------------------------------------------------------------ k-NN
    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the k nearest codes of each query.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_bytes), dtype uint8, default=None
            Query codes. None queries every fitted code against the others, leaving each
            code's own row out (as scikit-learn does).
        n_neighbors : int, default=None
            Defaults to the constructor's ``n_neighbors``.
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), int64
            Hamming distances, ascending; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Database indices, ties by lower index.
        """
        queries, self_query = self._queries(X)
        k = check_scalar(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors", Integral,
                         min_val=1)
        available = self.n_samples_fit_ - int(self_query)
        if k > available:
            raise ValueError(
                f"n_neighbors={k} is larger than the {available} codes that can be returned "
                f"(n_samples_fit={self.n_samples_fit_}{', excluding the query itself' if self_query else ''})"
            )
        exclude = np.arange(len(queries), dtype=np.int64) if self_query else None
        if self.backend == "numba":
            dist, ind = knn_search(self._index, pack_words(queries).T, k, self.n_bits_, exclude, self._threads)
        elif self.backend == "faiss":
            dist, ind = self._faiss_knn(queries, k, self_query)
        else:
            dist, ind = self._numpy_knn(queries, k, exclude)
        return (dist, ind) if return_distance else ind

    def _numpy_knn(self, queries, k, exclude):
        dist = np.empty((len(queries), k), dtype=np.int64)
        ind = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            stop = min(start + _QUERY_CHUNK, len(queries))
            d = self._chunk_distances(queries[start:stop], 0, self.n_samples_fit_).astype(np.int64)
            if exclude is not None:
                d[np.arange(stop - start), exclude[start:stop]] = self.n_bits_ + 1
            order = np.argsort(d, axis=1, kind="stable")[:, :k]
            ind[start:stop] = order
            dist[start:stop] = np.take_along_axis(d, order, axis=1)
        return dist, ind

    def _faiss_knn(self, queries, k, self_query):
        import faiss

        faiss.omp_set_num_threads(self._threads)
        dist, ind = self._index.search(queries, k + int(self_query))
        dist, ind = dist.astype(np.int64), ind.astype(np.int64)
        if self_query:
            keep = ind != np.arange(len(queries))[:, None]
            # Drop the query's own row (or the last one, if faiss did not return it).
            keep[keep.all(axis=1), -1] = False
            dist = dist[keep].reshape(len(queries), k)
            ind = ind[keep].reshape(len(queries), k)
        # faiss's order within equal distances is unspecified: sort by (distance, index).
        order = np.lexsort((ind, dist), axis=1)
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)

    def _chunk_distances(self, queries, start, stop):
        """(n_queries, stop - start) distances, computed over database chunks."""
        out = np.empty((len(queries), stop - start), dtype=np.uint16)
        for s in range(start, stop, _DB_CHUNK):
            e = min(s + _DB_CHUNK, stop)
            out[:, s - start:e - start] = pairwise_hamming(queries, self._fit_X[s:e])
        return out

    # ------------------------------------------------------------------ radius
    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Find all codes within a Hamming radius (``distance <= radius``) of each query.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_bytes), dtype uint8, default=None
            Query codes; None queries the fitted codes, each leaving itself out.
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
            Arrays of database indices (int64).
        """
        queries, self_query = self._queries(X)
        r = check_scalar(self.radius if radius is None else radius, "radius", Integral, min_val=0)
        exclude = np.arange(len(queries), dtype=np.int64) if self_query else None
        if self.backend == "numba":
            offsets, dist, ind = radius_search(self._index, pack_words(queries).T, r, self.n_bits_, exclude,
                                               sort_results, self._threads)
        else:
            offsets, dist, ind = self._numpy_radius(queries, r, exclude, sort_results)
        dists, inds = _split(dist, offsets), _split(ind, offsets)
        return (dists, inds) if return_distance else inds

    def _numpy_radius(self, queries, radius, exclude, sort_results):
        """The reference: same output layout as :func:`radius_search`, from numpy distances."""
        rows, cols, dists = [], [], []
        for q0 in range(0, len(queries), _QUERY_CHUNK):
            q1 = min(q0 + _QUERY_CHUNK, len(queries))
            for s in range(0, self.n_samples_fit_, _DB_CHUNK):
                d = self._chunk_distances(queries[q0:q1], s, min(s + _DB_CHUNK, self.n_samples_fit_))
                r, c = np.nonzero(d <= radius)
                rows.append(r + q0), cols.append(c + s), dists.append(d[r, c])
        rows, cols, dists = (np.concatenate(a).astype(np.int64) if a else np.empty(0, np.int64)
                             for a in (rows, cols, dists))
        if exclude is not None:
            keep = cols != exclude[rows]
            rows, cols, dists = rows[keep], cols[keep], dists[keep]
        # By query, then by distance (when asked) or index: a stable sort keeps index order.
        order = np.lexsort((cols, dists, rows) if sort_results else (cols, rows))
        offsets = np.searchsorted(rows[order], np.arange(len(queries) + 1))
        return offsets, dists[order], cols[order]

    def __sklearn_tags__(self):
        # RadiusNeighborsMixin's tags read a ``metric`` parameter this estimator does not have.
        tags = BaseEstimator.__sklearn_tags__(self)
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


def _split(values, offsets):
    """Object array of the segments ``values[offsets[q]:offsets[q + 1]]`` (as scikit-learn returns)."""
    out = np.empty(len(offsets) - 1, dtype=object)
    out[:] = np.split(values, offsets[1:-1])
    return out
