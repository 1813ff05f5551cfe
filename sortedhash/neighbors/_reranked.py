"""RerankedNeighbors: Hamming candidates, then the exact float ranking among them."""

from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, clone
from sklearn.neighbors._base import KNeighborsMixin
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._versions import VersionedMixin
from ..bits import unpack_codes
from ._asymmetric import best_by_asymmetric_score
from ._hamming import HammingNeighbors
from ._rerank_kernel import rerank

__all__ = ["RerankedNeighbors"]

# Queries re-ranked at once: bounds their float64 copy (the database's own rows when X is None).
_QUERY_CHUNK = 4096


class RerankedNeighbors(KNeighborsMixin, VersionedMixin, BaseEstimator):
    """Two-stage search: the nearest codes as candidates, re-ranked by the exact float metric.

    ``fit(X)`` fits the hasher on the float database (see ``hasher``), encodes it, indexes
    the codes with :class:`HammingNeighbors` and keeps ``X`` itself, not a copy (a
    ``np.memmap`` stays on disk: only the candidates' rows are read). ``kneighbors(Xq)``
    takes each query's ``n_candidates`` nearest codes and returns the ``n_neighbors``
    nearest of them by the float metric, ties by database index. With ``n_candidates`` equal
    to the database size the result is the exact float k-NN.

    With ``n_reranked``, a middle stage reads fewer float rows: of the ``n_candidates``, only
    the ``n_reranked`` whose codes agree best with the query's unbinarised scores (the
    hasher's ``decision_function``; the inner product of those scores with the candidate's
    +-1 code) are re-ranked. Scoring a candidate reads its code (bytes, in memory), where
    re-ranking reads its float row (kilobytes, possibly on disk).

    Parameters
    ----------
    hasher : transformer, default=None
        Turns float rows into packed codes (any sortedhash hasher, or a Pipeline ending in
        one). It is cloned and fitted on the database; wrap a fitted one in
        :class:`sklearn.frozen.FrozenEstimator` to use it as it is. None uses
        :class:`~sortedhash.BinaryQuantizer`.
    n_neighbors : int, default=5
        Neighbours returned by :meth:`kneighbors` when not given there.
    n_candidates : int, default=100
        Hamming candidates per query (at most the database size). More finds more of the
        exact neighbours and costs one float distance per candidate re-ranked.
    n_reranked : int, default=None
        Candidates per query whose float rows are read: the best of the ``n_candidates`` by
        the asymmetric score above (the hasher, or the last step of a Pipeline, must have
        ``decision_function``, as every sortedhash hasher has). None re-ranks all
        ``n_candidates``. At least ``n_neighbors``. It suits binary quantization, whose
        scores are the query's centred values; with NSH's codes the scores kept far fewer
        of the neighbours (docs: codes for embedding search).
    metric : {"cosine", "euclidean"}, default="cosine"
        Float metric of the re-ranking; distances are ``1 - cos`` or the Euclidean norm, as
        in :class:`sklearn.neighbors.NearestNeighbors`.
    n_jobs : int, default=None
        Threads of the Hamming search and of the re-ranking (scikit-learn's convention: None is
        one).

    Attributes
    ----------
    hasher_ : transformer
        The fitted hasher.
    index_ : HammingNeighbors
        The database's codes, indexed.
    n_samples_fit_ : int
    n_features_in_ : int
    """

    _parameter_constraints = {
        "hasher": [HasMethods(["fit", "transform"]), None],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_candidates": [Interval(Integral, 1, None, closed="left")],
        "n_reranked": [Interval(Integral, 1, None, closed="left"), None],
        "metric": [StrOptions({"cosine", "euclidean"})],
        "n_jobs": [Integral, None],
    }

    def __init__(self, hasher=None, *, n_neighbors=5, n_candidates=100, n_reranked=None, metric="cosine",
                 n_jobs=None):
        self.hasher = hasher
        self.n_neighbors = n_neighbors
        self.n_candidates = n_candidates
        self.n_reranked = n_reranked
        self.metric = metric
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Fit the hasher, index the database's codes and keep the float rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Float database; a C-contiguous float32/float64 array (or memmap) is kept
            without a copy.
        y : None
            Ignored.

        Returns
        -------
        self : RerankedNeighbors
        """
        self._validate_params()
        from ..linear_hashing import BinaryQuantizer

        X = validate_data(self, X, dtype=[np.float32, np.float64], order="C", copy=False)
        hasher = clone(self.hasher if self.hasher is not None else BinaryQuantizer()).fit(X, y)
        if self.n_reranked is not None:
            _check_scores(hasher, X[:1], self.n_reranked)
        self.hasher_ = hasher
        self.index_ = HammingNeighbors(n_jobs=self.n_jobs).fit(hasher.transform(X))
        self._fit_X = X
        self._squared_norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
        self.n_samples_fit_ = X.shape[0]
        self._record_versions()
        return self

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """The ``n_neighbors`` nearest database rows among each query's Hamming candidates.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Float queries. None queries every fitted row against the others, leaving each
            row's own index out (as scikit-learn does).
        n_neighbors : int, default=None
            Defaults to the constructor's ``n_neighbors``; at most ``n_candidates`` (and
            ``n_reranked``).
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), float64
            Float distances, ascending; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Database indices, ties by lower index.
        """
        check_is_fitted(self)
        k = check_scalar(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors", Integral,
                         min_val=1)
        available = self.n_samples_fit_ - int(X is None)
        n_candidates = min(self.n_candidates, available)
        n_reranked = n_candidates if self.n_reranked is None else min(self.n_reranked, n_candidates)
        if k > n_reranked:
            which = (f"n_candidates={self.n_candidates}" if self.n_reranked is None
                     else f"n_candidates={self.n_candidates}, n_reranked={self.n_reranked}")
            raise ValueError(f"n_neighbors={k} is larger than the {n_reranked} candidates re-ranked per query "
                             f"({which}, {available} database rows to return)")
        if n_reranked < n_candidates:
            _require_scores(self.hasher_, self.n_reranked)  # n_reranked may have been set after fit
        if X is None:
            queries = self._fit_X
            candidates = self.index_.kneighbors(None, n_candidates, return_distance=False)
        else:
            queries = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
            candidates = self.index_.kneighbors(self.hasher_.transform(queries), n_candidates, return_distance=False)
        dist = np.empty((len(queries), k))
        ind = np.empty((len(queries), k), dtype=np.int64)
        threads = effective_n_jobs(self.n_jobs)
        for start in range(0, len(queries), _QUERY_CHUNK):
            rows = slice(start, start + _QUERY_CHUNK)
            kept = candidates[rows]
            if n_reranked < n_candidates:
                kept = best_by_asymmetric_score(self.index_._fit_X, self.hasher_.decision_function(queries[rows]), kept,
                                                n_reranked, n_threads=threads)
            dist[rows], ind[rows] = rerank(self._fit_X, self._squared_norms, queries[rows], kept, k, self.metric,
                                           n_threads=threads)
        return (dist, ind) if return_distance else ind

    def __sklearn_is_fitted__(self):
        # Set last in fit: a fit that failed after validating X (which sets n_features_in_)
        # leaves the estimator unfitted.
        return hasattr(self, "n_samples_fit_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


def _require_scores(hasher, n_reranked):
    if not hasattr(hasher, "decision_function"):
        raise ValueError(f"n_reranked={n_reranked} scores candidates with the hasher's decision_function, which "
                         f"{type(hasher).__name__} does not have; use n_reranked=None")


def _check_scores(hasher, X, n_reranked):
    """The fitted hasher has ``decision_function`` and its signs are the codes' bits (on
    the rows ``X``)."""
    _require_scores(hasher, n_reranked)
    scores = np.asarray(hasher.decision_function(X))
    codes = hasher.transform(X)
    if scores.ndim != 2 or scores.shape[1] > 8 * codes.shape[1] or not np.array_equal(
            unpack_codes(codes, scores.shape[1]), scores >= 0):
        raise ValueError(f"n_reranked needs a hasher whose decision_function gives one score a bit, >= 0 where the "
                         f"bit is set; {type(hasher).__name__}'s does not")
