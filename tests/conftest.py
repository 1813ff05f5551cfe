import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(X))
    return StandardScaler().fit_transform(X[perm]).astype(np.float32), y[perm]


def small_nsh(**kwargs):
    """An NSHTransformer small enough for unit tests (seconds on a CPU)."""
    from sortedhash import NSHTransformer

    params = dict(n_bits=16, hidden_sizes=(32,), latent_dim=16, max_epochs=2, batch_size=32,
                  n_positives=2, random_state=0)
    params.update(kwargs)
    return NSHTransformer(**params)
