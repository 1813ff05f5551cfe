"""A safe file format for fitted sortedhash estimators and Pipelines: ``save`` and ``load``.

Unpickling (joblib, pickle) runs whatever code the file names, so a model file from
elsewhere is a program. ``save`` writes one `safetensors <https://github.com/huggingface/safetensors>`_
file instead: the arrays (network weights, projections, stored codes) as tensors, and the
constructor parameters, the small fitted state and the library versions as JSON in its
header. ``load`` reads only that: it rebuilds estimators of the accepted classes from their
parameters, never imports or calls anything a file names, and checks a SHA-256 digest of
the arrays, so a truncated or edited file is refused.

What each estimator stores is its own business (``_to_safe_state`` / ``_from_safe_state``,
see :class:`sortedhash._safe_state.SafeStateMixin`); this module knows only the format.

Pipelines (and ``FeatureUnion`` / ``ColumnTransformer``, nested at any depth) are stored
in two parts. The scikit-learn part goes through `skops <https://skops.readthedocs.io>`_,
whose loader rebuilds only the types it trusts by default (scikit-learn's estimators,
numpy and scipy arrays, numpy ufuncs such as ``np.log1p`` in a ``FunctionTransformer``)
and refuses any other; each sortedhash step is stored as above and put back in its place.
Why not skops alone: a fitted ``NSHTransformer`` holds skorch and torch objects that would
all have to be trusted, which gives back what a safe format is for. A model with your own
``encoder`` module needs its code to be rebuilt, so use joblib for it (and load only files
you trust).
"""

import copy
import hashlib
import json

import numpy as np
import torch

from ._versions import check_versions, current_versions

__all__ = ["save", "load", "SAFE_FORMAT"]

SAFE_FORMAT = "sortedhash-safe"
_FORMAT_VERSION = "1"  # one sortedhash estimator
_COMPOSITE_VERSION = "2"  # a scikit-learn composite (skops) holding sortedhash estimators

# Where scikit-learn's composites keep their steps: lists of (name, estimator, ...) tuples.
_STEP_LISTS = ("steps", "transformer_list", "transformers", "transformers_")
_PLACEHOLDER = "sortedhash-estimator:"


def _accepted_classes():
    """The estimator classes a file may name, by name (imported late: they import torch models)."""
    from .linear_hashing import BinaryQuantizer, ITQTransformer, LSHTransformer, PCAHashTransformer
    from .neighbors import HammingNeighbors
    from .nsh import NSHTransformer

    classes = (NSHTransformer, LSHTransformer, PCAHashTransformer, ITQTransformer, BinaryQuantizer,
               HammingNeighbors)
    return {cls.__name__: cls for cls in classes}


def _digest(tensors, header=()):
    """SHA-256 of the arrays (names, dtypes, shapes, bytes) and of the header strings given."""
    h = hashlib.sha256()
    for text in header:
        h.update(text.encode())
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
    """Write a fitted sortedhash estimator, or a Pipeline holding them, in the safe format.

    Parameters
    ----------
    estimator : estimator or Pipeline
        A fitted NSHTransformer, LSHTransformer, PCAHashTransformer, ITQTransformer or
        HammingNeighbors; or a Pipeline, FeatureUnion or ColumnTransformer of those and of
        scikit-learn estimators that skops trusts (e.g. StandardScaler, PCA,
        TruncatedSVD, Normalizer, TfidfVectorizer, CountVectorizer, and
        FunctionTransformer with a numpy ufunc).
    path : str or path-like
        File to write (conventionally ``*.safetensors``).

    Raises
    ------
    TypeError
        For anything else (e.g. a FunctionTransformer with a Python function): use joblib.
    """
    from safetensors.torch import save_file

    if _accepted_classes().get(type(estimator).__name__) is type(estimator):
        tensors, header = _estimator_entry(estimator, fitted=True)
        version = _FORMAT_VERSION
    else:
        tensors, header = _composite_entry(estimator)
        version = _COMPOSITE_VERSION
    header.update(
        format=SAFE_FORMAT,
        format_version=version,
        versions=json.dumps(getattr(estimator, "_sortedhash_versions", None) or current_versions()),
        sha256=_digest(tensors, _signed_header(header, version)),
    )
    save_file(tensors, str(path), metadata=header)


def _signed_header(header, version):
    """Header fields the digest covers: a composite's whole description (version 1 files,
    written before, sign their arrays only)."""
    return (header["class"], header["estimators"]) if version == _COMPOSITE_VERSION else ()


def _estimator_entry(estimator, fitted):
    """Tensors and header fields of one sortedhash estimator (parameters only if unfitted)."""
    from sklearn.utils.validation import check_is_fitted

    if fitted:
        check_is_fitted(estimator)
        params, arrays, values = estimator._to_safe_state()
    else:
        params, arrays, values = estimator.get_params(deep=False), {}, None
    tensors = {key: _as_tensor(array) for key, array in arrays.items()}
    header = {
        "class": type(estimator).__name__,
        "params": json.dumps(params, default=_json_default),
        "state": json.dumps(values, default=_json_default),
    }
    return tensors, header


