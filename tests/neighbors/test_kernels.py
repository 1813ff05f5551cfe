"""The compiled kernel against an exact numpy reference, on databases that span several
blocks, for every code width path (1 to 5 words)."""

import numpy as np
import pytest

from sortedhash.neighbors import _kernels
from sortedhash.neighbors._kernels import knn_search, pack_words, popcount_bound


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


@pytest.mark.parametrize("n_bytes", [8, 32, 40])
def test_popcount_bound_computes_every_distance(n_bytes):
    # The bound adds up the distance of each block's first row, which it computes with
    # every other row's (the output only keeps the compiler from dropping the pass).
    rng = np.random.default_rng(2)
    db = _codes(rng, 2 * _kernels._DB_BLOCK + 100, n_bytes)
    queries = _codes(rng, 33, n_bytes)
    full = _distances(queries, db)
    block = _kernels._block_rows.py_func(pack_words(db).shape[0])
    expected = full[:, ::block].sum(axis=1)
    np.testing.assert_array_equal(popcount_bound(pack_words(db), pack_words(queries).T), expected)
