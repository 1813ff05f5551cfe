import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sortedhash import BinaryQuantizer, ITQTransformer, LSHTransformer, RerankedNeighbors, pack_codes, unpack_codes
from sortedhash.metrics import neighbor_recall


def _data(n=400, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, d))
    return (centres[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_every_candidate_reranked_is_the_exact_knn(metric):
    X = _data()
    queries = _data(30, seed=1)
    model = RerankedNeighbors(LSHTransformer(n_bits=16, random_state=0), n_neighbors=7, n_candidates=len(X),
                              metric=metric).fit(X)
    dist, ind = model.kneighbors(queries)
    sk_dist, sk_ind = NearestNeighbors(n_neighbors=7, metric=metric, algorithm="brute").fit(X).kneighbors(queries)
    np.testing.assert_array_equal(ind, sk_ind)
    np.testing.assert_allclose(dist, sk_dist, rtol=1e-5, atol=1e-6)
    # Ties go to the lower index: duplicated rows rank in index order.
    dup = np.concatenate([X[:50], X[:50]])
    _, dup_ind = RerankedNeighbors(n_neighbors=2, n_candidates=100, metric=metric).fit(dup).kneighbors(X[:50])
    np.testing.assert_array_equal(dup_ind, np.stack([np.arange(50), np.arange(50) + 50], axis=1))


def test_without_queries_each_row_leaves_itself_out():
    X = _data(200)
    model = RerankedNeighbors(n_neighbors=4, n_candidates=199).fit(X)
    _, ind = model.kneighbors()
    _, sk_ind = NearestNeighbors(n_neighbors=4, metric="cosine", algorithm="brute").fit(X).kneighbors()
    np.testing.assert_array_equal(ind, sk_ind)
    assert not np.any(ind == np.arange(200)[:, None])


def test_more_candidates_find_more_of_the_exact_neighbours():
    X, queries = _data(600), _data(50, seed=2)
    truth = NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute").fit(X).kneighbors(
        queries, return_distance=False)
    recalls = []
    for n_candidates in (10, 40, 160, 600):
        ind = RerankedNeighbors(ITQTransformer(n_bits=8, random_state=0), n_neighbors=10,
                                n_candidates=n_candidates).fit(X).kneighbors(queries, return_distance=False)
        recalls.append(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ind, truth)]))
    assert recalls == sorted(recalls) and recalls[-1] == 1.0 and recalls[0] < 0.9
    # Re-ranking the candidates finds exactly the truth neighbor_recall counts among them.
    model = RerankedNeighbors(ITQTransformer(n_bits=8, random_state=0), n_neighbors=10, n_candidates=40).fit(X)
    codes = model.hasher_.transform
    expected = neighbor_recall(codes(queries), codes(X), queries, X, k=10, n_candidates=40)
    assert recalls[1] == pytest.approx(expected)


def test_keeps_the_callers_rows_and_a_frozen_hasher(tmp_path):
    X = _data(300)
    stored = np.lib.format.open_memmap(tmp_path / "db.npy", mode="w+", dtype=np.float32, shape=X.shape)
    stored[:] = X
    stored.flush()
    database = np.load(tmp_path / "db.npy", mmap_mode="r")
    model = RerankedNeighbors(n_neighbors=3).fit(database)
    assert np.shares_memory(model._fit_X, database)  # no second copy of the database
    hasher = BinaryQuantizer().fit(X[:10])  # thresholds from ten rows only
    frozen = RerankedNeighbors(FrozenEstimator(hasher), n_neighbors=3).fit(X)
    np.testing.assert_array_equal(frozen.hasher_.transform(X), hasher.transform(X))
    refitted = RerankedNeighbors(hasher, n_neighbors=3).fit(X)
    assert not np.allclose(refitted.hasher_.mean_, hasher.mean_)  # cloned and fitted on the database


@pytest.mark.parametrize("hasher", [BinaryQuantizer(),
                                    make_pipeline(StandardScaler(), ITQTransformer(n_bits=12, random_state=0))])
