"""The HNSW graph index (issue 22, item 1): vecstore beside hnswlib and Chroma, in one run.

    python bench/compare_graph.py [--n 116659] [--nq 1000] [--repeats 3] [--only SYSTEMS]

Data: the WordNet-MiniLM matrix (117,659 x 384, all-MiniLM-L6-v2 embeddings of Debian
wordnet-base glosses, cached at ~/.cache/vecstore-bench/wordnet-minilm-117659.npy), shuffled
with seed 7; the last --nq rows are the queries, the first --n the base. Metric: cosine, k=10.
Ground truth: exact top-10 (and exact top-10 among the rows each filter keeps).

Every system runs in its own fresh process, one after another:

  hnswlib      M=16, ef_construction=200, build on 2 threads; single queries (1 thread) over ef
  kernel       vecstore.kernels.graph: the same build (both cores) and single queries over
               ef, straight through the kernel wrapper (no collection)
  api          a vecstore collection with index=vecstore.HNSW(M=16, ef_construction=200):
               add() of every row (segment write + graph build, timed), Collection.query
               over ef, and filtered queries (where= keeping 1% and 10% of the rows)
  chroma       chromadb (its HNSW, M=16, ef_construction=200): add, and the same filtered
               queries

Query rates are medians of --repeats passes over the queries. Reports q/s at the first ef
reaching recall@10 >= 0.95, the build-time ratio, the filtered q/s ratios against Chroma,
and how much of the API's time per query is outside the kernel. Writes
bench/results/graph.json. Never asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

CACHE = Path(os.environ.get("VECSTORE_BENCH_CACHE", Path.home() / ".cache/vecstore-bench"))
MATRIX = CACHE / "wordnet-minilm-117659.npy"
EFS = (10, 16, 20, 24, 32, 40, 48, 64, 96)
K = 10
M, EFC = 16, 200
SYSTEMS = ("hnswlib", "kernel", "api", "chroma")
# filters: a metadata field "bucket" = row % 100; 1% keeps bucket 0, 10% buckets 0-9
FILTERS = {"1%": 1, "10%": 10}


def load(n: int, nq: int):
    x = np.load(MATRIX, mmap_mode="r")
    order = np.random.default_rng(7).permutation(len(x))
    if n + nq > len(x):
        raise SystemExit(f"--n + --nq must be at most {len(x)}")
    xb = np.ascontiguousarray(x[np.sort(order[:n])])
    xq = np.ascontiguousarray(x[order[len(x) - nq :]])
    return xb, xq


def truth(xb: np.ndarray, xq: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Exact cosine top-K ids (row numbers) per query, among rows ``keep`` if given."""
    xn = xb / np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-30)
    qn = xq / np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-30)
    rows = np.arange(len(xb)) if keep is None else np.flatnonzero(keep)
    out = np.empty((len(xq), K), dtype=np.int64)
    for lo in range(0, len(xq), 256):
        s = qn[lo : lo + 256] @ xn[rows].T
        top = np.argpartition(-s, K, axis=1)[:, :K]
        srt = np.argsort(-np.take_along_axis(s, top, 1), axis=1)
        out[lo : lo + 256] = rows[np.take_along_axis(top, srt, 1)]
    return out


def recall(found, gt) -> float:
    return float(np.mean([len(set(map(int, f)) & set(map(int, g))) / K for f, g in zip(found, gt)]))


def buckets(n: int) -> np.ndarray:
    return np.arange(n) % 100


def timed_passes(run, nq: int, repeats: int) -> tuple[float, list]:
    """Median q/s over ``repeats`` passes of ``run()`` (which answers all nq queries)."""
    rates, found = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        found = run()
        rates.append(nq / (time.perf_counter() - t))
    return statistics.median(rates), found


# -- workers (each in its own process) ---------------------------------------------------------


def worker_hnswlib(xb, xq, gts, repeats):
    import hnswlib

    p = hnswlib.Index(space="cosine", dim=xb.shape[1])
    p.init_index(max_elements=len(xb), M=M, ef_construction=EFC, random_seed=100)
    p.set_num_threads(2)
    t = time.perf_counter()
    p.add_items(xb, np.arange(len(xb)))
    build = time.perf_counter() - t
    p.set_num_threads(1)
    curve = []
    for ef in EFS:
        p.set_ef(max(ef, K))

        def run():
            return [p.knn_query(xq[i : i + 1], k=K)[0][0] for i in range(len(xq))]

        qps, found = timed_passes(run, len(xq), repeats)
        curve.append({"ef": ef, "qps": qps, "recall": recall(found, gts["all"])})
    return {"build_s": build, "curve": curve}


