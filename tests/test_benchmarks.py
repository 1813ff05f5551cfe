"""The retrieval benchmark runs end to end on digits (tiny settings), variants included."""

import csv
import os
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
           "--methods", "ITQ", "plain NCE", "m4", "sched", "oneway",
           "--variant", "m4:n_positives=4,sorter=softsort",
           "--variant", "sched:m_schedule=2-6,sorter=softsort",
           "--variant", "oneway:criterion__symmetric=0,criterion__latent_nce_weight=0.5,sorter=softsort"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"ITQ", "plain NCE", "m4", "sched", "oneway"}
    assert rows["ITQ"]["seeds"] == "1" and rows["m4"]["seeds"] == "2"
    assert all(0.1 < float(r["map_at_k"]) <= 1.0 for r in rows.values())
    assert "| oneway |" in (tmp_path / "results.md").read_text()
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


def test_variant_parsing_schedule_and_criterion_attributes():
    from types import SimpleNamespace

    retrieval = _load_benchmark()
    params = retrieval.parse_params("n_positives=4,noise_std=0.3,sorter=softsort,encoder=none")
    assert params == {"n_positives": 4, "noise_std": 0.3, "sorter": "softsort", "encoder": None}

    for text, widths in (("2048", (2048,)), ("1024/512", (1024, 512))):
        wide = retrieval.variant(retrieval.parse_params(f"hidden_sizes={text}"), epochs=1)(8, 0)
        assert wide.hidden_sizes == widths
    make = retrieval.variant({"m_schedule": "2-8", "criterion__symmetric": 0, "n_positives": 4}, epochs=5)
    model = make(16, 3)
    assert (model.n_bits, model.random_state, model.max_epochs, model.n_positives) == (16, 3, 5, 4)
    set_criterion, schedule = model.callbacks
    net = SimpleNamespace(criterion_=SimpleNamespace(symmetric=True, n_positives=4), history=[], max_epochs=4)
    set_criterion.on_train_begin(net)
    assert net.criterion_.symmetric == 0
    with pytest.raises(ValueError, match="symetric"):
        retrieval.SetCriterion(symetric=0).on_train_begin(net)
    seen = []
    for _ in range(4):  # skorch adds the epoch's history row before callbacks see on_epoch_begin
        net.history.append({})
        schedule.on_epoch_begin(net)
        seen.append(net.criterion_.n_positives)
    assert seen == [2, 4, 6, 8]
    (several_m,) = retrieval.variant({"m_set": "4/8/16"}, epochs=5)(16, 0).callbacks
    several_m.on_train_begin(net)
    assert net.criterion_.n_positives == (4, 8, 16)


def test_sorted_warmup_turns_the_sorted_term_on_then_ramps_it():
    from types import SimpleNamespace

    retrieval = _load_benchmark()
    make = retrieval.variant({"sorted_warmup": "2-4", "sorted_weight": 0.4}, epochs=6)
    (warmup,) = make(16, 0).callbacks
    net = SimpleNamespace(criterion_=SimpleNamespace(sorted_weight=0.4), history=[])
    warmup.on_train_begin(net)
    seen = []
    for _ in range(6):
        net.history.append({})
        warmup.on_epoch_begin(net)
        seen.append(round(net.criterion_.sorted_weight, 6))
    assert seen == [0.0, 0.0, round(0.4 / 3, 6), round(0.8 / 3, 6), 0.4, 0.4]
    with pytest.raises(ValueError, match="sorted_warmup"):
        retrieval.SortedWarmup(5, 2)


def test_teacher_target_try_sorts_by_the_clean_input_features():
    import torch
    import torch.nn.functional as F

    import sortedhash.nsh
    from sortedhash.nn import HashingNetwork

    teacher = _load_benchmark("teacher_target")
    X = np.random.RandomState(0).randn(64, 6).astype(np.float32)
    with pytest.raises(ValueError, match="mix_neighbors=0"):  # mixing would hand the try views
        teacher.TeacherNSH(n_bits=8, max_epochs=1, batch_size=32, random_state=0).fit(X)
    model = teacher.TeacherNSH(n_bits=8, max_epochs=1, batch_size=32, random_state=0, mix_neighbors=0).fit(X)
    assert model.transform(X).shape == (64, 1)
    net = model.net_
    x = torch.as_tensor(X[:5], device=next(net.module_.parameters()).device)  # CUDA when there is one
    view = net.augment(x)
    assert view.shape == (5, 12)
    torch.testing.assert_close(view[:, 6:], x)  # the clean half rides along the augmented one
    _, codes, z = net.module_(view)
    torch.testing.assert_close(z, F.normalize(x, dim=1))
    assert torch.equal(codes > 0, net.module_.encode(view[:, :6]))
    # The library's own network class is back once the model is built.
    assert sortedhash.nsh.HashingNetwork is HashingNetwork