def test_reranks_the_candidates_that_score_best_against_the_query(hasher):
    X, queries = _data(500), _data(40, seed=3)
    model = RerankedNeighbors(hasher, n_neighbors=6, n_candidates=90, n_reranked=25).fit(X)
    dist, ind = model.kneighbors(queries)
    # By hand: the 90 Hamming candidates, the 25 whose +-1 codes have the highest inner
    # product with the query's scores (ties by row), then the exact cosine top 6 of those.
    candidates = model.index_.kneighbors(model.hasher_.transform(queries), 90, return_distance=False)
    scores = model.hasher_.decision_function(queries)
    signs = 2.0 * unpack_codes(model.hasher_.transform(X), scores.shape[1]) - 1
    for q, rows in enumerate(candidates):
        kept = np.sort(rows[np.lexsort((rows, -(signs[rows] @ scores[q])))[:25]])
        exact = NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(X[kept])
        ref_dist, ref_pos = exact.kneighbors(queries[q:q + 1])
        np.testing.assert_array_equal(ind[q], kept[ref_pos[0]])
        np.testing.assert_allclose(dist[q], ref_dist[0], rtol=1e-5, atol=1e-6)
    # n_reranked as large as n_candidates reads every candidate, as None does.
    every = RerankedNeighbors(hasher, n_neighbors=6, n_candidates=90, n_reranked=90).fit(X).kneighbors(queries)
    plain = RerankedNeighbors(hasher, n_neighbors=6, n_candidates=90).fit(X).kneighbors(queries)
    np.testing.assert_array_equal(every[1], plain[1])
    np.testing.assert_array_equal(every[0], plain[0])
    # Without queries, each row leaves itself out here too.
    assert not np.any(model.kneighbors(return_distance=False) == np.arange(500)[:, None])


def test_n_reranked_needs_scores_whose_signs_are_the_bits():
    X = _data(60)
    no_scores = FunctionTransformer(lambda X: pack_codes(X >= 0))
    plain = RerankedNeighbors(no_scores, n_neighbors=2, n_candidates=10).fit(X)  # fine without n_reranked
    with pytest.raises(ValueError, match="decision_function, which FunctionTransformer does not have"):
        RerankedNeighbors(no_scores, n_candidates=10, n_reranked=5).fit(X)
    with pytest.raises(ValueError, match="decision_function, which FunctionTransformer does not have"):
        plain.set_params(n_reranked=5).kneighbors(X[:2])  # set after fit: checked at the search

    class Flipped(BinaryQuantizer):
        def decision_function(self, X):
            return -super().decision_function(X)

    flipped = RerankedNeighbors(Flipped(), n_candidates=10, n_reranked=5)
    with pytest.raises(ValueError, match="one score a bit, >= 0 where the bit is set; Flipped"):
        flipped.fit(X)
    with pytest.raises(NotFittedError):  # the failed fit left nothing half-fitted
        flipped.kneighbors(X[:2])
    model = RerankedNeighbors(n_candidates=10, n_reranked=4).fit(X)
    with pytest.raises(ValueError, match=r"n_neighbors=5 is larger than the 4 candidates re-ranked per query "
                                         r"\(n_candidates=10, n_reranked=4"):
        model.kneighbors(X[:2])
    with pytest.raises(ValueError, match="'n_reranked' parameter"):
        RerankedNeighbors(n_reranked=0).fit(X)


def test_errors():
    X = _data(50)
    model = RerankedNeighbors(n_candidates=10).fit(X)
    with pytest.raises(ValueError, match="n_neighbors=11 is larger than the 10 candidates"):
        model.kneighbors(X[:2], n_neighbors=11)
    with pytest.raises(ValueError, match="'metric' parameter"):
        RerankedNeighbors(metric="manhattan").fit(X)
    with pytest.raises(ValueError, match="features"):
        model.kneighbors(X[:2, :5])
    graph = model.kneighbors_graph(X[:4], n_neighbors=3, mode="distance")
    assert graph.shape == (4, 50) and graph.nnz == 12
