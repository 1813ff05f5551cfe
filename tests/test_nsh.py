import io
import os

import joblib
import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline, Pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import NSHTransformer, unpack_codes
from sortedhash._skorch import NSHNet
from sortedhash.nn import FeatureNoise
from sortedhash.views import TrainingViews
from sortedhash.metrics import make_map_scorer, mean_average_precision

from .conftest import small_nsh


@pytest.mark.parametrize("n_bits", [8, 13, 64])
def test_transform_returns_packed_codes(digits, n_bits):
    X, _ = digits
    model = small_nsh(n_bits=n_bits, max_epochs=1).fit(X[:300])
    codes = model.transform(X[:50])
    assert codes.dtype == np.uint8 and codes.shape == (50, (n_bits + 7) // 8)
    # The packed bits are the signs of the hash head on the standardised rows, least
    # significant bit first.
    with torch.no_grad():
        module = model.net_.module_
        rows = (X[:50] - model.mean_) / model.scale_
        x = torch.as_tensor(rows, device=next(module.parameters()).device)  # CUDA when there is one
        h = module.hash_head(module.backbone(x)).cpu()
    np.testing.assert_array_equal(unpack_codes(codes, n_bits), (h >= 0).numpy().astype(np.uint8))
    assert model.get_feature_names_out().shape == ((n_bits + 7) // 8,)
    # decision_function: those pre-activations themselves.
    scores = model.decision_function(X[:50])
    assert scores.dtype == np.float32 and scores.shape == (50, n_bits)
    np.testing.assert_allclose(scores, h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(unpack_codes(codes, n_bits), (scores >= 0).astype(np.uint8))


@pytest.mark.parametrize("sorter", ["torchsort", "softsort", "none"])
def test_training_reduces_loss_and_beats_random_codes(digits, sorter):
    X, y = digits
    kwargs = dict(n_positives=1) if sorter == "none" else {}
    model = small_nsh(sorter=sorter, n_bits=32, hidden_sizes=(256,), max_epochs=8, batch_size=64, **kwargs)
    codes = model.fit(X[200:]).transform(X)
    loss = model.history_[:, "train_loss"]
    assert len(loss) == 8 and loss[-1] < loss[0]
    learned = mean_average_precision(codes[:200], y[:200], codes[200:], y[200:])
    random_codes = np.random.default_rng(0).integers(0, 256, codes.shape, dtype=np.uint8)
    chance = mean_average_precision(random_codes[:200], y[:200], random_codes[200:], y[200:])
    assert learned > chance + 0.2


def test_same_seed_same_codes_and_global_rng_untouched(digits):
    X, _ = digits
    state = torch.random.get_rng_state()
    a = small_nsh(random_state=3).fit(X[:200]).transform(X[:100])
    b = small_nsh(random_state=3).fit(X[:200]).transform(X[:100])
    c = small_nsh(random_state=4).fit(X[:200]).transform(X[:100])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(state, torch.random.get_rng_state())


def test_input_is_not_modified(digits):
    X, _ = digits
    X = X[:200].astype(np.float64)
    before = X.copy()
    small_nsh().fit(X).transform(X)
    np.testing.assert_array_equal(X, before)


def test_clone_pipeline_and_joblib_round_trip(digits, tmp_path):
    X, _ = digits
    pipe = make_pipeline(StandardScaler(), PCA(20, random_state=0), small_nsh())
    codes = pipe.fit(X[:300]).transform(X[:100])
    cloned = clone(pipe)
    assert not hasattr(cloned[-1], "net_")
    np.testing.assert_array_equal(cloned.fit(X[:300]).transform(X[:100]), codes)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "pipe.joblib").transform(X[:100]), codes)


def test_cuda_trained_model_loads_without_cuda(digits, monkeypatch):
    """A net pickled on 'cuda' is mapped to the CPU by skorch when CUDA is missing.

    Without a GPU the CUDA side is simulated: the device string says cuda while the
    tensors are on the CPU, and torch.cuda.is_available is patched to False on load.
    The model is fitted on the CPU so the simulation holds on a GPU machine too (there
    ``test_cuda_fitted_model_loads_in_a_process_without_cuda`` does it for real).
    """
    X, _ = digits
    model = small_nsh(device="cpu").fit(X[:200])
    codes = model.transform(X[:50])
    model.net_.device = "cuda"
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="(?i)cuda"):
        loaded = joblib.load(buffer)
    assert torch.device(loaded.net_.device).type == "cpu"
    np.testing.assert_array_equal(loaded.transform(X[:50]), codes)


