"""Random byte flips and truncations across a store's files: correct data or a clean error.

A template store holds two collections (one exact, one with a trained IVF-PQ index), with
sealed segments, pending rows, deletions, documents and metadata. Each trial copies it,
damages one file (the SQLite catalog, a segment, or an index file) by flipping one byte or
truncating it, then opens the copy and reads everything a user can read: every row with its
vector, counts, exact and approximate queries, filtered and keyword queries. The outcome must
be the template's exact answers, or ``CorruptStoreError``; never another exception, a crash, a
hang or a huge allocation. Whatever the reads return, ``verify()`` must name the damage when
the answers changed.

Trials run in batches inside child processes (kernels load once per batch); each trial is
announced before it starts, so a crash or a hang names the trial. 2,000 trials by default,
10,000 under ``pytest --long``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecstore

TRIALS, LONG_TRIALS = 2_000, 10_000
BATCHES = 4  # child processes, run two at a time
DIM = 16
MAX_RSS_MB = 1_500  # no trial may make a child allocate its way past this

CHILD = textwrap.dedent(
    """
    import resource, sys
    from tests.reliability.test_corruption import run_batch
    resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))  # a huge allocation fails
    run_batch(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would count the
    # pytest process this child was forked from (models loaded by earlier tests included).
    hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
    print('{"peak_kb": %s}' % hwm[0], flush=True)
    """
)


def build(path: Path) -> None:
    rng = np.random.default_rng(5)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]

    def rows(prefix: str, start: int, n: int):
        ids = [f"{prefix}{i}" for i in range(start, start + n)]
        docs = [" ".join(rng.choice(words, 4)) + f" {prefix}{i}" for i in range(start, start + n)]
        meta = [{"n": i, "tag": words[i % 3], "flag": i % 2 == 0} for i in range(start, start + n)]
        return ids, rng.standard_normal((n, DIM)).astype(np.float32), docs, meta

    with vecstore.open(path, seal_rows=64) as db:
        c = db.create_collection("c", dim=DIM)
        ids, x, docs, meta = rows("c", 0, 300)
        c.add(ids, vectors=x, documents=docs, metadata=meta)
        for start in range(300, 380, 10):  # small writes: pending rows, sealed at 64
            ids, x, docs, meta = rows("c", start, 10)
            c.add(ids, vectors=x, documents=docs, metadata=meta)
        c.delete([f"c{i}" for i in range(0, 300, 7)])  # tombstones
        c.delete([f"c{i}" for i in range(370, 380, 3)])  # pending rows deleted
        ids, x, docs, meta = rows("c", 100, 20)
        c.upsert(ids, vectors=x, documents=docs, metadata=meta)
        index = vecstore.IVFPQ(nlist=4, m=4, nbits=4, nprobe=4, min_rows=120)
        p = db.create_collection("p", dim=DIM, metric="l2", index=index)
        ids, x, docs, meta = rows("p", 0, 400)
        p.add(ids, vectors=x, documents=docs, metadata=meta)
        ids, x, docs, meta = rows("p", 400, 20)  # pending rows in an indexed collection
        p.add(ids, vectors=x, documents=docs, metadata=meta)
        p.delete([f"p{i}" for i in range(0, 400, 11)])
    assert not (path / "catalog.db-wal").exists()  # closed cleanly: the catalog is one file


def observe(path: Path) -> tuple[dict, list[str]]:
    """Everything a user can read from the store, and what ``verify()`` reports."""
    rng = np.random.default_rng(9)
    queries = rng.standard_normal((3, DIM)).astype(np.float32)
    out: dict = {}
    with vecstore.open(path) as db:  # read-write: runs recovery and cleanup too
        out["collections"] = db.list_collections()
        for name in out["collections"]:
            c = db.get_collection(name)
            got = c.get(include_vectors=True)
            out[name] = {
                "count": c.count(),
                "rows": sorted(
                    [i, d, json.dumps(m, sort_keys=True), v.tobytes().hex()]
                    for i, d, m, v in zip(got.ids, got.documents, got.metadata, got.vectors)
                ),
                "query": [[r.ids, r.scores.tolist()] for r in c.query_many(queries, k=10)],
                "exact": c.query(queries[0], k=10, exact=True).ids,
                "filtered": c.query(queries[1], k=10, where={"tag": "beta"}).ids,
                "where": c.get(where={"$and": [{"n": {"$gte": 50}}, {"flag": True}]}).ids,
                "text": c.query("gamma delta", mode="text", k=5).ids,
                "hybrid": c.query(queries[2], mode="hybrid", text="alpha", k=5).ids,
            }
        problems = db.verify().problems
    return out, problems


def damage(path: Path, rnd: random.Random) -> str:
    """Flip one byte of, or truncate, one file of the store; say what was done."""
    files = sorted(p for p in (path / "collections").rglob("*") if p.is_file())
    segments = [p for p in files if p.suffix == ".vseg"]
    indexes = [p for p in files if p.suffix == ".vidx"]
    pick = rnd.random()
    target = (
        path / "catalog.db"
        if pick < 0.5
        else rnd.choice(segments)
        if pick < 0.8 or not indexes
        else rnd.choice(indexes)
    )
    size = target.stat().st_size
    if rnd.random() < 0.8:
        at = rnd.randrange(size)
        with open(target, "r+b") as f:
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte ^ rnd.randrange(1, 256)]))
        return f"flip {target.relative_to(path)} @{at}"
    length = rnd.randrange(size)
    os.truncate(target, length)
    return f"truncate {target.relative_to(path)} to {length}"


def run_batch(template: str, work: str, first: int, count: int) -> None:
    """Run trials ``first .. first+count-1``; print one JSON line per trial."""
    template_path, work_path = Path(template), Path(work)
    # The expected answers come from a copy: opening the template itself would let this
    # child's close remove its WAL file while the other child is copying it.
    reference = work_path / "reference"
    shutil.copytree(template_path, reference)
    expected, problems = observe(reference)
    assert not problems, problems
    for trial in range(first, first + count):
        rnd = random.Random(trial)
        store = work_path / f"t{trial}"
        shutil.copytree(template_path, store)
        what = damage(store, rnd)
        print(json.dumps({"start": trial, "what": what}), flush=True)
        try:
            got, problems = observe(store)
        except vecstore.CorruptStoreError as exc:
            outcome, detail = "refused", str(exc)[:200]
        except Exception as exc:  # noqa: BLE001 - anything else is the failure we look for
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:500]
        else:
            same = got == expected
            if same:
                outcome, detail = ("intact, flagged" if problems else "intact"), ""
            else:
                outcome = "changed, flagged" if problems else "WRONG"
                detail = _diff(expected, got)[:200] + " | " + "; ".join(problems)[:300]
        print(json.dumps({"trial": trial, "outcome": outcome, "detail": detail}), flush=True)
        shutil.rmtree(store, ignore_errors=True)


def _diff(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b))
    for k in keys:
        if a.get(k) != b.get(k):
            if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
                return f"{k}: " + _diff(a[k], b[k])
            return f"{k}: {str(a.get(k))[:150]} != {str(b.get(k))[:150]}"
    return ""


def test_byte_flips_and_truncations_give_correct_data_or_a_clean_error(tmp_path, long_run):
    trials = int(os.environ.get("VECSTORE_FLIP_TRIALS", LONG_TRIALS if long_run else TRIALS))
    template = tmp_path / "template"
    build(template)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    per = -(-trials // BATCHES)
    results: dict[int, dict] = {}
    failures: list[str] = []
    peaks: list[float] = []
    for pair in range(0, BATCHES, 2):
        children = []
        for b in range(pair, min(pair + 2, BATCHES)):
            work = tmp_path / f"work{b}"
            work.mkdir()
            n = max(0, min(per, trials - b * per))
            out = open(tmp_path / f"batch{b}.jsonl", "w+")
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(template), str(work), str(b * per), str(n)],
                stdout=out,
                stderr=subprocess.PIPE,
                env=env,
            )
            children.append((proc, out, n))
        for proc, out, n in children:
            try:
                _, err = proc.communicate(timeout=60 + 2 * n)  # a hang fails the test
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                err = b"timed out\n" + err
            out.seek(0)
            lines = [json.loads(line) for line in out if line.endswith("}\n")]
            out.close()
            peaks += [m["peak_kb"] / 1024 for m in lines if "peak_kb" in m]
            started = {m["start"]: m["what"] for m in lines if "start" in m}
            done = {m["trial"]: m for m in lines if "trial" in m}
            for t, m in done.items():
                m["what"] = started[t]
            results.update(done)
            if proc.returncode != 0:
                last = max(set(started) - set(done), default=None)
                failures.append(
                    f"child exited {proc.returncode} during trial {last} "
                    f"({started.get(last)}): {err.decode()[-1500:]}"
                )
    # Each child's own peak: RUSAGE_CHILDREN would be the largest child this pytest process
    # ever waited for (a model-loading test's among them), and carries this process's own.
    peak_mb = max(peaks, default=0.0)
    outcomes: dict[str, int] = {}
    for m in results.values():
        outcomes[m["outcome"]] = outcomes.get(m["outcome"], 0) + 1
    bad = [m for m in results.values() if m["outcome"] in ("WRONG", "error")]
    summary = json.dumps(outcomes, sort_keys=True)
    print(f"\n{len(results)} trials: {summary}; peak RSS {peak_mb:.0f} MB")
    assert not failures, failures
    assert not bad, bad[:10]
    assert len(results) == trials
    assert peak_mb < MAX_RSS_MB
    assert outcomes.get("refused", 0) > trials // 4  # the damage was real, and refused


@pytest.mark.parametrize("seed", range(3))
def test_damage_is_deterministic(tmp_path, seed):
    """A failing trial can be replayed by its number."""
    a, b = tmp_path / "a", tmp_path / "b"
    for p in (a, b):
        p.mkdir()
        (p / "collections").mkdir()
        (p / "collections" / "x.vseg").write_bytes(bytes(range(256)) * 4)
        (p / "catalog.db").write_bytes(b"\0" * 4096)
    assert damage(a, random.Random(seed)) == damage(b, random.Random(seed))
    assert (a / "catalog.db").read_bytes() == (b / "catalog.db").read_bytes()
