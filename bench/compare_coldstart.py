"""The first query of a fresh process, store already on disk: vecstore beside faiss
(``read_index`` + the first search) and sqlite-vec (open + the first KNN query), each run in
its own fresh process, interleaved, median of ``--runs`` runs.

    python bench/compare_coldstart.py [--runs 5 --n 115000 --rebuild --out FILE]

Data: the first ``--n`` WordNet-MiniLM vectors (``~/.cache/vecstore-bench``), queries from the
rows after them. The stores and indexes are built once under
``~/.cache/vecstore-bench/coldstart-<n>`` (``--rebuild`` builds them again). Cases:

- ``vecstore exact``: ``vecstore.open`` + ``get_collection`` + the first ``query`` (k=10) of a
  Flat collection, Numba's cache warm (the first queries take BLAS while the kernels load);
- ``vecstore exact, fresh install``: the same with ``NUMBA_CACHE_DIR`` an empty directory;
- ``vecstore IVF-PQ`` / ``vecstore HNSW``: the same on an IVF-PQ / HNSW collection (the first
  ANN queries take NumPy walks of the index while the kernels load);
- ``faiss flat`` / ``faiss IVF-PQ``: ``faiss.read_index`` + the first ``search``
  (IndexFlatIP over unit vectors; IVF1024,PQ48 with nprobe 64);
- ``sqlite-vec``: ``apsw`` connection + extension load + the first vec0 KNN query.

Each child prints its import, open and first-query times; the table gives the medians of
open + first query (what a user waits for once Python and NumPy are imported), the import of
the library, and the second query. The first query's ids are checked against faiss flat's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("VECSTORE_BENCH_CACHE", Path.home() / ".cache/vecstore-bench"))
MATRIX = CACHE / "wordnet-minilm-117659.npy"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CHILD_HEAD = """
import sys, time, json
t0 = time.perf_counter()
import numpy as np
q = np.load(sys.argv[2], mmap_mode="r")[int(sys.argv[3])].copy().reshape(1, -1)
t1 = time.perf_counter()
"""
CHILD = {
    "vecstore": """
import vecstore
t2 = time.perf_counter()
db = vecstore.open(sys.argv[1], read_only=True)
c = db.get_collection("wordnet")
t3 = time.perf_counter()
r = c.query(q[0], k=10)
t4 = time.perf_counter()
c.query(q[0], k=10)
t5 = time.perf_counter()
ids = [int(i[1:]) for i in r.ids]
""",
    "faiss": """
import faiss
faiss.omp_set_num_threads(2)
t2 = time.perf_counter()
index = faiss.read_index(sys.argv[1])
try:
    faiss.extract_index_ivf(index).nprobe = 64
except RuntimeError:
    pass
t3 = time.perf_counter()
D, I = index.search(q, 10)
t4 = time.perf_counter()
index.search(q, 10)
t5 = time.perf_counter()
ids = I[0].tolist()
""",
    "sqlite-vec": """
import apsw, sqlite_vec
t2 = time.perf_counter()
con = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READONLY)
con.enable_load_extension(True)
con.load_extension(sqlite_vec.loadable_path())
t3 = time.perf_counter()
sql = "SELECT id FROM v WHERE embedding MATCH ? AND k = 10 ORDER BY distance"
ids = [row[0] for row in con.execute(sql, (q[0].tobytes(),))]
t4 = time.perf_counter()
list(con.execute(sql, (q[0].tobytes(),)))
t5 = time.perf_counter()
""",
}
CHILD_TAIL = """
print(json.dumps({"import_ms": 1e3 * (t2 - t1), "open_ms": 1e3 * (t3 - t2),
                  "first_ms": 1e3 * (t4 - t3), "second_ms": 1e3 * (t5 - t4), "ids": ids}))
