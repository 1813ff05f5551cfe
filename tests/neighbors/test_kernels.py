"""The compiled kernels against an exact numpy reference, on databases that span several
blocks, for every code width path (1 to 5 words), one query at a time and sixteen a vector."""

import numpy as np
import pytest
from numba import njit
from numba.core import config

from sortedhash.neighbors import _kernels, _lanes
from sortedhash.neighbors._kernels import knn_search, pack_words


def _distances(queries, db):
    return np.bitwise_count(queries[:, None, :] ^ db[None, :, :]).sum(-1, dtype=np.int64)


def _codes(rng, n, n_bytes, n_distinct=None):
    codes = rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    if n_distinct:  # exact duplicates: ties at every distance, the k-th included
        codes = codes[rng.integers(0, n_distinct, n)]
    return codes


def _stable_top_k(queries, db, k, exclude=None):
    full = _distances(queries, db)
    if exclude is not None:
        full[np.arange(len(queries)), exclude] = 10**6
    order = np.argsort(full, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(full, order, axis=1), order


# The lane kernel takes codes of up to eight words (and refuses more: tested below).
@pytest.mark.parametrize(("n_bytes", "lanes"), [(n, False) for n in (2, 8, 16, 24, 32, 40, 72)]
                         + [(n, True) for n in (2, 8, 16, 24, 32, 40, 48, 56, 64)])
@pytest.mark.parametrize("n_distinct", [None, 300])
def test_knn_search_is_a_stable_sort_of_all_distances(n_bytes, n_distinct, lanes):
    rng = np.random.default_rng(n_bytes)
    n = 3 * _kernels._DB_BLOCK + 133  # a partial last block
    db = _codes(rng, n, n_bytes, n_distinct)
    # Queries copied from the database sit at distance 0 from some rows, so the threshold
    # tightens in the first block and most later blocks are skipped whole.
    queries = np.concatenate([_codes(rng, 20, n_bytes), db[rng.integers(0, n, 20)]])
    k = 50
    dist, idx = knn_search(pack_words(db), pack_words(queries).T, k, 8 * n_bytes, lanes=lanes)
    expected_dist, expected_idx = _stable_top_k(queries, db, k)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(dist, expected_dist)


def test_the_few_queries_past_the_last_group_go_one_at_a_time_where_that_is_quicker():
    count = _kernels._lane_query_count
    small, large = 1 << 20, _kernels._CACHED_DB_BYTES + 1
    few = _lanes.MIN_QUERIES - 1
    assert count(2 * _lanes.LANES + few, 100, 1, small) == 2 * _lanes.LANES  # the tail one at a time
    assert count(2 * _lanes.LANES + _lanes.MIN_QUERIES, 100, 1, small) == 2 * _lanes.LANES + _lanes.MIN_QUERIES
    assert count(2 * _lanes.LANES, 100, 1, small) == 2 * _lanes.LANES  # no tail
    assert count(few, 100, 1, small) == few  # no full group
    assert count(2 * _lanes.LANES + 1, 100, 1, large) == 2 * _lanes.LANES + 1  # codes read from memory once
    # Two threads: a third group lengthens the busiest thread's share (one group to two),
    # a second one does not (a group each).
    assert count(2 * _lanes.LANES + 1, 100, 2, small) == 2 * _lanes.LANES
    assert count(_lanes.LANES + 1, 100, 2, small) == _lanes.LANES + 1


@pytest.mark.parametrize("n_queries", [_lanes.LANES + 1, 2 * _lanes.LANES + 3, 5])
@pytest.mark.parametrize("n_bytes", [8, 32])
def test_knn_search_chooses_its_kernels_and_stays_a_stable_sort(n_queries, n_bytes):
    rng = np.random.default_rng(n_queries)
    db = _codes(rng, 2 * _kernels._DB_BLOCK + 21, n_bytes, n_distinct=500)
    exclude = rng.integers(0, len(db), n_queries)  # each query leaves itself out
    queries = db[exclude]
    dist, idx = knn_search(pack_words(db), pack_words(queries).T, 30, 8 * n_bytes, exclude=exclude, n_threads=1)
    expected_dist, expected_idx = _stable_top_k(queries, db, 30, exclude)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(dist, expected_dist)


@pytest.mark.parametrize("lanes", [False, True])
def test_knn_search_leaves_out_the_excluded_row(lanes):
    rng = np.random.default_rng(1)
    db = _codes(rng, 2 * _kernels._DB_BLOCK + 7, 8, n_distinct=200)
    exclude = np.arange(0, len(db), 97, dtype=np.int64)
    dist, idx = knn_search(pack_words(db), pack_words(db[exclude]).T, 10, 64, exclude=exclude, lanes=lanes)
    expected_dist, expected_idx = _stable_top_k(db[exclude], db, 10, exclude)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(dist, expected_dist)
    assert not np.any(idx == exclude[:, None])


@pytest.mark.parametrize("n_bytes", [8, 16, 24, 32, 64])
@pytest.mark.parametrize("n_queries", [16, 37])  # whole groups of sixteen, and a partial last one
@pytest.mark.parametrize("data", ["uniform", "few distinct", "all equal"])
def test_lane_kernel_edge_cases(n_bytes, n_queries, data):
    # Rows not a multiple of the scan step (a tail scanned row by row), k of 1, of many
    # rows (the buffers compact many times) and of every row, ties everywhere.
    rng = np.random.default_rng(n_bytes + n_queries)
    n = 40 * _lanes.SCAN_ROWS + 11
    db = _codes(rng, n, n_bytes, {"uniform": None, "few distinct": 7, "all equal": 1}[data])
    queries = np.concatenate([db[rng.integers(0, n, n_queries // 2)], _codes(rng, n_queries - n_queries // 2,
                                                                             n_bytes)])
    for k in (1, 300, n):
        dist, idx = knn_search(pack_words(db), pack_words(queries).T, k, 8 * n_bytes, lanes=True)
        expected_dist, expected_idx = _stable_top_k(queries, db, k)
        np.testing.assert_array_equal(idx, expected_idx)
        np.testing.assert_array_equal(dist, expected_dist)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_lane_kernel_over_several_blocks_and_parts(n_threads):
    # Each part scans one block of rows for all its groups before the next block: the
    # thresholds and buffers carry over from block to block, and parts split the groups.
    rng = np.random.default_rng(n_threads)
    n = 2 * _kernels._LANE_BLOCK_WORDS + 37
    db = _codes(rng, n, 8, n_distinct=5000)
    queries = np.concatenate([db[rng.integers(0, n, 40)], _codes(rng, 30, 8)])  # five groups, the last partial
    # A database that fits in the cache: two groups a part, so three parts here.
    assert _kernels._lane_part_size(len(queries), 10, n_threads, db.nbytes) == 2
    dist, idx = knn_search(pack_words(db), pack_words(queries).T, 10, 64, n_threads=n_threads, lanes=True)
    expected_dist, expected_idx = _stable_top_k(queries, db, 10)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(dist, expected_dist)


def test_lane_parts_share_blocks_of_large_databases_and_bound_the_buffers():
    large, small = 2 * _kernels._CACHED_DB_BYTES, _kernels._CACHED_DB_BYTES
    assert _kernels._lane_part_size(10_000, 10, 2, large) == _kernels._LANE_GROUPS
    assert _kernels._lane_part_size(10_000, 10, 2, small) == 2
    assert _kernels._lane_part_size(100, 10, 2, large) == 4  # seven groups: every thread gets a part
    # k = 100,000: one group's buffers are ~100 MiB, so a part holds one group.
    assert _kernels._lane_part_size(10_000, 100_000, 2, large) == 1


@pytest.mark.parametrize("n_bytes", [8, 32, 64])
@pytest.mark.parametrize("n_distinct", [None, 40])
def test_thresholds_started_from_a_sample_give_the_same_neighbours(n_bytes, n_distinct):
    # Thresholds start at the rank-th distance among the sample's runs of rows. Queries
    # copied from the first run meet a row at distance 0 there, so at rank 1 their
    # threshold keeps fewer than k rows and they are scanned again; the rest get a loose
    # threshold. Either way the result is the stable sort's.
    rng = np.random.default_rng(n_bytes)
    n = 3 * _kernels._LANE_BLOCK_WORDS // (n_bytes // 8) + 23  # several blocks and a tail
    db = _codes(rng, n, n_bytes, n_distinct)
    _, run = _kernels._sample_layout(n - n % _lanes.SCAN_ROWS)
    queries = np.concatenate([db[rng.integers(0, run, 20)], _codes(rng, 17, n_bytes)])
    exclude = np.full(len(queries), -1, dtype=np.int64)
    exclude[::5] = rng.integers(0, n, len(exclude[::5]))
    for k, rank in [(5, 1), (100, 1), (100, 4), (300, 50)]:
        dist = np.empty((len(queries), k), dtype=np.int64)
        idx = np.empty((len(queries), k), dtype=np.int64)
        _kernels._knn_lanes(pack_words(db), np.ascontiguousarray(pack_words(queries).T), k, 8 * n_bytes, exclude,
                            idx, dist, 2, rank)
        expected_dist, expected_idx = _stable_top_k(queries, db, k, np.where(exclude < 0, 0, exclude))
        kept = exclude < 0  # the reference's exclusion of row 0 stands for none: compare the others
        np.testing.assert_array_equal(idx[~kept], expected_idx[~kept])
        expected_dist, expected_idx = _stable_top_k(queries[kept], db, k)
        np.testing.assert_array_equal(idx[kept], expected_idx)
        np.testing.assert_array_equal(dist[kept], expected_dist)


def test_thresholds_are_sampled_for_many_neighbours_in_large_databases():
    rows = 1_638_400
    assert _kernels._sample_rank(10, rows) == 0  # few neighbours: the sample would cost more
    assert _kernels._sample_rank(100, 100_000) == 0  # too few rows
    assert _kernels._sample_rank(100, 10_000_000) == 0  # many rows a neighbour: it gains nothing
    # 64 runs of 800 rows, 1/32 of the rows: the final top 100 holds ~3.1 of them; twice that plus two.
    assert _kernels._sample_layout(rows) == (25_600, 800)
    assert _kernels._sample_rank(100, rows) == 9
    # The top 1,000 holds ~31.3: four standard deviations over it (31.3 + 22.4) plus two, not 2 x 31.3 + 2.
    assert _kernels._sample_rank(1000, rows) == 56


@njit
def _noted_steps(db, start, stop, queries, thresh, capacity):
    """Every step scan_hits notes over [start, stop), resuming as the kernel does, with its
    note: the lane mask."""
    hit_rows = np.empty(capacity, dtype=np.int64)
    hit_lanes = np.empty(capacity, dtype=np.uint64)
    rows, notes = [], []
    r = start
    while r < stop:
        n = _lanes.scan_hits(db, r, stop, queries, thresh, db.shape[0], hit_rows, hit_lanes)
        for h in range(n):
            rows.append(hit_rows[h])
            notes.append(hit_lanes[h])
        r = hit_rows[n - 1] + _lanes.SCAN_ROWS if n == capacity else stop
    return rows, notes


def _bits(flags):
    """uint64 with bit i set where flags[i] (the last axis; at most 64 flags)."""
    return (flags.astype(np.uint64) << np.arange(flags.shape[-1], dtype=np.uint64)).sum(axis=-1)


def _lane_scan_case(n_words):
    """Codes of 40 steps, sixteen queries (six of them database rows) and thresholds that
    keep ~1 % of rows a lane (none for lane 3), with every distance."""
    rng = np.random.default_rng(n_words)
    db = _codes(rng, 40 * _lanes.SCAN_ROWS, 8 * n_words)
    queries = np.concatenate([db[rng.integers(0, len(db), 6)], _codes(rng, 10, 8 * n_words)])
    full = _distances(queries, db)  # (16, rows)
    thresh = np.quantile(full, 0.01, axis=1).astype(np.int64)
    thresh[3] = 0  # a lane with nothing under its threshold
    return db, queries, full, thresh


@pytest.mark.parametrize("n_words", [1, 2, 5, 8])
@pytest.mark.parametrize("capacity", [1, 3, 64])
def test_scan_notes_every_step_with_a_row_under_a_threshold(n_words, capacity):
    # The scan's only output: which steps hold a (row, lane) under the lane's threshold, with
    # the mask of those lanes, against numpy; full buffers make the caller resume.
    db, queries, full, thresh = _lane_scan_case(n_words)
    steps = len(db) // _lanes.SCAN_ROWS
    lanes = np.ascontiguousarray(pack_words(queries))  # (words, LANES): a query a lane
    start = 2 * _lanes.SCAN_ROWS
    rows, notes = _noted_steps(pack_words(db), start, len(db), lanes, thresh, capacity)
    below = (full < thresh[:, None]).T.reshape(steps, _lanes.SCAN_ROWS, _lanes.LANES)[2:]  # step, row, lane
    expected_rows = start + _lanes.SCAN_ROWS * np.flatnonzero(below.any(axis=(1, 2)))
    assert len(expected_rows) > 3  # the buffers fill (capacity 1 and 3)
    np.testing.assert_array_equal(rows, expected_rows)
    expected = [_bits(below[(r - start) // _lanes.SCAN_ROWS].any(axis=0)) for r in rows]
    np.testing.assert_array_equal(np.array(notes, dtype=np.uint64), np.array(expected, dtype=np.uint64))


@njit
def _rows_below_each_step(db, queries, thresh):
    out = np.empty((db.shape[1] // _lanes.SCAN_ROWS, _lanes.LANES), dtype=np.int64)
    for s in range(out.shape[0]):
        for j in range(_lanes.LANES):
            out[s, j] = _lanes.rows_below(db, s * _lanes.SCAN_ROWS, queries, j, thresh[j], db.shape[0])
    return out


@pytest.mark.parametrize("n_words", [1, 3, 8])
def test_rows_below_finds_a_lanes_rows_under_its_threshold(n_words):
    db, queries, full, thresh = _lane_scan_case(n_words)
    thresh[5] = full[5].max() + 1  # every row
    masks = _rows_below_each_step(pack_words(db), np.ascontiguousarray(pack_words(queries)), thresh)
    below = (full < thresh[:, None]).reshape(_lanes.LANES, -1, _lanes.SCAN_ROWS)  # lane, step, row
    np.testing.assert_array_equal(masks.astype(np.uint64), _bits(below).T)
    assert masks[:, 5].tolist() == [2**16 - 1] * masks.shape[0] and not masks[:, 3].any()


@pytest.mark.parametrize("n_bytes", [8, 48])
def test_lane_kernel_gives_the_stable_sort_where_most_rows_enter_a_top_k(n_bytes):
    # k a sixth of the rows: most steps hold a row under some threshold, and most calls of
    # the scan stop at a full buffer of noted steps.
    rng = np.random.default_rng(n_bytes)
    n = 3 * _kernels._LANE_BLOCK_WORDS // (n_bytes // 8) + 57
    db = _codes(rng, n, n_bytes, 500)
    queries = np.concatenate([_codes(rng, 20, n_bytes), db[rng.integers(0, n, 12)]])
    k = n // 6
    dist, idx = knn_search(pack_words(db), pack_words(queries).T, k, 8 * n_bytes, lanes=True)
    expected_dist, expected_idx = _stable_top_k(queries, db, k)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(dist, expected_dist)


def test_lane_kernel_refuses_codes_over_eight_words():
    codes = np.zeros((20, 72), dtype=np.uint8)
    with pytest.raises(ValueError, match="up to 8 words"):
        knn_search(pack_words(codes), pack_words(codes).T, 1, 576, lanes=True)


@pytest.mark.parametrize(("features", "words"), [
    ("+avx2,+avx512f,+avx512vpopcntdq", 8),
    ("+avx2,-avx512f", 1),
    ("+sse4.2,+popcnt", 0),
])
def test_lane_kernel_width_follows_the_compile_target(monkeypatch, features, words):
    monkeypatch.setattr(config, "CPU_FEATURES", features)
    assert _lanes._max_words(_lanes._target_features()) == words


@pytest.mark.parametrize("tree", [False, True])
@pytest.mark.parametrize("n_values", [1, 2, 5, 16])
def test_step_reduction_combines_every_value_in_order(monkeypatch, tree, n_values):
    # A tree (AVX-512) or a chain (AVX2) of the step's distances: either way each value
    # once, left to right (string concatenation shows a value lost, doubled or moved).
    monkeypatch.setattr(_lanes, "_TREE", tree)
    values = [chr(ord("a") + i) for i in range(n_values)]
    assert _lanes._reduce(lambda a, b: a + b, values) == "".join(values)


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


def test_kernel_cache_is_kept_apart_for_each_version_of_the_sources(monkeypatch, tmp_path):
    # numba checks a cached kernel against its own file only; the kernels also compile code
    # from _lanes.py, so the cache directory follows a digest of all the kernel modules.
    from sortedhash.neighbors import _jit

    monkeypatch.setenv("SORTEDHASH_CACHE_DIR", str(tmp_path))
    digest = _jit._sources_digest()
    assert _jit._cache_dir() == tmp_path / digest and len(digest) == 16
    monkeypatch.setattr(_jit, "__file__", str(tmp_path / "copy" / "_jit.py"))
    (tmp_path / "copy").mkdir()
    for source in (_jit.Path(_lanes.__file__).parent).glob("*.py"):
        (tmp_path / "copy" / source.name).write_bytes(source.read_bytes())
    assert _jit._sources_digest() == digest
    (tmp_path / "copy" / "_lanes.py").write_text("# changed\n")
    assert _jit._sources_digest() != digest
    monkeypatch.setenv("SORTEDHASH_CACHE_DIR", "off")
    assert _jit._cache_dir() is None
