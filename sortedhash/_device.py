"""The ``device="auto"`` convention shared by the estimators that run torch models."""

import torch


def resolve_device(device):
    """``"auto"`` -> ``"cuda"`` when CUDA is available, else ``"cpu"``; a valid torch device as given.

    Raises ValueError naming the ``device`` parameter for anything torch would not accept
    (e.g. ``"gpu"``) and for a CUDA device on a machine without CUDA, rather than letting
    torch fail later inside a forward pass.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto' or a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'")
    return device
