"""Retrieval metrics over Hamming rankings of packed codes (against labels, or against the
float neighbours the codes should keep), and scorers for model selection."""

from ._ranking import (
    average_precision_per_query,
    hamming_distances,
    mean_average_precision,
    mean_average_precision_from_distances,
    precision_at_k,
    precision_recall_curve,
)
from ._recall import make_neighbor_recall_scorer, neighbor_recall
from ._scorer import make_map_scorer, map_scorer

__all__ = [
    "average_precision_per_query",
    "hamming_distances",
    "make_map_scorer",
    "make_neighbor_recall_scorer",
    "map_scorer",
    "mean_average_precision",
    "mean_average_precision_from_distances",
    "neighbor_recall",
    "precision_at_k",
    "precision_recall_curve",
]
