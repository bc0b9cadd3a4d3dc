"""The HNSW graph index (issue 22, item 1): vecstore beside hnswlib and Chroma, in one run.

    python bench/compare_graph.py [--n 116659] [--nq 1000] [--rounds 3] [--only SYSTEMS]

Data: the WordNet-MiniLM matrix (117,659 x 384, all-MiniLM-L6-v2 embeddings of Debian
wordnet-base glosses, cached at ~/.cache/vecstore-bench/wordnet-minilm-117659.npy), shuffled
with seed 7; the last --nq rows are the queries, the first --n the base. Metric: cosine, k=10.
Ground truth: exact top-10 (and exact top-10 among the rows each filter keeps).

Every system builds its index in its own fresh process and saves it; then --rounds rounds
of fresh processes, one per system in turn, load the saved index and time the queries (one
pass per setting per round; the figures are medians over rounds), so that the load of a
shared machine falls on every system alike:

  hnswlib      M=16, ef_construction=200, build on 2 threads; single queries (1 thread) over ef
  kernel       vecstore.kernels.graph: the same build (both cores) and single queries over
               ef, straight through the kernel wrapper (no collection)
  api          a vecstore collection with index=vecstore.HNSW(M=16, ef_construction=200):
               add() of every row (segment write + graph build, timed), Collection.query
               over ef, and filtered queries (where= keeping 1% and 10% of the rows)
  chroma       chromadb (its HNSW, M=16, ef_construction=200): add, and the same filtered
               queries

Reports q/s at the first ef
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


# -- workers (each in its own process) ---------------------------------------------------------
# build_X(xb, where) builds and saves an index under the directory ``where`` and returns its
# build time; query_X(xb, xq, gts, where) loads it and returns one pass per setting.


def sweep(search, xq, gts, efs=EFS):
    """One timed pass over the queries per ef: ``search(q, ef)`` returns ids."""
    curve = []
    for ef in efs:
        search(xq[0], ef)  # load or warm whatever the setting needs
        t = time.perf_counter()
        found = [search(q, ef) for q in xq]
        qps = len(xq) / (time.perf_counter() - t)
        curve.append({"ef": ef, "qps": qps, "recall": recall(found, gts["all"])})
    return curve


def filtered_passes(search, xq, gts):
    out = {}
    for name, nb in FILTERS.items():
        where = {"bucket": 0} if nb == 1 else {"bucket": {"$lt": nb}}
        search(xq[0], where)
        t = time.perf_counter()
        found = [search(q, where) for q in xq]
        qps = len(xq) / (time.perf_counter() - t)
        out[name] = {
            "qps": qps,
            "recall": recall(found, gts[name]),
            "min_len": min(len(f) for f in found),
        }
    return out


def build_hnswlib(xb, where):
    import hnswlib

    p = hnswlib.Index(space="cosine", dim=xb.shape[1])
    p.init_index(max_elements=len(xb), M=M, ef_construction=EFC, random_seed=100)
    p.set_num_threads(2)
    t = time.perf_counter()
    p.add_items(xb, np.arange(len(xb)))
    build = time.perf_counter() - t
    p.save_index(str(where / "hnswlib.bin"))
    return build


def query_hnswlib(xb, xq, gts, where):
    import hnswlib

    p = hnswlib.Index(space="cosine", dim=xb.shape[1])
    p.load_index(str(where / "hnswlib.bin"))
    p.set_num_threads(1)

    def search(q, ef):
        p.set_ef(max(ef, K))
        return p.knn_query(q[None, :], k=K)[0][0]

    return {"curve": sweep(search, xq, gts)}


def build_kernel(xb, where):
    from vecstore.kernels import exact
    from vecstore.kernels import graph as kg

    norms = exact.row_norms(xb)
    kg.build(xb[:2000], norms[:2000], "cosine", M, EFC)  # compile (or load) the kernels first
    t = time.perf_counter()
    g = kg.build(xb, norms, "cosine", M, EFC)
    build = time.perf_counter() - t
    np.savez(where / "kernel.npz", **g)
    return build


def query_kernel(xb, xq, gts, where):
    from vecstore.kernels import exact
    from vecstore.kernels import graph as kg

    z = np.load(where / "kernel.npz")
    L0, UP, levels = z["L0"], z["UP"], z["levels"]
    entry, top = int(z["entry"]), int(z["top"])
    norms = exact.row_norms(xb)
    w, c = kg.row_terms(norms, "cosine")
    sh = kg.upper_slots(levels)
    scratch = kg.Scratch(len(xb), max(EFS) + K, L0.shape[1])
    walk = kg.walk_block(L0, w, c, "cosine")  # layer 0 as the search walks it, kept

    def search(q, ef):
        D, I = exact.new_heaps(1, K)
        kg.search_into(q[None, :], "cosine", xb, w, c, sh, L0, UP, entry, top, ef, D, I,
                       scratch=scratch, walk=walk)  # fmt: skip
        return I[0]

    return {"curve": sweep(search, xq, gts)}


def build_api(xb, where):
    import vecstore

    with vecstore.open(where / "store") as db:
        # compile (or load) the build kernels on a small throwaway collection first: 6,000
        # rows, since fewer (at d = 384) wait in the pending table and build no graph
        warm = db.create_collection("warm", dim=xb.shape[1], index=vecstore.HNSW(min_rows=1))
        warm.add(ids=[str(i) for i in range(6000)], vectors=xb[:6000])
        db.delete_collection("warm")
        coll = db.create_collection(
            "wn", dim=xb.shape[1], index=vecstore.HNSW(M=M, ef_construction=EFC)
        )
        ids = [str(i) for i in range(len(xb))]
        meta = [{"bucket": int(b)} for b in buckets(len(xb))]
        t = time.perf_counter()
        coll.add(ids=ids, vectors=xb, metadata=meta)
        build = time.perf_counter() - t
        print("INFO " + json.dumps(coll.index_info()))
    return build


def query_api(xb, xq, gts, where):
    import vecstore

    with vecstore.open(where / "store", read_only=True) as db:
        coll = db.get_collection("wn")
        curve = sweep(lambda q, ef: [int(i) for i in coll.query(q, k=K, ef=ef).ids], xq, gts)
        filtered = filtered_passes(
            lambda q, w: [int(i) for i in coll.query(q, k=K, where=w).ids], xq, gts
        )
    return {"curve": curve, "filtered": filtered}


def build_chroma(xb, where):
    import chromadb

    client = chromadb.PersistentClient(path=str(where / "chroma"))
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
    return time.perf_counter() - t


def query_chroma(xb, xq, gts, where):
    import chromadb

    client = chromadb.PersistentClient(path=str(where / "chroma"))
    coll = client.get_collection("wordnet")

    def search(q, w):
        r = coll.query(query_embeddings=[q], n_results=K, where=w)
        return [int(i) for i in r["ids"][0]]

    return {"filtered": filtered_passes(search, xq, gts)}


WORKERS = {
    "hnswlib": (build_hnswlib, query_hnswlib),
    "kernel": (build_kernel, query_kernel),
    "api": (build_api, query_api),
    "chroma": (build_chroma, query_chroma),
}


# -- driver -----------------------------------------------------------------------------------


def at_target(curve, target=0.95):
    """The first point of a curve reaching the recall target (None if none does)."""
    return next((p for p in curve if p["recall"] >= target), None)


def run_worker(system, phase, args, data, where):
    cmd = [sys.executable, __file__, "--worker", system, "--phase", phase, "--data", str(data),
           "--dir", str(where), "--n", str(args.n), "--nq", str(args.nq)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print(f"{system} {phase}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    info = next((ln for ln in proc.stdout.splitlines() if ln.startswith("INFO ")), None)
    out = json.loads(line[len("RESULT ") :])
    if info:
        out["info"] = json.loads(info[len("INFO ") :])
    return out


def median_of(rounds: list[dict]) -> dict:
    """Per setting, the median q/s over rounds (recall is the same every round)."""
    out = {}
    if rounds and "curve" in rounds[0]:
        out["curve"] = [
            {
                "ef": pts[0]["ef"],
                "recall": pts[0]["recall"],
                "qps": statistics.median(p["qps"] for p in pts),
                "qps_rounds": [p["qps"] for p in pts],
            }
            for pts in zip(*(r["curve"] for r in rounds))
        ]
    if rounds and "filtered" in rounds[0]:
        out["filtered"] = {
            name: {
                "recall": rounds[0]["filtered"][name]["recall"],
                "min_len": min(r["filtered"][name]["min_len"] for r in rounds),
                "qps": statistics.median(r["filtered"][name]["qps"] for r in rounds),
                "qps_rounds": [r["filtered"][name]["qps"] for r in rounds],
            }
            for name in rounds[0]["filtered"]
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=116_659)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default=",".join(SYSTEMS))
    ap.add_argument("--worker")
    ap.add_argument("--phase")
    ap.add_argument("--data")
    ap.add_argument("--dir")
    ap.add_argument("--out", default=str(REPO / "bench/results/graph.json"))
    args = ap.parse_args()

    if args.worker:
        xb, xq = load(args.n, args.nq)
        build, query = WORKERS[args.worker]
        where = Path(args.dir)
        if args.phase == "build":
            res = {"build_s": build(xb, where)}
        else:
            z = np.load(args.data)
            gts = {"all": z["all"], **{name: z[name] for name in FILTERS}}
            res = query(xb, xq, gts, where)
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
        "command": " ".join(["python", "bench/compare_graph.py", *sys.argv[1:]]),
        "n": len(xb),
        "nq": len(xq),
        "k": K,
        "M": M,
        "ef_construction": EFC,
    }
    systems = args.only.split(",")
    built = {}
    try:
        for system in systems:
            t = time.perf_counter()
            r = run_worker(system, "build", args, data, tmp)
            if r is not None:
                built[system] = r
                print(f"{system}: built in {r['build_s']:.1f} s "
                      f"({time.perf_counter() - t:.0f} s with start-up)", flush=True)  # fmt: skip
        rounds = {s: [] for s in built}
        for i in range(args.rounds):
            for system in built:
                r = run_worker(system, "query", args, data, tmp)
                if r is not None:
                    rounds[system].append(r)
            print(f"round {i + 1} done", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for system in built:
        results[system] = {**built[system], **median_of(rounds[system])}
        print(f"{system}:")
        for p in results[system].get("curve", []):
            print(f"  ef={p['ef']:>3}  recall={p['recall']:.3f}  q/s={p['qps']:,.0f}")
        for name, f in results[system].get("filtered", {}).items():
            print(f"  filtered {name}: recall={f['recall']:.3f}  q/s={f['qps']:,.0f}  "
                  f"fewest hits={f['min_len']}")  # fmt: skip
        print(f"  build {results[system]['build_s']:.1f} s", flush=True)

    results["summary"] = summarize(results)
    print(json.dumps(results["summary"], indent=1))
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=1) + "\n")


def summarize(results: dict) -> dict:
    summary = {}
    h = results.get("hnswlib")
    for system in ("kernel", "api"):
        r = results.get(system)
        if not (r and h):
            continue
        mine, theirs = at_target(r["curve"]), at_target(h["curve"])
        if mine and theirs:
            summary[f"{system}_qps_at_0.95_vs_hnswlib"] = {
                "vecstore": {k: mine[k] for k in ("ef", "recall", "qps")},
                "hnswlib": {k: theirs[k] for k in ("ef", "recall", "qps")},
                "ratio": mine["qps"] / theirs["qps"],
            }
        summary[f"{system}_build_vs_hnswlib"] = r["build_s"] / h["build_s"]
    api, kern = results.get("api"), results.get("kernel")
    if api and kern:
        summary["api_minus_kernel_us"] = {
            a["ef"]: 1e6 / a["qps"] - 1e6 / k["qps"] for a, k in zip(api["curve"], kern["curve"])
        }
    ch = results.get("chroma")
    if api and ch:
        for name in FILTERS:
            summary[f"filtered_{name}_vs_chroma"] = {
                "vecstore": api["filtered"][name],
                "chroma": ch["filtered"][name],
                "ratio": api["filtered"][name]["qps"] / ch["filtered"][name]["qps"],
            }
    return summary


if __name__ == "__main__":
    main()
