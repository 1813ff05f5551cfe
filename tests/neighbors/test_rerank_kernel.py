import numpy as np
import pytest

from sortedhash.neighbors import _rerank_kernel
from sortedhash.neighbors._rerank_kernel import rerank


def _reference(X, queries, candidates, k, metric):
    """Float64 distances to each query's candidates, stable-sorted from index order."""
    dist, ind = [], []
    for q, rows in zip(queries, np.sort(candidates, axis=1)):
        V = X[rows].astype(np.float64)
        if metric == "cosine":
            d = 1 - V @ q / (np.linalg.norm(V, axis=1) * np.linalg.norm(q))
        else:
            d = np.linalg.norm(V - q, axis=1)
        order = np.argsort(d, kind="stable")[:k]
        dist.append(d[order])
        ind.append(rows[order])
    return np.array(dist), np.array(ind)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [9, _rerank_kernel._INSERT_MAX_K + 8])  # kept by insertion; by a sort
def test_matches_a_float64_reference_whatever_the_candidate_order(metric, dtype, k):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 37)).astype(dtype)
    X[250:300] = X[:50]  # duplicated rows: equal distances, ranked by index
    queries = np.concatenate([rng.standard_normal((20, 37)), X[:10].astype(np.float64)])
    candidates = np.stack([rng.permutation(500)[:120] for _ in queries])
    for i in range(10):  # the query's own row and its duplicate among the candidates
        others = rng.permutation(np.setdiff1d(np.arange(500), [i, i + 250]))[:118]
        candidates[20 + i] = np.concatenate([[i + 250, i], others])
    norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    dist, ind = rerank(X, norms, queries, candidates, k, metric, n_threads=1)
    ref_dist, ref_ind = _reference(X, queries, candidates, k, metric)
    np.testing.assert_array_equal(ind, ref_ind)
    # Euclidean from the norms (as scikit-learn computes it): sqrt of a cancellation near 0.
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-9, atol=1e-6 if metric == "euclidean" else 1e-9)
    assert np.all(ind[-10:, :2] == np.stack([np.arange(10), np.arange(10) + 250], axis=1))
    shuffled = rng.permuted(candidates, axis=1)
    for threads in (1, 2):
        again = rerank(X, norms, queries, shuffled, k, metric, n_threads=threads)
        np.testing.assert_array_equal(again[1], ind)
        np.testing.assert_array_equal(again[0], dist)


def test_reads_a_memory_map_in_place(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 16)).astype(np.float32)
    stored = np.lib.format.open_memmap(tmp_path / "db.npy", mode="w+", dtype=np.float32, shape=X.shape)
    stored[:] = X
    stored.flush()
    mapped = np.load(tmp_path / "db.npy", mmap_mode="r")
    norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    queries = rng.standard_normal((5, 16))
    candidates = np.tile(np.arange(300), (5, 1))
    np.testing.assert_array_equal(rerank(mapped, norms, queries, candidates, 4, "cosine")[1],
                                  rerank(X, norms, queries, candidates, 4, "cosine")[1])
