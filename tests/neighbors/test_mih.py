"""Multi-index hashing against the stable-sort reference: same distances, same indices."""

import numpy as np
import pytest

import sortedhash.neighbors._hamming as hamming
from sortedhash import HammingNeighbors
from sortedhash.neighbors import _kernels
from sortedhash.neighbors._kernels import estimate_kth, estimate_sample, pack_words
from sortedhash.neighbors import _mih
from sortedhash.neighbors._mih import auto_n_substrings, build_multi_index, extend_multi_index, mih_knn


def _reference(queries, db, k, exclude=None):
    d = np.bitwise_count(queries[:, None, :] ^ db[None, :, :]).sum(-1, dtype=np.int64)
    if exclude is not None:
        d[np.arange(len(queries)), exclude] = 10**6
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def _database(kind, n, n_bytes, rng):
    if kind == "uniform":
        return rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    if kind == "clustered":  # centres plus bit flips: close neighbours, uneven buckets
        centres = rng.integers(0, 256, (12, n_bytes), dtype=np.uint8)
        flips = np.packbits(rng.random((n, 8 * n_bytes)) < 0.05, axis=1, bitorder="little")
        return centres[rng.integers(0, 12, n)] ^ flips
    if kind == "duplicates":
        return rng.integers(0, 256, (40, n_bytes), dtype=np.uint8)[rng.integers(0, 40, n)]
    return np.full((n, n_bytes), 173, dtype=np.uint8)  # all equal: every distance ties


def _assert_same(a, b):
    for x, y in zip(a, b):
        if x.dtype == object:
            assert len(x) == len(y)
            for u, v in zip(x, y):
                np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_array_equal(x, y)


def _count_mih_queries(monkeypatch):
    """Spy on HammingNeighbors' calls of MIH: the list of each call's number of queries."""
    routed = []
    mih_knn = hamming.mih_knn

    def counting_mih_knn(*args, **kwargs):
        routed.append(len(args[2]))
        return mih_knn(*args, **kwargs)

    monkeypatch.setattr(hamming, "mih_knn", counting_mih_knn)
    return routed


def _count_estimates(monkeypatch):
    """Spy on HammingNeighbors' k-th distance estimates: the list of each call's number of queries."""
    estimated = []
    estimate_kth = hamming.estimate_kth

    def counting_estimate_kth(db, queries, k):
        estimated.append(len(queries))
        return estimate_kth(db, queries, k)

    monkeypatch.setattr(hamming, "estimate_kth", counting_estimate_kth)
    return estimated


@pytest.mark.parametrize("n_bytes", [1, 2, 3, 8, 16, 32, 64])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "duplicates", "equal"])
def test_mih_knn_is_a_stable_sort_of_all_distances(n_bytes, kind):
    rng = np.random.default_rng(n_bytes)
    n = 1500
    db = _database(kind, n, n_bytes, rng)
    queries = np.concatenate([_database(kind, 15, n_bytes, rng), db[rng.integers(0, n, 15)]])
    nn = HammingNeighbors(algorithm="mih").fit(db)
    assert nn.n_substrings_ == auto_n_substrings(n, 8 * n_bytes)
    for k in (1, 10, 200):
        dist, ind = nn.kneighbors(queries, k)
        ref_dist, ref_ind = _reference(queries, db, k)
        np.testing.assert_array_equal(dist, ref_dist)
        np.testing.assert_array_equal(ind, ref_ind)


@pytest.mark.parametrize("n_substrings", [1, 2, 3, 5, 8])
def test_every_number_of_substrings_gives_the_same_neighbours(n_substrings):
    rng = np.random.default_rng(n_substrings)
    db = _database("clustered", 2000, 3, rng)  # 24 bits: uneven substrings for 5
    queries = _database("clustered", 20, 3, rng)
    nn = HammingNeighbors(algorithm="mih", n_substrings=n_substrings, n_neighbors=30).fit(db)
    assert nn.n_substrings_ == n_substrings
    _assert_same(nn.kneighbors(queries), _reference(queries, db, 30))


