"""Retrieval metrics over the Hamming ranking of packed codes.

Conventions (shared by every function here):

- The database is ranked for each query by Hamming distance, ties broken by database
  index (a stable sort), so results are deterministic.
- Relevance: with 1-D labels, a database item is relevant when its label equals the
  query's; with 2-D labels (an indicator matrix, one column per class), when they share at
  least one label.
- Queries are processed in chunks, so memory stays O(chunk x n_database).
"""

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from ..bits import check_codes, pairwise_hamming

__all__ = [
    "hamming_distances",
    "mean_average_precision",
    "mean_average_precision_from_distances",
    "average_precision_per_query",
    "precision_at_k",
    "precision_recall_curve",
]

_QUERY_CHUNK = 256

# The scalar parameters the public functions share, checked as scikit-learn checks its own.
_CUT_OFF = {"k": [Interval(Integral, 1, None, closed="left"), None]}
_LEAVE_ONE_OUT = {"exclude_self": ["boolean"]}


def hamming_distances(query_codes, database_codes):
    """Dense Hamming distance matrix between packed codes (``uint16``).

    Meant for small problems and tests; use :class:`~sortedhash.HammingNeighbors` for search.
    """
    q = check_codes(query_codes, name="query_codes")
    db = check_codes(database_codes, name="database_codes", n_bytes=q.shape[1])
    return pairwise_hamming(q, db)


def _check_labels(labels, n, name):
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one label a sample) or 2-D (indicator matrix), got shape {labels.shape}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} rows but there are {n} codes")
    return labels


def _relevance(q_labels, db_labels):
    if q_labels.ndim == 1:
        return q_labels[:, None] == db_labels[None, :]
    return (q_labels.astype(np.float32) @ db_labels.astype(np.float32).T) > 0


def _validate(query_codes, query_labels, database_codes, database_labels):
    q = check_codes(query_codes, name="query_codes")
    db = check_codes(database_codes, name="database_codes", n_bytes=q.shape[1])
    ql = _check_labels(query_labels, q.shape[0], "query_labels")
    dl = _check_labels(database_labels, db.shape[0], "database_labels")
    if ql.ndim != dl.ndim or (ql.ndim == 2 and ql.shape[1] != dl.shape[1]):
        raise ValueError(
            f"query_labels {ql.shape} and database_labels {dl.shape} must both be 1-D, or both "
            "2-D with the same number of classes"
        )
    return q, ql, db, dl


def _ranked_relevance(q, ql, db, dl, k, exclude_self=False):
    """Yield, per chunk of queries, the relevance of the database in rank order, cut at k."""
    n_db = db.shape[0]
    for start in range(0, q.shape[0], _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, q.shape[0])
        dist = pairwise_hamming(q[start:stop], db)
        rel = _relevance(ql[start:stop], dl)
        if exclude_self:
            rows = np.arange(stop - start)
            # Push each query's own row past the end of its ranking, then drop it.
            dist[rows, np.arange(start, stop)] = np.iinfo(np.uint16).max
            rel[rows, np.arange(start, stop)] = False
        order = np.argsort(dist, axis=1, kind="stable")
        width = n_db - 1 if exclude_self else n_db
        if k is not None:
            width = min(width, k)
        yield np.take_along_axis(rel, order[:, :width], axis=1)


@validate_params({**_CUT_OFF, **_LEAVE_ONE_OUT}, prefer_skip_nested_validation=True)
def average_precision_per_query(query_codes, query_labels, database_codes, database_labels, *,
                                k=None, exclude_self=False):
    """Average precision of each query over the Hamming ranking (see :func:`mean_average_precision`).

    Returns
    -------
    ap : ndarray of shape (n_queries,)
    """
    q, ql, db, dl = _validate(query_codes, query_labels, database_codes, database_labels)
    if exclude_self and q.shape[0] != db.shape[0]:
        raise ValueError("exclude_self=True needs the queries to be the database itself")
    return np.concatenate([_ap(rel) for rel in _ranked_relevance(q, ql, db, dl, k, exclude_self)])


def _ap(rel):
    """AP of each row of a rank-ordered relevance matrix, divided by relevant retrieved."""
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    n_hits = hits[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_hits > 0, (rel * hits / ranks).sum(axis=1) / np.maximum(n_hits, 1), 0.0)


@validate_params(_CUT_OFF, prefer_skip_nested_validation=True)
def mean_average_precision_from_distances(distances, query_labels, database_labels, *, k=None):
    """mAP of any ranking given as a dense distance matrix (e.g. float features).

    The same definition as :func:`mean_average_precision`, with ties broken by database
    index; used to rank unbinarised features as a reference for the codes.

    Parameters
    ----------
    distances : ndarray of shape (n_queries, n_database)
        Smaller is closer.
    query_labels, database_labels, k
        As in :func:`mean_average_precision`.

    Returns
    -------
    map : float
    """
    distances = np.asarray(distances)
    if distances.ndim != 2:
        raise ValueError(f"distances must be 2-D (n_queries, n_database), got shape {distances.shape}")
    ql = _check_labels(query_labels, distances.shape[0], "query_labels")
    dl = _check_labels(database_labels, distances.shape[1], "database_labels")
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    rel = np.take_along_axis(_relevance(ql, dl), order, axis=1)
    return float(np.mean(_ap(rel)))


