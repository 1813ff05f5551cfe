import numpy as np
import pytest

import torch

from sortedhash.views import TrainingViews, neighbor_mix_views

from .conftest import small_nsh


def _nearest_by_cosine(X, k):
    """Reference: the k most cosine-similar other rows of each row, by a full sort."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = U @ U.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_views_step_from_each_row_toward_its_nearest_rows():
    X = np.random.default_rng(0).standard_normal((60, 7)).astype(np.float32)
    before = X.copy()
    views = neighbor_mix_views(X, 4, 0.5, random_state=0)
    assert views.shape == (60, 5, 7) and views.dtype == np.float32
    np.testing.assert_array_equal(X, before)  # the input is not modified
    np.testing.assert_array_equal(views[:, 0], X)
    nearest = _nearest_by_cosine(X, 4)
    step = views[:, 1:] - X[:, None]
    toward = X[nearest] - X[:, None]
    # Each view is x + w (x_nn - x): the same w in every feature, w in [0, 0.5].
    w = (step * toward).sum(-1) / (toward * toward).sum(-1)
    np.testing.assert_allclose(step, w[..., None] * toward, atol=1e-5)
    assert w.min() >= 0 and w.max() <= 0.5 and w.std() > 0.05


def test_seed_fixes_the_weights_and_repeated_rows_are_neighbours():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 5)).astype(np.float32)
    X[7] = X[3]  # a repeated row is the other's nearest neighbour, never its own
    a = neighbor_mix_views(X, 2, 1.0, random_state=5)
    np.testing.assert_array_equal(a, neighbor_mix_views(X, 2, 1.0, random_state=5))
    assert not np.array_equal(a, neighbor_mix_views(X, 2, 1.0, random_state=6))
    # Row 3's first mixed view steps toward row 7, which equals row 3: the view is row 3.
    np.testing.assert_allclose(a[3, 1], X[3], atol=1e-6)
    np.testing.assert_allclose(a[7, 1], X[7], atol=1e-6)


def test_at_most_n_samples_minus_one_neighbours():
    X = np.random.default_rng(2).standard_normal((3, 4))
    assert neighbor_mix_views(X, 10, 0.5, random_state=0).shape == (3, 3, 4)


def test_estimator_trains_on_mixed_views_of_2d_input(digits):
    X, _ = digits
    model = small_nsh(mix_neighbors=3, max_epochs=1).fit(X[:200])
    assert not model.multi_view_  # the user gave feature vectors
    assert model.net_.views.multi_view_  # the net drew two of the 4 views per sample
    off = small_nsh(mix_neighbors=0, max_epochs=1).fit(X[:200])
    assert not off.net_.views.multi_view_
    assert not np.array_equal(model.transform(X[:100]), off.transform(X[:100]))


@pytest.mark.parametrize("params, match", [
    (dict(mix_neighbors=-1), "mix_neighbors"),
    (dict(mix_neighbors=2.5), "mix_neighbors"),
    (dict(mix_weight=1.5), "mix_weight"),
    (dict(mix_weight=float("nan")), "mix_weight"),
])
def test_invalid_mixing_parameters(digits, params, match):
    X, _ = digits
    with pytest.raises(ValueError, match=match):
        small_nsh(**params).fit(X[:100])


def test_prepare_mixes_feature_vectors_only():
    X = np.random.default_rng(3).standard_normal((30, 4)).astype(np.float32)
    mixing = TrainingViews(mix_neighbors=2, mix_weight=0.5)
    prepared = mixing.prepare(X, random_state=0)
    assert prepared.shape == (30, 3, 4) and mixing.multi_view_
    np.testing.assert_array_equal(prepared, neighbor_mix_views(X, 2, 0.5, random_state=0))
    given = np.stack([X, X + 1], axis=1)
    views = TrainingViews(mix_neighbors=2)
    assert views.prepare(given, multi_view=True) is given and views.multi_view_
    plain = TrainingViews()
    assert plain.prepare(X) is X and not plain.multi_view_
    with pytest.raises(ValueError, match="at least 2 views"):
        TrainingViews().prepare(X[:, None, :], multi_view=True)


def test_two_distinct_views_of_each_sample_then_the_augmentation():
    n, n_views = 64, 3
    # View v of sample i is filled with 10 * i + v: which view was drawn can be read back.
    batch = torch.tensor([[[10.0 * i + v] * 2 for v in range(n_views)] for i in range(n)])
    views = TrainingViews()
    views.prepare(batch.numpy(), multi_view=True)
    torch.manual_seed(0)
    a, b = views(batch)
    drawn_a, drawn_b = (a[:, 0] - 10 * torch.arange(n)).long(), (b[:, 0] - 10 * torch.arange(n)).long()
    assert torch.all(drawn_a != drawn_b) and set(drawn_a.tolist()) == set(range(n_views))
    flip = TrainingViews(augment=lambda x: -x)
    flip.prepare(batch[:, 0].numpy())
    a, b = flip(batch[:, 0])
    torch.testing.assert_close(a, -batch[:, 0])
    torch.testing.assert_close(b, -batch[:, 0])
