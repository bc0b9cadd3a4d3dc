"""vecstore on Dask: ingest throughput by workers, scatter-gather latency, and a simulation
of 16 and 64 shards from measured per-shard latencies.

    python bench/compare_dask.py [--ingest 1200 --rounds 3 --rows 100000 --queries 200]

1. Ingest: ``--ingest`` real WordNet passages embedded with the default model
   (all-MiniLM-L6-v2): a local ``add`` (torch on 2 threads), and ``vecstore.dask.ingest``
   on a LocalCluster of 1 worker (2 torch threads) and of 2 workers (1 thread each). Each
   configuration runs in its own fresh process, rounds alternate, the model is loaded (and
   warmed) before the clock starts; rows/s are medians over rounds.
2. Scatter-gather: single exact queries (k=10) over ``--rows`` WordNet-MiniLM vectors in one
   store, in 2 shards in-process, and in 2 shards on a 2-worker LocalCluster; median and p90
   latency, each in its own process.
3. Simulation: per-shard latencies measured on one shard (the single store's samples), the
   Dask fan-out cost measured as a function of the task count (a round trip, and the
   scheduler's task rate from a burst), and the merge measured for S x k results; the
   latency of a query over S = 16 and 64 shards is the max of S sampled shard latencies plus
   those costs, and throughput the lower of one shard's rate and the scheduler's rate / S.

Writes bench/results/dask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402

RESULTS = REPO / "bench" / "results" / "dask.json"


def child(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- children -----------------------------------------------------------------------------


def ingest_local(n: int, workdir: str) -> dict:
    import torch

    import vecstore
    from vecstore.corpora import wordnet_passages

    torch.set_num_threads(2)
    ps = wordnet_passages(n + 64)
    warm, ps = ps[:64], ps[64:]
    with vecstore.open(Path(workdir) / "local", progress=False) as db:
        w = db.create_collection("warm", encoder="all-MiniLM-L6-v2")
        w.add([p.id for p in warm], documents=[p.text for p in warm])
        c = db.create_collection("wn", encoder="all-MiniLM-L6-v2")
        start = time.perf_counter()
        c.add([p.id for p in ps], documents=[p.text for p in ps], metadata=[p.metadata for p in ps])
        seconds = time.perf_counter() - start
    return {"rows": n, "seconds": seconds, "rows_per_s": n / seconds}


def ingest_dask(n: int, workers: int, workdir: str) -> dict:
    import dask.bag as bag
    from distributed import Client, LocalCluster

    import vecstore
    from vecstore import dask as vdask
    from vecstore.corpora import wordnet_passages

    threads = str(max(1, 2 // workers))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    ps = wordnet_passages(n + 64 * workers)
    warm, ps = ps[: 64 * workers], ps[64 * workers :]
    rows = [{"id": p.id, "text": p.text, **p.metadata} for p in ps]
    warm_rows = [{"id": p.id, "text": p.text} for p in warm]
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        env=env,
    )
    with (
        cluster,
        Client(cluster) as client,
        vecstore.open(Path(workdir) / f"dask{workers}", progress=False) as db,
    ):
        # the nanny's environment alone left torch at 1 thread: set it in each worker
        assert all(client.run(_torch_threads, int(threads)).values())
        w = db.create_collection("warm", encoder="all-MiniLM-L6-v2")
        vdask.ingest(w, bag.from_sequence(warm_rows, npartitions=2 * workers), client=client)
        c = db.create_collection("wn", encoder="all-MiniLM-L6-v2")
        start = time.perf_counter()
        report = vdask.ingest(
            c,
            bag.from_sequence(rows, npartitions=4 * workers),
            metadata=["pos", "lemma", "lexfile"],
            client=client,
        )
        seconds = time.perf_counter() - start
        assert report.added == n
    return {
        "rows": n,
        "workers": workers,
        "torch_threads": int(threads),
        "seconds": seconds,
        "rows_per_s": n / seconds,
        "phases": report.to_dict(),
    }


def _torch_threads(n: int) -> bool:
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads() == n


def build_stores(rows: int, workdir: str) -> None:
    from benchdata import wordnet_embeddings

    import vecstore
    from vecstore import dask as vdask

    xb, _, passages = wordnet_embeddings(rows, 1000)
    ids = [p.id for p in passages]
    metas = [{"pos": p.metadata["pos"]} for p in passages]
    with vecstore.open(Path(workdir) / "single", progress=False) as db:
        c = db.create_collection("wn", dim=384)
        for i in range(0, rows, 20000):
            c.add(ids[i : i + 20000], vectors=xb[i : i + 20000], metadata=metas[i : i + 20000])
        c.compact()
    with vdask.open_sharded([Path(workdir) / f"shard{i}" for i in range(2)], "wn", dim=384) as sc:
        for i in range(0, rows, 20000):
            sc.add(ids[i : i + 20000], vectors=xb[i : i + 20000], metadata=metas[i : i + 20000])
    for i in range(2):
        with vecstore.open(Path(workdir) / f"shard{i}", progress=False) as db:
            db.get_collection("wn").compact()


def latency(mode: str, rows: int, nq: int, workdir: str) -> dict:
    from benchdata import wordnet_embeddings

    import vecstore
    from vecstore import dask as vdask

    _, xq, _ = wordnet_embeddings(rows, 1000)
    xq = xq[:nq]
    out: dict = {"mode": mode}
    lat = []
    if mode == "single":
        with vecstore.open(Path(workdir) / "single", read_only=True) as db:
            c = db.get_collection("wn")
            for q in xq[:20]:
                c.query(q, k=10)
            for q in xq:
                t = time.perf_counter()
                c.query(q, k=10)
                lat.append(time.perf_counter() - t)
        # the merge of S shards' top-10, measured on fake results
        from vecstore.results import QueryResult
        from vecstore.sharded import merge

        rng = np.random.default_rng(0)
        for s in (2, 16, 64):
            parts = [
                QueryResult(
                    [f"i{j}" for j in range(10)],
                    np.sort(rng.random(10).astype(np.float32))[::-1],
                    [None] * 10,
                    [{}] * 10,
                    "cosine",
                )
                for _ in range(s)
            ]
            t = time.perf_counter()
            for _ in range(200):
                merge(parts, 10)
            out[f"merge_{s}_s"] = (time.perf_counter() - t) / 200
    else:
        paths = [Path(workdir) / f"shard{i}" for i in range(2)]
        client = cluster = None
        if mode == "dask":
            from distributed import Client, LocalCluster

            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                env={"OMP_NUM_THREADS": "1"},
            )
            client = Client(cluster)
        try:
            with vdask.open_sharded(paths, "wn", client=client) as sc:
                for q in xq[:20]:
                    sc.query(q, k=10)
                for q in xq:
                    t = time.perf_counter()
                    sc.query(q, k=10)
                    lat.append(time.perf_counter() - t)
            if client is not None:
                workers = sorted(client.scheduler_info()["workers"])
                rt = []
                for _ in range(200):  # the fan-out alone: one no-op task pinned per worker
                    t = time.perf_counter()
                    client.gather([client.submit(int, 0, workers=[w], pure=False) for w in workers])
                    rt.append(time.perf_counter() - t)
                out["fanout_2_median_s"] = statistics.median(rt)
                burst = 2000
                t = time.perf_counter()
                client.gather([client.submit(int, i, pure=False) for i in range(burst)])
                out["scheduler_tasks_per_s"] = burst / (time.perf_counter() - t)
        finally:
            if client is not None:
                client.close()
                cluster.close()
    lat.sort()
    out |= {
        "median_s": statistics.median(lat),
        "p90_s": lat[int(0.9 * len(lat))],
        "samples_s": lat,
    }
    return out


def simulate(single: dict, dask2: dict, shards: int, draws: int = 2000) -> dict:
    """A query over ``shards`` shards, each on its own node: the slowest of ``shards`` shard
    latencies drawn from the measured ones, plus the measured fan-out and merge costs."""
    rng = np.random.default_rng(shards)
    samples = np.asarray(single["samples_s"])
    # fan-out cost: the measured 2-task round trip, plus the scheduler's time per extra task
    fanout = dask2["fanout_2_median_s"] + (shards - 2) / dask2["scheduler_tasks_per_s"]
    merge = single.get(f"merge_{shards}_s", single["merge_64_s"])
    lat = rng.choice(samples, size=(draws, shards)).max(axis=1) + fanout + merge
    per_shard_qps = 1.0 / float(np.mean(samples))
    scheduler_qps = dask2["scheduler_tasks_per_s"] / shards
    return {
        "shards": shards,
        "median_s": float(np.median(lat)),
        "p90_s": float(np.quantile(lat, 0.9)),
        "p99_s": float(np.quantile(lat, 0.99)),
        "fanout_s": fanout,
        "merge_s": merge,
        "throughput_qps": min(per_shard_qps, scheduler_qps),
        "bound": "shard" if per_shard_qps < scheduler_qps else "scheduler",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingest", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "ingest-local":
            res = ingest_local(int(rest[0]), rest[1])
        elif kind == "ingest-dask":
            res = ingest_dask(int(rest[0]), int(rest[1]), rest[2])
        elif kind == "build":
            build_stores(int(rest[0]), rest[1])
            res = {}
        else:
            res = latency(rest[0], int(rest[1]), int(rest[2]), rest[3])
        print(json.dumps(res))
        return

    results: dict = {"machine": {"cpus": os.cpu_count()}, "args": vars(a)}
    if not a.skip_ingest:
        runs: dict[str, list] = {"local": [], "dask1": [], "dask2": []}
        for r in range(a.rounds):
            for name in runs:
                with tempfile.TemporaryDirectory() as d:
                    if name == "local":
                        res = child(["ingest-local", str(a.ingest), d])
                    else:
                        res = child(["ingest-dask", str(a.ingest), name[-1], d])
                runs[name].append(res)
                print(f"round {r} {name}: {res['rows_per_s']:.1f} rows/s", flush=True)
        med = {k: statistics.median(x["rows_per_s"] for x in v) for k, v in runs.items()}
        results["ingest"] = {
            "rows": a.ingest,
            "rows_per_s": med,
            "dask1_over_local": med["dask1"] / med["local"],
            "dask2_over_local": med["dask2"] / med["local"],
            "dask2_over_dask1": med["dask2"] / med["dask1"],
            "runs": runs,
        }
        print(json.dumps(results["ingest"]["rows_per_s"]), flush=True)
    with tempfile.TemporaryDirectory() as d:
        child(["build", str(a.rows), d])
        lat = {
            m: child(["latency", m, str(a.rows), str(a.queries), d])
            for m in ("single", "inprocess", "dask")
        }
    results["latency"] = {
        m: {k: v for k, v in x.items() if k != "samples_s"} for m, x in lat.items()
    }
    results["latency"]["inprocess_over_single"] = (
        lat["inprocess"]["median_s"] / lat["single"]["median_s"]
    )
    results["latency"]["dask_minus_single_ms"] = 1e3 * (
        lat["dask"]["median_s"] - lat["single"]["median_s"]
    )
    results["simulation"] = [simulate(lat["single"], lat["dask"], s) for s in (16, 64)]
    results["simulation_note"] = (
        f"per-shard latencies: exact k=10 single queries on one store of {a.rows} "
        "WordNet-MiniLM vectors (384-d), measured here"
    )
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(
        json.dumps(
            {k: v for k, v in results.items() if k != "ingest"}
            | {"ingest": {k: v for k, v in results.get("ingest", {}).items() if k != "runs"}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
