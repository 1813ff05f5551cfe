import numpy as np
import pytest

from sortedhash import ITQTransformer, LSHTransformer, PCAHashTransformer, unpack_codes
from sortedhash.linear_hashing import _pca_components
from sortedhash.metrics import mean_average_precision


def _map(model, X, y):
    codes = model.fit(X[200:]).transform(X)
    return mean_average_precision(codes[:200], y[:200], codes[200:], y[200:])


@pytest.mark.parametrize("cls", [LSHTransformer, PCAHashTransformer, ITQTransformer])
def test_codes_are_signs_of_the_centred_projection(digits, cls):
    X, _ = digits
    model = cls(n_bits=12).fit(X)
    codes = model.transform(X[:30])
    assert codes.shape == (30, 2) and codes.dtype == np.uint8
    projection = (X[:30] - model.mean_) @ model.projection_
    np.testing.assert_array_equal(unpack_codes(codes, 12), (projection >= 0).astype(np.uint8))
    np.testing.assert_allclose(model.decision_function(X[:30]), projection)  # the values the bits are signs of


def test_itq_rotation_is_orthogonal_and_beats_pca_signs(digits):
    X, y = digits
    itq = ITQTransformer(n_bits=32, random_state=0).fit(X[200:])
    pca = PCAHashTransformer(n_bits=32).fit(X[200:])
    # projection = PCA directions x an orthogonal rotation: same column space, norms 1.
    np.testing.assert_allclose(np.linalg.norm(itq.projection_, axis=0), 1.0, atol=1e-8)
    assert _map(itq, X, y) > _map(pca, X, y) + 0.05


def test_pca_hash_too_many_bits(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="n_bits=65"):
        PCAHashTransformer(n_bits=65).fit(X)


def _quantization_loss(projected):
    """ITQ's objective, ||sign(V R) - V R||_F^2, of the rotated PCA projections."""
    return float(((np.where(projected >= 0, 1.0, -1.0) - projected) ** 2).sum())


def test_itq_lowers_the_quantization_loss_at_every_iteration(digits):
    """Alternating minimisation: each code step and each Procrustes step can only lower it."""
    X, _ = digits
    losses = []
    for n_iter in (0, 1, 2, 5, 20, 50):
        model = ITQTransformer(n_bits=32, n_iter=n_iter, random_state=0).fit(X)
        losses.append(_quantization_loss((X - model.mean_) @ model.projection_))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.85 * losses[0]  # measured: 44,170 at the random start, 34,456 after 50


def test_itq_against_faiss(digits):
    """Our ITQ reaches at least faiss's mAP on the same data, and a lower ITQ objective.

    faiss's ITQMatrix hardly lowers ITQ's quantization loss: on the same 32 PCA dimensions
    of the training rows it goes from 39,463 at its random start to 39,345 after its 50
    iterations, where Gong & Lazebnik's Procrustes step (ours) goes from 39,926 to 31,707.
    So its codes rank worse: mAP .552 against ours .598 (.589-.605 over 5 seeds; with faiss's
    own preprocessing, centred and L2-normalised rows, ours gives .589-.598). Equal mAP is
    therefore not the bar: ours must reach at least faiss's, with a lower loss.
    """
    faiss = pytest.importorskip("faiss")
    X, y = digits
    X = np.ascontiguousarray(X, dtype=np.float32)
    ours = _map(ITQTransformer(n_bits=32, random_state=0), X, y)
    itq = faiss.ITQTransform(X.shape[1], 32, True)
    itq.max_train_per_dim = len(X)  # faiss subsamples to 10 rows a dimension by default
    itq.train(X[200:])
    codes = np.packbits(itq.apply(X) > 0, axis=1, bitorder="little")
    theirs = mean_average_precision(codes[:200], y[:200], codes[200:], y[200:])
    assert ours >= theirs - 0.01

    # The rotation alone, both learned on the same PCA projections V of the training rows.
    model = ITQTransformer(n_bits=32, random_state=0).fit(X[200:])
    centred = X[200:] - model.mean_
    V = np.ascontiguousarray(centred @ _pca_components(centred, 32, "ITQTransformer"))
    rotation = faiss.ITQMatrix(32)
    rotation.train(V)
    assert _quantization_loss(centred @ model.projection_) < _quantization_loss(rotation.apply(V))


def test_output_columns_are_named_after_the_bits_they_pack():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).standard_normal((40, 6)), columns=list("abcdef"))
    for model in (LSHTransformer(n_bits=20, random_state=0), ITQTransformer(n_bits=6, random_state=0)):
        model.fit(X)
        names = model.get_feature_names_out()
        prefix = type(model).__name__.lower()
        assert names[0] == f"{prefix}_bits0-7" and len(names) == model.n_bytes_
        out = model.set_output(transform="pandas").transform(X)
        assert list(out.columns) == list(names)
        np.testing.assert_array_equal(out.to_numpy(), model.set_output(transform="default").transform(X))
        with pytest.raises(ValueError):
            model.get_feature_names_out(["x"] * 6)  # not the features seen in fit


@pytest.mark.parametrize("center", [True, False])
def test_binary_quantizer_sets_one_bit_per_feature_at_its_threshold(center):
    from sortedhash import BinaryQuantizer

    X = np.random.default_rng(0).standard_normal((50, 13)) + 0.3
    model = BinaryQuantizer(center=center).fit(X)
    threshold = X.mean(axis=0) if center else np.zeros(13)
    np.testing.assert_allclose(model.mean_, threshold)
    codes = model.transform(X)
    assert (model.n_bits_, model.n_bytes_, codes.shape) == (13, 2, (50, 2))
    bits = unpack_codes(codes)
    np.testing.assert_array_equal(bits[:, :13], (X >= threshold).astype(np.uint8))
    assert not bits[:, 13:].any()  # padding bits stay zero
    np.testing.assert_allclose(model.decision_function(X), X - threshold)  # the bits are its signs
    assert model.get_feature_names_out()[1] == "binaryquantizer_bits8-15"
