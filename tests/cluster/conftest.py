import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes, one thread each; closed after the module."""
    import cloudpickle
    import cluster_helpers as helpers

    cloudpickle.register_pickle_by_value(helpers)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as c:
        yield c