def test_weak_sort_views_try_sorts_the_weak_views_and_contrasts_the_strong_ones():
    import torch

    import sortedhash.nsh
    from sortedhash._skorch import NSHNet
    from sortedhash.nn import code_nt_xent

    weak_sort = _load_benchmark("weak_sort_views")
    X = np.random.RandomState(0).randn(64, 6).astype(np.float32)
    make = weak_sort.retrieval.variant({"m_set": "2/4", "batch_size": 32, "mix_neighbors": 0}, 1,
                                       weak_sort.WeakSortNSH)
    model = make(8, 0).fit(X)
    assert model.transform(X).shape == (64, 1)
    net = model.net_
    assert isinstance(net, weak_sort.WeakSortNet) and net.criterion_.n_positives == (2, 4)
    assert sortedhash.nsh.NSHNet is NSHNet  # the library's class is back once the model is built

    x = torch.as_tensor(X[:32], device=next(net.module_.parameters()).device)  # CUDA when there is one
    torch.manual_seed(1)
    loss = net.train_step_single((x, None))["loss"]
    torch.manual_seed(1)  # the same random views, drawn in the step's order
    crit, module = net.criterion_, net.module_
    (_, b_a, _), (_, b_b, _) = (module(v) for v in net._views(x))
    (_, w_a, z_a), (_, w_b, z_b) = module(net.weak_augment(x)), module(net.weak_augment(x))
    expected = crit.code_nce_weight * code_nt_xent(b_a, b_b, crit.code_temperature) + crit.sorted_weight * 0.5 * (
        crit._sorted_term(w_a, z_a, w_b, z_b) + crit._sorted_term(w_b, z_b, w_a, z_a))
    torch.testing.assert_close(loss, expected)
    torch.manual_seed(1)  # the library's step, sorting the strong views, gives another loss
    assert not torch.allclose(NSHNet.train_step_single(net, (x, None))["loss"], loss)
    assert net.weak_augment.noise_std == 0.3 and net.weak_augment.dropout == 0.1


def test_neighbour_batches_try_partitions_each_epoch_into_neighbourhood_groups():
    import torch

    nb = _load_benchmark("neighbour_batches")
    rng = np.random.RandomState(0)
    neighbours = np.array([rng.permutation(np.delete(np.arange(40), i))[:5] for i in range(40)])
    sampler = nb.NeighbourGroups(neighbours, group=4)
    torch.manual_seed(0)
    order = list(sampler)
    assert sorted(order) == list(range(40))  # every sample once an epoch
    anchors, i = 0, 0
    while i < len(order):  # each group: an anchor, then only its neighbours
        anchor = order[i]
        j = i + 1
        while j < len(order) and j - i < 4 and order[j] in neighbours[anchor]:
            j += 1
        anchors, i = anchors + 1, j
    assert anchors < 40 / 2  # most groups hold neighbours (random orders would give ~40 anchors)
    torch.manual_seed(0)
    assert list(sampler) == order  # torch's random state fixes the draw
    assert list(sampler) != order

    X = rng.randn(64, 6).astype(np.float32)
    model = nb.NeighbourBatchNSH(n_bits=8, max_epochs=1, batch_size=32, random_state=0, mix_neighbors=0).fit(X)
    assert model.transform(X).shape == (64, 1)
    sampler = model.net_.iterator_train__sampler
    assert isinstance(sampler, nb.NeighbourGroups) and sampler.neighbours.shape == (64, nb.NeighbourBatchNSH.n_neighbors)
    loader = model.net_.get_iterator(model.net_.get_dataset(X), training=True)
    assert loader.sampler is sampler  # the training batches are runs of the groups


def _kernel_copy(tmp_path, name, old, new):
    source = (ROOT / "sortedhash" / "neighbors" / "_kernels.py").read_text()
    assert old in source
    path = tmp_path / f"{name}.py"
    path.write_text(source.replace(old, new))
    return str(path)


def _run_kernel_ab(kernels, bits):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "hamming_kernel_ab.py"), "--kernels", *kernels,
           "--sizes", "5000", "--bits", *bits, "--queries", "40", "--threads", "1", "--repeats", "1"]
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if line.startswith("N=")]


def test_kernel_ab_compares_versions_and_catches_a_wrong_one(tmp_path):
    small_blocks = _kernel_copy(tmp_path, "small_blocks", "return _NARROW_BLOCK if n_words <= 2 else _DB_BLOCK",
                                "return 256")
    rows = _run_kernel_ab([str(ROOT / "sortedhash" / "neighbors" / "_kernels.py"), small_blocks], ["64", "256"])
    assert len(rows) == 2 and all("small_blocks" in r and r.endswith("same distances: True") for r in rows)
    # Skipping blocks whose nearest row is a few steps inside the threshold loses neighbours.
    wrong = _kernel_copy(tmp_path, "wrong", "if lowest >= t:", "if lowest >= t - 4:")
    rows = _run_kernel_ab([small_blocks, wrong], ["64"])
    assert len(rows) == 1 and rows[0].endswith("same distances: False")


