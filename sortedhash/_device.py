"""The ``device="auto"`` convention shared by the estimators that run torch models."""

import torch


def resolve_device(device):
    """``"auto"`` -> ``"cuda"`` when CUDA is available, else ``"cpu"``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
