import io
import json
import pickle
import socket
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import sortedhash
from sortedhash import (BinaryQuantizer, HammingNeighbors, InconsistentVersionWarning, ITQTransformer,
                        LSHTransformer, PCAHashTransformer, load, save)

from .conftest import small_nsh


def _transformers():
    return [small_nsh(), LSHTransformer(n_bits=16, random_state=0), PCAHashTransformer(n_bits=16),
            ITQTransformer(n_bits=16, random_state=0), BinaryQuantizer()]


def _output(est, X):
    if isinstance(est, HammingNeighbors):
        return np.concatenate(est.kneighbors(X[:20]), axis=1)
    return est.transform(X)


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    models = [est.fit(X[:300]) for est in _transformers()]
    codes = models[1].transform(X)
    models.append(HammingNeighbors(n_neighbors=4).fit(codes))
    return models, X, codes


def _input(est, X, codes):
    return codes if isinstance(est, HammingNeighbors) else X[:100]


@pytest.mark.parametrize("i", range(6))
def test_safe_format_round_trip(fitted, tmp_path, i):
    models, X, codes = fitted
    est = models[i]
    save(est, tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(_output(loaded, _input(est, X, codes)), _output(est, _input(est, X, codes)))


@pytest.mark.parametrize("i", range(6))
def test_joblib_round_trip(fitted, i):
    models, X, codes = fitted
    buffer = io.BytesIO()
    joblib.dump(models[i], buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    data = _input(models[i], X, codes)
    np.testing.assert_array_equal(_output(loaded, data), _output(models[i], data))


def test_pipeline_joblib_round_trip(digits):
    X, _ = digits
    pipe = make_pipeline(StandardScaler(), ITQTransformer(n_bits=16, random_state=0)).fit(X)
    loaded = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(loaded.transform(X), pipe.transform(X))


def test_load_refuses_other_files(tmp_path, fitted):
    models, _, _ = fitted
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a valid sortedhash model file"):
        load(junk)
    pickled = tmp_path / "model.joblib"
    joblib.dump(models[1], pickled)
    with pytest.raises(ValueError, match="not a valid sortedhash model file"):
        load(pickled)
    from safetensors.torch import save_file
    import torch

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    with pytest.raises(ValueError, match="no sortedhash format marker"):
        load(plain)


def test_load_refuses_truncated_and_tampered_files(tmp_path, fitted):
    models, _, _ = fitted
    path = tmp_path / "itq.safetensors"
    save(models[3], path)
    raw = path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(raw[: len(raw) - 10])
    with pytest.raises(ValueError, match="not a valid sortedhash model file"):
        load(tmp_path / "truncated.safetensors")
    tampered = bytearray(raw)
    tampered[-3] ^= 0xFF  # flip bits inside the last array's data
    (tmp_path / "tampered.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(ValueError, match="altered"):
        load(tmp_path / "tampered.safetensors")


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def test_load_never_runs_code_from_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ValueError):
        load(evil)
    assert not (tmp_path / "EXPLOITED").exists()


def test_save_refuses_what_it_cannot_rebuild(digits, tmp_path):
    import torch

    X, _ = digits
    model = small_nsh(encoder=torch.nn.Identity()).fit(X[:100])
    with pytest.raises(ValueError, match="joblib"):
        save(model, tmp_path / "m.safetensors")
    for other in ({"not": "an estimator"}, make_pipeline(StandardScaler(), FunctionTransformer(lambda x: x)),
                  make_pipeline(FunctionTransformer(np.linalg.norm))):
        with pytest.raises(TypeError, match="joblib"):
            save(other, tmp_path / "m.safetensors")


def test_version_mismatch_warns_on_pickle_and_safe_load(fitted, tmp_path):
    models, _, _ = fitted
    est = pickle.loads(pickle.dumps(models[1]))
    assert est._sortedhash_versions["sortedhash"] == sortedhash.__version__
    est._sortedhash_versions = dict(est._sortedhash_versions, torch="0.0.1")
    blob = pickle.dumps(est)
    with pytest.warns(InconsistentVersionWarning, match="torch 0.0.1"):
        pickle.loads(blob)
    save(est, tmp_path / "old.safetensors")
    with pytest.warns(InconsistentVersionWarning) as record:
        load(tmp_path / "old.safetensors")
    assert record[0].message.recorded["torch"] == "0.0.1"
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        pickle.loads(pickle.dumps(models[1]))  # same versions: no warning


def test_nothing_is_fetched(digits, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("sortedhash tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    X, _ = digits
    model = small_nsh().fit(X[:200])
    codes = model.transform(X)
    HammingNeighbors().fit(codes).kneighbors(codes[:5])
    save(model, tmp_path / "m.safetensors")
    load(tmp_path / "m.safetensors").transform(X[:5])


def _session_in_fresh_process(tmp_path, script, **env_vars):
    """Run ``script`` in a fresh process with HOME and the working directory under tmp_path;
    return the files left in the package (new ones), the working directory and HOME."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    package = Path(sortedhash.__file__).parent

    def snapshot(root):
        return {p for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"}

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    before = snapshot(package)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "SORTEDHASH_CACHE_DIR", "XDG_CACHE_HOME")}
    # CUDA hidden: on an H100 a file appeared under HOME that the package does not write (it
    # reads no HOME and picks no path); the CUDA stack keeps kernel caches there.
    env.update(HOME=str(home), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **env_vars)
    out = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, check=True, timeout=300,
                         capture_output=True, text=True)
    left = sorted(str(p.relative_to(tmp_path)) for root in (work, home) for p in root.rglob("*") if p.is_file())
    return snapshot(package) - before, left, out.stdout


_SESSION = """
import numpy as np, sortedhash as sh
X = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
m = sh.NSHTransformer(n_bits=16, max_epochs=1, hidden_sizes=(16,), batch_size=32, n_positives=2).fit(X)
c = m.transform(X)
sh.HammingNeighbors(n_neighbors=3).fit(c).kneighbors(c[:5])
sh.HammingNeighbors(n_neighbors=3, algorithm="mih").fit(c).kneighbors(c[:5])
sh.save(m, {model!r})
sh.load({model!r}).transform(X[:3])
from sortedhash.neighbors._kernels import _knn
print(sum(_knn.stats.cache_hits.values()), sum(_knn.stats.cache_misses.values()))
"""


def test_writes_nothing_outside_the_paths_given_but_the_kernel_cache(tmp_path):
    """A whole session (fit, encode, search, save, load) in a fresh process leaves no file
    in the package or the working directory, and in HOME only the compiled kernels'
    cache, which the next process reads instead of compiling."""
    script = _SESSION.format(model=str(tmp_path / "model.safetensors"))
    new_in_package, left, out = _session_in_fresh_process(tmp_path, script)
    assert not new_in_package
    assert left and all(path.startswith("home/.cache/sortedhash/") for path in left), left
    assert out.split() == ["0", "1"]  # compiled, and written to the cache
    _, left_again, out = _session_in_fresh_process(tmp_path, script)
    assert out.split() == ["1", "0"]  # read back from the cache
    assert {p.name for p in tmp_path.iterdir()} == {"home", "work", "model.safetensors"}


def test_kernel_cache_can_be_moved_or_switched_off(tmp_path):
    script = _SESSION.format(model=str(tmp_path / "model.safetensors"))
    _, left, out = _session_in_fresh_process(tmp_path, script, SORTEDHASH_CACHE_DIR="off")
    assert not left and out.split() == ["0", "1"]
    cache = tmp_path / "kernels"
    _, left, _ = _session_in_fresh_process(tmp_path, script, SORTEDHASH_CACHE_DIR=str(cache))
    assert not left and any(cache.rglob("*.nbi"))
    assert {p.name for p in tmp_path.iterdir()} == {"home", "work", "kernels", "model.safetensors"}


def _round_trip(model, tmp_path, name="model"):
    save(model, tmp_path / f"{name}.safetensors")
    return load(tmp_path / f"{name}.safetensors")


def test_pipelines_round_trip_with_identical_outputs(digits, tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.preprocessing import Normalizer

    X, _ = digits
    nsh = make_pipeline(StandardScaler(), PCA(20, random_state=0), small_nsh()).fit(X[:300])
    steps = list(nsh.steps)
    loaded = _round_trip(nsh, tmp_path, "nsh")
    assert [type(s).__name__ for _, s in loaded.steps] == ["StandardScaler", "PCA", "NSHTransformer"]
    np.testing.assert_array_equal(loaded.transform(X), nsh.transform(X))
    assert nsh.steps == steps  # saving left the caller's pipeline as it was

    positive = np.abs(X[:300])
    logs = make_pipeline(FunctionTransformer(np.log1p), Normalizer(), ITQTransformer(n_bits=16, random_state=0))
    logs.fit(positive)
    np.testing.assert_array_equal(_round_trip(logs, tmp_path, "logs").transform(positive), logs.transform(positive))

    texts = [f"doc {i} word{i % 7} word{i % 5} topic{i % 3}" for i in range(80)]
    for vectorizer in (TfidfVectorizer(), CountVectorizer()):
        text = make_pipeline(vectorizer, TruncatedSVD(8, random_state=0), LSHTransformer(n_bits=16, random_state=0))
        text.fit(texts)
        np.testing.assert_array_equal(_round_trip(text, tmp_path, "text").transform(texts), text.transform(texts))

    union = make_union(LSHTransformer(n_bits=16, random_state=0), PCAHashTransformer(n_bits=8)).fit(X)
    np.testing.assert_array_equal(_round_trip(union, tmp_path, "union").transform(X), union.transform(X))

    columns = ColumnTransformer([("hash", small_nsh(), list(range(32))), ("scale", StandardScaler(), [40, 41])])
    columns.fit(X[:300])
    loaded = _round_trip(columns, tmp_path, "columns")
    np.testing.assert_array_equal(loaded.transform(X), columns.transform(X))
    assert loaded.transformers[0][1].get_params() == columns.transformers[0][1].get_params()  # the unfitted spec

    search = make_pipeline(LSHTransformer(n_bits=32, random_state=0), HammingNeighbors(n_neighbors=3)).fit(X)
    loaded = _round_trip(search, tmp_path, "search")
    queries = search[:-1].transform(X[:20])
    for a, b in zip(loaded[-1].kneighbors(loaded[:-1].transform(X[:20])), search[-1].kneighbors(queries)):
        np.testing.assert_array_equal(a, b)


def test_tampered_or_untrusted_pipeline_files_are_refused(digits, tmp_path):
    import skops.io as sio
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from sortedhash import persistence

    X, _ = digits
    pipe = make_pipeline(StandardScaler(), LSHTransformer(n_bits=16, random_state=0)).fit(X)
    save(pipe, tmp_path / "pipe.safetensors")
    tensors = load_file(tmp_path / "pipe.safetensors")
    with safe_open(str(tmp_path / "pipe.safetensors"), framework="pt") as f:
        header = f.metadata()
    # An edited parameter of a sortedhash step: the digest covers the header.
    entries = json.loads(header["estimators"])
    entries[0]["params"] = entries[0]["params"].replace('"n_bits": 16', '"n_bits": 8')
    save_file(tensors, str(tmp_path / "edited.safetensors"), metadata={**header, "estimators": json.dumps(entries)})
    with pytest.raises(ValueError, match="altered"):
        load(tmp_path / "edited.safetensors")
    # A skeleton naming a type outside skops's trusted set, with a digest made to match.
    evil = sio.dumps(make_pipeline(FunctionTransformer(np.linalg.norm)))
    crafted = dict(tensors, skeleton=torch.frombuffer(bytearray(evil), dtype=torch.uint8))
    metadata = {**header, "estimators": "[]"}
    metadata["sha256"] = persistence._digest(crafted, (metadata["class"], metadata["estimators"]))
    save_file(crafted, str(tmp_path / "crafted.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match="types a safe load does not rebuild"):
        load(tmp_path / "crafted.safetensors")


def test_loading_a_model_leaves_the_callers_rng(digits, tmp_path):
    X, _ = digits
    model = small_nsh(early_stopping=True, max_epochs=2).fit(X[:300])
    save(model, tmp_path / "es.safetensors")
    state = torch.random.get_rng_state()
    loaded = load(tmp_path / "es.safetensors")
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(loaded.transform(X[:50]), model.transform(X[:50]))
    assert loaded.history_[:, "valid_loss"] == model.history_[:, "valid_loss"]
