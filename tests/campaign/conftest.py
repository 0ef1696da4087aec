"""A real Dask LocalCluster (two single-threaded worker processes) shared by the campaign tests."""
import pytest


@pytest.fixture(scope="session")
def dask_client(tmp_path_factory):
    from distributed import Client, LocalCluster

    import logging

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           local_directory=str(tmp_path_factory.mktemp("dask")), silence_logs=logging.ERROR)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def experiment_file(path, body: str, name: str = "t"):
    path.write_text(f'format = "cgphw-experiment/1"\nname = "{name}"\n' + body)
    return path
