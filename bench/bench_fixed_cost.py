"""The fixed cost of a query: ``Collection.query`` on a 100-row collection against the exact
kernel alone on the same rows (``kernels.exact.search``: heaps, scan, sort) and hnswlib's
``knn_query``, all in one process, interleaved round by round.

    python bench/bench_fixed_cost.py [--rows 100 --dim 384 --k 10 --rounds 15 --calls 2000]
                                     [--wall] [--profile] [--out bench/results/fixed-cost.json]

The fixed cost is query() minus the kernel: the path from the call to the kernel and back
(argument checks, the snapshot check, the result rows and the result object). It is shown
against ``exact.search`` (the public kernel wrapper: checks, heaps, scan, sort) and against
``single.exact_one``, the one compiled call the quick path makes (scan, sort and rids). Three
cases: ``query`` (an unfiltered query on a collection of ids and vectors, nothing committed
since the last one: the usual case), ``query_with_documents`` (documents and metadata on every
row) and ``query_reading_documents`` (the same, reading the result's documents and metadata,
which the quick path's result makes on first access). Each round times ``--calls`` calls of
each case in turn; the table shows the median over rounds of the mean time per call, and the
lowest round. Times are the calling thread's CPU time (``time.thread_time``): on a shared,
overloaded machine wall time mostly measures the wait for a core (``--wall`` uses it anyway).
Every case runs on the calling thread (100 rows are below the kernels' threshold for threads,
and hnswlib runs a single query inline). ``--profile`` prints a cProfile of the query path
instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import vecstore  # noqa: E402
from vecstore.kernels import exact  # noqa: E402

CLOCK = {"now": time.thread_time}


def per_call(fn, calls: int) -> float:
    now = CLOCK["now"]
    start = now()
    for _ in range(calls):
        fn()
    return (now() - start) / calls * 1e6


def _read_rows(result) -> None:
    result.documents, result.metadata  # noqa: B018


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--wall", action="store_true", help="wall time, not CPU time")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench/results/fixed-cost.json"))
    a = ap.parse_args()
    if a.wall:
        CLOCK["now"] = time.perf_counter

    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.rows, a.dim), dtype=np.float32)
    qs = rng.standard_normal((64, a.dim), dtype=np.float32)
    ids = [f"row{i}" for i in range(a.rows)]
    tmp = tempfile.mkdtemp(prefix="vecstore-fixed-")
    db = vecstore.open(tmp)
    plain = db.create_collection("plain", dim=a.dim)
    plain.add(ids, vectors=x)
    full = db.create_collection("full", dim=a.dim)
    full.add(
        ids,
        vectors=x,
        documents=[f"the document of row {i}" for i in range(a.rows)],
        metadata=[{"n": i, "tag": f"t{i % 7}"} for i in range(a.rows)],
    )
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    norms = exact.row_norms(x)

    state = {"i": 0}

    def next_q():
        state["i"] = (state["i"] + 1) % len(qs)
        return qs[state["i"]]

    from vecstore.kernels import single

    rids = np.arange(a.rows, dtype=np.int64)
    no_mask = np.zeros(1, dtype=np.uint8)
    cases = {
        "query": lambda: plain.query(next_q(), k=a.k),
        "query_with_documents": lambda: full.query(next_q(), k=a.k),
        # the same, with the documents and metadata read (a result may make them lazily)
        "query_reading_documents": lambda: _read_rows(full.query(next_q(), k=a.k)),
        "kernel (exact.search)": lambda: exact.search(next_q()[None], x, norms, "cosine", a.k),
        # the compiled call the quick path makes (index/quick.py), rids and all
        "kernel (single.exact_one)": lambda: single.exact_one(
            next_q()[None], x, norms, 0, no_mask, False, rids, np.empty(a.k, np.int64), 1e-15, 1e16
        ),
    }
    try:
        import hnswlib

        h = hnswlib.Index(space="cosine", dim=a.dim)
        h.init_index(max_elements=a.rows, M=16, ef_construction=200)
        h.add_items(xn)
        h.set_ef(max(a.k, 10))
        cases["hnswlib knn_query"] = lambda: h.knn_query(next_q(), k=a.k)
    except ImportError:
        pass
    for fn in cases.values():  # load kernels, map the segments
        per_call(fn, 200)

    if a.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        per_call(cases["query"], a.calls * 5)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return

    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(a.rounds):
        for name, fn in cases.items():
            samples[name].append(per_call(fn, a.calls))

    med = {name: statistics.median(v) for name, v in samples.items()}
    low = {name: min(v) for name, v in samples.items()}
    kernel, kernel_low = med["kernel (exact.search)"], low["kernel (exact.search)"]
    clock = "wall" if a.wall else "CPU"
    print(
        f"{a.rows} rows x {a.dim}, k={a.k}, {clock} time, median (and lowest) of {a.rounds} "
        f"rounds of {a.calls} calls"
    )
    print(f"{'case':28s} {'us/call':>9s} {'minus kernel':>13s} {'lowest':>8s} {'minus':>7s}")
    for name, v in med.items():
        extra = ""
        if name.startswith("query"):
            extra = f"{v - kernel:13.1f} {low[name]:8.1f} {low[name] - kernel_low:7.1f}"
            extra += f"   minus exact_one: {v - med['kernel (single.exact_one)']:.1f}"
        else:
            extra = f"{'':13s} {low[name]:8.1f}"
        print(f"{name:28s} {v:9.1f} {extra}")
    result = {
        "rows": a.rows,
        "dim": a.dim,
        "k": a.k,
        "rounds": a.rounds,
        "calls": a.calls,
        "clock": clock,
        "median_us": med,
        "lowest_us": low,
        "fixed_cost_us": {n: med[n] - kernel for n in med if n.startswith("query")},
        "fixed_cost_vs_exact_one_us": {
            n: med[n] - med["kernel (single.exact_one)"] for n in med if n.startswith("query")
        },
        "samples_us": samples,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    db.close()


if __name__ == "__main__":
    main()
