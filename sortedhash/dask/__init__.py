"""sortedhash on a Dask cluster: encoding, exact sharded search and model selection.

Needs the ``dask`` extra (``pip install "sortedhash[dask]"``): dask and distributed. The
same code runs on the local scheduler, on a :class:`distributed.LocalCluster` and on any
remote cluster: whatever :func:`distributed.Client` is current.

- :func:`encode`: a fitted hasher (or Pipeline ending in one) applied to a row-chunked
  ``dask.array`` or ``dask.dataframe``, chunk by chunk on the workers.
- :class:`DaskHammingNeighbors`: exact k-NN and radius search over a dask array of
  packed codes, each chunk indexed and kept on a worker, results merged exactly.
- Model selection needs nothing here: ``GridSearchCV`` with sortedhash's scorers runs on the
  cluster inside ``joblib.parallel_config(backend="dask")``.
"""

try:
    import dask  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sortedhash.dask needs dask and distributed: pip install 'sortedhash[dask]'"
    ) from error

from ._encode import encode
from ._neighbors import DaskHammingNeighbors

__all__ = ["DaskHammingNeighbors", "encode"]
