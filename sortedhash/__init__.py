"""sortedhash: learned binary hashing for scikit-learn.

Data flows one way: features -> :class:`NSHTransformer` (or a baseline hasher) -> packed
codes (:mod:`sortedhash.bits`) -> :class:`HammingNeighbors` -> :mod:`sortedhash.metrics`.
"""

__version__ = "0.1.0"

from . import metrics
from ._versions import InconsistentVersionWarning
from .bits import pack_codes, unpack_codes
from .linear_hashing import BinaryQuantizer, ITQTransformer, LSHTransformer, PCAHashTransformer
from .neighbors import HammingNeighbors, RerankedNeighbors
from .nsh import NSHTransformer
from .persistence import load, save

__all__ = [
    "BinaryQuantizer",
    "HammingNeighbors",
    "ITQTransformer",
    "InconsistentVersionWarning",
    "LSHTransformer",
    "NSHTransformer",
    "PCAHashTransformer",
    "RerankedNeighbors",
    "__version__",
    "load",
    "metrics",
    "pack_codes",
    "save",
    "unpack_codes",
]
