"""Side-by-side QPS of vecstore's exact kernels and faiss IndexFlat on the same data.

    python bench/compare_exact.py [--n 100000 --d 384 --repeats 5 --k 10]

Data is seeded, clustered synthetic float32.  Every measurement is warm (compilation and
first-touch excluded) and is the median of `--repeats` runs; the two libraries alternate run
by run so both see the same background load.  Single-query QPS searches `--single` queries one
at a time.  recall@k is the overlap of the two top-k label sets.
"""

import argparse
import os
import platform
import sys
import time

import numba
import numpy as np

try:
    import faiss
except ImportError:  # pragma: no cover - the script is pointless without it
    sys.exit("faiss-cpu is required: pip install faiss-cpu")

from vecstore.kernels import exact


def make_data(n, d, nq, seed):
    """Gaussian clusters of unequal spread: realistic-ish neighbourhoods, no exact ties."""
    rng = np.random.default_rng(seed)
    nclusters = max(1, min(1024, n // 100))
    centers = rng.standard_normal((nclusters, d), dtype=np.float32)
    spread = rng.uniform(0.2, 0.6, size=nclusters).astype(np.float32)
    assign = rng.integers(0, nclusters, size=n)
    xb = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 65536):  # chunked: keep peak memory near the size of xb
        a = assign[lo : lo + 65536]
        xb[lo : lo + len(a)] = centers[a] + spread[a, None] * rng.standard_normal(
            (len(a), d), dtype=np.float32
        )
    qa = rng.integers(0, nclusters, size=nq)
    xq = centers[qa] + spread[qa, None] * rng.standard_normal((nq, d), dtype=np.float32)
    return xb, np.ascontiguousarray(xq, dtype=np.float32)


def median_times(fns, repeats, pause=0.5):
    """Median wall time of each fn, run round-robin so all see the same background noise.

    Each fn runs once first (warm: compilation, page faults, thread pools).  The pause outlasts
    the spin-wait of the previous library's idle workers (OpenMP, and OpenBLAS's ~0.1 s), so
    they do not steal a core from the next one timed.
    """
    times = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for ts, fn in zip(times, fns, strict=True):
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [float(np.median(ts)) for ts in times]


def run_queries(search_one, xq, bs):
    """Search xq in batches of bs; returns the stacked labels."""
    out = []
    for lo in range(0, len(xq), bs):
        out.append(search_one(xq[lo : lo + bs]))
    return np.concatenate(out)


def scipy_blas():
    """The BLAS numba's np.dot calls (through scipy.linalg.cython_blas)."""
    try:
        import scipy

        blas = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']}-{blas['version']}"
    except Exception:  # informational only
        return "?"


def recall(a, b, k):
    hits = sum(len(np.intersect1d(x[x >= 0], y[y >= 0])) for x, y in zip(a, b, strict=True))
    return hits / (len(a) * k)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--single", type=int, default=50, help="queries per single-query run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n, d, k = args.n, args.d, args.k

    nq_max = max(1000, args.single)
    xb, xq_all = make_data(n, d, nq_max, args.seed)
    norms = exact.row_norms(xb)
    rng = np.random.default_rng(args.seed + 1)
    rows_1pct = np.sort(rng.choice(n, size=max(1, n // 100), replace=False)).astype(np.int64)

    # row_norms ran a parallel kernel, so numba's threading layer is now known.
    print(
        f"n={n} d={d} k={k} repeats={args.repeats} | numba {numba.__version__} "
        f"threads={numba.get_num_threads()} layer={numba.threading_layer()} "
        f"blas={scipy_blas()} | faiss {faiss.__version__} "
        f"omp_threads={faiss.omp_get_max_threads()} | cpus={os.cpu_count()} {platform.machine()}"
    )

    indexes = {"dot": faiss.IndexFlatIP(d), "l2": faiss.IndexFlatL2(d)}
    for index in indexes.values():
        index.add(xb)

    def faiss_search(metric, sel=None):
        index = indexes[metric]
        params = None if sel is None else faiss.SearchParameters(sel=sel)

        def fn(q):
            return index.search(q, k, params=params)[1]

        return fn

    def vec_search(metric, rows=None):
        def fn(q):
            return exact.search(q, xb, norms, metric, k, rows=rows)[1]

        return fn

    sel_1pct = faiss.IDSelectorBatch(rows_1pct)
    configs = []
    for metric, fname in (("dot", "IndexFlatIP"), ("l2", "IndexFlatL2")):
        for bs, label in ((1, "single"), (32, "batch 32"), (1000, "batch 1000")):
            nq = args.single if bs == 1 else bs
            configs.append((f"{metric:<3} {label}", fname, metric, None, None, bs, nq))
    for bs, label in ((1, "single"), (32, "batch 32")):
        nq = args.single if bs == 1 else bs
        configs.append(
            (f"dot {label} +1% rows", "IndexFlatIP+IDSelector", "dot", rows_1pct, sel_1pct, bs, nq)
        )

    header = (
        f"{'case':<24} {'faiss index':<24} {'vecstore q/s':>13} {'faiss q/s':>11} "
        f"{'ratio':>7} {f'recall@{k}':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, fname, metric, rows, sel, bs, nq in configs:
        xq = xq_all[:nq]
        v_fn, f_fn = vec_search(metric, rows), faiss_search(metric, sel)
        tv, tf = median_times(
            [
                lambda: run_queries(v_fn, xq, bs),  # noqa: B023
                lambda: run_queries(f_fn, xq, bs),  # noqa: B023
            ],
            args.repeats,
        )
        rec = recall(run_queries(v_fn, xq, bs), run_queries(f_fn, xq, bs), k)
        qv, qf = nq / tv, nq / tf
        print(
            f"{name:<24} {fname:<24} {qv:>13.1f} {qf:>11.1f} {qv / qf:>6.2f}x {rec:>10.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
