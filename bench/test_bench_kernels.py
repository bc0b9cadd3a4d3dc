"""pytest-benchmark timings of the exact-search kernels over 100k x 384 synthetic float32 data.

Not collected by the test suite (testpaths = tests); run explicitly:

    pytest bench/test_bench_kernels.py --benchmark-only

Each case is warmed (compilation excluded) before it is timed; extra_info["qps"] holds the
queries per second of the median round.
"""

import numpy as np
import pytest

from vecstore.kernels import exact

pytest.importorskip("pytest_benchmark")

N, D, K = 100_000, 384, 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((N, D), dtype=np.float32)
    xq = rng.standard_normal((1000, D), dtype=np.float32)
    rows = np.sort(rng.choice(N, size=N // 100, replace=False)).astype(np.int64)
    return xb, exact.row_norms(xb), xq, rows


@pytest.mark.parametrize("metric", ["dot", "cosine", "l2"])
@pytest.mark.parametrize("nq", [1, 32, 1000], ids=["single", "batch32", "batch1000"])
@pytest.mark.parametrize("filtered", [False, True], ids=["all", "rows1pct"])
def test_exact_search(benchmark, data, metric, nq, filtered):
    xb, norms, xq_all, rows1 = data
    xq = xq_all[:nq]
    rows = rows1 if filtered else None

    def run():
        return exact.search(xq, xb, norms, metric, K, rows=rows)

    run()  # compile / load from cache outside the timing
    rounds = 20 if nq == 1 else (10 if nq == 32 else 3)
    if filtered:
        rounds *= 5
    _, _, counts = benchmark.pedantic(run, rounds=rounds, warmup_rounds=1, iterations=1)
    assert (counts == K).all()
    benchmark.extra_info["nq"] = nq
    benchmark.extra_info["qps"] = nq / benchmark.stats.stats.median
