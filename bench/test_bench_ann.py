"""pytest-benchmark timings of IVF-PQ: training, and single / batched search at fixed nprobe.

Not collected by the test suite (testpaths = tests); run explicitly:

    pytest bench/test_bench_ann.py --benchmark-only

Data: seeded, clustered, unit-length synthetic vectors (conftest.unit_clustered; sizes from
VECSTORE_BENCH_N / VECSTORE_BENCH_DIM). extra_info holds queries per second and recall@10
against exact search. The side-by-side comparison with faiss and hnswlib on real embeddings
is bench/compare_ann.py.
"""

import numpy as np
import pytest
from conftest import BENCH_DIM, BENCH_N, unit_clustered

from vecstore.index import ivf, specs
from vecstore.kernels import exact

pytest.importorskip("pytest_benchmark")
K = 10


@pytest.fixture(scope="module")
def built():
    xb = unit_clustered(BENCH_N, BENCH_DIM, seed=4, stream=0)
    xq = unit_clustered(1000, BENCH_DIM, seed=4, stream=1)
    sample = xb[np.random.default_rng(0).permutation(len(xb))[:60_000]]
    arrays, meta = ivf.train(sample, "cosine", specs.IVFPQ(), len(xb))
    model = ivf.Model.from_file("m", meta, arrays)
    norms = exact.row_norms(xb)
    lists, codes, _ = ivf.encode(model, xb, norms)
    order, offsets = ivf.list_order(lists, model.nlist)
    part = (np.ascontiguousarray(xb[order]), norms[order], offsets, codes[order])
    truth = exact.search(xq, part[0], part[1], "cosine", K)[1]
    return model, part, xq, truth


def test_train(benchmark):
    x = unit_clustered(min(BENCH_N, 60_000), BENCH_DIM, seed=5, stream=0)
    spec = specs.IVFPQ(nlist=256, nprobe=8)
    ivf.train(x[:2000], "cosine", specs.IVFPQ(nlist=16, nprobe=2), 2000)  # compile
    benchmark.pedantic(lambda: ivf.train(x, "cosine", spec, len(x)), rounds=1, iterations=1)


@pytest.mark.parametrize("nq", [1, 1000], ids=["single", "batch1000"])
@pytest.mark.parametrize("nprobe", [8, 32])
def test_ivfpq_search(benchmark, built, nq, nprobe):
    model, part, xq_all, truth = built
    xq = xq_all[:nq]

    def run():
        return ivf.search([part], model, xq, "cosine", K, nprobe=nprobe)

    run()
    _, labels, counts = benchmark.pedantic(run, rounds=50 if nq == 1 else 3, iterations=1)
    assert (counts == K).all()
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(labels, truth[:nq]))
    benchmark.extra_info["recall"] = hits / (K * nq)
    benchmark.extra_info["qps"] = nq / benchmark.stats.stats.median
