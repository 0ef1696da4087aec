"""A real Dask LocalCluster (two single-threaded worker processes) shared by the campaign tests."""
import logging

import pytest


@pytest.fixture(scope="session")
def dask_client(tmp_path_factory):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           local_directory=str(tmp_path_factory.mktemp("dask")), silence_logs=logging.ERROR)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
