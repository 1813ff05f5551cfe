"""The retrieval benchmark runs end to end on digits (tiny settings), variants included."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_retrieval_benchmark_digits_with_variants(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "retrieval.py"), "digits", "--out", str(tmp_path),
           "--bits", "16", "--seeds", "2", "--epochs", "2",
           "--methods", "ITQ", "binary quantization", "plain NCE", "m4", "wide",
           "--variant", "m4:n_positives=4,sorter=softsort",
           "--variant", "wide:hidden_sizes=64/32,mix_neighbors=0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"ITQ", "binary quantization", "plain NCE", "m4", "wide"}
    bq = rows["binary quantization"]
    assert (bq["bits"], bq["bytes"]) == ("64", "8.0")  # one bit per digits feature, whatever --bits says
    for row in rows.values():  # recall grows with the candidates re-ranked
        assert 0 <= float(row["r10_at_10"]) <= float(row["r10_at_100"]) <= float(row["r10_at_1000"]) <= 1
    assert rows["ITQ"]["seeds"] == "1" and rows["m4"]["seeds"] == "2"
    assert all(0.1 < float(r["map_at_k"]) <= 1.0 for r in rows.values())
    assert "| wide |" in (tmp_path / "results.md").read_text()
    assert "| binary quantization | 64 | 8 |" in (tmp_path / "results.md").read_text()
    with open(tmp_path / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert [r["seed"] for r in runs if r["method"] == "m4"] == ["0", "1"]


def test_merge_runs_pools_seeds_of_separate_processes(tmp_path):
    """Two processes, one seed each, merge to the table one process with two seeds gives."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    bench = ROOT / "benchmarks"
    common = ["digits", "--bits", "16", "--seeds", "1", "--epochs", "1", "--methods", "ITQ", "plain NCE"]
    for seed in (0, 1):
        cmd = [sys.executable, str(bench / "retrieval.py"), *common, "--first-seed", str(seed),
               "--out", str(tmp_path / f"s{seed}")]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
    runs = [str(tmp_path / f"s{seed}" / "runs.csv") for seed in (0, 1)]
    result = subprocess.run([sys.executable, str(bench / "merge_runs.py"), *runs, "--out", str(tmp_path / "m")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for seed in (0, 1):
        with open(tmp_path / f"s{seed}" / "results.csv") as f:
            for r in csv.DictReader(f):
                rows.setdefault(r["method"], []).append(float(r["map_at_k"]))
    with open(tmp_path / "m" / "results.csv") as f:
        merged = {r["method"]: r for r in csv.DictReader(f)}
    assert set(merged) == {"ITQ", "plain NCE"}
    for method, values in rows.items():
        assert merged[method]["seeds"] == "2"
        assert float(merged[method]["map_at_k"]) == pytest.approx(np.mean(values))
        assert float(merged[method]["map_at_k_std"]) == pytest.approx(np.std(values))
    # The same seed merged twice is an error, not a double count.
    result = subprocess.run([sys.executable, str(bench / "merge_runs.py"), runs[0], runs[0],
                             "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0 and "appears twice" in result.stderr


def test_retrieval_benchmark_rejects_views_variant_without_views(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "retrieval.py"), "digits", "--out", str(tmp_path),
           "--bits", "16", "--seeds", "1", "--epochs", "1", "--methods", "mv", "--variant", "mv:views=1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0 and "pass --views" in result.stderr


def _load_benchmark(name="retrieval"):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variant_parsing_takes_the_estimators_parameters():
    retrieval = _load_benchmark()
    params = retrieval.parse_params("n_positives=4,noise_std=0.3,sorter=softsort,encoder=none")
    assert params == {"n_positives": 4, "noise_std": 0.3, "sorter": "softsort", "encoder": None}
    for text, widths in (("2048", (2048,)), ("1024/512", (1024, 512))):
        wide = retrieval.variant(retrieval.parse_params(f"hidden_sizes={text}"), epochs=1)(8, 0)
        assert wide.hidden_sizes == widths
    make = retrieval.variant({"n_positives": 4, "views": 1}, epochs=5)
    model = make(16, 3)
    assert (model.n_bits, model.random_state, model.max_epochs, model.n_positives) == (16, 3, 5, 4)
    assert make.views and "views" not in model.get_params()


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_bytes", [8, 32, 40])
def test_popcount_bound_computes_every_distance(n_bytes, dtype):
    # The bound adds up the distance of each block's first row, which it computes with
    # every other row's (the output only keeps the compiler from dropping the pass).
    from sortedhash.neighbors._kernels import _DB_BLOCK, _block_rows, pack_words

    search = _load_benchmark("hamming_search")
    rng = np.random.default_rng(2)
    db = rng.integers(0, 256, (2 * _DB_BLOCK + 100, n_bytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (33, n_bytes), dtype=np.uint8)
    full = np.bitwise_count(queries[:, None, :] ^ db[None, :, :]).sum(-1, dtype=np.int64)
    block = _block_rows.py_func(pack_words(db).shape[0])
    expected = full[:, ::block].sum(axis=1)
    np.testing.assert_array_equal(search.popcount_bound(pack_words(db), pack_words(queries).T, dtype=dtype), expected)


@pytest.mark.parametrize("n_bytes", [8, 16, 32])
def test_lane_popcount_bound_computes_every_distance(n_bytes):
    # Each group of sixteen queries sums its distances over each scan step and XORs the
    # steps' sums into a checksum a lane (one block of rows here); lanes without a query
    # hold zeros (their distances are the rows' popcounts).
    from sortedhash.neighbors._kernels import pack_words
    from sortedhash.neighbors._lanes import LANES, SCAN_ROWS

    search = _load_benchmark("hamming_search")
    rng = np.random.default_rng(3)
    db = rng.integers(0, 256, (10 * SCAN_ROWS + 5, n_bytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (2 * LANES + 1, n_bytes), dtype=np.uint8)
    lanes = np.zeros((3 * LANES, n_bytes), dtype=np.uint8)
    lanes[: len(queries)] = queries
    full = np.bitwise_count(lanes[:, None, :] ^ db[None, :10 * SCAN_ROWS, :]).sum(-1, dtype=np.int64)
    step_sums = full.reshape(3 * LANES, 10, SCAN_ROWS).sum(axis=2)
    checksums = np.bitwise_xor.reduce(step_sums, axis=1).reshape(3, LANES).sum(axis=1)
    expected = np.zeros(len(queries), dtype=np.int64)
    expected[0], expected[LANES], expected[2 * LANES] = checksums
    np.testing.assert_array_equal(search.lane_popcount_bound(pack_words(db), pack_words(queries).T), expected)


def test_rerank_speed_runs_every_method_against_exact_search(tmp_path):
    pytest.importorskip("faiss")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rerank_speed.py"), "digits", "--rows", "5000", "--queries", "50",
           "--bits", "16", "--epochs", "1", "--candidates", "50", "5000", "--ef-search", "16", "--k-factors", "10",
           "--out", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| ") and "q/s" not in line]
    assert [row[1].strip() for row in table] == ["exact float (IndexFlatIP)", "HNSW (M=32)",
                                                 "binary quantization 64 bits + IndexRefineFlat",
                                                 "binary quantization 64 bits + re-ranking",
                                                 "binary quantization 64 bits + re-ranking",
                                                 "NSH 16 bits + re-ranking", "NSH 16 bits + re-ranking"]
    # Re-ranking every row is exact search: recall 1.
    assert float(table[-1][4]) == 1.0 and float(table[-3][4]) == 1.0 and "fastest setting" in result.stdout
    # Exact search timed first and last; the faster of the two is the table's reference.
    start, end = (float(v.replace(",", "")) for v in
                  re.search(r"exact search: ([\d,]+) q/s at the start, ([\d,]+) at the end", result.stdout).groups())
    assert abs(float(table[0][3].replace(",", "")) - max(start, end)) <= 1
    with open(tmp_path / "rows.csv") as f:
        assert len(list(csv.DictReader(f))) == len(table)
    assert (tmp_path / "recall_qps.png").exists()


def test_rerank_speed_skips_hnsw_and_nsh_when_given_no_settings():
    pytest.importorskip("faiss")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rerank_speed.py"), "digits", "--rows", "3000", "--queries", "20",
           "--bits", "--ef-search", "--candidates", "50", "--k-factors", "10", "--reranked", "20", "50"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| ") and "q/s" not in line]
    assert [row[1].strip() for row in table] == ["exact float (IndexFlatIP)",
                                                 "binary quantization 64 bits + IndexRefineFlat",
                                                 "binary quantization 64 bits + re-ranking",
                                                 "binary quantization 64 bits + re-ranking"]
    # --reranked: fewer than the candidates only (50 of 50 is the plain setting).
    assert [row[2].strip() for row in table[2:]] == ["n_candidates=50", "n_candidates=50, n_reranked=20"]
    assert "HNSW built" not in result.stdout


def test_rerank_speed_forces_the_blas_core_only_for_a_misread_cpu():
    # faiss's OpenBLAS read an Ice Lake Xeon as a Prescott: exact search ran its generic kernel.
    core_to_force = _load_benchmark("rerank_speed").core_to_force
    assert core_to_force({"Prescott"}, {"sse3", "avx2", "avx512f"}) == "SkylakeX"
    assert core_to_force({"Prescott", "SkylakeX"}, {"avx2"}) == "Haswell"
    assert core_to_force({"SkylakeX"}, {"avx2", "avx512f"}) is None  # read right
    assert core_to_force({"Zen"}, {"avx2"}) is None
    assert core_to_force({"Prescott"}, {"sse3"}) is None  # the CPU is as old as it says


def test_rerank_speed_mixes_lie_between_real_neighbours():
    pytest.importorskip("faiss")
    enlarge = _load_benchmark("rerank_speed").enlarge
    rng = np.random.default_rng(0)
    real = rng.standard_normal((40, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    out = enlarge(real, 200, 1.0, how="mix")
    np.testing.assert_array_equal(out[:40], real)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # Each added row lies on a segment from a real row to one of its 10 nearest (the ray
    # through it, once normalised: a non-negative combination of the two).
    neighbours = np.argsort(-(real @ real.T), axis=1)[:, 1:11]
    pairs = [np.stack([real[a], real[b]], axis=1) for a in range(40) for b in neighbours[a]]

    def off_every_segment(row):
        gaps = [np.inf]
        for pair in pairs:
            coef = np.linalg.lstsq(pair, row, rcond=None)[0]
            if coef.min() >= -1e-4:
                gaps.append(np.linalg.norm(pair @ coef - row))
        return min(gaps)

    assert max(off_every_segment(row) for row in out[40:]) < 1e-4
    # Noisy copies do not: most lie far from every such segment.
    assert np.median([off_every_segment(row) for row in enlarge(real, 60, 1.0, how="noise")[40:]]) > 0.1


def test_search_scale_checks_every_method_against_the_scan(tmp_path):
    """The benchmark runs end to end (learned codes of digits, uniform codes) and its
    exactness checks hold: MIH, auto and faiss's flat index agree with the scan."""
    pytest.importorskip("faiss")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "search_scale.py"), "--dataset", "digits", "--workdir",
           str(tmp_path), "--sizes", "140000", "--queries", "40", "--epochs", "1", "--k", "5", "--skip-cold-start",
           "--hnsw-max-rows", "0", "--plot", str(tmp_path / "qps.png")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| 140,000")]
    assert len(rows) == 2  # learned and uniform, k = 5, one thread
    assert all(row[3].strip() == "5" and float(row[10]) > 0 for row in rows)
    assert "k-th distance p10/p50/p90, k = 5: real rows" in result.stdout
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["learned_digits_64_1_140000_5.0.npy",
                                                            "learned_digits_64_1_140000_5.0.queries.npy"]
    assert (tmp_path / "qps.png").exists()
    log = tmp_path / "out.txt"
    log.write_text(result.stdout)
    parsed = _load_benchmark("search_scale").parse_rows(result.stdout.splitlines())
    assert [(r["kind"], r["N"], r["k"]) for r in parsed] == [("learned", 140000, 5), ("uniform", 140000, 5)]
    assert result.stdout.count("bits, 40 queries (") == 2

    # A later run asking for more queries gets them, its codes and model taken from the workdir.
    cmd[cmd.index("--queries") + 1] = "60"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("bits, 60 queries (") == 2
    assert len(np.load(tmp_path / "learned_digits_64_1_140000_5.0.queries.npy")) == 60


def test_search_scale_searches_in_calls_of_the_asked_size():
    in_calls = _load_benchmark("search_scale").in_calls
    sizes = []

    def search(q):
        sizes.append(len(q))
        return q * 2, q + 1

    queries = np.arange(10)[:, None]
    dist, ind = in_calls(search, queries, 4)
    assert sizes == [4, 4, 2]
    np.testing.assert_array_equal(dist, queries * 2)
    np.testing.assert_array_equal(ind, queries + 1)
    sizes.clear()
    in_calls(search, queries, None)
    assert sizes == [10]


def test_dask_scale_compares_both_paths_and_checks_they_agree():
    """The benchmark runs end to end on a small LocalCluster; its agreement check holds."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "dask_scale.py"), "--n-rows", "60000", "--n-features", "32",
           "--chunk-rows", "20000", "--n-queries", "50", "--k", "10", "--fit-epochs", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    stages = [line.split()[0:2] for line in result.stdout.splitlines()[3:10]]
    assert [" ".join(s) if s[0] in ("fit", "search") else s[0] for s in stages] == [
        "encode", "fit brute", "search brute", "fit auto", "search auto", "total", "total"]
    # The one-process side encodes with every core, the workers with one thread each: BLAS
    # then rounds some products differently, and a projection within rounding of 0 may get
    # the other bit (documented; 1 row of 60,000 with this release's model, 0 before).
    differing = re.search(r"codes differing: (\d+) of 60,000 rows \((\d+) bits\); identical neighbours: True",
                          result.stdout)
    assert differing is not None, result.stdout
    assert int(differing[1]) <= 6 and int(differing[2]) == int(differing[1])  # one bit a row at most
    assert "peak RSS of the client" in result.stdout


def test_train_step_prints_the_fit_ratio_and_the_step_breakdown():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--n-features", "16", "--n-bits", "8",
           "--n-samples", "300", "--fit-epochs", "1", "--batches", "32", "--repeats", "2", "--device", "cpu",
           "--latent-dim", "8"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    fit = next(line for line in out.splitlines() if line.startswith("cpu") and "ratio" in line)
    nsh, plain, ratio = map(float, re.search(r"NSH ([\d.]+) s, plain ([\d.]+) s, ratio ([\d.]+)x", fit).groups())
    # The times are printed to 0.01 s, the ratio from the unrounded times.
    assert (nsh - 0.005) / (plain + 0.005) - 0.005 <= ratio <= (nsh + 0.005) / (plain - 0.005) + 0.005
    step = next(line for line in out.splitlines() if line.strip().startswith("32 |"))
    cells = [c.strip() for c in step.split("|")]
    # Milliseconds printed to 0.01 (a step here lasts ~1 ms), the ratio from the unrounded times.
    step_nsh, step_plain, step_ratio = float(cells[3]), float(cells[1]), float(cells[-1].rstrip("x"))
    assert (step_nsh - 0.005) / (step_plain + 0.005) - 0.005 <= step_ratio
    assert step_ratio <= (step_nsh + 0.005) / (step_plain - 0.005) + 0.005
    assert "skorch" in out and "bare loop" in out
    assert "(bits, 8)" in out.splitlines()[0]
