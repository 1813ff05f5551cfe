"""HammingNeighbors: exact nearest neighbours over packed binary codes."""

import numbers

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._versions import VersionedMixin
from ..bits import check_codes, pairwise_hamming
from ._kernels import knn_search, pack_words

__all__ = ["HammingNeighbors"]

# Rows of the database compared at once in the numpy paths: bounds memory to
# O(query chunk x _DB_CHUNK) whatever the database size.
_DB_CHUNK = 1 << 16
_QUERY_CHUNK = 256


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class HammingNeighbors(VersionedMixin, BaseEstimator):
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
        k-NN engine: the compiled blocked kernel, a chunked numpy reference (XOR +
        ``np.bitwise_count`` + stable sort), or faiss's ``IndexBinaryFlat`` (when installed;
        its results are re-sorted so ties also go to the lower index within the k found).
    n_jobs : int, default=None
        Threads for the numba and faiss backends; None or -1 uses all cores.

    Attributes
    ----------
    n_samples_fit_ : int
        Number of fitted codes.
    n_features_in_ : int
        Bytes of one code.
    n_bits_ : int
        ``8 * n_features_in_``.
    """

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
        _check_int(self.n_neighbors, "n_neighbors", 1)
        _check_int(self.radius, "radius", 0)
        if self.backend not in ("numba", "numpy", "faiss"):
            raise ValueError(f"backend must be 'numba', 'numpy' or 'faiss', got {self.backend!r}")
        if self.n_jobs is not None and self.n_jobs != -1:
            _check_int(self.n_jobs, "n_jobs", 1)
        codes = check_codes(X, name="X")
        self._fit_X = codes.copy()
        self.n_samples_fit_, self.n_features_in_ = codes.shape
        self.n_bits_ = 8 * self.n_features_in_
        self._build_index()
        self._record_versions()
        return self

    def _build_index(self):
        # Derived from _fit_X only, so pickles can drop it and rebuild on load.
        if self.backend == "numba":
            self._index = pack_words(self._fit_X)
        elif self.backend == "faiss":
            import faiss

            self._index = faiss.IndexBinaryFlat(self.n_bits_)
            self._index.add(self._fit_X)
        else:
            self._index = None

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
        return None if self.n_jobs in (None, -1) else int(self.n_jobs)

    def _queries(self, X):
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
        k = _check_int(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors", 1)
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

        if self._threads is not None:
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
            Arrays of distances; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries,), dtype object
            Arrays of database indices.
        """
        queries, self_query = self._queries(X)
        r = _check_int(self.radius if radius is None else radius, "radius", 0)
        dists = np.empty(len(queries), dtype=object)
        inds = np.empty(len(queries), dtype=object)
        for q0 in range(0, len(queries), _QUERY_CHUNK):
            q1 = min(q0 + _QUERY_CHUNK, len(queries))
            found = [[] for _ in range(q1 - q0)]
            for s in range(0, self.n_samples_fit_, _DB_CHUNK):
                e = min(s + _DB_CHUNK, self.n_samples_fit_)
                d = self._chunk_distances(queries[q0:q1], s, e)
                rows, cols = np.nonzero(d <= r)
                for qi in np.unique(rows):
                    sel = rows == qi
                    found[qi].append((cols[sel] + s, d[qi, cols[sel]]))
            for qi, parts in enumerate(found):
                ind = np.concatenate([p[0] for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64)
                dist = np.concatenate([p[1] for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64)
                if self_query:
                    keep = ind != q0 + qi
                    ind, dist = ind[keep], dist[keep]
                if sort_results:
                    order = np.argsort(dist, kind="stable")
                    ind, dist = ind[order], dist[order]
                inds[q0 + qi], dists[q0 + qi] = ind, dist
        return (dists, inds) if return_distance else inds

    # ------------------------------------------------------------------ graphs
    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """k-NN graph as a CSR matrix of shape (n_queries, n_samples_fit).

        ``mode="connectivity"`` stores ones, ``"distance"`` the Hamming distances.
        """
        if mode not in ("connectivity", "distance"):
            raise ValueError(f"mode must be 'connectivity' or 'distance', got {mode!r}")
        dist, ind = self.kneighbors(X, n_neighbors)
        n_queries, k = ind.shape
        data = np.ones(ind.size) if mode == "connectivity" else dist.ravel().astype(np.float64)
        indptr = np.arange(0, n_queries * k + 1, k)
        return sparse.csr_matrix((data, ind.ravel(), indptr), shape=(n_queries, self.n_samples_fit_))

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity", sort_results=False):
        """Radius graph as a CSR matrix of shape (n_queries, n_samples_fit)."""
        if mode not in ("connectivity", "distance"):
            raise ValueError(f"mode must be 'connectivity' or 'distance', got {mode!r}")
        dist, ind = self.radius_neighbors(X, radius, sort_results=sort_results)
        lengths = np.array([len(i) for i in ind], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        cols = np.concatenate(list(ind)) if len(ind) else np.empty(0, np.int64)
        if mode == "connectivity":
            data = np.ones(len(cols))
        else:
            data = (np.concatenate(list(dist)) if len(dist) else np.empty(0)).astype(np.float64)
        return sparse.csr_matrix((data, cols, indptr), shape=(len(ind), self.n_samples_fit_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags
