"""A safe file format for fitted sortedhash estimators: ``save`` and ``load``.

Unpickling (joblib, pickle) runs whatever code the file names, so a model file from
elsewhere is a program. ``save`` writes one `safetensors <https://github.com/huggingface/safetensors>`_
file instead: the arrays (network weights, projections, stored codes) as tensors, and the
constructor parameters, the small fitted state, the training history and the library
versions as JSON in its header. ``load`` reads only that: it rebuilds estimators of the
classes listed below from their parameters, never imports or calls anything a file names,
and checks a SHA-256 digest of the arrays, so a truncated or edited file is refused.

Why not skops: skops refuses unknown types unless the caller trusts them, and a fitted
``NSHTransformer`` holds skorch and torch objects that would all have to be trusted,
which gives back what a safe format is for. Only the built-in MLP encoder can be saved
this way; a model with your own ``encoder`` module needs its code to be rebuilt, so use
joblib for it (and load only files you trust).
"""

import hashlib
import json

import numpy as np
import torch

from ._versions import check_versions, current_versions

__all__ = ["save", "load", "SAFE_FORMAT"]

SAFE_FORMAT = "sortedhash-safe"
_FORMAT_VERSION = "1"


def _registry():
    from .linear_hashing import ITQTransformer, LSHTransformer, PCAHashTransformer
    from .neighbors import HammingNeighbors
    from .nsh import NSHTransformer

    return {cls.__name__: cls for cls in (NSHTransformer, LSHTransformer, PCAHashTransformer,
                                          ITQTransformer, HammingNeighbors)}


# Fitted attributes kept per class: arrays go to tensors, the rest to JSON.
_ARRAY_ATTRS = {
    "LSHTransformer": ("mean_", "projection_"),
    "PCAHashTransformer": ("mean_", "projection_"),
    "ITQTransformer": ("mean_", "projection_"),
    "HammingNeighbors": ("_fit_X",),
    "NSHTransformer": (),
}
_JSON_ATTRS = {
    "LSHTransformer": ("n_features_in_", "n_bytes_"),
    "PCAHashTransformer": ("n_features_in_", "n_bytes_"),
    "ITQTransformer": ("n_features_in_", "n_bytes_"),
    "HammingNeighbors": ("n_samples_fit_", "n_features_in_", "n_bits_"),
    "NSHTransformer": ("n_features_in_", "n_bytes_", "multi_view_"),
}


def _digest(tensors):
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _json_safe(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


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
    if name not in _registry() or type(estimator) is not _registry()[name]:
        raise TypeError(f"save() supports {sorted(_registry())}, got {name}; use joblib for other objects")
    check_is_fitted(estimator)
    params = estimator.get_params(deep=False)
    tensors, state = {}, {}
    if name == "NSHTransformer":
        for key in ("encoder", "callbacks"):
            if params[key] is not None:
                raise ValueError(
                    f"save() cannot store {key}={type(params[key]).__name__}: its code would have to "
                    "be rebuilt on load. Use joblib for such a model (and load only files you trust)."
                )
        if callable(params["augment"]):
            raise ValueError("save() cannot store a callable augment; use joblib for such a model")
        module = estimator.net_.module_
        tensors.update({f"module.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        state["history"] = json.loads(json.dumps(estimator.net_.history.to_list(), default=str))
        params["hidden_sizes"] = list(params["hidden_sizes"])
    for attr in _ARRAY_ATTRS[name]:
        tensors[f"attr.{attr}"] = torch.from_numpy(np.ascontiguousarray(getattr(estimator, attr)))
    for attr in _JSON_ATTRS[name]:
        state[attr] = _json_safe(getattr(estimator, attr))
    if hasattr(estimator, "feature_names_in_"):
        state["feature_names_in_"] = [str(f) for f in estimator.feature_names_in_]
    metadata = {
        "format": SAFE_FORMAT,
        "format_version": _FORMAT_VERSION,
        "class": name,
        "params": json.dumps({k: _json_safe(v) for k, v in params.items()}),
        "state": json.dumps(state),
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
    registry = _registry()
    name = metadata.get("class")
    if name not in registry:
        raise _invalid(path, f"unknown estimator class {name!r}")
    try:
        params = json.loads(metadata["params"])
        state = json.loads(metadata["state"])
        versions = json.loads(metadata["versions"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"its header is incomplete ({exc})") from None
    check_versions(versions)

    if name == "NSHTransformer":
        params["hidden_sizes"] = tuple(params["hidden_sizes"])
    estimator = registry[name](**params)
    for attr, value in state.items():
        if attr == "history":
            continue
        setattr(estimator, attr, np.asarray(value, dtype=object) if attr == "feature_names_in_" else value)
    for attr in _ARRAY_ATTRS[name]:
        setattr(estimator, attr, tensors[f"attr.{attr}"].numpy().copy())
    estimator._sortedhash_versions = versions
    if name == "NSHTransformer":
        _restore_network(estimator, tensors, state.get("history", []))
    elif name == "HammingNeighbors":
        estimator._build_index()
    return estimator


def _restore_network(estimator, tensors, history):
    from skorch.history import History

    weights = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
    net = estimator._build_net(
        np.zeros((2, estimator.n_features_in_), dtype=np.float32), "cpu", estimator.batch_size,
        estimator.multi_view_,
    )
    net.initialize()
    net.module_.load_state_dict(weights, strict=True)
    net.history = History(history)
    estimator.net_ = net
