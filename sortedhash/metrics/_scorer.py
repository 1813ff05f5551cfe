"""A mAP scorer for model selection with ``GridSearchCV``."""

import numpy as np

from ._ranking import mean_average_precision

__all__ = ["map_scorer", "make_map_scorer"]


def make_map_scorer(*, k=None):
    """Make a scorer ``scorer(estimator, X, y)`` returning leave-one-out mAP of the codes.

    The fitted transformer (or pipeline ending in one) encodes ``X``; each sample is then a
    query against all the others, relevance meaning equal labels (or a shared label for a
    2-D ``y``), as in :func:`~sortedhash.metrics.mean_average_precision`.

    Parameters
    ----------
    k : int, default=None
        Cut-off of the ranking (mAP@k); None ranks every other sample.

    Returns
    -------
    scorer : callable
        Usable as ``scoring=`` in ``GridSearchCV``, ``cross_val_score`` and the like
        (greater is better).
    """

    def scorer(estimator, X, y=None):
        if y is None:
            raise ValueError("the mAP scorer needs labels y to define relevance")
        codes = estimator.transform(X)
        return mean_average_precision(codes, np.asarray(y), codes, np.asarray(y), k=k, exclude_self=True)

    scorer.__name__ = "map_scorer" if k is None else f"map_at_{k}_scorer"
    return scorer


#: Leave-one-out mAP over the full ranking; see :func:`make_map_scorer`.
map_scorer = make_map_scorer()
