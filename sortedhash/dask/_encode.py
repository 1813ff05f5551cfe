"""Encode a dask collection with a fitted hasher, chunk by chunk on the workers."""

import copy
import threading
import weakref
from contextlib import contextmanager

import dask
import dask.array as da
import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

__all__ = ["encode"]

# One encoding at a time in a process: a torch model's transform switches the module to
# eval mode and back, which two threads sharing the model would interleave. Each encoding
# uses the worker's threads instead (see _worker_threads).
_ENCODE_LOCK = threading.Lock()
# A copy of the model per (model, device) in each process, for a device other than the
# one the model is on: made once per worker, not once per chunk, and never by moving the
# caller's model (on the local scheduler the task gets the caller's object itself).
_PLACED = weakref.WeakKeyDictionary()


def encode(estimator, X, *, device="auto"):
    """Encode a dask collection into a lazy dask array of packed codes.

    The model enters the task graph once (one key, which each worker fetches once), and
    every input chunk (or dataframe partition) becomes one chunk of codes, encoded on the
    worker that holds it. The result equals ``estimator.transform(X.compute())``.

    Parameters
    ----------
    estimator : fitted transformer or Pipeline
        A fitted sortedhash hasher (:class:`~sortedhash.NSHTransformer`, ITQ, ...) or a
        :class:`~sklearn.pipeline.Pipeline` ending in one (feature extractors first).
    X : dask.array.Array, dask.dataframe.DataFrame or dask.dataframe.Series
        Samples, chunked along rows only (an array chunked along other axes is rechunked
        to whole rows). Dataframe partitions reach ``transform`` as pandas objects, so a
        model fitted with feature names sees them.
    device : str, default="auto"
        Where torch models encode on each worker: "auto" uses the worker's GPU when it has
        one and the CPU otherwise; "cpu" or "cuda" force it. The estimator is never moved:
        a worker that needs another device encodes with its own copy.

    Returns
    -------
    codes : dask.array.Array of shape (n_samples, n_bytes), dtype uint8
        Lazy; one chunk per input chunk. Row counts of dataframe partitions are unknown
        until computed (``codes.compute_chunk_sizes()`` finds them).

    Notes
    -----
    On a :mod:`distributed` worker, each encoding holds the process's encode lock and
    uses as many torch / BLAS threads as the worker has threads, so workers x threads
    never oversubscribes the cores. dask-ml's ``ParallelPostFit`` also maps ``transform``
    over blocks, but its lazy result takes the input's width for the output's; this
    function knows the code width and keeps one model key.
    """
    check_is_fitted(estimator)
    n_bytes = _code_width(estimator)
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or a CUDA device such as 'cuda:0', got {device!r}")
    model = dask.delayed(estimator, pure=True)
    if isinstance(X, da.Array):
        return _encode_array(X, model, n_bytes, device)
    if _is_dask_dataframe(X):
        parts = [da.from_delayed(dask.delayed(_encode_block, pure=True)(part, model, n_bytes, device),
                                 shape=(np.nan, n_bytes), dtype=np.uint8)
                 for part in X.to_delayed()]
        return da.concatenate(parts, axis=0)
    raise TypeError(f"X must be a dask.array.Array or a dask DataFrame/Series, got {type(X).__name__}; "
                    "for in-memory data call estimator.transform(X)")


def _encode_array(X, model, n_bytes, device):
    if X.ndim == 0:
        raise ValueError("X must have one row per sample, got a 0-d array")
    if any(len(c) > 1 for c in X.chunks[1:]):
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    extra = {"new_axis": 1} if X.ndim == 1 else {"drop_axis": list(range(2, X.ndim))} if X.ndim > 2 else {}
    return da.map_blocks(_encode_block, X, model, n_bytes, device, dtype=np.uint8,
                         chunks=(X.chunks[0], (n_bytes,)), meta=np.empty((0, n_bytes), np.uint8), **extra)


def _code_width(estimator):
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    n_bytes = getattr(final, "n_bytes_", None)
    if n_bytes is None:
        raise TypeError(f"encode needs a fitted sortedhash hasher or a Pipeline ending in one; "
                        f"{type(final).__name__} has no n_bytes_ (the width of its packed codes)")
    return int(n_bytes)


def _is_dask_dataframe(X):
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask without its dataframe extra
        return False
    return isinstance(X, (dd.DataFrame, dd.Series))


def _encode_block(block, estimator, n_bytes, device):
    if len(block) == 0:
        return np.empty((0, n_bytes), dtype=np.uint8)
    with _ENCODE_LOCK, _worker_threads():
        codes = np.asarray(_placed(estimator, device).transform(block))
    if codes.dtype != np.uint8 or codes.shape != (len(block), n_bytes):
        raise ValueError(f"the estimator returned {codes.dtype} codes of shape {codes.shape} for a chunk of "
                         f"{len(block)} rows; {n_bytes} uint8 bytes per row were expected")
    return codes


def _placed(estimator, device):
    """The estimator with its torch modules on ``device`` (resolved on this process)."""
    target = _resolve(device)
    nets = [step.net_ for step in _steps(estimator) if hasattr(step, "net_")]
    if all(_module_device(net) in (None, target) for net in nets):
        return estimator
    per_device = _PLACED.setdefault(estimator, {})
    if target not in per_device:
        placed = copy.deepcopy(estimator)
        for step in _steps(placed):
            if hasattr(step, "net_"):
                step.net_.module_.to(target)
        per_device[target] = placed
    return per_device[target]


def _resolve(device):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but this worker has no CUDA device; use device='auto'")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _module_device(net):
    param = next(net.module_.parameters(), None)
    return None if param is None else param.device


def _steps(estimator):
    return [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]


@contextmanager
def _worker_threads():
    """On a distributed worker, torch and BLAS use the worker's threads (the nanny starts
    workers with one OpenMP thread); elsewhere the caller's settings stay."""
    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        yield
