"""Exact nearest-neighbour search over packed binary codes, and two-stage search that
re-ranks Hamming candidates by the float metric."""

from ._hamming import HammingNeighbors
from ._reranked import RerankedNeighbors

__all__ = ["HammingNeighbors", "RerankedNeighbors"]
