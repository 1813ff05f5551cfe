import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="module")
def client():
    """A real two-process cluster (two workers of one thread), shut down after the module."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      death_timeout=60) as cluster, Client(cluster, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        yield client