def _composite_entry(composite):
    """The composite through skops, its sortedhash estimators (fitted or not) beside it."""
    import skops.io as sio
    from sklearn.base import BaseEstimator

    if not isinstance(composite, BaseEstimator):
        raise TypeError(f"save() supports sortedhash estimators and scikit-learn Pipelines holding them, got "
                        f"{type(composite).__name__}; use joblib for other objects")
    found = []
    skeleton = _replace_steps(composite, lambda step: _placeholder(step, found))
    try:
        blob = sio.dumps(skeleton)
    except Exception as exc:  # skops cannot describe some objects at all (e.g. lambdas)
        raise TypeError(f"save() cannot store {type(composite).__name__} safely ({exc}); use joblib") from None
    untrusted = sio.get_untrusted_types(data=blob)
    if untrusted:
        raise TypeError(
            f"save() cannot store {type(composite).__name__} safely: it holds {untrusted}, which a safe "
            "file cannot rebuild without running code (a FunctionTransformer needs a numpy ufunc such as "
            "np.log1p). Use joblib for it (and load only files you trust)."
        )
    tensors = {"skeleton": torch.frombuffer(bytearray(blob), dtype=torch.uint8)}
    entries = []
    for i, (estimator, fitted) in enumerate(found):
        arrays, entry = _estimator_entry(estimator, fitted)
        tensors.update({f"estimator{i}.{key}": array for key, array in arrays.items()})
        entries.append({**entry, "fitted": fitted})
    return tensors, {"class": type(composite).__name__, "estimators": json.dumps(entries)}


def _placeholder(step, found):
    """A string standing in for a sortedhash estimator inside the skops part."""
    from sklearn.utils.validation import check_is_fitted
    from sklearn.exceptions import NotFittedError

    if _accepted_classes().get(type(step).__name__) is not type(step):
        return step
    try:
        check_is_fitted(step)
        fitted = True
    except NotFittedError:  # e.g. the unfitted specification a ColumnTransformer keeps
        fitted = False
    found.append((step, fitted))
    return f"{_PLACEHOLDER}{len(found) - 1}"


def _replace_steps(estimator, replace):
    """A copy of ``estimator`` whose steps, at any depth of composites, are ``replace(step)``.

    Only the step lists are copied (shallowly): the caller's composite is left untouched.
    """
    if not any(isinstance(getattr(estimator, name, None), list) for name in _STEP_LISTS):
        return replace(estimator)
    estimator = copy.copy(estimator)
    for name in _STEP_LISTS:
        steps = estimator.__dict__.get(name)
        if isinstance(steps, list):
            estimator.__dict__[name] = [(step[0], _replace_steps(step[1], replace), *step[2:]) for step in steps]
    return estimator


def _invalid(path, why):
    return ValueError(f"{path} is not a valid sortedhash model file: {why}")


def load(path):
    """Load an estimator or Pipeline written by :func:`save`; refuses any other file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator
        The fitted estimator or Pipeline; it gives the same codes (or neighbours) as the
        saved one, on the CPU.

    Raises
    ------
    ValueError
        If the file is not in this format, is truncated, its contents do not match the
        digest written with them (the file was altered), or it names a type that a safe
        load does not rebuild.
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
    version = metadata.get("format_version")
    if version not in (_FORMAT_VERSION, _COMPOSITE_VERSION):
        raise _invalid(path, f"format version {version!r} is not supported")
    try:
        signed = _signed_header(metadata, version)
    except KeyError as exc:
        raise _invalid(path, f"its header is incomplete ({exc})") from None
    if metadata.get("sha256") != _digest(tensors, signed):
        raise _invalid(path, "its contents do not match their recorded digest (the file was altered)")
    try:
        versions = json.loads(metadata["versions"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"its header is incomplete ({exc})") from None
    check_versions(versions)
    arrays = {key: tensor.numpy().copy() for key, tensor in tensors.items()}
    if version == _COMPOSITE_VERSION:
        return _read_composite(path, metadata, arrays)
    estimator = _read_estimator(path, metadata, arrays, fitted=True)
    estimator._sortedhash_versions = versions
    return estimator


def _read_estimator(path, entry, arrays, fitted):
    cls = _accepted_classes().get(entry.get("class"))
    if cls is None:
        raise _invalid(path, f"unknown estimator class {entry.get('class')!r}")
    try:
        params, values = json.loads(entry["params"]), json.loads(entry["state"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"its header is incomplete ({exc})") from None
    if not fitted:
        return cls._from_safe_params(params)
    return cls._from_safe_state(params, arrays, values)


def _read_composite(path, metadata, arrays):
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        entries = json.loads(metadata["estimators"])
        blob = arrays.pop("skeleton").tobytes()
    except (KeyError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"its header is incomplete ({exc})") from None
    try:
        skeleton = sio.loads(blob)  # skops's default trusted types only
    except UntrustedTypesFoundException as exc:
        raise _invalid(path, f"it holds types a safe load does not rebuild ({exc})") from None
    estimators = []
    for i, entry in enumerate(entries):
        prefix = f"estimator{i}."
        own = {key[len(prefix):]: array for key, array in arrays.items() if key.startswith(prefix)}
        estimators.append(_read_estimator(path, entry, own, fitted=entry.get("fitted", True)))

    def restore(step):
        if isinstance(step, str) and step.startswith(_PLACEHOLDER):
            return estimators[int(step[len(_PLACEHOLDER):])]
        return step

    return _replace_steps(skeleton, restore)
