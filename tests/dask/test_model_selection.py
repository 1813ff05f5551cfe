import joblib
import numpy as np
import pytest
from distributed import get_task_stream
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash.metrics import make_map_scorer

from ..conftest import small_nsh

# A real cluster can hang where a function cannot: bound every test.
pytestmark = pytest.mark.timeout(300)


def test_grid_search_on_the_cluster_scores_as_in_one_process(client, digits):
    X, y = digits
    X, y = X[:600], y[:600]
    pipe = Pipeline([("scale", StandardScaler()), ("hash", small_nsh(batch_size=64))])
    grid = {"hash__temperature": [0.2, 0.5], "hash__n_bits": [16, 32]}
    scorer = make_map_scorer(k=50)
    local = GridSearchCV(pipe, grid, scoring=scorer, cv=3, n_jobs=1).fit(X, y)
    with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(pipe, grid, scoring=scorer, cv=3, n_jobs=-1).fit(X, y)
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) >= 12 and len(workers) == 2  # the 12 fits ran on both workers
    for split in range(3):
        key = f"split{split}_test_score"
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.transform(X), local.transform(X))