def test_pickle_carries_no_tensor_outside_skorchs_device_mapping(digits):
    """Every tensor of a fitted model is pickled where skorch maps it to the CPU on load.

    A tensor pickled directly keeps its CUDA location and cannot be read on a machine
    without CUDA (seen on an H100: the init parameter ``module`` is the fitted module).
    """
    import pickle

    X, _ = digits
    model = small_nsh(device="cpu").fit(X[:200])
    direct = []

    class Recorder(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, (torch.Tensor, torch.UntypedStorage)):
                direct.append(tuple(getattr(obj, "shape", ())))
            return NotImplemented

    Recorder(io.BytesIO()).dump(model)
    assert direct == []
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.net_.module is loaded.net_.module_ and loaded.net_.criterion is loaded.net_.criterion_
    np.testing.assert_array_equal(loaded.transform(X[:50]), model.transform(X[:50]))


def test_multi_view_input(digits):
    X, _ = digits
    rng = np.random.default_rng(0)
    views = X[:300, None, :] + 0.1 * rng.standard_normal((300, 3, X.shape[1])).astype(np.float32)
    model = small_nsh(augment=None).fit(views)
    assert model.multi_view_
    assert model.transform(X[:10]).shape == (10, 2)
    with pytest.raises(ValueError):
        model.transform(views[:10])


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)


def random_flip(x):
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(-1), x) + 0.05 * torch.randn_like(x)


def test_custom_cnn_encoder_on_images(digits):
    X, _ = digits
    images = X[:200].reshape(-1, 1, 8, 8)
    encoder = TinyCNN()
    weights = encoder.conv.weight.detach().clone()
    model = small_nsh(encoder=encoder, augment=random_flip).fit(images)
    codes = model.transform(images[:20])
    assert codes.shape == (20, 2)
    assert torch.equal(encoder.conv.weight, weights)  # the user's module is not trained in place
    assert not torch.equal(model.net_.module_.backbone.conv.weight.cpu(), weights)


class PoisonWeightsAfterFirstEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 1:
            with torch.no_grad():
                net.module_.latent_head.weight.fill_(float("nan"))


def test_non_finite_loss_stops_with_clear_error(digits):
    X, _ = digits
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 2"):
        small_nsh(max_epochs=3, callbacks=[PoisonWeightsAfterFirstEpoch()]).fit(X[:200])


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_bits=0), "n_bits"),
        (dict(sorter="bubble"), "sorter"),
        (dict(temperature=-1.0), "temperature"),
        (dict(feature_dropout=1.0), "feature_dropout"),
        (dict(sorted_weight=0.0, code_nce_weight=0.0), "nothing to train"),
        (dict(neighbor_weight=-1.0), "neighbor_weight"),
        (dict(similarity_weight=-1.0), "similarity_weight"),
        (dict(hidden_sizes=(0,)), "hidden_sizes"),
        (dict(n_positives="many"), "'n_positives' parameter of NSHTransformer"),
        (dict(n_positives=0), "n_positives"),
        (dict(device="gpu"), "device must be 'auto' or a torch device"),
        (dict(device=3.5), "'device' parameter of NSHTransformer"),
    ],
)
def test_invalid_parameters(digits, params, match):
    X, _ = digits
    with pytest.raises(ValueError, match=match):
        small_nsh(**params).fit(X[:100])


def test_n_positives_auto_follows_the_code_length(digits):
    X, _ = digits
    for n_bits, m in [(16, 4), (31, 4), (32, 8), (64, 8)]:
        model = small_nsh(n_bits=n_bits, n_positives="auto", max_epochs=1).fit(X[:64])
        assert model.net_.criterion_.n_positives == m
        assert model.n_positives == "auto"  # the parameter is kept as given
    with pytest.raises(ValueError, match=r"n_positives=4 \(from 'auto'\)"):
        small_nsh(n_bits=16, n_positives="auto").fit(X[:4])


def test_input_errors(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="too few samples for a batch"):
        small_nsh(n_positives=8).fit(X[:6])
    bad = X[:100].copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small_nsh().fit(bad)
    model = small_nsh().fit(X[:100])
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:5, :10])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        small_nsh().transform(X[:5])


