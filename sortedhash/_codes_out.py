"""What every sortedhash transformer's output is: packed codes, one uint8 column per byte."""

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin

__all__ = ["PackedCodesOutMixin"]


class PackedCodesOutMixin(ClassNamePrefixFeaturesOutMixin):
    """Output columns named after the bits they pack.

    ``transform`` returns ``uint8`` codes whatever the input's dtype (the tags say so).
    Column ``i`` of its output is byte ``i`` of the packed code: bits ``8i`` to
    ``8i + 7``, least significant bit first. ``get_feature_names_out`` says so
    (``"nshtransformer_bits0-7"``, ...), also in the column names of
    ``set_output(transform="pandas")``.
    """

    @property
    def _n_features_out(self):
        return self.n_bytes_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # uint8 codes, whatever the input's dtype
        return tags

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: ``"<estimator>_bits<first>-<last>"``, one per byte.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the features seen in ``fit``, as scikit-learn does; the output
            names do not depend on them.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        n_bytes = len(super().get_feature_names_out(input_features))
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}_bits{8 * i}-{8 * i + 7}" for i in range(n_bytes)], dtype=object)
