"""Retrieval metrics over Hamming rankings of packed codes, and a mAP scorer."""

from ._ranking import (
    average_precision_per_query,
    hamming_distances,
    mean_average_precision,
    mean_average_precision_from_distances,
    precision_at_k,
    precision_recall_curve,
)
from ._scorer import make_map_scorer, map_scorer

__all__ = [
    "average_precision_per_query",
    "hamming_distances",
    "make_map_scorer",
    "map_scorer",
    "mean_average_precision",
    "mean_average_precision_from_distances",
    "precision_at_k",
    "precision_recall_curve",
]
