"""research/ scripts that are tools rather than tries: the kernel A/B and the feature probe."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, load_script


def _kernel_copy(tmp_path, name, *changes):
    """A copy of _kernels.py with each (old, new) of ``changes`` made."""
    source = (ROOT / "sortedhash" / "neighbors" / "_kernels.py").read_text()
    for old, new in changes:
        assert old in source
        source = source.replace(old, new)
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return str(path)


def _run_kernel_ab(kernels, bits):
    cmd = [sys.executable, str(ROOT / "research" / "hamming_kernel_ab.py"), "--kernels", *kernels,
           "--sizes", "5000", "--bits", *bits, "--queries", "40", "--threads", "1", "--repeats", "1"]
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if line.startswith("N=")]


def test_kernel_ab_compares_versions_and_catches_a_wrong_one(tmp_path):
    # Changed in both kernels (which runs depends on the code width and the CPU).
    small_blocks = _kernel_copy(tmp_path, "small_blocks",
                                ("return _NARROW_BLOCK if n_words <= 2 else _DB_BLOCK", "return 256"),
                                ("_LANE_BLOCK_WORDS = 8192", "_LANE_BLOCK_WORDS = 256"))
    rows = _run_kernel_ab([str(ROOT / "sortedhash" / "neighbors" / "_kernels.py"), small_blocks], ["64", "256"])
    assert len(rows) == 2 and all("small_blocks" in r and r.endswith("same distances: True") for r in rows)
    # Skipping rows a few steps inside the threshold loses neighbours.
    wrong = _kernel_copy(tmp_path, "wrong", ("if lowest >= t:", "if lowest >= t - 4:"),
                         ("if d >= t or row == skip[j]:", "if d >= t - 4 or row == skip[j]:"))
    rows = _run_kernel_ab([small_blocks, wrong], ["64"])
    assert len(rows) == 1 and rows[0].endswith("same distances: False")


def test_kernel_ab_refuses_copies_of_one_name(tmp_path):
    # Results are keyed by file name: two copies named alike would be reported as one.
    (tmp_path / "a").mkdir()
    copy = tmp_path / "a" / "_kernels.py"
    copy.write_text((ROOT / "sortedhash" / "neighbors" / "_kernels.py").read_text())
    cmd = [sys.executable, str(ROOT / "research" / "hamming_kernel_ab.py"), "--kernels", str(copy),
           str(ROOT / "sortedhash" / "neighbors" / "_kernels.py"), "--sizes", "100"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "own file name" in result.stderr


def test_rerank_kernel_ab_compares_versions_and_catches_a_wrong_one(tmp_path):
    source = (ROOT / "sortedhash" / "neighbors" / "_rerank_kernel.py").read_text()
    assert "return 1.0 - dot /" in source
    wrong = tmp_path / "wrong.py"
    wrong.write_text(source.replace("return 1.0 - dot /", "return 1.0 + dot /"))  # the farthest, not the nearest
    same = tmp_path / "same.py"
    same.write_text(source)

    def rows(*kernels):
        cmd = [sys.executable, str(ROOT / "research" / "rerank_kernel_ab.py"), "--kernels", *map(str, kernels),
               "--rows", "2000", "--features", "24", "--candidates", "100", "--queries", "20", "--k", "5", "50",
               "--repeats", "1"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                env=dict(os.environ, NUMBA_NUM_THREADS="1"))
        assert result.returncode == 0, result.stderr[-3000:]
        return [line for line in result.stdout.splitlines() if line.startswith("k=")]

    # k = 5 keeps neighbours by insertion, k = 50 by a sort: both paths compared.
    assert [r.endswith("same results: True") for r in rows(ROOT / "sortedhash" / "neighbors" / "_rerank_kernel.py",
                                                             same)] == [True, True]
    assert [r.endswith("same results: False") for r in rows(same, wrong)] == [True, True]


def test_rerank_stages_reports_each_stage_and_skips_settings_it_cannot_run():
    cmd = [sys.executable, str(ROOT / "research" / "rerank_stages.py"), "--rows", "3000", "--features", "24",
           "--queries", "40", "--candidates", "100", "--reranked", "5", "30", "100", "--k-hamming", "1",
           "--repeats", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, NUMBA_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == [
        "Hamming stage, k = 1", "Hamming stage, k = 100", "whole search, all 100 re-ranked",
        "whole search, 30 re-ranked"]  # 5 is under the 10 neighbours, 100 is every candidate
    assert re.search(r"middle stage ~-?\d+, re-ranking ~\d+", lines[-1])


def test_feature_probe_reports_the_strict_load():
    pytest.importorskip("efficientnet_lite_pytorch")
    assert load_script("research", "feature_probe").strict_load_report(64) == (296, True)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "cifar10_jpg").exists(),
                    reason="CIFAR-10 archives not found")
def test_feature_probe_pretrained_features_beat_a_random_network_and_pixels():
    pytest.importorskip("efficientnet_lite_pytorch")
    from sortedhash.datasets import load_cifar10_jpg

    probe = load_script("research", "feature_probe")
    data = ROOT.parent / "shared" / "data" / "cifar10_jpg"
    train_images, train_y, _ = load_cifar10_jpg(data, "train", per_class=30)
    test_images, test_y, _ = load_cifar10_jpg(data, "test", per_class=20)
    scores = {name: accuracy for name, (accuracy, _) in
              probe.probe_accuracies(train_images, train_y, test_images, test_y, image_size=96).items()}
    # Measured: 0.565 pretrained, 0.235 random weights, 0.235 pixels (chance is 0.1).
    pretrained = scores.pop("ImageNet EfficientNet-Lite0")
    assert set(scores) == {"same network, random weights", "raw pixels"}
    assert all(pretrained > other + 0.15 for other in scores.values())


def _run_mih_ab(tmp_path, replace, *extra):
    """The library's _mih.py against a copy with ``replace`` = (old, new) applied."""
    source = (ROOT / "sortedhash" / "neighbors" / "_mih.py").read_text()
    assert replace[0] in source
    copy = tmp_path / "copy.py"
    copy.write_text(source.replace(*replace))
    cmd = [sys.executable, str(ROOT / "research" / "mih_kernel_ab.py"), "--kernels",
           str(ROOT / "sortedhash" / "neighbors" / "_mih.py"), str(copy), "--repeats", "1", "--k", "5", *extra]
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if line.startswith("k=")], result.stdout