"""


def build_hnsw(where: Path, n: int) -> None:
    """The HNSW store alone (added to a cache built before it had one)."""
    import vecstore

    x = np.load(MATRIX)[:n]
    build_vecstore(where, "vecstore-hnsw", vecstore.HNSW(), x)
    (where / "hnsw-done").write_text("ok")


def build_vecstore(where: Path, name: str, spec, x: np.ndarray) -> None:
    import vecstore

    print(f"building {name}", flush=True)
    shutil.rmtree(where / name, ignore_errors=True)
    with vecstore.open(where / name) as db:
        c = db.create_collection("wordnet", dim=x.shape[1])
        c.add([f"w{i}" for i in range(len(x))], vectors=x)
        if spec is not None:
            c.create_index(spec)


def build(where: Path, n: int) -> None:
    import faiss

    import vecstore

    x = np.load(MATRIX)[:n]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    where.mkdir(parents=True, exist_ok=True)
    ids = [f"w{i}" for i in range(n)]
    for name, spec in (("vecstore-flat", None), ("vecstore-ivfpq", vecstore.IVFPQ())):
        print(f"building {name}", flush=True)
        shutil.rmtree(where / name, ignore_errors=True)
        with vecstore.open(where / name) as db:
            c = db.create_collection("wordnet", dim=x.shape[1])
            c.add(ids, vectors=x)
            if spec is not None:
                c.create_index(spec)
    print("building faiss", flush=True)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(xn)
    faiss.write_index(flat, str(where / "faiss-flat.index"))
    ivf = faiss.index_factory(x.shape[1], "IVF1024,PQ48", faiss.METRIC_INNER_PRODUCT)
    ivf.train(xn[np.random.default_rng(0).choice(n, 50_000, replace=False)])
    ivf.add(xn)
    faiss.write_index(ivf, str(where / "faiss-ivfpq.index"))
    print("building sqlite-vec", flush=True)
    import apsw
    import sqlite_vec

    path = where / "sqlite-vec.db"
    path.unlink(missing_ok=True)
    con = apsw.Connection(str(path))
    con.enable_load_extension(True)
    con.load_extension(sqlite_vec.loadable_path())
    con.execute(
        f"CREATE VIRTUAL TABLE v USING vec0(id INTEGER PRIMARY KEY, "
        f"embedding float[{x.shape[1]}] distance_metric=cosine)"
    )
    with con:
        con.executemany(
            "INSERT INTO v(id, embedding) VALUES (?, ?)", ((i, x[i].tobytes()) for i in range(n))
        )
    con.close()
    (where / "done").write_text("ok")


def run_child(kind: str, target: Path, row: int, env: dict) -> dict:
    code = textwrap.dedent(CHILD_HEAD) + textwrap.dedent(CHILD[kind]) + textwrap.dedent(CHILD_TAIL)
    out = subprocess.run(
        [sys.executable, "-c", code, str(target), str(MATRIX), str(row)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=115_000)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench/results/coldstart.json"))
    a = ap.parse_args()

    where = CACHE / f"coldstart-{a.n}"
    if a.rebuild or not (where / "done").exists():
        build(where, a.n)
    if a.rebuild or not (where / "hnsw-done").exists():
        build_hnsw(where, a.n)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    empty = Path(tempfile.mkdtemp(prefix="vecstore-numba-empty-"))
    cases = {
        "vecstore exact": ("vecstore", where / "vecstore-flat", env),
        "vecstore exact, fresh install": ("vecstore", where / "vecstore-flat", None),
        "vecstore IVF-PQ": ("vecstore", where / "vecstore-ivfpq", env),
        "vecstore HNSW": ("vecstore", where / "vecstore-hnsw", env),
        "faiss flat": ("faiss", where / "faiss-flat.index", env),
        "faiss IVF-PQ": ("faiss", where / "faiss-ivfpq.index", env),
        "sqlite-vec": ("sqlite-vec", where / "sqlite-vec.db", env),
    }
    for kind, target, e in cases.values():  # warm the page cache and Numba's cache
        if e is not None:
            run_child(kind, target, a.n, e)
    samples: dict[str, list[dict]] = {name: [] for name in cases}
    for r in range(a.runs):
        row = a.n + 1 + r
        for name, (kind, target, e) in cases.items():
            if e is None:  # an empty Numba cache every run
                shutil.rmtree(empty, ignore_errors=True)
                empty.mkdir()
                e = dict(env, NUMBA_CACHE_DIR=str(empty))
            samples[name].append(run_child(kind, target, row, e))
    shutil.rmtree(empty, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    def agree(name: str) -> float:
        got = [
            len(set(s["ids"]) & set(f["ids"])) / 10
            for s, f in zip(samples[name], samples["faiss flat"])
        ]
        return statistics.mean(got)

    print(f"first query of a fresh process, {a.n:,} x 384 WordNet-MiniLM, k=10, median of {a.runs}")
    print(
        f"{'case':32s} {'open+first':>10s} {'open':>7s} {'first':>7s} {'second':>7s} "
        f"{'import':>7s} {'ids=faiss flat':>14s}"
    )
    table = {}
    for name in cases:
        row = {k: med(name, k) for k in ("open_ms", "first_ms", "second_ms", "import_ms")}
        row["open_first_ms"] = statistics.median(
            s["open_ms"] + s["first_ms"] for s in samples[name]
        )
        row["agreement_with_faiss_flat"] = agree(name)
        table[name] = row
        print(
            f"{name:32s} {row['open_first_ms']:10.1f} {row['open_ms']:7.1f} {row['first_ms']:7.1f} "
            f"{row['second_ms']:7.1f} {row['import_ms']:7.1f} "
            f"{row['agreement_with_faiss_flat']:14.2f}"
        )
    base = table["vecstore exact"]["open_first_ms"]
    for peer in ("faiss flat", "sqlite-vec"):
        print(f"vecstore exact / {peer}: {base / table[peer]['open_first_ms']:.2f}x the time")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(
        json.dumps({"n": a.n, "runs": a.runs, "median": table, "samples": samples}, indent=1)
    )


if __name__ == "__main__":
    main()
