"""sortedhash on a Dask cluster: encode, search and select a model on the workers.

Starts a ``LocalCluster`` (two worker processes) unless ``--scheduler tcp://host:8786``
names a running one; the rest of the code is the same on a laptop and on a real cluster.

Run: ``python examples/dask_cluster.py [--fast] [--scheduler tcp://host:8786]``
"""

import argparse

import dask.array as da
import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import HammingNeighbors, NSHTransformer
from sortedhash.dask import DaskHammingNeighbors, encode
from sortedhash.metrics import make_map_scorer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true", help="tiny grid and few epochs (for CI)")
    parser.add_argument("--scheduler", default=None, help="address of a running scheduler")
    args = parser.parse_args()

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0"))
    print(f"cluster: {len(client.nthreads())} workers, {sum(client.nthreads().values())} threads")

    X, y = load_digits(return_X_y=True)
    epochs = 2 if args.fast else 20
    pipe = Pipeline([("scale", StandardScaler()), ("hash", NSHTransformer(n_bits=32, max_epochs=epochs,
                                                                         random_state=0))])

    # 1. Model selection: every fit of the grid runs on a worker.
    grid = {"hash__temperature": [0.2, 0.5], "hash__n_bits": [16, 32] if args.fast else [16, 32, 64]}
    with joblib.parallel_config(backend="dask"):
        search = GridSearchCV(pipe, grid, scoring=make_map_scorer(k=100), cv=3, n_jobs=-1).fit(X, y)
    print("best:", search.best_params_, round(search.best_score_, 3))
    model = search.best_estimator_

    # 2. Encoding: a dask array of rows (here the digits 20 times over; usually read from
    # Parquet or Zarr with dask) becomes a lazy dask array of packed codes, one chunk per
    # chunk of rows.
    X_big = da.concatenate([da.from_array(X, chunks=600)] * 20).rechunk(6000)
    codes = encode(model, X_big).persist()  # the codes stay on the workers
    print(f"codes: {codes.shape} {codes.dtype} in {codes.npartitions} chunks")

    # 3. Exact search: each chunk is a shard indexed on its worker; results are merged exactly.
    queries = model.transform(X[:100])
    index = DaskHammingNeighbors(n_neighbors=10).fit(codes)
    dist, ind = index.kneighbors(queries)
    same = HammingNeighbors(n_neighbors=10).fit(codes.compute()).kneighbors(queries)
    print("same neighbours as one process:", np.array_equal(dist, same[0]) and np.array_equal(ind, same[1]))
    client.close()


if __name__ == "__main__":
    main()
