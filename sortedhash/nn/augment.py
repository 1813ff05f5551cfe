"""Augmentations in feature space, for training on precomputed feature vectors."""

import torch
from torch import nn

__all__ = ["FeatureNoise"]


class FeatureNoise(nn.Module):
    """Gaussian noise then feature dropout: a random view of a batch of feature vectors.

    Parameters
    ----------
    noise_std : float
        Standard deviation of the additive noise, in units of the input's per-feature
        standard deviation (input is expected standardised).
    dropout : float
        Probability of zeroing each feature (inverted dropout, surviving features are
        rescaled by ``1 / (1 - dropout)``).
    """

    def __init__(self, noise_std=0.5, dropout=0.2):
        super().__init__()
        self.noise_std = float(noise_std)
        self.dropout = float(dropout)

    def forward(self, x):
        if self.noise_std:
            x = x + self.noise_std * torch.randn_like(x)
        if self.dropout:
            x = torch.nn.functional.dropout(x, self.dropout, training=True)
        return x

    def extra_repr(self):
        return f"noise_std={self.noise_std}, dropout={self.dropout}"
