"""The hashing network: a backbone, a hash head and a latent head."""

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["sign_ste", "MLPBackbone", "HashingNetwork"]


def sign_ste(h):
    """``+1`` where ``h >= 0`` else ``-1``, with the straight-through gradient of ``h``.

    The forward codes are exactly binary, so Hamming similarities in the batch are exact
    (and lie on the grid that :mod:`sortedhash.nn.gather` relies on), while the hash head
    still receives gradients.
    """
    hard = torch.where(h >= 0, torch.ones_like(h), -torch.ones_like(h))
    return h + (hard - h).detach()


class MLPBackbone(nn.Sequential):
    """Linear -> ReLU layers for feature vectors.

    Parameters
    ----------
    n_features : int
        Input dimension.
    hidden_sizes : sequence of int
        Widths of the hidden layers.
    """

    def __init__(self, n_features, hidden_sizes):
        layers, width = [], n_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        super().__init__(*layers)
        self.out_features = width


class HashingNetwork(nn.Module):
    """Backbone followed by a hash head (tanh) and a latent head (L2-normalised).

    ``forward(x)`` returns ``(h, b, z)``: relaxed codes ``h`` in (-1, 1), binary codes
    ``b = sign_ste(h)`` and unit latent vectors ``z``.
    """

    def __init__(self, backbone, backbone_dim, n_bits, latent_dim):
        super().__init__()
        self.backbone = backbone
        self.hash_head = nn.Linear(backbone_dim, n_bits)
        self.latent_head = nn.Linear(backbone_dim, latent_dim)

    def forward(self, x):
        f = self.backbone(x)
        h = torch.tanh(self.hash_head(f))
        z = F.normalize(self.latent_head(f), dim=1)
        return h, sign_ste(h), z

    @torch.no_grad()
    def hash_scores(self, x):
        """The hash head's pre-activations, whose signs are the codes."""
        return self.hash_head(self.backbone(x))

    @torch.no_grad()
    def encode(self, x):
        """Boolean codes (``True`` where the hash pre-activation is >= 0)."""
        return self.hash_scores(x) >= 0
