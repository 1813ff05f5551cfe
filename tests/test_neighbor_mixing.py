import numpy as np
import pytest

from sortedhash._neighbor_mixing import neighbor_mix_views

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
    assert model.net_.multi_view_  # the net drew two of the 4 views per sample
    off = small_nsh(mix_neighbors=0, max_epochs=1).fit(X[:200])
    assert not off.net_.multi_view_
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