def test_grid_search_with_map_scorer(digits):
    X, y = digits
    pipe = Pipeline([("pca", PCA(16, random_state=0)), ("hash", small_nsh(max_epochs=3))])
    search = GridSearchCV(
        pipe,
        {"hash__temperature": [0.2, 0.5], "hash__n_bits": [8, 16]},
        scoring=make_map_scorer(k=50),
        cv=2,
    )
    search.fit(X[:400], y[:400])
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all((scores > 0) & (scores <= 1))
    assert search.best_params_ in search.cv_results_["params"]
    assert search.best_score_ == pytest.approx(scores.max())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fitted_model_loads_in_a_process_without_cuda(digits, tmp_path):
    """Fitted on the GPU, saved with joblib, loaded where no GPU is visible: same codes."""
    import subprocess
    import sys

    X, _ = digits
    model = small_nsh(device="cuda").fit(X[:200])
    assert next(model.net_.module_.parameters()).is_cuda
    joblib.dump(model, tmp_path / "model.joblib")
    np.save(tmp_path / "X.npy", X[:50])
    script = ("import joblib, numpy as np, torch, warnings; warnings.simplefilter('ignore'); "
              "assert not torch.cuda.is_available(); "
              f"m = joblib.load({str(tmp_path / 'model.joblib')!r}); "
              f"np.save({str(tmp_path / 'codes.npy')!r}, m.transform(np.load({str(tmp_path / 'X.npy')!r})))")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # CPU and GPU matrix products round differently: a hash value within rounding of 0 may flip.
    cpu_bits = unpack_codes(np.load(tmp_path / "codes.npy"), 16)
    gpu_bits = unpack_codes(model.transform(X[:50]), 16)
    assert (cpu_bits != gpu_bits).mean() < 0.01


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu_quality(digits):
    X, y = digits
    from sortedhash.nn.sorters import _torchsort_has_cuda

    maps = {}
    for device in ("cpu", "cuda"):
        model = small_nsh(device=device, n_bits=32, hidden_sizes=(256,), max_epochs=10, batch_size=64)
        codes = model.fit(X[200:]).transform(X)
        assert next(model.net_.module_.parameters()).device.type == device
        maps[device] = mean_average_precision(codes[:200], y[:200], codes[200:], y[200:])
    assert _torchsort_has_cuda()
    assert abs(maps["cuda"] - maps["cpu"]) < 0.05


class InterruptAt(Callback):
    def __init__(self, epoch, on_batch=False):
        self.epoch, self.on_batch = epoch, on_batch

    def on_batch_end(self, net, **kwargs):
        if self.on_batch and len(net.history) == self.epoch:
            raise KeyboardInterrupt

    def on_epoch_end(self, net, **kwargs):
        if not self.on_batch and len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_keyboard_interrupt_leaves_a_fitted_model_and_says_so(digits):
    X, _ = digits
    model = small_nsh(max_epochs=5, callbacks=[InterruptAt(2)])
    with pytest.warns(RuntimeWarning, match="stopped after 2 of 5 epochs"):
        model.fit(X[:200])
    assert len(model.history_) == 2
    assert model.transform(X[:10]).shape == (10, 2)


def test_keyboard_interrupt_in_first_epoch_leaves_it_unfitted(digits):
    from sklearn.exceptions import NotFittedError

    X, _ = digits
    model = small_nsh(max_epochs=5, callbacks=[InterruptAt(1, on_batch=True)])
    with pytest.raises(RuntimeError, match="not fitted"):
        model.fit(X[:200])
    with pytest.raises(NotFittedError):
        model.transform(X[:10])


class ScaledLoss(torch.nn.Module):
    """A criterion wrapping the estimator's own, to see that the hook's loss is the one trained."""

    def __init__(self, inner, scale):
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, view_a, view_b):
        return self.scale * self.inner(view_a, view_b)


class CountingNet(NSHNet):
    def train_step_single(self, batch, **fit_params):
        self.steps_ = getattr(self, "steps_", 0) + 1
        return super().train_step_single(batch, **fit_params)


class HookedNSH(NSHTransformer):
    net_class = CountingNet

    def _make_criterion(self):
        return ScaledLoss(super()._make_criterion(), 10.0)

    def _make_module(self, sample_shape):
        self.sample_shape_seen_ = sample_shape
        return super()._make_module(sample_shape)


