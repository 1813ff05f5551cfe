import joblib
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import HammingNeighbors, LSHTransformer, unpack_codes

BACKENDS = ["numba", "numpy", "faiss"]


def _backend(name):
    if name == "faiss":
        pytest.importorskip("faiss")
    return name


def _codes(n, n_bytes, seed=0, n_distinct=None):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    if n_distinct:  # many exact duplicates -> many ties
        codes = codes[rng.integers(0, n_distinct, n)]
    return codes


def _stable_reference(queries, db, k, exclude_self=False):
    d = (unpack_codes(queries)[:, None, :] != unpack_codes(db)[None, :, :]).sum(-1)
    if exclude_self:
        np.fill_diagonal(d, 10**6)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, n_bytes, k, n_distinct", [(3000, 8, 10, None), (2500, 3, 100, None), (800, 4, 37, 40)])
def test_kneighbors_equals_stable_sort_of_all_distances(backend, n, n_bytes, k, n_distinct):
    db = _codes(n, n_bytes, seed=k, n_distinct=n_distinct)
    queries = _codes(57, n_bytes, seed=k + 1)
    nn = HammingNeighbors(n_neighbors=k, backend=_backend(backend)).fit(db)
    dist, ind = nn.kneighbors(queries)
    ref_dist, ref_ind = _stable_reference(queries, db, k)
    np.testing.assert_array_equal(dist, ref_dist)
    if backend == "faiss" and n_distinct:
        # faiss picks which tied rows at the k-th distance it returns; distances still agree.
        return
    np.testing.assert_array_equal(ind, ref_ind)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_kneighbors_without_queries_leaves_each_code_out(backend):
    db = _codes(400, 2, n_distinct=50)
    dist, ind = HammingNeighbors(n_neighbors=5, backend=backend).fit(db).kneighbors()
    ref_dist, ref_ind = _stable_reference(db, db, 5, exclude_self=True)
    np.testing.assert_array_equal(dist, ref_dist)
    np.testing.assert_array_equal(ind, ref_ind)
    assert not np.any(ind == np.arange(400)[:, None])


def test_matches_sklearn_hamming_on_unpacked_bits():
    db, queries = _codes(500, 4), _codes(20, 4, seed=9)
    dist, _ = HammingNeighbors(n_neighbors=8).fit(db).kneighbors(queries)
    sk = NearestNeighbors(n_neighbors=8, metric="hamming", algorithm="brute").fit(unpack_codes(db))
    sk_dist, _ = sk.kneighbors(unpack_codes(queries))
    np.testing.assert_allclose(dist, sk_dist * 32)  # sklearn reports the fraction of bits


def test_radius_is_inclusive_and_graphs():
    db = _codes(300, 2, n_distinct=30)
    nn = HammingNeighbors(radius=3).fit(db)
    dist, ind = nn.radius_neighbors(db[:10], sort_results=True)
    full = (unpack_codes(db[:10])[:, None] != unpack_codes(db)[None]).sum(-1)
    for q in range(10):
        expected = np.flatnonzero(full[q] <= 3)
        np.testing.assert_array_equal(np.sort(ind[q]), expected)
        assert np.all(np.diff(dist[q]) >= 0)  # sort_results=True
        np.testing.assert_array_equal(dist[q], np.sort(full[q][expected]))
    assert max(d.max() for d in dist) == 3  # a code at exactly the radius is included
    g = nn.radius_neighbors_graph(db[:10], mode="distance")
    assert g.shape == (10, 300) and g.nnz == sum(len(i) for i in ind)
    kg = nn.kneighbors_graph(db[:10], n_neighbors=4, mode="connectivity")
    assert kg.shape == (10, 300) and np.all(kg.sum(axis=1) == 4)
    # Without queries each code leaves itself out of its own neighbourhood.
    _, self_ind = nn.radius_neighbors()
    assert all(i not in row for i, row in enumerate(self_ind))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda nn: nn.kneighbors(np.zeros((2, 3), np.uint8)), "3 bytes wide"),
        (lambda nn: nn.kneighbors(np.zeros((2, 2), np.float64)), "dtype uint8"),
        (lambda nn: nn.kneighbors(n_neighbors=50), "n_neighbors=50 is larger"),
        (lambda nn: nn.kneighbors(_codes(2, 2), n_neighbors=51), "n_neighbors=51 is larger"),
        (lambda nn: nn.radius_neighbors(radius=-1), "radius"),
    ],
)
def test_errors(call, match):
    nn = HammingNeighbors().fit(_codes(50, 2))
    with pytest.raises((ValueError, TypeError), match=match):
        call(nn)


