"""Compressed vectors against float32 and faiss, one query at a time, each system in its own
fresh process.

    python bench/compare_compressed.py [--rounds 3] [--queries 500] [--work DIR]

Data: the cached WordNet-MiniLM matrix (all ~117k passages, 384-d; ``benchdata``), the last
1,000 rows of its fixed shuffle held out as queries, k=10, cosine (the vectors are unit length,
so inner product for faiss). Systems:

- vecstore ``vectors="float32" | "float16" | "int8" | "binary"`` (a Flat collection, so an exact
  scan: of the float32 rows, or of the codes with float32 re-ranking);
- faiss ``IndexFlatIP``, ``IndexScalarQuantizer(QT_8bit)`` (no re-ranking: faiss keeps no
  originals beside it), and ``IndexBinaryFlat`` (sign bits less the mean, as vecstore's) both
  alone and with its ``k x 20`` Hamming candidates re-ranked from float32 in NumPy.

Each round starts every system in a fresh process (the stores and faiss indexes are built
once, in their own processes, and only opened/read in the timed ones); a process warms up on
50 queries, then times ``--queries`` single queries. Reported: the median q/s over rounds,
recall@10 against exact float32 ground truth, the ratio to vecstore float32 in the same run,
and the process's resident memory after the queries: ``RssFile`` (mapped file pages: segments
and code files) and ``RssAnon`` (heap: faiss keeps its index there), from /proc/self/status,
less what the process held before opening the store.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
K = 10
WARMUP = 50
BINARY_RERANK = 20
PAUSE = 0.1

VECSTORE = ["float32", "float16", "int8", "binary"]
FAISS = ["faiss-flat", "faiss-sq8", "faiss-binary", "faiss-binary+rerank"]


def load_data():
    """``(xb, xq)``: every WordNet-MiniLM passage but the 1,000 held out, and those."""
    sys.path.insert(0, str(HERE))
    from benchdata import wordnet_embeddings

    cache = Path(os.environ.get("VECSTORE_BENCH_CACHE", Path.home() / ".cache/vecstore-bench"))
    n = len(np.load(next(cache.glob("wordnet-minilm-*.npy")), mmap_mode="r"))
    xb, xq, _ = wordnet_embeddings(n_base=n - 1000, n_queries=1000)
    return xb, xq


def saved(work: Path, name: str) -> np.ndarray:
    """``xb`` or ``xq`` as the parent saved them in ``work`` (mapped read-only)."""
    return np.load(work / f"{name}.npy", mmap_mode="r")


def status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


# -- building (once, each in its own process) ---------------------------------------------------


def build(system: str, work: Path) -> None:
    xb = np.ascontiguousarray(saved(work, "xb"))
    if system in VECSTORE:
        import vecstore

        with vecstore.open(work / f"store-{system}") as db:
            c = db.create_collection("wn", dim=xb.shape[1], vectors=system)
            for a in range(0, len(xb), 20_000):
                c.add(
                    ids=[str(i) for i in range(a, min(a + 20_000, len(xb)))],
                    vectors=xb[a : a + 20_000],
                )
            c.compact()
        return
    import faiss

    d = xb.shape[1]
    if system == "faiss-flat":
        index = faiss.IndexFlatIP(d)
        index.add(xb)
        faiss.write_index(index, str(work / "flat.faiss"))
    elif system == "faiss-sq8":
        index = faiss.IndexScalarQuantizer(
            d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.train(xb)
        index.add(xb)
        faiss.write_index(index, str(work / "sq8.faiss"))
    else:
        mean = xb.mean(axis=0)
        index = faiss.IndexBinaryFlat(d)
        index.add(np.packbits(xb > mean, axis=1, bitorder="little"))
        faiss.write_index_binary(index, str(work / "binary.faiss"))
        np.save(work / "mean.npy", mean)


# -- timing (a fresh process per system and round) ---------------------------------------------


def run(system: str, work: Path, nq: int) -> dict:
    xq = np.array(saved(work, "xq")[: WARMUP + nq])
    before = status()
    if system in VECSTORE:
        import vecstore

        db = vecstore.open(work / f"store-{system}")
        c = db.get_collection("wn")

        def one(q):
            return [int(i) for i in c.query(q, k=K).ids]

    else:
        import faiss

        faiss.omp_set_num_threads(int(os.environ.get("FAISS_THREADS", "2")))
        if system == "faiss-flat":
            index = faiss.read_index(str(work / "flat.faiss"))
        elif system == "faiss-sq8":
            index = faiss.read_index(str(work / "sq8.faiss"))
        else:
            index = faiss.read_index_binary(str(work / "binary.faiss"))
            mean = np.load(work / "mean.npy")
        if system == "faiss-binary+rerank":
            # the originals mapped from disk, as vecstore keeps them
            xb = np.load(work / "xb.npy", mmap_mode="r")

            def one(q):
                code = np.packbits(q[None] > mean, axis=1, bitorder="little")
                _, cand = index.search(code, K * BINARY_RERANK)
                cand = np.sort(cand[0])
                s = xb[cand] @ q
                return cand[np.argsort(-s)[:K]].tolist()

        elif system == "faiss-binary":

            def one(q):
                code = np.packbits(q[None] > mean, axis=1, bitorder="little")
                return index.search(code, K)[1][0].tolist()

        else:

            def one(q):
                return index.search(q[None], K)[1][0].tolist()

    for q in xq[:WARMUP]:
        one(q)
    t0 = time.perf_counter()
    labels = [one(q) for q in xq[WARMUP:]]
    elapsed = time.perf_counter() - t0
    after = status()
    return {
        "qps": nq / elapsed,
        "labels": labels,
        "rss_file": after["RssFile"] - before["RssFile"],
        "rss_anon": after["RssAnon"] - before["RssAnon"],
    }


def paired(work: Path, nq: int, kinds: list[str]) -> dict:
    """One process, every vecstore setting open at once, the queries interleaved: query
    i runs on each setting in turn (after a pause), so all see the same moment's load.
    Per setting, the median and the 10th percentile of the per-query times, and
    recall@10."""
    import vecstore

    xq = np.array(saved(work, "xq")[: WARMUP + nq])
    dbs = {kind: vecstore.open(work / f"store-{kind}") for kind in kinds}
    cols = {kind: db.get_collection("wn") for kind, db in dbs.items()}
    for c in cols.values():
        for q in xq[:WARMUP]:
            c.query(q, k=K)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    labels: dict[str, list[list[int]]] = {kind: [] for kind in kinds}
    for q in xq[WARMUP:]:
        for kind, c in cols.items():
            # outlast the spin-wait of the previous query's idle pool threads (numba's
            # workqueue, OpenBLAS), which would otherwise steal a core from this one
            time.sleep(PAUSE)
            t0 = time.perf_counter()
            got = c.query(q, k=K)
            times[kind].append(time.perf_counter() - t0)
            labels[kind].append([int(i) for i in got.ids])
    return {
        kind: {
            "median_ms": float(np.median(times[kind])) * 1e3,
            "p10_ms": float(np.percentile(times[kind], 10)) * 1e3,
            "labels": labels[kind],
        }
        for kind in kinds
    }


def spawn(args: list[str]) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{args} failed")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--systems", default=",".join(VECSTORE + FAISS))
    ap.add_argument("--work", default=None, help="folder for stores and indexes (default: temp)")
    ap.add_argument("--out", default=str(HERE / "results" / "compressed.json"))
    ap.add_argument(
        "--paired",
        action="store_true",
        help="also time the vecstore settings in one process, queries interleaved",
    )
    ap.add_argument(
        "--faiss-threads",
        type=int,
        default=2,
        help="faiss's OpenMP threads (default 2; on a busy machine 1 avoids its spin-waits)",
    )
    ap.add_argument("--worker", nargs=2, metavar=("ACTION", "SYSTEM"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        action, system = args.worker
        work = Path(args.work)
        if action == "build":
            done = work / f"built-{system}.json"
            if not done.exists():  # a --work folder is reused as it is
                t0 = time.perf_counter()
                build(system, work)
                done.write_text(json.dumps({"seconds": time.perf_counter() - t0}))
            print(done.read_text())
        elif action == "paired":
            print(json.dumps(paired(work, args.queries, system.split(","))))
        else:
            print(json.dumps(run(system, work, args.queries)))
        return

    os.environ["FAISS_THREADS"] = str(args.faiss_threads)
    systems = args.systems.split(",")
    work = Path(args.work or tempfile.mkdtemp(prefix="vecstore-compressed-"))
    work.mkdir(parents=True, exist_ok=True)
    xb, xq = load_data()
    for name, a in (("xb", xb), ("xq", xq)):
        if not (work / f"{name}.npy").exists():
            np.save(work / f"{name}.npy", a)
    xq = xq[WARMUP : WARMUP + args.queries]
    truth = np.argsort(-(xq @ xb.T), axis=1)[:, :K]
    del xb

    builds = {}
    for system in systems:
        key = "binary.faiss" if system.startswith("faiss-binary") else system
        if key in builds:
            continue
        got = spawn(["--work", str(work), "--worker", "build", system])
        builds[key] = got["seconds"]
        print(f"built {system}: {got}", flush=True)

    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for r in range(args.rounds):
        for system in systems:
            got = spawn(
                ["--work", str(work), "--queries", str(args.queries), "--worker", "run", system]
            )
            runs[system].append(got)
            print(f"round {r + 1} {system:<20} {got['qps']:8.1f} q/s", flush=True)

    rows = {}
    for system, got in runs.items():
        labels = got[-1]["labels"]
        hits = sum(len(set(a) & set(b.tolist())) for a, b in zip(labels, truth, strict=True))
        rows[system] = {
            "qps": float(np.median([g["qps"] for g in got])),
            "qps_rounds": [g["qps"] for g in got],
            "recall": hits / (K * len(truth)),
            "rss_file_mb": float(np.median([g["rss_file"] for g in got])) / 2**20,
            "rss_anon_mb": float(np.median([g["rss_anon"] for g in got])) / 2**20,
        }
    kinds = [s for s in systems if s in VECSTORE]
    pair = {}
    if args.paired and "float32" in kinds:
        got = spawn(
            [
                "--work",
                str(work),
                "--queries",
                str(args.queries),
                "--worker",
                "paired",
                ",".join(kinds),
            ]
        )
        f32 = got["float32"]
        print("\npaired (one process, queries interleaved):")
        for kind, g in got.items():
            hits = sum(
                len(set(a) & set(b.tolist())) for a, b in zip(g.pop("labels"), truth, strict=True)
            )
            g.update(
                recall=hits / (K * len(truth)),
                speedup_median=f32["median_ms"] / g["median_ms"],
                speedup_p10=f32["p10_ms"] / g["p10_ms"],
            )
            pair[kind] = g
            print(
                f"{kind:<10} median {g['median_ms']:7.3f} ms ({g['speedup_median']:5.2f}x f32), "
                f"p10 {g['p10_ms']:7.3f} ms ({g['speedup_p10']:5.2f}x), recall {g['recall']:.3f}"
            )
    base = rows.get("float32", {}).get("qps")
    print(
        f"\n{'system':<22}{'q/s':>9}{'x f32':>8}{'recall@10':>11}"
        f"{'RssFile MB':>12}{'RssAnon MB':>12}"
    )
    for system, row in rows.items():
        row["vs_float32"] = row["qps"] / base if base else None
        ratio = f"{row['vs_float32']:.2f}" if base else "-"
        print(
            f"{system:<22}{row['qps']:>9.1f}{ratio:>8}{row['recall']:>11.3f}"
            f"{row['rss_file_mb']:>12.1f}{row['rss_anon_mb']:>12.1f}"
        )
    out = {
        "data": "wordnet-minilm (all passages less 1,000 held-out queries), 384-d, k=10",
        "queries": args.queries,
        "rounds": args.rounds,
        "faiss_threads": args.faiss_threads,
        "cpus": os.cpu_count(),
        "builds_s": builds,
        "systems": rows,
        "paired": pair,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
