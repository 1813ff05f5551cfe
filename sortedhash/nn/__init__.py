"""PyTorch building blocks of NSH: network, augmentation, sorters, gather and losses.

These modules know nothing of scikit-learn; :mod:`sortedhash.nsh` wires them into an
estimator through skorch.
"""

from .augment import FeatureNoise
from .gather import LevelRuns, anchored_soft_gather, grid_level_gather, grid_soft_gather
from .losses import NSHLoss, code_nt_xent, hamming_similarity, quantization_loss, sorted_nce
from .network import HashingNetwork, MLPBackbone, sign_ste
from .sorters import NoSort, SoftSort, TorchsortSorter, make_sorter

__all__ = [
    "FeatureNoise",
    "HashingNetwork",
    "LevelRuns",
    "MLPBackbone",
    "NSHLoss",
    "NoSort",
    "SoftSort",
    "TorchsortSorter",
    "anchored_soft_gather",
    "code_nt_xent",
    "grid_level_gather",
    "grid_soft_gather",
    "hamming_similarity",
    "make_sorter",
    "quantization_loss",
    "sign_ste",
    "sorted_nce",
]
