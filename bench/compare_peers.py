"""vecstore beside its peers (issue 7): the same data, the same machine, one run.

    python bench/compare_peers.py                      # everything: JSON, docs, plots
    python bench/compare_peers.py --quick              # a few minutes: smaller sets, no 1M
    python bench/compare_peers.py --datasets glove --systems vecstore-flat,faiss-flat

Systems (bench/peers/, one adapter each): vecstore exact, IVF-PQ, HNSW, and exact over int8
or binary codes with float32 re-ranking; faiss Flat, IVF-Flat, IVF-PQ + IndexRefineFlat and
SQ8 + IndexRefineFlat; hnswlib; Chroma (PersistentClient); LanceDB (brute force and
IVF-PQ); sqlite-vec (through apsw); Qdrant local mode; Milvus Lite. A system whose package
is missing, or that fails or is too slow here, is recorded as skipped with the reason.

Data (bench/peers/data.py, cached with exact ground truth under $VECSTORE_BENCH_CACHE):
GloVe-6B 50-d and WordNet glosses x all-MiniLM-L6-v2 (100k base vectors, 1,000 held-out
queries each) and a synthetic clustered 1M x 384 set (200 queries). Vectors are unit length;
cosine everywhere; recall@10 against exact search.

Every measure runs in a fresh subprocess per system (bench/peers/worker.py): build (ingest
rate, including whatever makes the data durable and indexed; disk size), then --rounds
rounds, round-robin over the systems so that load changes on this shared machine fall on
all of them, of open (reopen in a new process, time to the first result) and query (recall
and single / batched QPS over the system's knob; filtered QPS, result counts and recall at
~1% and ~10% selectivity; RSS of the process tree afterwards). Figures are medians over all
passes of all rounds. The ratio tables compare each peer with the vecstore systems named in
peers/report.py (COUNTERPARTS: exact peers with vecstore-flat, approximate ones with
vecstore-ivfpq and vecstore-hnsw), at the first knob setting reaching recall@10 >= --target.
Writes bench/results/peers.json, docs/benchmarks.md and docs/img/peers-*.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from peers import report, rounds  # noqa: E402
from peers.base import SYSTEMS  # noqa: E402
from peers.data import DATASETS, prepare  # noqa: E402

# the distributions each system needs (checked without importing them)
PACKAGES = {
    "vecstore": (),
    "faiss": ("faiss-cpu",),
    "hnswlib": ("hnswlib",),
    "chroma": ("chromadb",),
    "lancedb": ("lancedb", "pyarrow"),
    "sqlite-vec": ("sqlite-vec", "apsw"),
    "qdrant": ("qdrant-client",),
    "milvus": ("milvus-lite", "pymilvus"),
}
# run at 1M by default: the rest extrapolate past the time budget (reason recorded)
SCALE_SYSTEMS = (
    "vecstore-flat",
    "vecstore-ivfpq",
    "faiss-flat",
    "faiss-ivfpq-refine",
)


def family(system: str) -> str:
    return next(f for f in PACKAGES if system.startswith(f))


def missing_packages(system: str) -> list[str]:
    out = []
    for dist in PACKAGES[family(system)]:
        try:
            version(dist)
        except PackageNotFoundError:
            out.append(dist)
    return out


def package_versions() -> dict:
    out = {}
    for dists in PACKAGES.values():
        for dist in dists:
            try:
                out[dist] = version(dist)
            except PackageNotFoundError:
                out[dist] = None
    for dist in ("numpy", "numba"):
        out[dist] = version(dist)
    return out


def thread_env(threads: int) -> dict:
    """One thread count for every pool a system may use (OpenMP: faiss; OpenBLAS; Numba:
    vecstore; Rayon: Rust libraries), and nothing fetched at run time."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "NUMBA_NUM_THREADS": n,
        "RAYON_NUM_THREADS": n,
        "ANONYMIZED_TELEMETRY": "False",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RUST_LOG": "error",
        "LANCE_LOG": "error",
    }