def test_mih_ab_catches_a_version_that_counts_candidates_twice(tmp_path):
    # Counting a candidate at a probe that is not the first to reach it gives duplicates.
    rows, out = _run_mih_ab(tmp_path, ("bound = s + 1 if j < table else s", "bound = s"),
                            "--uniform", "20000", "--n-queries", "50")
    assert len(rows) == 1 and "_mih" in rows[0] and "copy" in rows[0]
    assert rows[0].endswith("same results: False")
    per_work = re.search(r"scan codes per _mih work unit: (\d+)", out)
    assert per_work is not None and int(per_work[1]) > 0, out


def test_mih_ab_with_a_budget_counts_the_queries_given_up_and_catches_a_version_that_gives_up_others(tmp_path):
    # Uniform codes, a budget most queries fit in: the library also gives up, at their
    # checkpoint, those whose estimated k-th distance costs more to prove; a copy without the
    # estimate gives up only those that overrun.
    estimate = "if _proof_work(lengths, binomials, n_rows, _estimate_kth(db, query, k)) <= budget:"
    rows, _ = _run_mih_ab(tmp_path, (estimate, "if True:"), "--uniform", "20000", "--n-queries", "50",
                          "--budget", "6000")
    given_up = [int(n) for n in re.findall(r"given up (\d+)", rows[0])]
    assert len(rows) == 1 and given_up[0] > given_up[1] > 0, rows
    assert rows[0].endswith("same results: False")


def test_mih_ab_searches_saved_codes_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "codes.npy", rng.integers(0, 256, (20000, 8), dtype=np.uint8))
    np.save(tmp_path / "queries.npy", rng.integers(0, 256, (30, 8), dtype=np.uint8))
    # A copy with smaller batches: another version, the same results.
    rows, _ = _run_mih_ab(tmp_path, ("_BATCH = 64", "_BATCH = 16"), "--codes", str(tmp_path / "codes.npy"),
                       "--queries", str(tmp_path / "queries.npy"), "--mmap")
    assert len(rows) == 1 and rows[0].endswith("same results: True")