def test_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        HammingNeighbors().kneighbors(_codes(2, 2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_joblib_round_trip_rebuilds_index(backend, tmp_path):
    db = _codes(200, 8)
    nn = HammingNeighbors(n_neighbors=3, backend=_backend(backend)).fit(db)
    joblib.dump(nn, tmp_path / "nn.joblib")
    loaded = joblib.load(tmp_path / "nn.joblib")
    for a, b in zip(nn.kneighbors(db[:20]), loaded.kneighbors(db[:20])):
        np.testing.assert_array_equal(a, b)


def test_last_step_of_a_pipeline(digits):
    X, _ = digits
    pipe = make_pipeline(StandardScaler(), LSHTransformer(n_bits=32, random_state=0), HammingNeighbors(n_neighbors=3))
    pipe.fit(X)
    codes = pipe[:-1].transform(X[:5])  # encode queries with every step but the last
    dist, ind = pipe[-1].kneighbors(codes)
    assert ind.shape == (5, 3) and np.all(dist[:, 0] == 0) and np.all(ind[:, 0] == np.arange(5))


def test_estimator_contract_with_codes():
    """What the float-feeding estimator checks would test, with uint8 codes."""
    from sklearn.base import clone

    db = _codes(60, 2)
    nn = HammingNeighbors(n_neighbors=4, radius=1)
    params = nn.get_params()
    before = db.copy()
    assert nn.fit(db) is nn
    assert nn.get_params() == params  # fit does not change parameters
    np.testing.assert_array_equal(db, before)  # nor the input
    assert nn.n_features_in_ == 2 and nn.n_samples_fit_ == 60
    db[:] = 0  # the fitted copy is independent of the caller's array
    np.testing.assert_array_equal(nn._fit_X, before)
    fresh = clone(nn)
    assert fresh.get_params() == params and not hasattr(fresh, "_fit_X")
    a = nn.kneighbors(before[:5])
    b = HammingNeighbors(n_neighbors=4).fit(np.asfortranarray(before)).kneighbors(before[:5])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_neighbors_agree_across_backends(backend, sort_results):
    db = _codes(700, 4, n_distinct=120)
    reference = HammingNeighbors(radius=9, backend="numpy").fit(db)
    nn = HammingNeighbors(radius=9, backend=_backend(backend)).fit(db)
    for X in (db[:25], None):
        expected = reference.radius_neighbors(X, sort_results=sort_results)
        got = nn.radius_neighbors(X, sort_results=sort_results)
        assert len(got[1]) == len(expected[1]) and sum(len(i) for i in got[1]) > 0
        for a, b in zip(got, expected):
            for x, y in zip(a, b):
                assert x.dtype == np.int64
                np.testing.assert_array_equal(x, y)


def test_graphs_follow_scikit_learns_sparse_interface():
    import sklearn
    from scipy import sparse

    db = _codes(80, 2)
    nn = HammingNeighbors(n_neighbors=3, radius=4).fit(db)
    sk = NearestNeighbors(n_neighbors=3).fit(unpack_codes(db).astype(float))
    for interface in ("spmatrix", "sparray"):
        with sklearn.config_context(sparse_interface=interface):
            expected = type(sk.kneighbors_graph())
            for graph in (nn.kneighbors_graph(), nn.radius_neighbors_graph(db[:5], mode="distance")):
                assert type(graph) is expected
                assert sparse.issparse(graph) and graph.format == "csr"
    dist, ind = nn.kneighbors(db[:5])
    graph = nn.kneighbors_graph(db[:5], mode="distance").toarray()
    np.testing.assert_array_equal(np.take_along_axis(graph, ind, axis=1), dist)


def test_n_jobs_follows_scikit_learns_convention():
    import os

    from joblib import parallel_config

    db = _codes(300, 8)
    assert HammingNeighbors().fit(db)._threads == 1  # None means one thread
    assert HammingNeighbors(n_jobs=-1).fit(db)._threads == os.cpu_count()
    with parallel_config(n_jobs=2):
        assert HammingNeighbors().fit(db)._threads == 2
    one = HammingNeighbors(n_neighbors=7, n_jobs=1).fit(db).kneighbors(db[:40])
    every = HammingNeighbors(n_neighbors=7, n_jobs=-1).fit(db).kneighbors(db[:40])
    for a, b in zip(one, every):
        np.testing.assert_array_equal(a, b)


def test_faiss_backend_leaves_faiss_threads_as_the_user_set_them():
    faiss = pytest.importorskip("faiss")
    db = _codes(300, 8)
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    try:
        HammingNeighbors(n_neighbors=7, backend="faiss", n_jobs=1).fit(db).kneighbors(db[:40])
        assert faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(previous)


@pytest.mark.parametrize("params, name", [(dict(backend="gpu"), "backend"), (dict(n_jobs="all"), "n_jobs"),
                                          (dict(n_neighbors=0), "n_neighbors"), (dict(radius=-2), "radius")])
def test_invalid_parameters_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter of HammingNeighbors"):
        HammingNeighbors(**params).fit(_codes(10, 2))