@validate_params({**_CUT_OFF, **_LEAVE_ONE_OUT}, prefer_skip_nested_validation=True)
def mean_average_precision(query_codes, query_labels, database_codes, database_labels, *,
                           k=None, exclude_self=False):
    """Mean average precision (mAP, or mAP@k) of a Hamming ranking.

    For one query with relevance ``rel_r`` at rank ``r`` (ties in distance broken by
    database index) and ``R`` relevant items among the first ``k`` ranks (all ranks when
    ``k`` is None)::

        AP@k = (1 / R) * sum_{r <= k} precision@r * rel_r

    This divides by the relevant items *retrieved* in the top ``k`` (the convention of
    DeepHash, CIBHash and most hashing papers' mAP@k); with ``k=None`` it is the ordinary
    average precision. A query with no relevant item in its top ``k`` counts as AP = 0 (it
    is not dropped). The mAP is the mean over all queries.

    Parameters
    ----------
    query_codes : ndarray of shape (n_queries, n_bytes), dtype uint8
        Packed query codes.
    query_labels : array-like of shape (n_queries,) or (n_queries, n_classes)
        Query labels, or a label indicator matrix for multi-label data.
    database_codes : ndarray of shape (n_database, n_bytes), dtype uint8
        Packed database codes.
    database_labels : array-like of shape (n_database,) or (n_database, n_classes)
        Database labels, of the same kind as ``query_labels``.
    k : int, default=None
        Cut-off: rank only the first ``k`` database items. None ranks all.
    exclude_self : bool, default=False
        The queries are the database itself: drop each query's own row from its ranking
        (leave-one-out).

    Returns
    -------
    map : float
    """
    return float(np.mean(average_precision_per_query(
        query_codes, query_labels, database_codes, database_labels, k=k, exclude_self=exclude_self)))


@validate_params({"k": [Interval(Integral, 1, None, closed="left")], **_LEAVE_ONE_OUT},
                 prefer_skip_nested_validation=True)
def precision_at_k(query_codes, query_labels, database_codes, database_labels, *, k, exclude_self=False):
    """Mean over queries of the fraction of relevant items among the first ``k`` ranks.

    Ranks are taken as in :func:`mean_average_precision` (ties by database index). If the
    database has fewer than ``k`` items, the fraction is over the items there are.

    Returns
    -------
    precision : float
    """
    q, ql, db, dl = _validate(query_codes, query_labels, database_codes, database_labels)
    if exclude_self and q.shape[0] != db.shape[0]:
        raise ValueError("exclude_self=True needs the queries to be the database itself")
    parts = [rel.mean(axis=1) for rel in _ranked_relevance(q, ql, db, dl, k, exclude_self)]
    return float(np.mean(np.concatenate(parts)))


def precision_recall_curve(query_codes, query_labels, database_codes, database_labels):
    """Precision and recall of Hamming-radius retrieval, for every radius 0..n_bits.

    At radius ``r`` a query retrieves every database item at distance ``<= r``. Recall is
    averaged over queries that have at least one relevant item; precision over queries
    that retrieve at least one item at that radius (NaN where none does).

    Returns
    -------
    precision : ndarray of shape (n_bits + 1,)
    recall : ndarray of shape (n_bits + 1,)
    radius : ndarray of shape (n_bits + 1,)
    """
    q, ql, db, dl = _validate(query_codes, query_labels, database_codes, database_labels)
    n_levels = 8 * q.shape[1] + 1
    prec_sum = np.zeros(n_levels)
    prec_count = np.zeros(n_levels)
    rec_sum = np.zeros(n_levels)
    rec_count = 0
    for start in range(0, q.shape[0], _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, q.shape[0])
        dist = pairwise_hamming(q[start:stop], db).astype(np.intp)
        rel = _relevance(ql[start:stop], dl)
        for row in range(stop - start):
            retrieved = np.cumsum(np.bincount(dist[row], minlength=n_levels))
            hit = np.cumsum(np.bincount(dist[row], weights=rel[row], minlength=n_levels))
            has = retrieved > 0
            prec_sum[has] += hit[has] / retrieved[has]
            prec_count[has] += 1
            n_rel = rel[row].sum()
            if n_rel:
                rec_sum += hit / n_rel
                rec_count += 1
    with np.errstate(invalid="ignore"):
        precision = prec_sum / prec_count
    recall = rec_sum / max(rec_count, 1)
    return precision, recall, np.arange(n_levels)
