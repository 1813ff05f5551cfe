"""A safe file format for fitted sortedhash estimators: ``save`` and ``load``.

Unpickling (joblib, pickle) runs whatever code the file names, so a model file from
elsewhere is a program. ``save`` writes one `safetensors <https://github.com/huggingface/safetensors>`_
file instead: the arrays (network weights, projections, stored codes) as tensors, and the
constructor parameters, the small fitted state and the library versions as JSON in its
header. ``load`` reads only that: it rebuilds estimators of the accepted classes from their
parameters, never imports or calls anything a file names, and checks a SHA-256 digest of
the arrays, so a truncated or edited file is refused.

What each estimator stores is its own business (``_to_safe_state`` / ``_from_safe_state``,
see :class:`sortedhash._safe_state.SafeStateMixin`); this module knows only the format.

Why not skops: skops refuses unknown types unless the caller trusts them, and a fitted
``NSHTransformer`` holds skorch and torch objects that would all have to be trusted,
which gives back what a safe format is for. A model with your own ``encoder`` module needs
its code to be rebuilt, so use joblib for it (and load only files you trust).
"""

import hashlib
import json

import numpy as np
import torch

from ._versions import check_versions, current_versions

__all__ = ["save", "load", "SAFE_FORMAT"]

SAFE_FORMAT = "sortedhash-safe"
_FORMAT_VERSION = "1"


def _accepted_classes():
    """The estimator classes a file may name, by name (imported late: they import torch models)."""
    from .linear_hashing import ITQTransformer, LSHTransformer, PCAHashTransformer
    from .neighbors import HammingNeighbors
    from .nsh import NSHTransformer

    classes = (NSHTransformer, LSHTransformer, PCAHashTransformer, ITQTransformer, HammingNeighbors)
    return {cls.__name__: cls for cls in classes}


def _digest(tensors):
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _json_default(value):
    """JSON for the numpy scalars and arrays that fitted state and parameters hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be stored in the safe format")


def _as_tensor(array):
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().contiguous()
    return torch.from_numpy(np.ascontiguousarray(array))


def save(estimator, path):
    """Write a fitted sortedhash estimator to ``path`` in the safe format.

    Parameters
    ----------
    estimator : NSHTransformer, LSHTransformer, PCAHashTransformer, ITQTransformer or HammingNeighbors
        A fitted estimator (not a Pipeline: save its steps).
    path : str or path-like
        File to write (conventionally ``*.safetensors``).
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    name = type(estimator).__name__
    if _accepted_classes().get(name) is not type(estimator):
        raise TypeError(f"save() supports {sorted(_accepted_classes())}, got {name}; use joblib for other objects")
    check_is_fitted(estimator)
    params, arrays, values = estimator._to_safe_state()
    tensors = {key: _as_tensor(array) for key, array in arrays.items()}
    metadata = {
        "format": SAFE_FORMAT,
        "format_version": _FORMAT_VERSION,
        "class": name,
        "params": json.dumps(params, default=_json_default),
        "state": json.dumps(values, default=_json_default),
        "versions": json.dumps(getattr(estimator, "_sortedhash_versions", None) or current_versions()),
        "sha256": _digest(tensors),
    }
    save_file(tensors, str(path), metadata=metadata)


def _invalid(path, why):
    return ValueError(f"{path} is not a valid sortedhash model file: {why}")


def load(path):
    """Load an estimator written by :func:`save`; refuses any other file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator
        The fitted estimator; it gives the same codes (or neighbours) as the saved one, on
        the CPU.

    Raises
    ------
    ValueError
        If the file is not in this format, is truncated, or its arrays do not match the
        digest written with them (the file was altered).
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _invalid(path, f"it cannot be read as safetensors ({exc})") from None
    if metadata.get("format") != SAFE_FORMAT:
        raise _invalid(path, "it carries no sortedhash format marker")
    if metadata.get("format_version") != _FORMAT_VERSION:
        raise _invalid(path, f"format version {metadata.get('format_version')!r} is not supported")
    if metadata.get("sha256") != _digest(tensors):
        raise _invalid(path, "its arrays do not match their recorded digest (the file was altered)")
    cls = _accepted_classes().get(metadata.get("class"))
    if cls is None:
        raise _invalid(path, f"unknown estimator class {metadata.get('class')!r}")
    try:
        params = json.loads(metadata["params"])
        values = json.loads(metadata["state"])
        versions = json.loads(metadata["versions"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"its header is incomplete ({exc})") from None
    check_versions(versions)
    arrays = {key: tensor.numpy().copy() for key, tensor in tensors.items()}
    estimator = cls._from_safe_state(params, arrays, values)
    estimator._sortedhash_versions = versions
    return estimator
