"""The compiled kernels against an exact numpy reference, on databases that span several
blocks, for every code width path (1 to 5 words)."""

import numpy as np
import pytest

from sortedhash.neighbors import _kernels
from sortedhash.neighbors._kernels import knn_search, pack_words


def _distances(queries, db):
    return np.bitwise_count(queries[:, None, :] ^ db[None, :, :]).sum(-1, dtype=np.int64)


def _codes(rng, n, n_bytes, n_distinct=None):
    codes = rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    if n_distinct:  # exact duplicates: ties at every distance, the k-th included
        codes = codes[rng.integers(0, n_distinct, n)]
    return codes


@pytest.mark.parametrize("n_bytes", [2, 8, 16, 24, 32, 40])
@pytest.mark.parametrize("n_distinct", [None, 300])
def test_knn_search_is_a_stable_sort_of_all_distances(n_bytes, n_distinct):
    rng = np.random.default_rng(n_bytes)
    n = 3 * _kernels._DB_BLOCK + 133  # a partial last block
    db = _codes(rng, n, n_bytes, n_distinct)
    # Queries copied from the database sit at distance 0 from some rows, so the threshold
    # tightens in the first block and most later blocks are skipped whole.
    queries = np.concatenate([_codes(rng, 20, n_bytes), db[rng.integers(0, n, 20)]])
    k = 50
    dist, idx = knn_search(pack_words(db), pack_words(queries).T, k, 8 * n_bytes)
    full = _distances(queries, db)
    order = np.argsort(full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(dist, np.take_along_axis(full, order, axis=1))


def test_knn_search_leaves_out_the_excluded_row():
    rng = np.random.default_rng(1)
    db = _codes(rng, 2 * _kernels._DB_BLOCK + 7, 8, n_distinct=200)
    exclude = np.arange(0, len(db), 97, dtype=np.int64)
    dist, idx = knn_search(pack_words(db), pack_words(db[exclude]).T, 10, 64, exclude=exclude)
    full = _distances(db[exclude], db)
    full[np.arange(len(exclude)), exclude] = 10**6
    order = np.argsort(full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, order)
    assert not np.any(idx == exclude[:, None])


@pytest.mark.parametrize("n_bytes", [1, 8, 16, 40])
@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_search_returns_every_row_within_the_radius(n_bytes, sort_results):
    rng = np.random.default_rng(n_bytes)
    db = _codes(rng, 2 * _kernels._DB_BLOCK + 77, n_bytes, n_distinct=500)
    queries = np.concatenate([_codes(rng, 10, n_bytes), db[rng.integers(0, len(db), 10)]])
    radius = 4 * n_bytes - 2  # about a tenth of the rows
    exclude = np.full(len(queries), -1, dtype=np.int64)
    exclude[10:] = rng.integers(0, len(db), 10)
    offsets, dist, idx = _kernels.radius_search(pack_words(db), pack_words(queries).T, radius, 8 * n_bytes,
                                                exclude, sort_results)
    full = _distances(queries, db)
    assert offsets[0] == 0 and offsets[-1] == len(idx) == len(dist)
    for q in range(len(queries)):
        d = full[q].copy()
        if exclude[q] >= 0:
            d[exclude[q]] = 10**6
        expected = np.flatnonzero(d <= radius)
        if sort_results:
            expected = expected[np.argsort(d[expected], kind="stable")]
        got = slice(offsets[q], offsets[q + 1])
        np.testing.assert_array_equal(idx[got], expected)
        np.testing.assert_array_equal(dist[got], d[expected])
    assert offsets[-1] > 0


def test_radius_search_radius_zero_and_beyond_the_code_length():
    rng = np.random.default_rng(3)
    db = _codes(rng, 300, 2, n_distinct=40)
    words = pack_words(db)
    offsets, dist, idx = _kernels.radius_search(words, pack_words(db[:5]).T, 0, 16)
    for q in range(5):
        np.testing.assert_array_equal(idx[offsets[q]:offsets[q + 1]], np.flatnonzero((db == db[q]).all(axis=1)))
    assert not dist.any()
    offsets, _, idx = _kernels.radius_search(words, pack_words(db[:3]).T, 1000, 16)
    np.testing.assert_array_equal(np.diff(offsets), [300] * 3)
    np.testing.assert_array_equal(idx[:300], np.arange(300))
