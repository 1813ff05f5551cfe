"""Neighbour mixing: views of feature vectors drawn toward their nearest neighbours.

Feature-space noise makes views of one sample; mixing each row with its nearest rows in the
training set (``x + w (x_nn - x)``) makes views that also step toward the sample's
neighbourhood, the "mixing with neighbours" augmentation of the method note. The views are
built once before training and fed to NSH as multi-view input (two distinct views drawn per
sample and step, then the noise augmentation on each).
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

__all__ = ["neighbor_mix_views"]


def neighbor_mix_views(X, n_neighbors, max_weight, random_state=None):
    """Each row itself, then mixed with each of its nearest rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Feature vectors (standardised, as NSH expects).
    n_neighbors : int
        Nearest rows to mix with (cosine similarity, brute force: O(n_samples^2
        n_features)); at most ``n_samples - 1`` are used.
    max_weight : float
        View ``j`` of row ``i`` is ``x_i + w (x_nn_j - x_i)`` with ``w`` drawn uniformly
        from [0, max_weight] once per row and view.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights.

    Returns
    -------
    views : ndarray of shape (n_samples, 1 + n_neighbors, n_features), float32
        View 0 is ``X`` itself. ``X`` is not modified.
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    k = min(int(n_neighbors), n - 1)
    if k < 1:
        return X[:, None, :].copy()
    ind = NearestNeighbors(metric="cosine", algorithm="brute").fit(X).kneighbors(
        X, n_neighbors=k + 1, return_distance=False)
    # Drop each row's own index (not always first when rows repeat), keep the k nearest others.
    not_self = ind != np.arange(n)[:, None]
    ind = np.take_along_axis(ind, np.argsort(~not_self, axis=1, kind="stable"), axis=1)[:, :k]
    rng = check_random_state(random_state)
    w = rng.uniform(0.0, max_weight, size=(n, k, 1)).astype(np.float32)
    views = np.empty((n, 1 + k, X.shape[1]), dtype=np.float32)
    views[:, 0] = X
    # x + w (x_nn - x) written in place: no (n, k, d) temporaries beside the views.
    mixed = views[:, 1:]
    np.take(X, ind, axis=0, out=mixed, mode="clip")  # "clip": out is not buffered
    mixed -= X[:, None, :]
    mixed *= w
    mixed += X[:, None, :]
    return views
