"""What an estimator writes to, and reads from, the safe model format.

:mod:`sortedhash.persistence` owns the file format; each estimator says what its fitted
state is through two hooks, so adding an estimator touches only the estimator (and the
list of classes the format accepts).
"""

import numpy as np

__all__ = ["SafeStateMixin"]


class SafeStateMixin:
    """Default hooks: the constructor parameters, plus fitted attributes named by the class.

    ``_safe_arrays`` names fitted ndarray attributes (stored as tensors, those that are set:
    some exist only with some parameters), ``_safe_values`` fitted attributes that JSON can
    hold. Override the hooks for anything else.
    """

    _safe_arrays = ()
    _safe_values = ()

    def _to_safe_state(self):
        """``(params, arrays, values)`` describing this fitted estimator.

        Returns
        -------
        params : dict
            Constructor parameters (JSON-serialisable).
        arrays : dict of str to ndarray or Tensor
            Named arrays.
        values : dict
            Other fitted state (JSON-serialisable).
        """
        arrays = {f"attr.{name}": getattr(self, name) for name in self._safe_arrays if hasattr(self, name)}
        values = {name: getattr(self, name) for name in self._safe_values}
        if hasattr(self, "feature_names_in_"):
            values["feature_names_in_"] = [str(f) for f in self.feature_names_in_]
        return self.get_params(deep=False), arrays, values

    @classmethod
    def _from_safe_params(cls, params):
        """An unfitted estimator of the stored (JSON) parameters."""
        return cls(**params)

    @classmethod
    def _from_safe_state(cls, params, arrays, values):
        """The fitted estimator that :meth:`_to_safe_state` described (arrays as ndarrays)."""
        estimator = cls._from_safe_params(params)
        for name in cls._safe_values:
            setattr(estimator, name, values[name])
        if "feature_names_in_" in values:
            estimator.feature_names_in_ = np.asarray(values["feature_names_in_"], dtype=object)
        for name in cls._safe_arrays:
            if f"attr.{name}" in arrays:
                setattr(estimator, name, arrays[f"attr.{name}"])
        return estimator