def test_kernel_ab_refuses_copies_of_one_name(tmp_path):
    # Results are keyed by file name: two copies named alike would be reported as one.
    (tmp_path / "a").mkdir()
    copy = tmp_path / "a" / "_kernels.py"
    copy.write_text((ROOT / "sortedhash" / "neighbors" / "_kernels.py").read_text())
    cmd = [sys.executable, str(ROOT / "benchmarks" / "hamming_kernel_ab.py"), "--kernels", str(copy),
           str(ROOT / "sortedhash" / "neighbors" / "_kernels.py"), "--sizes", "100"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "own file name" in result.stderr


def test_self_teacher_try_gathers_a_detached_vector_of_the_same_network():
    import torch
    import torch.nn.functional as F

    import sortedhash.nsh
    from sortedhash import NSHTransformer
    from sortedhash.nn import HashingNetwork

    st = _load_benchmark("self_teacher")
    assert st.estimator_for("latent") is NSHTransformer
    with pytest.raises(ValueError, match="teacher"):
        st.estimator_for("inputs")
    X = np.random.RandomState(0).randn(64, 6).astype(np.float32)
    for source in ("backbone", "relaxed"):
        model = st.estimator_for(source)(n_bits=8, max_epochs=1, batch_size=32, random_state=0).fit(X)
        wrapper = model.net_.module_
        x = torch.as_tensor(X[:5], device=next(wrapper.parameters()).device)  # CUDA when there is one
        assert isinstance(wrapper, st.SelfTeacher) and wrapper.source == source
        h, codes, z = wrapper(x)
        f = wrapper.network.backbone(x)
        expected = f if source == "backbone" else torch.tanh(wrapper.network.hash_head(f))
        torch.testing.assert_close(z, F.normalize(expected, dim=1))
        assert not z.requires_grad and h.requires_grad  # SortedNCE trains the codes alone
        assert torch.equal(codes > 0, wrapper.encode(x))
    # The library's own network class is back once the model is built.
    assert sortedhash.nsh.HashingNetwork is HashingNetwork


def test_self_teacher_continuous_map_ranks_each_output_by_cosine():
    import torch
    import torch.nn.functional as F

    from sortedhash import NSHTransformer
    from sortedhash.metrics import mean_average_precision_from_distances

    st = _load_benchmark("self_teacher")
    rng = np.random.RandomState(0)
    X = rng.randn(80, 6).astype(np.float32)
    y = rng.randint(0, 3, 80)
    model = NSHTransformer(n_bits=8, max_epochs=1, batch_size=32, random_state=0).fit(X)
    scores = st.continuous_map(model, X[:10], y[:10], X[10:], y[10:], k=20)
    assert set(scores) == {"backbone", "pre_activation", "latent_head"}
    net = model.net_.module_
    device = next(net.parameters()).device  # CUDA when there is one
    with torch.no_grad():
        pre = [F.normalize(net.hash_head(net.backbone(torch.as_tensor(part, device=device))).cpu(), dim=1).numpy()
               for part in (X[:10], X[10:])]
    assert scores["pre_activation"] == mean_average_precision_from_distances(-(pre[0] @ pre[1].T), y[:10],
                                                                              y[10:], k=20)
    # With one database row a near copy of a query and the only relevant one, every
    # continuous output ranks it first.
    X_db = X[10:].copy()
    X_db[0] = X[0] + 1e-4
    y_db = y[10:].copy()
    y_db[:] = (y[0] + 1) % 3
    y_db[0] = y[0]
    exact = st.continuous_map(model, X[:1], y[:1], X_db, y_db, k=20)
    assert exact["pre_activation"] == exact["backbone"] == exact["latent_head"] == 1.0


def test_feature_probe_reports_the_strict_load():
    pytest.importorskip("efficientnet_lite_pytorch")
    assert _load_benchmark("feature_probe").strict_load_report(64) == (296, True)


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "cifar10_jpg").exists(),
                    reason="CIFAR-10 archives not found")
def test_feature_probe_pretrained_features_beat_a_random_network_and_pixels():
    pytest.importorskip("efficientnet_lite_pytorch")
    from sortedhash.datasets import load_cifar10_jpg

    probe = _load_benchmark("feature_probe")
    data = ROOT.parent / "shared" / "data" / "cifar10_jpg"
    train_images, train_y, _ = load_cifar10_jpg(data, "train", per_class=30)
    test_images, test_y, _ = load_cifar10_jpg(data, "test", per_class=20)
    scores = {name: accuracy for name, (accuracy, _) in
              probe.probe_accuracies(train_images, train_y, test_images, test_y, image_size=96).items()}
    # Measured: 0.565 pretrained, 0.235 random weights, 0.235 pixels (chance is 0.1).
    pretrained = scores.pop("ImageNet EfficientNet-Lite0")
    assert set(scores) == {"same network, random weights", "raw pixels"}
    assert all(pretrained > other + 0.15 for other in scores.values())