def run_worker(mode: str, system: str, data: Path, store: Path, args, log: Path) -> dict:
    """One worker subprocess; its JSON, or an error with the tail of its stderr."""
    out = Path(tempfile.mkstemp(suffix=".json", prefix="peers-")[1])
    cmd = [
        sys.executable, "-m", "peers.worker", mode,
        "--system", system, "--data", str(data), "--store", str(store), "--out", str(out),
        "--threads", str(args.threads), "--max-ingest-s", str(args.cur_ingest_min * 60),
        "--nq", str(args.nq_limit), "--budget", str(args.budget),
        "--repeats", str(args.repeats), "--min-q", str(args.cur_min_q),
        "--target", str(args.target), "--sweep-s", str(args.sweep_s),
    ]  # fmt: skip
    env = {
        **os.environ,
        **thread_env(args.threads),
        "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    try:
        with open(log, "a") as err:
            err.write(f"\n== {mode} {system} {data.name}\n")
            err.flush()
            proc = subprocess.run(
                cmd, stdout=err, stderr=err, env=env, cwd=BENCH, timeout=args.worker_timeout
            )
        text = out.read_text()
        if proc.returncode != 0 or not text:
            tail = log.read_text()[-1500:]
            return {"error": f"worker exited with {proc.returncode}", "stderr_tail": tail}
        return json.loads(text)
    except subprocess.TimeoutExpired:
        return {"skipped": f"{mode} did not finish within {args.worker_timeout:.0f} s"}
    finally:
        out.unlink(missing_ok=True)


def run_dataset(name: str, data: Path, systems: list[str], entry: dict, args, log: Path, save):
    """Build every system's store, then ``--rounds`` rounds of (open, query) workers,
    round-robin over the systems (rotated each round), then merge and remove the stores."""
    stores: dict[str, Path] = {}
    try:
        for system in systems:
            sysres = entry["systems"][system]
            if "skipped" in sysres:
                continue
            store = Path(tempfile.mkdtemp(prefix=f"peers-{system}-", dir=args.store_dir))
            print(f"[{name}] {system}: building", flush=True)
            sysres["build"] = run_worker("build", system, data, store / "s", args, log)
            if "vectors_per_s" not in sysres["build"]:
                shutil.rmtree(store, ignore_errors=True)
                print(f"[{name}] {system}: {report.status(sysres)}", flush=True)
                continue
            stores[system] = store / "s"
            # not counted: warms the page cache and loads (on a fresh checkout, compiles)
            # whatever the library caches on disk
            sysres["open_warmup"] = run_worker("open", system, data, stores[system], args, log)
            save()
        opens: dict = {s: [] for s in stores}
        queries: dict = {s: [] for s in stores}
        order = list(stores)
        for r in range(args.rounds):
            for system in order[r % len(order) :] + order[: r % len(order)] if order else []:
                print(f"[{name}] round {r + 1}/{args.rounds}: {system}", flush=True)
                opens[system].append(run_worker("open", system, data, stores[system], args, log))
                queries[system].append(run_worker("query", system, data, stores[system], args, log))
            for system in order:
                sysres = entry["systems"][system]
                sysres["open"] = rounds.merge_opens(opens[system], sysres.get("open_warmup"))
                sysres["query"] = rounds.merge_queries(queries[system])
            save()
        for system in order:
            print(f"[{name}] {system}: {report.one_line(entry['systems'][system])}", flush=True)
    finally:
        for store in stores.values():
            shutil.rmtree(store.parent, ignore_errors=True)


def scale_skip_reason(system: str, results: dict, n: int) -> str:
    """Why a system is not run at scale, from what this run measured on WordNet (384-d)."""
    ref = results.get("wordnet", {})
    sysres = ref.get("systems", {}).get(system, {})
    n_ref = ref.get("info", {}).get("n", 0)
    build, parts = sysres.get("build", {}), []
    rate = build.get("vectors_per_s") or build.get("partial", {}).get("vectors_per_s")
    if rate:
        parts.append(
            f"its ingest rate on WordNet (384-d) in this run, {rate:,.0f} vectors/s, "
            f"extrapolates to {n / rate / 60:.1f} min for {n:,} rows"
        )
    curve = sysres.get("query", {}).get("curve") or []
    if sysres.get("kind") == "exact" and curve and n_ref:
        qps = curve[0]["qps_single"]
        parts.append(
            f"its exact search, {qps:,.1f} q/s over {n_ref:,} rows, scales to about "
            f"{qps * n_ref / n:,.2f} q/s at {n:,}"
        )
    if not parts:
        return "not in the scale subset (--scale-systems)"
    return "not run at scale (--scale-systems): " + "; ".join(parts)


def source_sha() -> str:
    h = hashlib.sha1()
    for path in sorted((REPO / "vecstore").rglob("*.py")):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def environment(args) -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(line.split()[1]) / 2**20 for line in open("/proc/meminfo") if "MemTotal" in line
        )
    except OSError:
        mem = float("nan")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "threads": args.threads,
        "thread_env": {k: v for k, v in thread_env(args.threads).items() if "THREADS" in k},
        "git_head": head,
        "vecstore_source_sha1": source_sha(),
        "loadavg_start": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", default="glove,wordnet,synthetic-1m")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--scale-systems", default=",".join(SCALE_SYSTEMS))
    ap.add_argument("--quick", action="store_true", help="20k rows, fewer repeats, no 1M set")
    ap.add_argument("--n", type=int, default=None, help="base rows of the 100k sets")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3, help="round-robin rounds over systems")
    ap.add_argument("--repeats", type=int, default=1, help="timed passes per round")
    ap.add_argument("--budget", type=float, default=0.7, help="seconds per timed pass")
    ap.add_argument("--min-q", type=int, default=20)
    ap.add_argument("--scale-min-q", type=int, default=10, help="--min-q for the 1M set")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--max-ingest-min", type=float, default=5.0)
    ap.add_argument("--scale-max-ingest-min", type=float, default=15.0)
    ap.add_argument("--sweep-s", type=float, default=150, help="cap on one knob sweep")
    ap.add_argument("--worker-timeout", type=float, default=2400)
    ap.add_argument("--store-dir", default=None, help="where stores are built (then removed)")
    ap.add_argument("--out", type=Path, default=BENCH / "results/peers.json")
    ap.add_argument("--doc", type=Path, default=REPO / "docs/benchmarks.md")
    ap.add_argument("--img", type=Path, default=REPO / "docs/img")
    ap.add_argument("--no-doc", action="store_true", help="write the JSON only")
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite the doc and plots from --out"
    )
    args = ap.parse_args()
    if args.report_only:
        res = json.loads(args.out.read_text())
        res["ratios"] = report.ratios(res)
        args.out.write_text(json.dumps(res, indent=1, default=str))
        report.write(res, args.doc, args.img)
        print(f"wrote {args.doc} and {args.img}/peers-*.png from {args.out}")
        return
    names = [d for d in args.datasets.split(",") if d]
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}; known: {', '.join(SYSTEMS)}")
    if args.quick:
        names = [d for d in names if not d.startswith("synthetic")]
        args.n = args.n or 20_000
        args.rounds, args.budget = 2, 0.5
    args.nq_limit = 10**9
    log = Path(tempfile.gettempdir()) / f"vecstore-compare-peers-{os.getpid()}.log"
    log.write_text("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"worker output goes to {log}", flush=True)
    started = time.perf_counter()
    res = {"environment": environment(args), "settings": {}, "datasets": {}}
    res["settings"] = {
        k: v for k, v in vars(args).items() if k not in ("out", "doc", "img", "store_dir")
    }

    def save():  # progress so far
        args.out.write_text(json.dumps(res, indent=1, default=str))

    for name in names:
        ds = DATASETS[name]
        if args.n and ds.n == 100_000:
            ds = type(ds)(ds.name, ds.source, args.n, min(ds.nq, max(200, args.n // 100)))
        data = prepare(ds)
        info = json.loads((data / "info.json").read_text())
        entry = res["datasets"][name] = {"info": info, "systems": {}}
        scale = ds.n >= 1_000_000
        args.cur_min_q = args.scale_min_q if scale else args.min_q
        args.cur_ingest_min = args.scale_max_ingest_min if scale else args.max_ingest_min
        for system in systems:
            meta = report.system_meta(system)
            sysres = entry["systems"][system] = dict(meta)
            missing = missing_packages(system)
            if missing:
                sysres["skipped"] = f"not installed: {', '.join(missing)}"
            elif scale and system not in args.scale_systems.split(","):
                sysres["skipped"] = scale_skip_reason(system, res["datasets"], ds.n)
            if "skipped" in sysres:
                print(f"[{name}] {system}: skipped ({sysres['skipped']})", flush=True)
        run_dataset(name, data, systems, entry, args, log, save)
    res["environment"]["loadavg_end"] = os.getloadavg()
    res["environment"]["vecstore_source_sha1_end"] = source_sha()
    res["wall_s"] = time.perf_counter() - started
    res["ratios"] = report.ratios(res)
    args.out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {args.out}")
    if not args.no_doc:
        report.write(res, args.doc, args.img)
        print(f"wrote {args.doc} and {args.img}/peers-*.png")


if __name__ == "__main__":
    main()
