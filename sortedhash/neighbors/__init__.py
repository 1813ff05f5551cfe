"""Exact nearest-neighbour search over packed binary codes."""

from ._hamming import HammingNeighbors

__all__ = ["HammingNeighbors"]
