"""Training views: what NSH contrasts at every step.

A :class:`TrainingViews` object is the one place that decides what the two views of a
sample are. Before training, :meth:`TrainingViews.prepare` turns the input into the array
the network trains on: feature vectors as they are, several precomputed views per sample
(multi-view input), or feature vectors plus views mixed toward their nearest neighbours.
At every step, calling the object on a batch draws two distinct views of each sample
(when there are several) and applies the random augmentation to each.
"""

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

__all__ = ["TrainingViews", "neighbor_mix_views"]


class TrainingViews:
    """Yields two random views of every sample of a training batch.

    Parameters
    ----------
    augment : callable or None, default=None
        Maps a batch tensor (on the training device) to a random view of it, e.g.
        :class:`sortedhash.nn.FeatureNoise` or torchvision transforms. None leaves the
        views as drawn.
    mix_neighbors : int, default=0
        Views mixed toward each row's nearest neighbours, added by :meth:`prepare` to 2-D
        feature vectors (see :func:`neighbor_mix_views`). 0 adds none.
    mix_weight : float, default=1.0
        Largest mixing weight of those views.

    Attributes
    ----------
    multi_view_ : bool
        Set by :meth:`prepare`: whether training batches hold several views per sample,
        of shape (batch, n_views, ...). Before :meth:`prepare`, a batch is one view per
        sample.
    """

    def __init__(self, augment=None, *, mix_neighbors=0, mix_weight=1.0):
        self.augment = augment
        self.mix_neighbors = mix_neighbors
        self.mix_weight = mix_weight

    def prepare(self, X, *, multi_view=False, random_state=None):
        """The array to train on.

        Parameters
        ----------
        X : ndarray
            Training input: feature vectors (n_samples, n_features), several precomputed
            views (n_samples, n_views, n_features) when ``multi_view``, or anything a
            custom encoder takes.
        multi_view : bool, default=False
            Whether the second axis of ``X`` holds views of one sample.
        random_state : int, RandomState instance or None, default=None
            Seeds the mixing weights.

        Returns
        -------
        X_train : ndarray
            ``X`` itself, or with ``mix_neighbors`` its views of shape (n_samples,
            1 + mix_neighbors, n_features), view 0 being ``X``. ``X`` is never modified.
        """
        if multi_view and X.shape[1] < 2 and self.augment is None:
            raise ValueError("multi-view input needs at least 2 views per sample, or an augment")
        self.multi_view_ = bool(multi_view)
        if not multi_view and X.ndim == 2 and self.mix_neighbors:
            X = neighbor_mix_views(X, self.mix_neighbors, self.mix_weight, random_state)
            self.multi_view_ = True
        return X

    def clean(self, batch):
        """The batch without augmentation: each sample's first view when there are several
        (the input itself, with neighbour mixing)."""
        return batch[:, 0] if getattr(self, "multi_view_", False) else batch

    def __call__(self, batch):
        """Two random views ``(a, b)`` of a batch tensor."""
        if getattr(self, "multi_view_", False):
            a, b = _two_distinct_views(batch)
        else:
            a = b = batch
        if self.augment is not None:
            a, b = self.augment(a), self.augment(b)
        return a, b


def _two_distinct_views(batch):
    """For each sample of a (n, n_views, ...) batch, two of its views drawn without replacement."""
    n, n_views = batch.shape[:2]
    rows = torch.arange(n, device=batch.device)
    first = torch.randint(n_views, (n,), device=batch.device)
    # The second index is drawn from the other n_views - 1 views.
    second = (first + torch.randint(1, n_views, (n,), device=batch.device)) % n_views
    return batch[rows, first], batch[rows, second]


def neighbor_mix_views(X, n_neighbors, max_weight, random_state=None):
    """Each row itself, then mixed with each of its nearest rows.

    View ``j`` of row ``i`` is ``x_i + w (x_nn_j - x_i)``: views that step toward the
    sample's neighbourhood rather than only around it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Feature vectors.
    n_neighbors : int
        Nearest rows to mix with (cosine similarity, brute force: O(n_samples^2
        n_features) time); at most ``n_samples - 1`` are used.
    max_weight : float
        ``w`` is drawn uniformly from [0, max_weight] once per row and view.
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