def worker_kernel(xb, xq, gts, repeats):
    from vecstore.kernels import exact
    from vecstore.kernels import graph as kg

    norms = exact.row_norms(xb)
    kg.build(xb[:2000], norms[:2000], "cosine", M, EFC)  # compile (or load) the kernels first
    t = time.perf_counter()
    g = kg.build(xb, norms, "cosine", M, EFC)
    build = time.perf_counter() - t
    w, c = kg.row_terms(norms, "cosine")
    sh = kg.upper_slots(g["levels"])
    scratch = kg.Scratch(len(xb), max(EFS) + K, g["L0"].shape[1])
    curve = []
    for ef in EFS:

        def run():
            out = []
            for i in range(len(xq)):
                D, I = exact.new_heaps(1, K)
                kg.search_into(xq[i : i + 1], "cosine", xb, w, c, sh, g["L0"], g["UP"],
                               g["entry"], g["top"], ef, D, I, scratch=scratch)  # fmt: skip
                out.append(I[0].copy())
            return out

        run()
        qps, found = timed_passes(run, len(xq), repeats)
        curve.append({"ef": ef, "qps": qps, "recall": recall(found, gts["all"])})
    return {"build_s": build, "curve": curve}


def worker_api(xb, xq, gts, repeats):
    import vecstore

    d = tempfile.mkdtemp(prefix="vs-graph-")
    try:
        with vecstore.open(d) as db:
            # compile (or load) the build kernels on a small throwaway collection first
            warm = db.create_collection("warm", dim=xb.shape[1], index=vecstore.HNSW(min_rows=1))
            warm.add(ids=[str(i) for i in range(3000)], vectors=xb[:3000])
            warm.query(xq[0], k=K)
            db.delete_collection("warm")
            coll = db.create_collection(
                "wn", dim=xb.shape[1], index=vecstore.HNSW(M=M, ef_construction=EFC)
            )
            ids = [str(i) for i in range(len(xb))]
            meta = [{"bucket": int(b)} for b in buckets(len(xb))]
            t = time.perf_counter()
            coll.add(ids=ids, vectors=xb, metadata=meta)
            build = time.perf_counter() - t
            info = coll.index_info()
            curve = []
            for ef in EFS:

                def run():
                    return [[int(i) for i in coll.query(q, k=K, ef=ef).ids] for q in xq]

                run()
                qps, found = timed_passes(run, len(xq), repeats)
                curve.append({"ef": ef, "qps": qps, "recall": recall(found, gts["all"])})
            filtered = {}
            for name, nb in FILTERS.items():
                where = {"bucket": 0} if nb == 1 else {"bucket": {"$lt": nb}}

                def run():
                    return [[int(i) for i in coll.query(q, k=K, where=where).ids] for q in xq]

                run()
                qps, found = timed_passes(run, len(xq), repeats)
                filtered[name] = {
                    "qps": qps,
                    "recall": recall(found, gts[name]),
                    "min_len": min(len(f) for f in found),
                }
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"build_s": build, "curve": curve, "filtered": filtered, "info": info}


def worker_chroma(xb, xq, gts, repeats):
    import chromadb

    d = tempfile.mkdtemp(prefix="chroma-graph-")
    try:
        client = chromadb.PersistentClient(path=d)
        coll = client.create_collection(
            "wordnet",
            metadata={"hnsw:space": "cosine", "hnsw:M": M, "hnsw:construction_ef": EFC},
        )
        b = buckets(len(xb))
        t = time.perf_counter()
        step = 5000
        for lo in range(0, len(xb), step):
            hi = min(len(xb), lo + step)
            coll.add(
                ids=[str(i) for i in range(lo, hi)],
                embeddings=xb[lo:hi],
                metadatas=[{"bucket": int(v)} for v in b[lo:hi]],
            )
        build = time.perf_counter() - t
        filtered = {}
        for name, nb in FILTERS.items():
            where = {"bucket": 0} if nb == 1 else {"bucket": {"$lt": nb}}

            def run():
                out = []
                for q in xq:
                    r = coll.query(query_embeddings=[q], n_results=K, where=where)
                    out.append([int(i) for i in r["ids"][0]])
                return out

            run()
            qps, found = timed_passes(run, len(xq), repeats)
            filtered[name] = {
                "qps": qps,
                "recall": recall(found, gts[name]),
                "min_len": min(len(f) for f in found),
            }
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"build_s": build, "filtered": filtered}


