import numpy as np
import pytest

from sortedhash import LSHTransformer, pack_codes
from sortedhash.metrics import make_neighbor_recall_scorer, neighbor_recall


def test_hand_computed_recall():
    # One query at the origin of a line; database items at 1, 2, 3, 4 (euclidean order 0..3).
    query_features = np.array([[0.0]])
    database_features = np.array([[1.0], [2.0], [3.0], [4.0]])
    # Codes (8 bits) put item 3 nearest, then items 0 and 2 tied, then item 1.
    query_codes = pack_codes(np.zeros((1, 8)))
    bits = np.zeros((4, 8))
    bits[0, :2] = bits[2, :2] = 1  # distance 2
    bits[1, :5] = 1  # distance 5
    database_codes = pack_codes(bits)  # item 3: distance 0
    common = dict(metric="euclidean")
    # Top-2 truth {0, 1}; top-2 candidates: item 3, then item 0 (tie with 2 broken by index).
    assert neighbor_recall(query_codes, database_codes, query_features, database_features, k=2, n_candidates=2,
                           **common) == 0.5
    assert neighbor_recall(query_codes, database_codes, query_features, database_features, k=2, n_candidates=3,
                           **common) == 0.5  # item 2 joins, not item 1
    assert neighbor_recall(query_codes, database_codes, query_features, database_features, k=2, n_candidates=4,
                           **common) == 1.0
    assert neighbor_recall(query_codes, database_codes, query_features, database_features, k=1, n_candidates=1,
                           **common) == 0.0


def test_metrics_and_leave_one_out():
    rng = np.random.default_rng(0)
    F = rng.standard_normal((40, 6))
    codes = LSHTransformer(n_bits=64, random_state=0).fit(F).transform(F)
    # Every candidate kept: recall is 1 whatever the codes.
    assert neighbor_recall(codes, codes, F, F, k=5, n_candidates=40) == 1.0
    # Leave-one-out: a query's own row is neither truth nor candidate (it would be both).
    loo = neighbor_recall(codes, codes, F, F, k=1, n_candidates=1, exclude_self=True)
    assert neighbor_recall(codes, codes, F, F, k=1, n_candidates=1) == 1.0 and loo < 1.0
    # Cosine ignores the scale of the rows, inner product does not.
    scaled = F * rng.uniform(0.1, 10, (40, 1))
    for metric, same in (("cosine", True), ("inner_product", False)):
        a = neighbor_recall(codes, codes, F, F, k=3, n_candidates=5, metric=metric, exclude_self=True)
        b = neighbor_recall(codes, codes, scaled, scaled, k=3, n_candidates=5, metric=metric, exclude_self=True)
        assert (a == b) == same


def test_errors_name_the_problem():
    F = np.random.default_rng(0).standard_normal((10, 4))
    codes = LSHTransformer(n_bits=8, random_state=0).fit(F).transform(F)
    with pytest.raises(ValueError, match="'metric' parameter"):
        neighbor_recall(codes, codes, F, F, metric="manhattan")
    with pytest.raises(ValueError, match="do not match"):
        neighbor_recall(codes, codes, F[:5], F)
    with pytest.raises(ValueError, match="k=10 is larger"):
        neighbor_recall(codes, codes, F, F, k=10, exclude_self=True)


def test_scorer_needs_no_labels_and_scores_what_the_hasher_receives():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(1).standard_normal((90, 12)) * np.arange(1, 13)
    pipe = make_pipeline(StandardScaler(), LSHTransformer(random_state=0)).fit(X)
    scorer = make_neighbor_recall_scorer(k=5, n_candidates=20)
    standard = StandardScaler().fit_transform(X)
    codes = pipe.transform(X)
    expected = neighbor_recall(codes, codes, standard, standard, k=5, n_candidates=20, exclude_self=True)
    assert scorer(pipe, X) == pytest.approx(expected)
    search = GridSearchCV(pipe, {"lshtransformer__n_bits": [8, 64]}, scoring=scorer, cv=3).fit(X)
    assert search.best_params_ == {"lshtransformer__n_bits": 64}  # longer codes keep more neighbours