@pytest.mark.parametrize("n_bytes, n_substrings", [(16, 10), (24, 14), (32, 19)])
def test_substrings_that_cross_a_word_boundary_give_the_same_neighbours(n_bytes, n_substrings):
    # 128 bits in 10 substrings: bits 52-64 straddle words 0 and 1; 192 and 256 bits alike.
    rng = np.random.default_rng(n_bytes)
    db = _database("clustered", 2500, n_bytes, rng)
    queries = np.concatenate([_database("clustered", 20, n_bytes, rng), db[:10]])
    nn = HammingNeighbors(algorithm="mih", n_substrings=n_substrings, n_neighbors=25, radius=n_bytes).fit(db)
    tables = nn._mih
    assert np.any(tables.starts % 64 + tables.lengths > 64)  # the case under test
    _assert_same(nn.kneighbors(queries), _reference(queries, db, 25))
    brute = HammingNeighbors(algorithm="brute", radius=n_bytes).fit(db)
    _assert_same(nn.radius_neighbors(queries, sort_results=True), brute.radius_neighbors(queries, sort_results=True))


def test_leave_one_out_queries_and_graphs_match_the_scan():
    rng = np.random.default_rng(0)
    db = _database("duplicates", 800, 8, rng)
    mih = HammingNeighbors(algorithm="mih", n_neighbors=6, radius=5).fit(db)
    brute = HammingNeighbors(algorithm="brute", n_neighbors=6, radius=5).fit(db)
    _assert_same(mih.kneighbors(), brute.kneighbors())
    assert not np.any(mih.kneighbors(return_distance=False) == np.arange(800)[:, None])
    for mode in ("connectivity", "distance"):
        assert (mih.kneighbors_graph(mode=mode) != brute.kneighbors_graph(mode=mode)).nnz == 0
        assert (mih.radius_neighbors_graph(mode=mode) != brute.radius_neighbors_graph(mode=mode)).nnz == 0


@pytest.mark.parametrize("n_bytes", [1, 8, 16, 64])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "equal"])
def test_mih_radius_search_matches_the_scan(n_bytes, kind):
    rng = np.random.default_rng(n_bytes)
    db = _database(kind, 1200, n_bytes, rng)
    queries = np.concatenate([_database(kind, 10, n_bytes, rng), db[:10]])
    mih = HammingNeighbors(algorithm="mih").fit(db)
    brute = HammingNeighbors(algorithm="brute").fit(db)
    for radius in (0, 1, 2 * n_bytes, 4 * n_bytes):
        for sort_results in (False, True):
            _assert_same(mih.radius_neighbors(queries, radius, sort_results=sort_results),
                         brute.radius_neighbors(queries, radius, sort_results=sort_results))
    _assert_same(mih.radius_neighbors(radius=3), brute.radius_neighbors(radius=3))