def test_sample_rank_model_replays_the_kernels_sample_and_rule():
    from sortedhash.neighbors import _kernels

    model = load_script("research", "sample_rank_model")
    n_rows = 1_000_003
    spacing, run = _kernels._sample_layout(n_rows - n_rows % 16)
    expected = np.concatenate([np.arange(c * spacing, c * spacing + run) for c in range(_kernels._SAMPLE_CHUNKS)])
    np.testing.assert_array_equal(model.sample_rows(n_rows, 32), expected)

    # The rule by hand: k = 2 over distances 5 9 3 7 3 1 (start 10): 5 and 9 are offered,
    # the threshold drops to 9 (two rows under 10); 3 is offered and it drops to 5; 7 is
    # refused; 3 is offered and it drops to 3 (row 4, the last drop); 1 is offered (alone
    # under 3: no drop).
    dist = np.array([5, 9, 3, 7, 3, 1])
    t, offered, drop = model.offer_in_order(dist, np.arange(6), 2, 10)
    assert (t, offered, drop) == (3, 5, 4)

    rng = np.random.default_rng(1)
    db = rng.integers(0, 2**64, (4096, 1), dtype=np.uint64)
    queries = rng.integers(0, 2**64, (8, 1), dtype=np.uint64)
    sample = np.arange(0, 4096, 8)
    plain = model.replay(db, queries, sample, 3, 15)
    ties = model.replay(db, queries, sample, 3, 15, ties=True)
    assert (plain[:, 2] != ties[:, 2]).any()  # the finer start leaves some of these queries short
    for q in range(8):
        d = np.array([bin(int(x) ^ int(queries[q, 0])).count("1") for x in db[:, 0]])
        third = np.sort(d[sample])[2]
        assert plain[q, 2] == ((d <= third).sum() < 15)  # short: fewer than k rows within the start
        assert plain[q, 1] >= min(15, (d <= third).sum())  # the scan offers at least the final top k
        # With ties, the rows at the third distance after the sample's last drop are refused.
        _, _, drop = model.offer_in_order(d, sample, 3, 65)
        within = (d < third).sum() + (d[: drop + 1] == third).sum()
        assert ties[q, 0] == plain[q, 0] and ties[q, 2] == (within < 15)


def test_per_call_ab_times_auto_against_both_methods_for_each_setting(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "codes.npy", rng.integers(0, 256, (3000, 8), dtype=np.uint8))
    np.save(tmp_path / "queries.npy", rng.integers(0, 256, (20, 8), dtype=np.uint8))
    cmd = [sys.executable, str(ROOT / "research" / "per_call_ab.py"), "--codes", str(tmp_path / "codes.npy"),
           "--queries", str(tmp_path / "queries.npy"), "--n-queries", "8", "--per-call", "1", "4", "--k", "3",
           "--rounds", "1", "--kinds", "learned", "uniform", "clustered", "--flip", "0.1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^([\w.]+)\s+k=(\d+)\s+(\d+) a call .* auto / best (\d+\.\d+)$", result.stdout, re.M)
    assert [r[:3] for r in rows] == [(kind, "3", n) for kind in ("learned", "uniform", "flip0.1") for n in "14"], \
        result.stdout
    assert all(float(r[3]) > 0 for r in rows)


def test_copy_speed_times_estimators_on_copies_and_on_one_shared_array():
    cmd = [sys.executable, str(ROOT / "research" / "copy_speed.py"), "--rows", "3000", "--estimators", "3",
           "--queries", "8", "--per-call", "4", "--k", "3", "--rounds", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^(copies|shared)\s+\|((?:\s+\d+\.\d)+) \| slowest / fastest (\d+\.\d+)$", result.stdout, re.M)
    assert [r[0] for r in rows] == ["copies", "shared"], result.stdout
    assert all(len(r[1].split()) == 3 and float(r[2]) >= 1.0 for r in rows)
