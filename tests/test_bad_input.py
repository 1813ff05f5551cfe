"""Hostile input at every public entry point: a correct result or a clear error, never a
crash deep inside, and the caller's arrays are never modified."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from sortedhash import (HammingNeighbors, ITQTransformer, LSHTransformer, PCAHashTransformer,
                        pack_codes, unpack_codes)
from sortedhash.metrics import mean_average_precision, precision_at_k

from .conftest import small_nsh

TRANSFORMERS = {
    "nsh": lambda: small_nsh(max_epochs=1),
    "lsh": lambda: LSHTransformer(n_bits=16, random_state=0),
    "pca": lambda: PCAHashTransformer(n_bits=4),
    "itq": lambda: ITQTransformer(n_bits=4, random_state=0),
}


def _X(n=60, d=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def _with(value, where=(3, 2)):
    X = _X()
    X[where] = value
    return X


# (case, X, expected error type or None for "works", message pattern)
FIT_CASES = [
    ("nan", _with(np.nan), ValueError, "NaN"),
    ("inf", _with(np.inf), ValueError, "infinity"),
    ("empty", np.empty((0, 8)), ValueError, "0 sample"),
    ("1-d", _X()[:, 0], ValueError, "2D array"),
    ("strings", np.array([["a", "b"]] * 20, dtype=object), ValueError, "could not convert|string"),
    ("sparse", sp.csr_matrix(_X()), TypeError, "[Ss]parse"),
    ("int", np.random.default_rng(0).integers(-5, 5, (60, 8)), None, None),
    ("float16", _X().astype(np.float16), None, None),
    ("non-contiguous", np.asfortranarray(_X(60, 16))[:, ::2], None, None),
]


@pytest.mark.parametrize("name", TRANSFORMERS)
@pytest.mark.parametrize("case, X, error, match", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_input(name, case, X, error, match):
    est = TRANSFORMERS[name]()
    before = X.copy()
    if error is None:
        codes = est.fit(X).transform(X)
        assert codes.dtype == np.uint8 and codes.shape[0] == X.shape[0]
    else:
        with pytest.raises(error, match=match):
            est.fit(X)
    if sp.issparse(X):
        np.testing.assert_array_equal(X.toarray(), before.toarray())
    else:
        np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_read_only_input_works_without_warnings(name):
    X = _X()
    X.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codes = TRANSFORMERS[name]().fit(X).transform(X)
    assert codes.shape[0] == 60


def test_one_sample():
    X = _X(1)
    with pytest.raises(ValueError, match="n_samples = 1"):
        small_nsh().fit(X)
    with pytest.raises(ValueError, match="n_bits=4 needs at least n_bits samples"):
        PCAHashTransformer(n_bits=4).fit(X)
    assert LSHTransformer(n_bits=8).fit(X).transform(X).shape == (1, 1)


def test_three_d_input():
    X3 = _X(60, 8).reshape(60, 2, 4)
    with pytest.raises(ValueError, match="dim 3"):
        LSHTransformer().fit(X3)
    # For NSH, 3-D input means precomputed views of each sample.
    assert small_nsh(max_epochs=1).fit(X3).multi_view_


@pytest.mark.parametrize("method", ["transform", "decision_function"])
@pytest.mark.parametrize("name", TRANSFORMERS)
def test_transform_errors(name, method):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        getattr(TRANSFORMERS[name](), method)(_X())
    apply = getattr(TRANSFORMERS[name]().fit(_X()), method)
    with pytest.raises(ValueError, match="8 features"):
        apply(_X(5, 7))
    with pytest.raises(ValueError, match="NaN"):
        apply(_with(np.nan)[:5])
    with pytest.raises(ValueError, match="0 sample"):
        apply(np.empty((0, 8)))


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_pandas_feature_names(name):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_X(), columns=[f"f{i}" for i in range(8)])
    est = TRANSFORMERS[name]().fit(df)
    assert list(est.feature_names_in_) == list(df.columns)
    with pytest.warns(UserWarning, match="valid feature names"):  # scikit-learn's own warning
        plain = est.transform(df.to_numpy())
    np.testing.assert_array_equal(est.transform(df), plain)
    with pytest.raises(ValueError, match="feature names"):
        est.transform(df.rename(columns={"f0": "other"}))


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_invalid_n_bits(name):
    est = TRANSFORMERS[name]().set_params(n_bits=0)
    with pytest.raises(ValueError, match="n_bits"):
        est.fit(_X())


CODE_CASES = [
    ("float codes", np.zeros((5, 2)), TypeError, "dtype uint8"),
    ("int64 codes", np.zeros((5, 2), dtype=np.int64), TypeError, "dtype uint8"),
    ("bool bits", np.zeros((5, 16), dtype=bool), TypeError, "dtype uint8"),
    ("1-d codes", np.zeros(5, dtype=np.uint8), ValueError, "2-D"),
    ("empty codes", np.zeros((0, 2), dtype=np.uint8), ValueError, "empty"),
    ("sparse codes", sp.csr_matrix(np.zeros((5, 2), dtype=np.uint8)), TypeError, "sparse"),
]


@pytest.mark.parametrize("case, codes, error, match", CODE_CASES, ids=[c[0] for c in CODE_CASES])
def test_bad_codes_everywhere(case, codes, error, match):
    good = np.zeros((5, 2), dtype=np.uint8)
    with pytest.raises(error, match=match):
        HammingNeighbors().fit(codes)
    with pytest.raises(error, match=match):
        HammingNeighbors(n_neighbors=1).fit(good).kneighbors(codes)
    with pytest.raises(error, match=match):
        mean_average_precision(codes, np.zeros(5), good, np.zeros(5))
    with pytest.raises(error, match=match):
        unpack_codes(codes)


def test_labels_of_wrong_length():
    codes = np.zeros((5, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="database_labels has 4 rows"):
        precision_at_k(codes, np.zeros(5), codes, np.zeros(4), k=2)


def test_read_only_and_non_contiguous_codes():
    codes = np.random.default_rng(0).integers(0, 256, (100, 4), dtype=np.uint8)
    view = np.asfortranarray(codes)[:, ::2]
    view.setflags(write=False)
    nn = HammingNeighbors(n_neighbors=3).fit(view)
    np.testing.assert_array_equal(nn.kneighbors(view)[1],
                                  HammingNeighbors(n_neighbors=3).fit(codes[:, ::2].copy()).kneighbors(codes[:, ::2].copy())[1])


@settings(max_examples=40, deadline=None)
@given(bits=arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 70))))
def test_pack_unpack_round_trip(bits):
    codes = pack_codes(bits)
    assert codes.shape == (bits.shape[0], (bits.shape[1] + 7) // 8)
    np.testing.assert_array_equal(unpack_codes(codes, bits.shape[1]).astype(bool), bits)


@settings(max_examples=30, deadline=None)
@given(
    db=arrays(np.uint8, st.tuples(st.integers(2, 300), st.sampled_from([1, 2, 3, 8, 9])),
              elements=st.integers(0, 255)),
    data=st.data(),
)
def test_compiled_search_equals_reference(db, data):
    k = data.draw(st.integers(1, db.shape[0] - 1))
    queries = data.draw(arrays(np.uint8, (3, db.shape[1]), elements=st.integers(0, 255)))
    fast = HammingNeighbors(n_neighbors=k).fit(db)
    ref = HammingNeighbors(n_neighbors=k, backend="numpy").fit(db)
    for X in (queries, None):
        for a, b in zip(fast.kneighbors(X), ref.kneighbors(X)):
            np.testing.assert_array_equal(a, b)
