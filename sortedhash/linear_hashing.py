"""Baseline hashers: sign of a linear projection of centred data (LSH, PCA, ITQ), and
binary quantization (the sign of each feature).

Each is a scikit-learn transformer returning packed codes in the same bit order as
:class:`~sortedhash.NSHTransformer`, so they can be swapped for one another in a Pipeline
or a benchmark.
"""

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._codes_out import PackedCodesOutMixin
from ._safe_state import SafeStateMixin
from ._versions import VersionedMixin
from .bits import n_bytes_for, pack_codes

__all__ = ["LSHTransformer", "PCAHashTransformer", "ITQTransformer", "BinaryQuantizer"]


class _LinearHash(SafeStateMixin, VersionedMixin, PackedCodesOutMixin, TransformerMixin,
                  BaseEstimator):
    """Codes are ``sign((X - mean_) @ projection_)``, packed."""

    _parameter_constraints = {"n_bits": [Interval(Integral, 1, None, closed="left")]}
    _safe_arrays = ("mean_", "projection_")
    _safe_values = ("n_features_in_", "n_bytes_")

    def _fit_validate(self, X):
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.mean_ = X.mean(axis=0)
        self.n_bytes_ = n_bytes_for(self.n_bits)
        self._record_versions()
        return X - self.mean_

    def decision_function(self, X):
        """The projections the bits are the signs of: bit ``j`` is set where column ``j`` is
        >= 0 (what :class:`~sortedhash.RerankedNeighbors` scores candidates' codes with).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_bits)
            ``(X - mean_) @ projection_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return (X - self.mean_) @ self.projection_

    def transform(self, X):
        """Encode ``X`` into packed codes of shape (n_samples, ceil(n_bits / 8)), uint8."""
        return pack_codes(self.decision_function(X) >= 0)


def _pca_components(Xc, n_bits, name):
    if n_bits > min(Xc.shape):
        raise ValueError(
            f"{name} with n_bits={n_bits} needs at least n_bits samples and features, got "
            f"X of shape {Xc.shape}; use LSHTransformer for more bits than that"
        )
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    return vt[:n_bits].T


class LSHTransformer(_LinearHash):
    """Sign of a Gaussian random projection of centred data (SimHash / LSH).

    Parameters
    ----------
    n_bits : int, default=64
        Code length.
    random_state : int, RandomState instance or None, default=None
        Seeds the projection.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    projection_ : ndarray of shape (n_features, n_bits)
    """

    _parameter_constraints = {**_LinearHash._parameter_constraints, "random_state": ["random_state"]}

    def __init__(self, *, n_bits=64, random_state=None):
        self.n_bits = n_bits
        self.random_state = random_state

    def fit(self, X, y=None):
        """Draw the projection; ``X`` only sets the mean and the width."""
        Xc = self._fit_validate(X)
        rng = check_random_state(self.random_state)
        self.projection_ = rng.standard_normal((Xc.shape[1], self.n_bits))
        return self


class PCAHashTransformer(_LinearHash):
    """Sign of the top ``n_bits`` principal components.

    Parameters
    ----------
    n_bits : int, default=64
        Code length; at most ``min(n_samples, n_features)``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    projection_ : ndarray of shape (n_features, n_bits)
    """

    def __init__(self, *, n_bits=64):
        self.n_bits = n_bits

    def fit(self, X, y=None):
        """Compute the principal directions of ``X``."""
        Xc = self._fit_validate(X)
        self.projection_ = _pca_components(Xc, self.n_bits, "PCAHashTransformer")
        return self


class ITQTransformer(_LinearHash):
    """Iterative Quantization (Gong & Lazebnik, PAMI 2013).

    PCA to ``n_bits`` dimensions, then an orthogonal rotation ``R`` that minimises the
    quantization error ``||sign(V R) - V R||_F`` by alternating minimisation: fix the codes
    ``B = sign(V R)``, then solve the orthogonal Procrustes problem for ``R``.

    Parameters
    ----------
    n_bits : int, default=64
        Code length; at most ``min(n_samples, n_features)``.
    n_iter : int, default=50
        Alternating minimisation steps.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial random rotation.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    projection_ : ndarray of shape (n_features, n_bits)
        PCA directions times the learned rotation.
    """

    _parameter_constraints = {
        **_LinearHash._parameter_constraints,
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, *, n_bits=64, n_iter=50, random_state=None):
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        """Learn the PCA directions and the rotation."""
        Xc = self._fit_validate(X)
        pca = _pca_components(Xc, self.n_bits, "ITQTransformer")
        V = Xc @ pca
        rng = check_random_state(self.random_state)
        R, _ = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))
        for _ in range(self.n_iter):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            u, _, vt = np.linalg.svd(B.T @ V)
            R = (u @ vt).T
        self.projection_ = pca @ R
        return self


class BinaryQuantizer(SafeStateMixin, VersionedMixin, PackedCodesOutMixin, TransformerMixin, BaseEstimator):
    """Binary quantization: one bit per input dimension, as vector databases ship it.

    Bit ``j`` is set where feature ``j`` is at least its training mean (``center=True``)
    or at least 0 (``center=False``, the sign of the raw value: what Qdrant, Milvus,
    Weaviate and Cohere's binary embeddings do). Nothing is learned but the mean, and the
    codes are as long as the input: 384-d embeddings give 384 bits (48 bytes).

    Parameters
    ----------
    center : bool, default=True
        Threshold each feature at its training mean instead of at 0.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        The thresholds (zeros with ``center=False``).
    n_bits_ : int
        ``n_features``: one bit each. The code is padded with zero bits to whole bytes.
    n_bytes_ : int
        Bytes of one packed code, ``ceil(n_features / 8)``.
    """

    _parameter_constraints = {"center": ["boolean"]}
    _safe_arrays = ("mean_",)
    _safe_values = ("n_features_in_", "n_bits_", "n_bytes_")

    def __init__(self, *, center=True):
        self.center = center

    def fit(self, X, y=None):
        """Record the thresholds (the mean of each feature, or zeros)."""
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.mean_ = X.mean(axis=0) if self.center else np.zeros(X.shape[1], dtype=X.dtype)
        self.n_bits_ = X.shape[1]
        self.n_bytes_ = n_bytes_for(self.n_bits_)
        self._record_versions()
        return self

    def decision_function(self, X):
        """The values the bits threshold: bit ``j`` is set where column ``j`` is >= 0 (what
        :class:`~sortedhash.RerankedNeighbors` scores candidates' codes with).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_features)
            ``X - mean_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X - self.mean_

    def transform(self, X):
        """Encode ``X`` into packed codes of shape (n_samples, ceil(n_features / 8)), uint8."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        # The same bits as decision_function(X) >= 0, without its float copy of X.
        return pack_codes(X >= self.mean_)
