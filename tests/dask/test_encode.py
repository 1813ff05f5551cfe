import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import ITQTransformer
from sortedhash.dask import encode

from ..conftest import small_nsh

# A real cluster can hang where a function cannot: bound every test.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return make_pipeline(StandardScaler(), small_nsh(n_bits=24)).fit(X)


def test_codes_equal_in_memory_transform_on_the_cluster(client, digits, fitted):
    X, _ = digits
    X_before = X.copy()
    codes = encode(fitted, da.from_array(X, chunks=((400, 0, 700, 697), 64)))
    assert codes.dtype == np.uint8 and codes.shape == (len(X), 3)
    assert codes.chunks[0] == (400, 0, 700, 697)  # one chunk of codes per chunk of rows
    np.testing.assert_array_equal(codes.compute(), fitted.transform(X))
    np.testing.assert_array_equal(X, X_before)


def test_model_is_one_key_of_the_graph(digits, fitted):
    X, _ = digits
    codes = encode(fitted, da.from_array(X, chunks=200))
    graph = dict(codes.__dask_graph__())
    holding_model = [key for key, value in graph.items() if value is fitted or getattr(value, "value", None) is fitted]
    assert len(holding_model) == 1
    assert codes.npartitions == 9


def _torch_threads_outside_and_inside_encoding():
    import torch

    from sortedhash.dask._encode import _worker_threads

    outside = torch.get_num_threads()
    with _worker_threads():
        inside = torch.get_num_threads()
    return outside, inside


def test_workers_encode_with_their_threads_not_the_cores(digits, fitted):
    from distributed import Client, LocalCluster

    X, _ = digits
    # One worker of two threads: the nanny starts it with one OpenMP thread, so torch would
    # use one unless encoding sets the worker's count (OpenMP's count is per calling thread,
    # so it is read in a task, on an executor thread).
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        assert client.submit(_torch_threads_outside_and_inside_encoding, pure=False).result() == (1, 2)
        np.testing.assert_array_equal(encode(fitted, da.from_array(X, chunks=300)).compute(), fitted.transform(X))


def test_dataframe_partitions_reach_transform_as_pandas(client, digits):
    X, _ = digits
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    hasher = ITQTransformer(n_bits=16, random_state=0).fit(frame)  # fitted with feature names
    codes = encode(hasher, dd.from_pandas(frame, npartitions=4))
    assert np.isnan(codes.shape[0])  # partition lengths are not known before computing
    np.testing.assert_array_equal(codes.compute(), hasher.transform(frame))


def test_column_chunks_are_joined_into_rows(digits, fitted):
    X, _ = digits
    codes = encode(fitted, da.from_array(X, chunks=(500, 16)))
    np.testing.assert_array_equal(codes.compute(scheduler="sync"), fitted.transform(X))


def test_text_series_through_a_vectorizer_pipeline(client):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(0)
    words = np.array(["cat", "dog", "fish", "tree", "car", "road", "sun", "rain", "sea", "hill"])
    texts = pd.Series([" ".join(rng.choice(words, 6)) for _ in range(300)])
    pipe = make_pipeline(TfidfVectorizer(), TruncatedSVD(8, random_state=0), ITQTransformer(n_bits=8, random_state=0))
    pipe.fit(texts)
    codes = encode(pipe, dd.from_pandas(texts, npartitions=3))  # 1-D input, 2-D codes
    np.testing.assert_array_equal(codes.compute(), pipe.transform(texts))
    np.testing.assert_array_equal(encode(pipe, da.from_array(texts.to_numpy(), chunks=70)).compute(),
                                  pipe.transform(texts))


def test_model_on_the_wanted_device_is_used_as_it_is(fitted):
    from sortedhash.dask._encode import _placed

    assert _placed(fitted, "cpu") is fitted  # no copy when nothing has to move


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_on_a_worker_without_one_is_a_clear_error(digits, fitted):
    X, _ = digits
    with pytest.raises(ValueError, match="no CUDA"):
        encode(fitted, da.from_array(X, chunks=500), device="cuda").compute(scheduler="sync")


def test_refuses_unfitted_models_non_hashers_and_in_memory_input(digits, fitted):
    from sklearn.exceptions import NotFittedError

    X, _ = digits
    with pytest.raises(NotFittedError):
        encode(small_nsh(), da.from_array(X))
    with pytest.raises(TypeError, match="n_bytes_"):
        encode(StandardScaler().fit(X), da.from_array(X))
    with pytest.raises(TypeError, match="transform"):
        encode(fitted, X)
    with pytest.raises(ValueError, match="device"):
        encode(fitted, da.from_array(X), device="gpu")


def test_errors_of_transform_surface(client, digits, fitted):
    X, _ = digits
    with pytest.raises(ValueError, match="features"):
        encode(fitted, da.from_array(X[:, :10], chunks=500)).compute()