def test_k_larger_than_the_database_is_refused_as_by_the_scan():
    db = _database("uniform", 50, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_neighbors=51 is larger than the 50 codes"):
        HammingNeighbors(algorithm="mih").fit(db).kneighbors(db[:2], 51)
    dist, ind = HammingNeighbors(algorithm="mih").fit(db).kneighbors(db[:2], 50)
    _assert_same((dist, ind), _reference(db[:2], db, 50))


def test_auto_gives_the_scans_results_on_codes_where_either_method_wins():
    rng = np.random.default_rng(1)
    for kind in ("uniform", "clustered"):
        db = _database(kind, 2**17 + 100, 8, rng)
        queries = np.concatenate([_database(kind, 40, 8, rng), db[:40]])
        auto = HammingNeighbors(n_neighbors=20, radius=6).fit(db)  # algorithm="auto"
        assert auto.n_substrings_ is not None  # tables are built from 2**17 codes
        brute = HammingNeighbors(n_neighbors=20, radius=6, algorithm="brute").fit(db)
        _assert_same(auto.kneighbors(queries), brute.kneighbors(queries))
        _assert_same(auto.radius_neighbors(queries), brute.radius_neighbors(queries))


def test_auto_scans_the_rest_when_most_sampled_mih_queries_overrun_their_budget(monkeypatch):
    # Uniform codes: MIH must probe thousands of buckets, so sampled queries overrun their
    # budget, and auto must scan the rest even when its (sub-millisecond) timings say that MIH
    # is faster.
    
    routed = {"mih": 0, "overrun": 0}
    mih_knn = hamming.mih_knn

    def counting_mih_knn(*args, **kwargs):
        dist, ind, work = mih_knn(*args, **kwargs)
        routed["mih"] += len(args[2])
        routed["overrun"] += int(np.sum(work < 0))
        return dist, ind, work

    monkeypatch.setattr(hamming, "mih_knn", counting_mih_knn)
    # The k-th distances would show MIH overrunning before any is timed: let it be sampled.
    monkeypatch.setattr(hamming, "_mih_cannot_win", lambda index, kth, budget: False)
    # Codes taken to be larger than the cache: the scan is timed over an eighth of them, and
    # with every timed span lasting 1 s, the timings favour MIH.
    monkeypatch.setattr(hamming, "_CACHED_DB_BYTES", 2**19)
    ticks = iter(range(10**6))
    monkeypatch.setattr(hamming.time, "perf_counter", lambda: float(next(ticks)))
    rng = np.random.default_rng(3)
    db = _database("uniform", 2**17 + 100, 8, rng)
    queries = _database("uniform", 400, 8, rng)
    auto = HammingNeighbors(n_neighbors=20).fit(db)
    dist, ind = auto.kneighbors(queries)
    assert routed["overrun"] * 2 > routed["mih"] > 0
    assert routed["mih"] <= 96 + 1  # the sample (and a compile call), never the other 300
    _assert_same((dist, ind), _reference(queries, db, 20))


@pytest.mark.parametrize("cached", [True, False])
def test_auto_does_not_time_mih_where_its_probes_alone_would_overrun(monkeypatch, cached):
    # 256-bit uniform codes, k = 200: the k-th distance is ~100, so MIH must probe every
    # bucket within 6 bits in each of 16 tables of 16 bits (~240,000 probes, the budget
    # ~3,300). The scanned queries' k-th distances show it (exactly over codes the cache
    # holds, estimated from an eighth of them otherwise), and no query goes through MIH.
    routed = _count_mih_queries(monkeypatch)
    if not cached:
        monkeypatch.setattr(hamming, "_CACHED_DB_BYTES", 2**19)
    rng = np.random.default_rng(6)
    db = _database("uniform", 2**17 + 100, 32, rng)
    queries = _database("uniform", 40, 32, rng)
    auto = HammingNeighbors(n_neighbors=200).fit(db)
    assert auto.n_substrings_ == 16
    brute = HammingNeighbors(n_neighbors=200, algorithm="brute").fit(db)
    _assert_same(auto.kneighbors(queries), brute.kneighbors(queries))
    # A few queries, too few to time: their k-th distances are estimated from a sample of the
    # codes (16,384 of them hold ~25 of the 200 nearest).
    estimated = _count_estimates(monkeypatch)
    _assert_same(auto.kneighbors(queries[:3]), brute.kneighbors(queries[:3]))
    assert routed == [] and estimated == [3]


def test_auto_sends_a_few_queries_through_mih_where_it_can_win(monkeypatch):
    # Near copies of 2,000 codes, k = 10: every query's neighbours are a few bits away. Too
    # few neighbours to estimate their distance from a sample of the codes (16,384 of them
    # hold ~1.2 of the 10 nearest), so the queries go to MIH without an estimate.
    routed = _count_mih_queries(monkeypatch)
    estimated = _count_estimates(monkeypatch)
    rng = np.random.default_rng(8)
    base = _database("uniform", 2000, 8, rng)
    db = base[rng.integers(0, len(base), 2**17 + 100)] ^ np.packbits(
        rng.random((2**17 + 100, 64)) < 0.02, axis=1, bitorder="little")
    queries = base[:3]
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    _assert_same(auto.kneighbors(queries), _reference(queries, db, 10))
    assert routed == [3] and estimated == []


def test_a_few_queries_try_mih_on_what_the_scan_would_cost_and_go_to_the_scan_when_it_loses(monkeypatch):
    # Uniform codes, k = 10: too few neighbours to estimate the k-th distances from a share
    # of the codes, and MIH must probe thousands of buckets. Sixteen queries: the first alone
    # tries MIH on the budget of its share of a group's scan, overruns it, and all go to the
    # scan. Fewer than a group's worth: they try it together, each on the budget (about two
    # scans; queries that lose stop at their checkpoints), and each that overruns is scanned.
    calls = []
    mih_knn, knn_search = hamming.mih_knn, hamming.knn_search

    def recording_mih_knn(db, mih, queries, k, exclude, budget, *args, **kwargs):
        dist, ind, work = mih_knn(db, mih, queries, k, exclude, budget, *args, **kwargs)
        calls.append(("mih", len(queries), budget, int(np.sum(work < 0))))
        return dist, ind, work

    def recording_knn_search(db, queries, *args, **kwargs):
        calls.append(("scan", len(queries)))
        return knn_search(db, queries, *args, **kwargs)

    monkeypatch.setattr(hamming, "mih_knn", recording_mih_knn)
    monkeypatch.setattr(hamming, "knn_search", recording_knn_search)
    rng = np.random.default_rng(10)
    db = _database("uniform", 2**17 + 100, 8, rng)
    queries = _database("uniform", 16, 8, rng)
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    budget = max(1, 2 * len(db) // _mih.SCAN_CODES_PER_WORK)
    _assert_same(auto.kneighbors(queries), _reference(queries, db, 10))
    assert calls == [("mih", 1, budget * hamming.MIN_QUERIES // (2 * len(queries)), 1), ("scan", len(queries))]
    calls.clear()
    few = queries[:hamming.MIN_QUERIES - 1]
    _assert_same(auto.kneighbors(few), _reference(few, db, 10))
    assert calls == [("mih", len(few), budget, len(few)), ("scan", len(few))]


def _routed_calls(monkeypatch):
    """Spy on HammingNeighbors' MIH and scan calls: a list of ("mih" | "scan", queries)."""
    calls = []
    mih_knn, knn_search = hamming.mih_knn, hamming.knn_search

    def recording_mih_knn(db, mih, queries, *args, **kwargs):
        calls.append(("mih", len(queries)))
        return mih_knn(db, mih, queries, *args, **kwargs)

    def recording_knn_search(db, queries, *args, **kwargs):
        calls.append(("scan", len(queries)))
        return knn_search(db, queries, *args, **kwargs)

    monkeypatch.setattr(hamming, "mih_knn", recording_mih_knn)
    monkeypatch.setattr(hamming, "knn_search", recording_knn_search)
    return calls


@pytest.mark.parametrize("grouped", [False, True])
def test_calls_of_a_few_queries_skip_the_mih_try_while_it_costs_more_than_the_scan(monkeypatch, grouped):
    # Uniform codes, k = 10: every try overruns (its work spent, then the scan). Calls of
    # that kind then go to the scan without a try, MIH tried again after 2, 4, 8 calls.
    # Each call's results are exact all along. Three queries a call: all three try MIH
    # (and lose) where the scan takes them one at a time; where it takes them as a group,
    # the first alone tries, and it takes three such calls to stop the tries.
    monkeypatch.setattr(hamming, "scans_in_groups", lambda n_words, n_queries: grouped)
    calls = _routed_calls(monkeypatch)
    rng = np.random.default_rng(11)
    db = _database("uniform", 2**17 + 100, 8, rng)
    queries = _database("uniform", 3 * 20, 8, rng)
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    tried = []
    for call in range(20):
        calls.clear()
        part = queries[3 * call:3 * call + 3]
        _assert_same(auto.kneighbors(part), _reference(part, db, 10))
        tried.append(calls[0][0] == "mih")
        assert calls[-1] == ("scan", 3)  # overran (or skipped the try): scanned
    assert [i for i, t in enumerate(tried) if t] == ([0, 1, 2, 5, 10, 19] if grouped else [0, 3, 8, 17])
    # Another kind of call (other k, other number of queries) still tries first.
    calls.clear()
    auto.kneighbors(queries[:2])
    auto.kneighbors(queries[:3], 11)
    assert [c for c in calls if c[0] == "mih"] == [("mih", 2 if not grouped else 1), ("mih", 3 if not grouped else 1)]


def test_the_history_of_tries_is_forgotten_by_a_refit_and_left_out_of_pickles(monkeypatch):
    import pickle

    calls = _routed_calls(monkeypatch)
    rng = np.random.default_rng(12)
    db = _database("uniform", 2**17 + 100, 8, rng)
    query = _database("uniform", 1, 8, rng)
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    for _ in range(3):  # lost, lost, lost: the share lost over three quarters
        auto.kneighbors(query)
    calls.clear()
    auto.kneighbors(query)
    assert calls == [("scan", 1)]  # waiting
    assert "_tries" not in pickle.loads(pickle.dumps(auto)).__dict__
    for fresh in (pickle.loads(pickle.dumps(auto)), auto.fit(db)):
        calls.clear()
        fresh.kneighbors(query)
        assert calls[0] == ("mih", 1)


def test_calls_whose_mih_queries_finish_within_budget_keep_trying_mih(monkeypatch):
    # Near copies of 2,000 codes, k = 10: MIH answers every query within its budget, and
    # every call goes through MIH.
    calls = _routed_calls(monkeypatch)
    rng = np.random.default_rng(8)
    base = _database("uniform", 2000, 8, rng)
    db = base[rng.integers(0, len(base), 2**17 + 100)] ^ np.packbits(
        rng.random((2**17 + 100, 64)) < 0.02, axis=1, bitorder="little")
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    for call in range(10):
        query = base[call:call + 1]
        _assert_same(auto.kneighbors(query), _reference(query, db, 10))
    assert calls == [("mih", 1)] * 10


@pytest.mark.parametrize("share", [0.4, 0.6])
def test_a_group_of_queries_whose_mih_work_passes_their_share_of_the_group_scan_stops_the_tries(monkeypatch, share):
    # Near copies of 2,000 codes, twelve queries a call, scanned as a group: MIH answers
    # them all within budget, but (its reported work inflated here) each one's work is a
    # share of the first query's budget (what a group's scan costs a query, counted as a
    # lone query's scans). Past half of it, the call lost; three lost calls in a row stop
    # the tries.
    monkeypatch.setattr(hamming, "scans_in_groups", lambda n_words, n_queries: True)
    calls = []
    mih_knn = hamming.mih_knn

    def inflating_mih_knn(db, mih, queries, k, exclude, budget, *args, **kwargs):
        dist, ind, work = mih_knn(db, mih, queries, k, exclude, budget, *args, **kwargs)
        calls.append(len(queries))
        if len(queries) > 1:  # the rest, after the first query
            work[work >= 0] = int(share * probe)
        return dist, ind, work

    monkeypatch.setattr(hamming, "mih_knn", inflating_mih_knn)
    rng = np.random.default_rng(13)
    base = _database("uniform", 2000, 8, rng)
    db = base[rng.integers(0, len(base), 2**17 + 100)] ^ np.packbits(
        rng.random((2**17 + 100, 64)) < 0.02, axis=1, bitorder="little")
    budget = max(1, 2 * len(db) // _mih.SCAN_CODES_PER_WORK)
    probe = budget * hamming.MIN_QUERIES // (2 * 12)
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    for call in range(4):
        queries = base[12 * call:12 * call + 12]
        _assert_same(auto.kneighbors(queries), _reference(queries, db, 10))
    assert calls == [1, 11] * (3 if share > 0.5 else 4)


def test_mih_cannot_win_when_most_queries_would_probe_past_the_budget():
    index = build_multi_index(pack_words(_database("uniform", 1000, 8, np.random.default_rng(7))), 64, 4)
    # 4 tables of 16 bits: a k-th distance of 7 takes rounds 0-1 (17 probes a table), of 20
    # rounds 0-5 (6,885 a table).
    assert _mih.probe_count(index, 7) == 68 and _mih.probe_count(index, 20) == 27_540
    assert hamming._mih_cannot_win(index, np.array([20, 20, 7]), 1000)
    assert not hamming._mih_cannot_win(index, np.array([20, 7, 7]), 1000)
    assert not hamming._mih_cannot_win(index, np.array([20, 20, 20]), 30_000)


def test_auto_times_the_scan_on_its_first_queries_over_codes_the_cache_holds(monkeypatch):
    # Codes that fit in the cache: the first sixteen queries are scanned over all the codes
    # (timed, and their results kept), the next ones go through MIH, and nothing is scanned
    # twice; scaled up from a share of the codes, the scan's selection was counted several
    # times over (k = 100 on 1M codes read at half the scan's speed).
    
    calls = []
    knn_search, mih_knn = hamming.knn_search, hamming.mih_knn

    def recording_knn_search(db, queries, *args, **kwargs):
        calls.append(("scan", db.shape[1], len(queries)))
        return knn_search(db, queries, *args, **kwargs)

    def recording_mih_knn(db, mih, queries, *args, **kwargs):
        calls.append(("mih", db.shape[1], len(queries)))
        return mih_knn(db, mih, queries, *args, **kwargs)

    monkeypatch.setattr(hamming, "knn_search", recording_knn_search)
    monkeypatch.setattr(hamming, "mih_knn", recording_mih_knn)
    rng = np.random.default_rng(4)
    db = _database("clustered", 2**17 + 100, 8, rng)
    queries = np.concatenate([db[:30], _database("clustered", 30, 8, rng)])
    auto = HammingNeighbors(n_neighbors=100).fit(db)
    assert auto._index.nbytes <= hamming._CACHED_DB_BYTES
    auto.kneighbors(queries[:20])  # loads or compiles everything: the calls below are the search's
    calls.clear()
    dist, ind = auto.kneighbors(queries)
    full_scans = [c for c in calls if c[0] == "scan" and c[1] == len(db)]
    assert full_scans[0] == ("scan", len(db), 16)
    assert sum(n for kind, _, n in calls if kind == "mih") <= len(queries) - 16  # the scanned ones are not redone
    assert {rows for kind, rows, _ in calls if kind == "scan"} <= {len(db), hamming._AUTO_LOAD_ROWS}
    _assert_same((dist, ind), _reference(queries, db, 100))


def test_auto_does_not_judge_mih_on_its_first_batch_alone(monkeypatch):
    # The first MIH batch runs on caches the scan has just streamed the codes through and can
    # be several times slower a query than the next ones: it alone must not send the rest to
    # the scan, and once more batches are timed it is left out.
    rng = np.random.default_rng(5)
    # Ten near copies of each of 13,118 random codes: every query's ten neighbours are a few
    # bits away and the buckets small, so no MIH query overruns its budget.
    base = _database("uniform", 13_118, 8, rng)
    flips = np.packbits(rng.random((10 * len(base), 64)) < 0.02, axis=1, bitorder="little")
    db = np.repeat(base, 10, axis=0) ^ flips
    queries = base[rng.integers(0, len(base), 400)]
    auto = HammingNeighbors(n_neighbors=10).fit(db)
    auto.kneighbors(queries[:20])  # loads or compiles everything
    routed = _count_mih_queries(monkeypatch)
    # Clock readings, two a timed span: the scan's group 1 s a query, the first MIH batch
    # 2 s a query (alone it would lose), the second 0.5 s a query.
    readings = iter([0.0, 16.0, 16.0, 48.0, 48.0, 56.0])
    monkeypatch.setattr(hamming.time, "perf_counter", lambda: next(readings, 100.0))
    dist, ind = auto.kneighbors(queries)
    assert routed == [16, 16, 400 - 48]  # two batches sampled, then the rest through MIH
    _assert_same((dist, ind), _reference(queries, db, 10))


def test_a_query_over_its_work_budget_is_reported_not_answered():
    rng = np.random.default_rng(2)
    db = _database("uniform", 5000, 8, rng)
    words = pack_words(db)
    index = build_multi_index(words, 64, 5)
    # 32 bits from a code, so no query is proven in its first round (the budget is checked
    # between rounds).
    queries = pack_words(db[:8] ^ np.uint8(0x0F)).T
    _, _, free = mih_knn(words, index, queries, 5)
    dist, ind, capped = mih_knn(words, index, queries, 5, budget=1)
    assert np.all(free > 1) and np.all(capped == -1)
    # A budget whose checkpoint (the estimate of the k-th distance) none of them reaches.
    dist, ind, work = mih_knn(words, index, queries, 5, budget=_mih._CHECK_SHARE * int(free.max()))
    np.testing.assert_array_equal(work, free)
    _assert_same((dist, ind), _reference(db[:8] ^ np.uint8(0x0F), db, 5))


def test_a_query_past_its_checkpoint_stops_when_its_estimated_kth_distance_would_overrun_its_budget():
    # 1,600 uniform codes: the sample (16 blocks of 100 codes) is all of them, so the estimate
    # is the k-th distance itself, and proving it costs about the work modelled.
    rng = np.random.default_rng(12)
    db = _database("uniform", 1600, 8, rng)
    words = pack_words(db)
    index = build_multi_index(words, 64, 7)
    queries = _database("uniform", 60, 8, rng)
    query_words = pack_words(queries).T
    ref_dist, _ = _reference(queries, db, 5)
    kth = estimate_kth(words, query_words, 5)
    np.testing.assert_array_equal(kth, ref_dist[:, -1])
    binomials = _mih._binomials(int(index.lengths.max()))
    modelled = np.array([_mih._proof_work(index.lengths, binomials, len(db), d) for d in kth])
    _, _, free = mih_knn(words, index, query_words, 5)
    assert 0.7 < free.mean() / modelled.mean() < 1.3
    budget = int(np.median(modelled))
    assert budget // _mih._CHECK_SHARE < free.min()  # every query reaches its checkpoint
    dist, ind, work = mih_knn(words, index, query_words, 5, budget=budget)
    answered = work >= 0
    np.testing.assert_array_equal(answered, (free <= budget) & (modelled <= budget))
    assert np.any((free <= budget) & (modelled > budget))  # given up by the estimate alone
    np.testing.assert_array_equal(work[answered], free[answered])
    _assert_same((dist[answered], ind[answered]), _reference(queries[answered], db, 5))


def test_a_query_holding_k_rows_cheap_to_prove_at_its_checkpoint_goes_on_without_the_sample():
    # 40,000 uniform codes, and 40 copies of the query with 8 bits flipped among the codes
    # the sample leaves out: over the sample the query's k-th distance looks ~20 bits (far
    # over budget to prove), but by its checkpoint MIH has found copies 8 bits away.
    rng = np.random.default_rng(14)
    db = _database("uniform", 40_000, 8, rng)
    query = _database("uniform", 1, 8, rng)
    for row in range(1100, 1140):  # between the first two sampled blocks (rows 0-1023, 2500-3523)
        flips = np.zeros(64, dtype=bool)
        flips[rng.choice(64, 8, replace=False)] = True
        db[row] = query[0] ^ np.packbits(flips, bitorder="little")
    words, query_words = pack_words(db), pack_words(query).T
    index = build_multi_index(words, 64, 4)
    budget = 1600
    binomials = _mih._binomials(16)
    assert _mih._proof_work(index.lengths, binomials, len(db), estimate_kth(words, query_words, 5)[0]) > budget
    _, _, free = mih_knn(words, index, query_words, 5)
    assert budget // _mih._CHECK_SHARE < free[0] <= budget
    dist, ind, work = mih_knn(words, index, query_words, 5, budget=budget)
    assert work[0] == free[0]
    _assert_same((dist, ind), _reference(query, db, 5))


def test_the_kth_estimate_is_the_rank_it_stands_for_in_blocks_spread_over_the_codes():
    rng = np.random.default_rng(13)
    queries = _database("clustered", 3, 16, rng)
    for n in (40_000, 1_600, 5):  # blocks of 1,024 codes; of 100 (all the codes); of one
        db = _database("clustered", n, 16, rng)
        d = np.bitwise_count(queries[:, None, :] ^ db[None, :, :]).sum(-1)
        blocks, block, _ = estimate_sample(n, 1)
        step = n // blocks
        sample = np.concatenate([d[:, b * step:b * step + block] for b in range(blocks)], axis=1)
        assert blocks * block == min(n, _kernels._ESTIMATE_BLOCKS * _kernels._ESTIMATE_BLOCK_ROWS)
        for k in (1, 4, 10, 100, 1000):
            # The sample's share of the k nearest, rounded up (all of it for k > N).
            rank = min(sample.shape[1], -(-k * sample.shape[1] // n))
            assert estimate_sample(n, k)[2] == rank
            np.testing.assert_array_equal(estimate_kth(pack_words(db), pack_words(queries).T, k),
                                          np.sort(sample, axis=1)[:, rank - 1])


def test_row_numbers_take_three_bytes_below_2_24_rows_and_four_from_there(monkeypatch):
    rng = np.random.default_rng(6)
    db = _database("clustered", 3000, 8, rng)
    queries = _database("clustered", 20, 8, rng)
    words, query_words = pack_words(db), pack_words(queries).T
    narrow = build_multi_index(words, 64, 4)
    assert narrow.row_bytes == 3 and narrow.rows.shape == (4, 3 * 3000 + 1)
    # 2**24 rows are too many for a test: widen from 2,000 rows instead. An index that grows
    # past the limit is widened when it is extended.
    monkeypatch.setattr(_mih, "_row_bytes", lambda n_rows: 3 if n_rows < 2000 else 4)
    wide = build_multi_index(words, 64, 4)
    grown = extend_multi_index(build_multi_index(words[:, :1000], 64, 4), words, 1000)
    assert wide.rows.dtype == grown.rows.dtype == np.uint32
    bytes3 = narrow.rows[:, :-1].reshape(4, 3000, 3).astype(np.uint32)
    np.testing.assert_array_equal(bytes3[..., 0] | bytes3[..., 1] << 8 | bytes3[..., 2] << 16, wide.rows)
    np.testing.assert_array_equal(grown.rows, wide.rows)
    assert narrow.nbytes - 4 == wide.nbytes - 4 * 3000 * 4 + 4 * 3000 * 3  # a quarter less for the rows
    for index in (narrow, wide, grown):
        _assert_same(mih_knn(words, index, query_words, 10)[:2], _reference(queries, db, 10))


def test_substrings_wider_than_the_tables_allow_are_refused():
    db = _database("uniform", 100, 8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_substrings=2 cuts 64-bit codes into substrings of 32 bits"):
        HammingNeighbors(algorithm="mih", n_substrings=2).fit(db)
    with pytest.raises(ValueError, match="algorithm='mih' needs backend='numba'"):
        HammingNeighbors(algorithm="mih", backend="numpy").fit(db)


@pytest.mark.parametrize("n_bytes", [8, 16])
@pytest.mark.parametrize("algorithm, backend", [("mih", "numba"), ("brute", "numba"), ("brute", "numpy"),
                                                ("brute", "faiss")])
def test_partial_fit_equals_a_fit_on_all_codes(n_bytes, algorithm, backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    db = _database("clustered", 3000, n_bytes, rng)
    queries = _database("clustered", 25, n_bytes, rng)
    # The tables keep the substrings chosen at the first fit ("auto" would choose from
    # 1,000 codes there, from 3,000 here): fix them to compare the tables.
    params = dict(algorithm=algorithm, backend=backend, n_neighbors=15, radius=n_bytes, n_substrings=n_bytes // 2)
    grown = HammingNeighbors(**params)
    for part in np.array_split(db, [1000, 1001, 2500]):
        grown.partial_fit(part)
    whole = HammingNeighbors(**params).fit(db)
    assert grown.n_samples_fit_ == 3000 and grown.n_substrings_ == whole.n_substrings_
    _assert_same(grown.kneighbors(queries), whole.kneighbors(queries))
    _assert_same(grown.radius_neighbors(queries), whole.radius_neighbors(queries))
    if algorithm == "mih":
        for name in ("offsets", "rows"):  # the merged tables are the tables of all codes
            np.testing.assert_array_equal(getattr(grown._mih, name), getattr(whole._mih, name))
    with pytest.raises(ValueError, match=f"{n_bytes} bytes .* were expected"):
        grown.partial_fit(db[:3, :4])


@pytest.mark.parametrize("n_bytes", [8, 16])
def test_saved_index_opens_memory_mapped_with_the_same_neighbours(tmp_path, n_bytes):
    rng = np.random.default_rng(4)
    db = _database("clustered", 4000, n_bytes, rng)
    queries = _database("clustered", 30, n_bytes, rng)
    nn = HammingNeighbors(algorithm="mih", n_neighbors=9, n_substrings=n_bytes // 2).fit(db)
    nn.save_index(tmp_path / "index")
    loaded = HammingNeighbors.load_index(tmp_path / "index")
    assert loaded.get_params() == nn.get_params() and loaded.n_substrings_ == n_bytes // 2
    assert isinstance(loaded._fit_X, np.memmap) and isinstance(loaded._mih.rows, np.memmap)
    _assert_same(loaded.kneighbors(queries), nn.kneighbors(queries))
    _assert_same(loaded.radius_neighbors(queries, 10), nn.radius_neighbors(queries, 10))
    in_memory = HammingNeighbors.load_index(tmp_path / "index", mmap=False)
    assert not isinstance(in_memory._mih.rows, np.memmap)
    _assert_same(in_memory.kneighbors(queries), nn.kneighbors(queries))
    loaded.partial_fit(db[:10])  # a mapped index grows in memory; the files stay as they were
    _assert_same(HammingNeighbors.load_index(tmp_path / "index").kneighbors(queries), nn.kneighbors(queries))
    with pytest.raises(FileNotFoundError):
        HammingNeighbors.load_index(tmp_path / "missing")


def test_a_read_only_database_is_not_copied(tmp_path):
    rng = np.random.default_rng(5)
    db = _database("clustered", 3000, 8, rng)
    np.save(tmp_path / "codes.npy", db)
    mapped = np.load(tmp_path / "codes.npy", mmap_mode="r")
    nn = HammingNeighbors(algorithm="mih").fit(mapped)
    # 64-bit codes: the codes and the scan layout are the file's pages, no copy in memory.
    assert np.shares_memory(nn._fit_X, mapped) and np.shares_memory(nn._index, mapped)
    _assert_same(nn.kneighbors(db[:20]), _reference(db[:20], db, 5))
    writeable = db.copy()
    fitted = HammingNeighbors().fit(writeable)
    assert not np.shares_memory(fitted._fit_X, writeable)  # a writeable array is copied