def test_subclass_hooks_build_the_parts_without_patching(digits):
    X, _ = digits
    params = dict(n_bits=16, hidden_sizes=(32,), latent_dim=16, max_epochs=2, batch_size=32, n_positives=2,
                  random_state=0, mix_neighbors=0)
    hooked = HookedNSH(**params).fit(X[:200])
    plain = NSHTransformer(**params).fit(X[:200])
    assert isinstance(hooked.net_, CountingNet) and hooked.net_.steps_ == 2 * (200 // 32)
    assert isinstance(hooked.net_.criterion_, ScaledLoss)
    assert hooked.sample_shape_seen_ == (X.shape[1],)
    # Same seed, same data: the first epoch's loss is the plain one scaled by 10.
    assert hooked.history_[0, "train_loss"] == pytest.approx(10 * plain.history_[0, "train_loss"], rel=1e-5)
    assert type(NSHTransformer(**params).fit(X[:100]).net_) is NSHNet


def test_views_are_the_nets_constructor_argument(digits):
    X, _ = digits
    model = small_nsh(mix_neighbors=3, max_epochs=1).fit(X[:200])
    views = model.net_.views
    assert isinstance(views, TrainingViews) and views.multi_view_
    assert model.net_.get_params()["views"] is views
    assert isinstance(views.augment, FeatureNoise)
    assert (views.augment.noise_std, views.augment.dropout) == (model.noise_std, model.feature_dropout)
    assert small_nsh(mix_neighbors=0, max_epochs=1).fit(X[:100]).net_.views.multi_view_ is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_cuda_device_without_cuda_names_the_parameter(digits):
    X, _ = digits
    for device in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(ValueError, match="device=.* CUDA is not available"):
            small_nsh(device=device).fit(X[:100])


def _topic_texts(n_per_topic=150, seed=0):
    """Short documents: common words plus a few words of one of five topics (the label)."""
    rng = np.random.default_rng(seed)
    common = [f"w{i}" for i in range(300)]
    topics = [[f"t{t}_{i}" for i in range(40)] for t in range(5)]
    docs, labels = [], []
    for t, vocabulary in enumerate(topics):
        for _ in range(n_per_topic):
            docs.append(" ".join(list(rng.choice(common, 25)) + list(rng.choice(vocabulary, 6))))
            labels.append(t)
    order = rng.permutation(len(docs))
    return [docs[i] for i in order], np.asarray(labels)[order]


def _map_of(model, X, y, n_queries):
    codes = model.fit(X[n_queries:]).transform(X)
    return mean_average_precision(codes[:n_queries], y[:n_queries], codes[n_queries:], y[n_queries:])


@pytest.mark.parametrize("standardize", [True, False])
def test_unscaled_input_codes_as_well_as_standardised(standardize):
    from sklearn.datasets import load_digits
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    params = dict(n_bits=32, hidden_sizes=(256,), latent_dim=64, max_epochs=10, batch_size=64, random_state=0,
                  standardize=standardize)
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))
    X, y = X[order], y[order]
    scaled = _map_of(make_pipeline(StandardScaler(), NSHTransformer(**params)), X, y, 200)
    raw = _map_of(NSHTransformer(**params), 7 * X + 3, y, 200)
    docs, topics = _topic_texts()
    svd = lambda: (TfidfVectorizer(), TruncatedSVD(32, random_state=0))  # noqa: E731
    text_scaled = _map_of(make_pipeline(*svd(), StandardScaler(), NSHTransformer(**params)), docs, topics, 100)
    text_raw = _map_of(make_pipeline(*svd(), NSHTransformer(**params)), docs, topics, 100)
    if standardize:  # measured: 0.712 / 0.715 and 0.557 / 0.557
        assert abs(raw - scaled) < 0.02 and abs(text_raw - text_scaled) < 0.02
    else:  # the noise is absolute: unscaled input loses (measured 0.569 / 0.715, 0.255 / 0.557)
        assert raw < scaled - 0.05 and text_raw < text_scaled - 0.1


def test_standardisation_is_fitted_in_fit_and_applied_in_transform(digits):
    X, _ = digits
    shifted = 5 * X[:200].astype(np.float64) - 2
    before = shifted.copy()
    model = small_nsh().fit(shifted)
    np.testing.assert_array_equal(shifted, before)  # standardised in a copy
    np.testing.assert_allclose(model.mean_, shifted.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.scale_, np.where(shifted.std(axis=0) > 0, shifted.std(axis=0), 1), rtol=1e-5)
    # Standardised input is standardised again to itself (up to rounding): the same codes.
    standard = (shifted - model.mean_) / model.scale_
    same = small_nsh().fit(standard)
    assert (unpack_codes(model.transform(shifted)) != unpack_codes(same.transform(standard))).mean() < 0.01
    off = small_nsh(standardize=False).fit(shifted)
    assert not hasattr(off, "mean_") and not hasattr(model.set_params(standardize=False).fit(shifted), "mean_")


