import numpy as np
import pytest

from sortedhash import LSHTransformer
from sortedhash.metrics import make_map_scorer, map_scorer, mean_average_precision


def test_scorer_is_leave_one_out_map_of_the_codes():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    model = LSHTransformer(n_bits=16, random_state=0).fit(X)
    codes = model.transform(X)
    for k in (None, 10):
        expected = mean_average_precision(codes, y, codes, y, k=k, exclude_self=True)
        assert make_map_scorer(k=k)(model, X, y) == pytest.approx(expected)
    assert map_scorer(model, X, y) == pytest.approx(make_map_scorer()(model, X, y))
    assert make_map_scorer(k=10).__name__ == "map_at_10_scorer" and map_scorer.__name__ == "map_scorer"


def test_scorer_needs_labels():
    X = np.random.default_rng(0).standard_normal((10, 3))
    model = LSHTransformer(n_bits=8, random_state=0).fit(X)
    for call in (lambda: map_scorer(model, X, None), lambda: map_scorer(model, X)):
        with pytest.raises(ValueError, match="needs labels"):
            call()
