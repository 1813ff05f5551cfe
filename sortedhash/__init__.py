"""sortedhash: learned binary hashing for scikit-learn.

Data flows one way: features -> :class:`NSHTransformer` (or a baseline hasher) -> packed
codes (:mod:`sortedhash.bits`) -> :class:`HammingNeighbors` -> :mod:`sortedhash.metrics`.
"""

from . import metrics
from .bits import pack_codes, unpack_codes
from .linear_hashing import ITQTransformer, LSHTransformer, PCAHashTransformer
from .neighbors import HammingNeighbors
from .nsh import NSHTransformer

__version__ = "0.1.0"

__all__ = [
    "HammingNeighbors",
    "ITQTransformer",
    "LSHTransformer",
    "NSHTransformer",
    "PCAHashTransformer", "metrics", "pack_codes", "unpack_codes", "__version__"]