def test_early_stopping_scores_a_held_out_split_and_keeps_the_best_weights(digits):
    import warnings

    X, _ = digits
    model = small_nsh(early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, max_epochs=40,
                      batch_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a deliberate stop is no interruption
        model.fit(X[:400])
    valid = model.history_[:, "valid_loss"]
    assert len(valid) == model.n_iter_ == len(model.history_) and all(np.isfinite(valid))
    assert model.history_[0, "batches", :, "valid_batch_size"] == [32, 32]  # 80 held out, the partial batch dropped
    best = int(np.argmin(valid))
    stopper = dict(model.net_.callbacks_)["early_stopping"]
    if model.n_iter_ < 40:  # stopped: n_iter_no_change epochs after the best one
        assert model.n_iter_ == best + 1 + 3
    assert stopper.best_epoch_ == best + 1
    for name, weights in model.net_.module_.state_dict().items():
        torch.testing.assert_close(weights, stopper.best_model_weights_[name])


def test_a_stop_on_no_improvement_is_deliberate_and_skorch_callbacks_work(digits, tmp_path):
    import warnings

    from skorch.callbacks import Checkpoint, EarlyStopping
    from skorch.dataset import ValidSplit

    X, _ = digits
    # An lr too small to move the loss: the validation loss stops improving at once.
    frozen = small_nsh(lr=1e-12, max_epochs=20, early_stopping=True, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        frozen.fit(X[:300])
        assert frozen.n_iter_ == 3
        own = small_nsh(lr=1e-12, max_epochs=20, callbacks=[EarlyStopping(monitor="train_loss", patience=1)])
        assert own.fit(X[:300]).n_iter_ == 2
    checkpoint = Checkpoint(dirname=str(tmp_path / "ckpt"), monitor="valid_loss_best")
    small_nsh(early_stopping=True, max_epochs=3, callbacks=[checkpoint]).fit(X[:300])
    assert (tmp_path / "ckpt" / "params.pt").exists()
    folds = small_nsh(max_epochs=2, net_kwargs={"train_split": ValidSplit(5)}).fit(X[:300])
    assert len(folds.history_[:, "valid_loss"]) == 2
    with pytest.raises(ValueError, match="monitors 'valid_loss'.*early_stopping=True"):
        small_nsh(callbacks=[EarlyStopping()]).fit(X[:300])
    with pytest.raises(ValueError, match="validation batch size 2 .*validation_fraction=0.05"):
        small_nsh(early_stopping=True, validation_fraction=0.05, n_positives=2).fit(X[:40])


def test_warm_start_continues_training(digits):
    X, _ = digits
    model = small_nsh(warm_start=True, max_epochs=2).fit(X[:300])
    module, mean = model.net_.module_, model.mean_.copy()
    first = model.history_[:, "train_loss"]
    model.set_params(max_epochs=3).fit(3 * X[:300] + 1)  # its scale is not refitted
    assert model.n_iter_ == 5 and model.history_[:2, "train_loss"] == first
    assert model.net_.module_ is module
    np.testing.assert_array_equal(model.mean_, mean)
    cold = small_nsh(max_epochs=3).fit(3 * X[:300] + 1)
    assert cold.n_iter_ == 3 and not np.array_equal(cold.transform(X[:50]), model.transform(X[:50]))
    with pytest.raises(ValueError, match="features"):
        model.fit(X[:300, :10])


def test_the_nets_own_partial_fit_takes_float64(digits):
    X, _ = digits
    model = small_nsh(mix_neighbors=0, max_epochs=1).fit(X[:200])
    model.net_.partial_fit(X[:200].astype(np.float64), epochs=1)
    assert len(model.history_) == 2


@pytest.mark.parametrize("term", ["neighbor_weight", "similarity_weight"])
def test_neighbour_terms_keep_more_of_the_float_neighbours(digits, term):
    from sortedhash.metrics import neighbor_recall

    X, _ = digits
    params = dict(n_bits=32, hidden_sizes=(256,), latent_dim=64, max_epochs=10, batch_size=64, random_state=0)
    recall = {}
    for weight in (0.0, 5.0):
        codes = NSHTransformer(**{term: weight}, **params).fit(X[200:]).transform(X)
        recall[weight] = neighbor_recall(codes[:200], codes[200:], X[:200], X[200:], k=10, n_candidates=100)
    # Measured 0.917 -> 0.961 (neighbor_weight, the research script's settings), 0.857 -> 0.927
    # (similarity_weight, these settings).
    assert recall[5.0] > recall[0.0] + 0.02
    alone = small_nsh(sorted_weight=0.0, code_nce_weight=0.0, **{term: 1.0}).fit(X[:200])
    assert getattr(alone.net_.criterion_, term) == 1.0 and np.isfinite(alone.history_[-1, "train_loss"])