WORKERS = {
    "hnswlib": worker_hnswlib,
    "kernel": worker_kernel,
    "api": worker_api,
    "chroma": worker_chroma,
}


# -- driver -----------------------------------------------------------------------------------


def at_target(curve, target=0.95):
    """The first point of a curve reaching the recall target (None if none does)."""
    return next((p for p in curve if p["recall"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=116_659)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=",".join(SYSTEMS))
    ap.add_argument("--worker")
    ap.add_argument("--data")
    ap.add_argument("--out", default=str(REPO / "bench/results/graph.json"))
    args = ap.parse_args()

    if args.worker:
        z = np.load(args.data)
        gts = {"all": z["all"], **{name: z[name] for name in FILTERS}}
        xb, xq = load(args.n, args.nq)
        res = WORKERS[args.worker](xb, xq, gts, args.repeats)
        print("RESULT " + json.dumps(res))
        return

    xb, xq = load(args.n, args.nq)
    tmp = Path(tempfile.mkdtemp(prefix="graph-bench-"))
    data = tmp / "truth.npz"
    b = buckets(len(xb))
    gts = {"all": truth(xb, xq)}
    for name, nb in FILTERS.items():
        gts[name] = truth(xb, xq, b < nb)
    np.savez(data, **gts)
    results = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "n": len(xb),
        "nq": len(xq),
        "k": K,
        "M": M,
        "ef_construction": EFC,
    }
    for system in args.only.split(","):
        cmd = [sys.executable, __file__, "--worker", system, "--data", str(data),
               "--n", str(args.n), "--nq", str(args.nq), "--repeats", str(args.repeats)]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{system}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        results[system] = json.loads(line[len("RESULT ") :])
        print(f"{system}: done in {time.perf_counter() - t:.0f} s", flush=True)
        for p in results[system].get("curve", []):
            print(f"  ef={p['ef']:>3}  recall={p['recall']:.3f}  q/s={p['qps']:,.0f}")
        for name, f in results[system].get("filtered", {}).items():
            print(f"  filtered {name}: recall={f['recall']:.3f}  q/s={f['qps']:,.0f}  "
                  f"fewest hits={f['min_len']}")  # fmt: skip
        print(f"  build {results[system]['build_s']:.1f} s", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    summary = {}
    h = results.get("hnswlib")
    for system in ("kernel", "api"):
        r = results.get(system)
        if not (r and h):
            continue
        mine, theirs = at_target(r["curve"]), at_target(h["curve"])
        if mine and theirs:
            summary[f"{system}_qps_at_0.95_vs_hnswlib"] = {
                "vecstore": mine,
                "hnswlib": theirs,
                "ratio": mine["qps"] / theirs["qps"],
            }
        summary[f"{system}_build_vs_hnswlib"] = r["build_s"] / h["build_s"]
    api, kern = results.get("api"), results.get("kernel")
    if api and kern:
        per_ef = []
        for a, k in zip(api["curve"], kern["curve"]):
            per_ef.append({"ef": a["ef"], "api_us": 1e6 / a["qps"], "kernel_us": 1e6 / k["qps"]})
        summary["api_overhead"] = per_ef
    ch = results.get("chroma")
    if api and ch:
        for name in FILTERS:
            summary[f"filtered_{name}_vs_chroma"] = {
                "vecstore": api["filtered"][name],
                "chroma": ch["filtered"][name],
                "ratio": api["filtered"][name]["qps"] / ch["filtered"][name]["qps"],
            }
    results["summary"] = summary
    print(json.dumps(summary, indent=1))
    out = Path(args.out)
    if out.exists():
        try:
            old = json.loads(out.read_text())
            for key in SYSTEMS:  # keep systems this run skipped
                if key not in results and key in old:
                    results[key] = old[key]
        except ValueError:
            pass
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
