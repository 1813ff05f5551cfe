"""Label-free quality of codes: how many of the exact float neighbours the codes keep."""

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_array

from ..bits import check_codes, pairwise_hamming

__all__ = ["neighbor_recall", "make_neighbor_recall_scorer"]

_QUERY_CHUNK = 256


def _float_distances(queries, database, metric):
    """(n_queries, n_database) dissimilarities: smaller is nearer."""
    if metric == "euclidean":
        return (queries**2).sum(1)[:, None] - 2 * queries @ database.T + (database**2).sum(1)[None, :]
    if metric == "cosine":
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        database = database / np.maximum(np.linalg.norm(database, axis=1, keepdims=True), 1e-12)
    return -(queries @ database.T)


@validate_params(
    {
        "k": [Interval(Integral, 1, None, closed="left")],
        "n_candidates": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"cosine", "euclidean", "inner_product"})],
        "exclude_self": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def neighbor_recall(query_codes, database_codes, query_features, database_features, *, k=10, n_candidates=100,
                    metric="cosine", exclude_self=False):
    """Recall@k of the exact float neighbours among the ``n_candidates`` nearest codes.

    For each query, the ``k`` database items nearest to it by ``metric`` on the float
    features are the truth; the score is the share of them found among the
    ``n_candidates`` items nearest by Hamming distance of the codes. Both rankings break
    ties by database index (a stable sort), as the other metrics do. The mean over queries
    is returned. With ``n_candidates=k`` it is the plain recall@k of the codes; a larger
    ``n_candidates`` is what a two-stage search re-ranks (see
    :class:`sortedhash.neighbors.RerankedNeighbors`).

    Parameters
    ----------
    query_codes, database_codes : ndarray of shape (n, n_bytes), dtype uint8
        Packed codes.
    query_features, database_features : array-like of shape (n, n_features)
        The float vectors the codes were made from (the truth).
    k : int, default=10
        Float neighbours per query.
    n_candidates : int, default=100
        Hamming candidates per query.
    metric : {"cosine", "euclidean", "inner_product"}, default="cosine"
        Float metric of the truth.
    exclude_self : bool, default=False
        The queries are the database itself: leave each query's own row out of both
        rankings.

    Returns
    -------
    recall : float
    """
    q = check_codes(query_codes, name="query_codes")
    db = check_codes(database_codes, name="database_codes", n_bytes=q.shape[1])
    qf = check_array(query_features, dtype=[np.float64, np.float32])
    dbf = check_array(database_features, dtype=[np.float64, np.float32])
    if qf.shape[0] != q.shape[0] or dbf.shape[0] != db.shape[0] or qf.shape[1] != dbf.shape[1]:
        raise ValueError(
            f"features {qf.shape} and {dbf.shape} do not match the codes ({q.shape[0]} queries, "
            f"{db.shape[0]} database items) or each other's width"
        )
    if exclude_self and q.shape[0] != db.shape[0]:
        raise ValueError("exclude_self=True needs the queries to be the database itself")
    available = db.shape[0] - int(exclude_self)
    if k > available:
        raise ValueError(f"k={k} is larger than the {available} database items a query can have")
    found = np.empty(q.shape[0])
    for start in range(0, q.shape[0], _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, q.shape[0])
        hamming = pairwise_hamming(q[start:stop], db).astype(np.float64)
        floats = _float_distances(qf[start:stop].astype(np.float64), dbf.astype(np.float64), metric)
        if exclude_self:
            rows, own = np.arange(stop - start), np.arange(start, stop)
            hamming[rows, own] = np.inf
            floats[rows, own] = np.inf
        truth = np.argsort(floats, axis=1, kind="stable")[:, :k]
        candidates = np.argsort(hamming, axis=1, kind="stable")[:, :n_candidates]
        hit = np.zeros_like(hamming, dtype=bool)
        np.put_along_axis(hit, candidates, True, axis=1)
        found[start:stop] = np.take_along_axis(hit, truth, axis=1).mean(axis=1)
    return float(found.mean())


def make_neighbor_recall_scorer(*, k=10, n_candidates=100, metric="cosine"):
    """A scorer ``scorer(estimator, X, y=None)``: leave-one-out :func:`neighbor_recall`.

    Needs no labels. The fitted hasher (or a Pipeline ending in one) encodes ``X``; the float
    truth is what the hasher itself receives: ``X`` for a bare hasher, the output of the
    Pipeline's earlier steps (``pipeline[:-1].transform(X)``) otherwise. Each sample is a
    query against all the others.

    Parameters
    ----------
    k, n_candidates, metric
        As in :func:`neighbor_recall`.

    Returns
    -------
    scorer : callable
        Usable as ``scoring=`` in ``GridSearchCV`` (greater is better).
    """

    def scorer(estimator, X, y=None):
        codes = estimator.transform(X)
        features = estimator[:-1].transform(X) if hasattr(estimator, "steps") else X
        return neighbor_recall(codes, codes, features, features, k=k, n_candidates=n_candidates, metric=metric,
                               exclude_self=True)

    scorer.__name__ = f"neighbor_recall_at_{k}_in_{n_candidates}_scorer"
    return scorer
