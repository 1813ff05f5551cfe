import os
import signal
import threading
import time

import dask.array as da
import numpy as np
import pytest

from sortedhash import HammingNeighbors
from sortedhash.dask import DaskHammingNeighbors

# A real cluster can hang where a function cannot: bound every test.
pytestmark = pytest.mark.timeout(300)


def _codes(n, n_bytes=8, seed=0, n_centres=None):
    rng = np.random.default_rng(seed)
    if n_centres is None:
        return rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    centres = rng.integers(0, 256, (n_centres, n_bytes), dtype=np.uint8)
    flips = np.packbits(rng.random((n, 8 * n_bytes)) < 0.05, axis=1, bitorder="little")
    return centres[rng.integers(0, n_centres, n)] ^ flips


def _assert_same_knn(got, want):
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def _assert_same_radius(got, want):
    for g, w in zip(got, want):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def database():
    db = _codes(3000, n_centres=40)
    db[1000:1100] = db[5]  # ties across shard borders
    return db


@pytest.mark.parametrize("chunks", [(3000,), (1000, 1000, 1000), (7, 0, 1993, 0, 1000), (2999, 1)])
def test_kneighbors_equal_one_process_search(client, database, chunks):
    queries = np.concatenate([database[:20], _codes(60, seed=1)])
    model = DaskHammingNeighbors(n_neighbors=7).fit(da.from_array(database, chunks=(chunks, 8)))
    reference = HammingNeighbors(n_neighbors=7).fit(database)
    assert model.n_samples_fit_ == 3000 and list(model.shard_sizes_) == list(chunks)
    _assert_same_knn(model.kneighbors(queries), reference.kneighbors(queries))
    # k larger than every shard but one, and than all of them but the total.
    for k in (1500, 3000):
        _assert_same_knn(model.kneighbors(queries, k), reference.kneighbors(queries, k))
    np.testing.assert_array_equal(model.kneighbors(queries, return_distance=False),
                                  reference.kneighbors(queries, return_distance=False))


@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_neighbors_equal_one_process_search(client, database, sort_results):
    queries = np.concatenate([database[:20], _codes(30, seed=2)])
    model = DaskHammingNeighbors().fit(da.from_array(database, chunks=((1000, 0, 1500, 500), 8)))
    reference = HammingNeighbors().fit(database)
    for radius in (0, 6, 64):
        _assert_same_radius(model.radius_neighbors(queries, radius, sort_results=sort_results),
                            reference.radius_neighbors(queries, radius, sort_results=sort_results))


def test_graphs_equal_one_process_search(client, database):
    queries = database[:50]
    model = DaskHammingNeighbors().fit(da.from_array(database, chunks=700))
    reference = HammingNeighbors().fit(database)
    for mode in ("connectivity", "distance"):
        assert (model.kneighbors_graph(queries, 4, mode) != reference.kneighbors_graph(queries, 4, mode)).nnz == 0
        assert (model.radius_neighbors_graph(queries, 5, mode)
                != reference.radius_neighbors_graph(queries, 5, mode)).nnz == 0


@pytest.mark.parametrize("algorithm", ["brute", "mih"])
def test_every_shard_algorithm_and_wide_codes(client, algorithm):
    db = _codes(2000, n_bytes=32, n_centres=10, seed=3)
    queries = _codes(40, n_bytes=32, n_centres=10, seed=4)
    model = DaskHammingNeighbors(algorithm=algorithm, n_neighbors=9).fit(da.from_array(db, chunks=(600, 16)))
    _assert_same_knn(model.kneighbors(queries), HammingNeighbors(n_neighbors=9).fit(db).kneighbors(queries))


def test_many_query_blocks_and_shards_merge_in_a_tree(client, monkeypatch):
    from sortedhash.dask import _neighbors

    monkeypatch.setattr(_neighbors, "_QUERY_BLOCK", 7)  # several query blocks
    db, queries = _codes(1000, seed=5), _codes(30, seed=6)
    model = DaskHammingNeighbors(n_neighbors=3).fit(da.from_array(db, chunks=50))  # 20 shards: two merge levels
    _assert_same_knn(model.kneighbors(queries), HammingNeighbors(n_neighbors=3).fit(db).kneighbors(queries))
    _assert_same_radius(model.radius_neighbors(queries, 20),
                        HammingNeighbors().fit(db).radius_neighbors(queries, 20))


def test_shards_stay_on_the_workers(client, database):
    model = DaskHammingNeighbors().fit(da.from_array(database, chunks=1000))
    held = client.who_has()
    assert all(held.get(shard.key) for shard in model._shards)  # persisted in workers' memory
    assert {w for shard in model._shards for w in held[shard.key]} <= set(client.scheduler_info()["workers"])


def test_in_memory_codes_and_local_scheduler(database):
    queries = database[:10]
    model = DaskHammingNeighbors(n_neighbors=4).fit(database)
    _assert_same_knn(model.kneighbors(queries), HammingNeighbors(n_neighbors=4).fit(database).kneighbors(queries))


def test_bad_input_is_named():
    from sklearn.exceptions import NotFittedError

    db = _codes(100)
    with pytest.raises(NotFittedError):
        DaskHammingNeighbors().kneighbors(db)
    with pytest.raises(TypeError, match="uint8"):
        DaskHammingNeighbors().fit(da.from_array(db.astype(np.float32)))
    with pytest.raises(ValueError, match="empty"):
        DaskHammingNeighbors().fit(da.from_array(db[:0], chunks=(0, 8)))
    model = DaskHammingNeighbors().fit(da.from_array(db, chunks=30))
    with pytest.raises(ValueError, match="n_neighbors=101"):
        model.kneighbors(db[:3], 101)
    with pytest.raises(ValueError, match="16 bytes"):
        model.kneighbors(_codes(3, n_bytes=16))
    with pytest.raises(ValueError, match="query codes X"):
        model.kneighbors()
    with pytest.raises(ValueError, match="needs backend='numba'"):
        DaskHammingNeighbors(algorithm="mih", backend="numpy").fit(db)


def _search_and_kill_a_worker(client, model, queries):
    """Run ``model.kneighbors(queries)`` and SIGKILL a worker while it searches a shard."""
    outcome = {}

    def search():
        try:
            outcome["result"] = model.kneighbors(queries)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error

    thread = threading.Thread(target=search)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = next(worker for worker, tasks in client.processing().items() if tasks)
    os.kill(client.run(os.getpid, workers=[busy])[busy], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
    return outcome


def _slow_model():
    # The numpy backend makes each shard's search last a second or more: the kill lands mid-call.
    db, queries = _codes(120_000, seed=7), _codes(1000, seed=8)
    return db, queries, DaskHammingNeighbors(n_neighbors=5, backend="numpy").fit(da.from_array(db, chunks=30_000))


def test_worker_killed_mid_search_is_recomputed_and_the_result_is_exact(client):
    db, queries, model = _slow_model()
    outcome = _search_and_kill_a_worker(client, model, queries)
    assert "error" not in outcome, outcome.get("error")
    _assert_same_knn(outcome["result"], HammingNeighbors(n_neighbors=5).fit(db).kneighbors(queries))


def test_worker_killed_mid_search_without_retries_raises():
    import dask
    from distributed import Client, KilledWorker, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            _, queries, model = _slow_model()
            outcome = _search_and_kill_a_worker(client, model, queries)
    assert "result" not in outcome
    assert isinstance(outcome["error"], KilledWorker)
