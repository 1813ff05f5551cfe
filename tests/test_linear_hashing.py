import numpy as np
import pytest

from sortedhash import ITQTransformer, LSHTransformer, PCAHashTransformer, unpack_codes
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
    expected = ((X[:30] - model.mean_) @ model.projection_ >= 0).astype(np.uint8)
    np.testing.assert_array_equal(unpack_codes(codes, 12), expected)


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


def test_itq_matches_faiss(digits):
    faiss = pytest.importorskip("faiss")
    X, y = digits
    X = np.ascontiguousarray(X, dtype=np.float32)
    ours = _map(ITQTransformer(n_bits=32, random_state=0), X, y)
    itq = faiss.ITQTransform(X.shape[1], 32, True)
    itq.max_train_per_dim = len(X)  # faiss subsamples to 10 rows a dimension by default
    itq.train(X[200:])
    codes = np.packbits(itq.apply(X) > 0, axis=1, bitorder="little")
    theirs = mean_average_precision(codes[:200], y[:200], codes[200:], y[200:])
    # Measured: ours .598 vs faiss .552 at 32 bits (ours .589-.605 over 5 seeds); faiss's
    # ITQTransform preprocesses its PCA differently. Ours must reach at least faiss's mAP.
    assert ours >= theirs - 0.01
