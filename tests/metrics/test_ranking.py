import numpy as np
import pytest

from sortedhash.bits import pack_codes
from sortedhash.metrics import (
    average_precision_per_query,
    hamming_distances,
    mean_average_precision,
    precision_at_k,
    precision_recall_curve,
)


def _codes(bit_rows):
    return pack_codes(np.array(bit_rows, dtype=bool))


# One query at distance 0,1,1,2 from the four database codes (8 bits).
Q = _codes([[0] * 8])
DB = _codes([[0] * 8, [1] + [0] * 7, [0, 1] + [0] * 6, [1, 1] + [0] * 6])


def test_hand_computed_ap_with_ties_by_index():
    # Ranking is db 0,1,2,3 (1 and 2 tie at distance 1: lower index first).
    # Relevant: db 1 and db 3 -> precisions 1/2 and 2/4 -> AP = 0.5.
    assert mean_average_precision(Q, [7], DB, [0, 7, 0, 7]) == pytest.approx(0.5)
    # Swapping the tied items changes the answer: db 2 relevant instead of db 1 -> (1/3+2/4)/2.
    assert mean_average_precision(Q, [7], DB, [0, 0, 7, 7]) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_map_at_k_divides_by_relevant_retrieved_and_counts_misses_as_zero():
    # Top 2 is db 0, db 1; only db 1 relevant -> AP@2 = (1/2) / 1.
    assert mean_average_precision(Q, [7], DB, [0, 7, 0, 7], k=2) == pytest.approx(0.5)
    # No relevant item in the top 1: AP@1 = 0, and the query still counts in the mean.
    q2 = np.vstack([Q, Q])
    assert mean_average_precision(q2, [7, 0], DB, [0, 7, 0, 7], k=1) == pytest.approx(0.5)


def test_precision_at_k():
    assert precision_at_k(Q, [7], DB, [0, 7, 0, 7], k=2) == pytest.approx(0.5)
    assert precision_at_k(Q, [7], DB, [0, 7, 0, 7], k=4) == pytest.approx(0.5)


def test_multilabel_relevance_is_sharing_a_label():
    ql = np.array([[1, 0, 1]])
    dl = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 0]])
    # Relevant: db 1 and db 2 -> precision 1/2, 2/3.
    assert mean_average_precision(Q, ql, DB, dl) == pytest.approx((1 / 2 + 2 / 3) / 2)


def _brute_force_ap(q, ql, db, dl, k):
    dist = hamming_distances(q, db)
    out = []
    for i in range(len(q)):
        order = sorted(range(len(db)), key=lambda j: (dist[i, j], j))[: k or len(db)]
        hits, total = 0, 0.0
        for r, j in enumerate(order, 1):
            if dl[j] == ql[i]:
                hits += 1
                total += hits / r
        out.append(total / hits if hits else 0.0)
    return np.array(out)


@pytest.mark.parametrize("k", [None, 1, 10, 57])
def test_against_brute_force_reference(k):
    rng = np.random.default_rng(k or 0)
    q = rng.integers(0, 256, (23, 2), dtype=np.uint8)
    db = rng.integers(0, 256, (300, 2), dtype=np.uint8)
    ql, dl = rng.integers(0, 4, 23), rng.integers(0, 4, 300)
    np.testing.assert_allclose(average_precision_per_query(q, ql, db, dl, k=k), _brute_force_ap(q, ql, db, dl, k))


def test_exclude_self_is_leave_one_out():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (40, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, 40)
    loo = average_precision_per_query(codes, labels, codes, labels, exclude_self=True)
    for i in (0, 17, 39):
        rest = np.delete(np.arange(40), i)
        ref = average_precision_per_query(codes[i:i + 1], labels[i:i + 1], codes[rest], labels[rest])
        assert loo[i] == pytest.approx(ref[0])


def test_precision_recall_curve_by_radius():
    precision, recall, radius = precision_recall_curve(Q, [7], DB, [0, 7, 0, 7])
    assert radius[0] == 0 and len(radius) == 9
    # r=0: {db0} -> P 0, R 0; r=1: {0,1,2} -> P 1/3, R 1/2; r=2: all -> P 1/2, R 1.
    np.testing.assert_allclose(precision[:3], [0, 1 / 3, 1 / 2])
    np.testing.assert_allclose(recall[:3], [0, 0.5, 1.0])
    assert np.all(np.diff(recall) >= 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(query_labels=[1, 2]), "query_labels has 2 rows"),
        (dict(database_codes=np.zeros((4, 2), np.uint8)), "2 bytes wide"),
        (dict(query_codes=np.zeros((1, 1), np.int32)), "dtype uint8"),
        (dict(k=0), "'k' parameter of mean_average_precision"),
        (dict(exclude_self="yes"), "'exclude_self' parameter"),
    ],
)
def test_errors(kwargs, match):
    args = dict(query_codes=Q, query_labels=[7], database_codes=DB, database_labels=[0, 7, 0, 7])
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        mean_average_precision(**args)
