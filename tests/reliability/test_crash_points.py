"""Crash points: kill the writer at every step of its write path, or fail that step.

A child runs a fixed sequence of writes (a bulk add straight to a segment, small adds into the
pending buffer and their sealing, an upsert, deletes, an update, a compaction) with
``VECSTORE_FAULT=kill@N``, ``eio@N`` or ``enospc@N`` (see ``vecstore.storage.files.io_step``).
After each run the store must reopen to exactly the acknowledged writes, plus the one in flight
either wholly or not at all, with nothing quarantined (what a crash leaves is provably
garbage), pass every checksum and ``verify``, and accept writes again. A write refused
for a full disk must have changed nothing, and the same handle must go on writing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecstore
from tests.reliability.test_kill import apply, check_text_index, snapshot, vector

SEQUENCE = (
    [{"kind": "add", "ids": [f"k{i}" for i in range(100)]}]
    + [{"kind": "add", "ids": [f"s{i}"]} for i in range(10)]
    + [
        {"kind": "upsert", "ids": [f"k{i}" for i in range(90, 160)]},
        {"kind": "delete", "ids": [f"k{i}" for i in range(0, 100, 3)]},
        {"kind": "update", "ids": ["s1", "s2", "k91"]},
        {"kind": "compact", "ids": []},
        {"kind": "add", "ids": ["last"]},
    ]
)
for n, op in enumerate(SEQUENCE, start=1):
    op.update(n=n, version=n, tag="0")

# With an IVF-PQ spec the upsert crosses min_rows: the sequence then also trains the index
# (model file, every segment rewritten in list order with its list file, in one commit),
# and every later segment is published with its list file.
INDEXES = {
    "flat": vecstore.Flat(),
    "ivfpq": vecstore.IVFPQ(nlist=4, m=4, nbits=4, nprobe=4, min_rows=120),
    # the upsert crosses min_rows: a model file and a graph per segment in one commit, then
    # every later segment (seals, merges, the compaction) is published with its graph file
    "hnsw": vecstore.HNSW(M=4, ef_construction=16, min_rows=120),
    # the first add makes the first segment and crosses min_rows: the model file, the
    # segment and its graph (built in the background while the rows are inserted) are
    # published in that add's own commit
    "hnsw_first": vecstore.HNSW(M=4, ef_construction=16, min_rows=50),
}

CHILD = textwrap.dedent(
    """
    import json, sys
    import vecstore
    from vecstore.storage.files import io_steps
    from tests.reliability.test_kill import DIM
    from tests.reliability.test_crash_points import SEQUENCE
    from tests.reliability.test_kill import CHILD_RUN as run

    from tests.reliability.test_crash_points import INDEXES

    try:
        db = vecstore.open(sys.argv[1], seal_rows=64)
        c = db.get_or_create_collection("c", dim=DIM, index=INDEXES[sys.argv[2]])
    except vecstore.StoreIOError as exc:  # an injected failure while creating the store
        print(json.dumps({"error": 0, "type": type(exc).__name__}), flush=True)
        sys.exit(0)
    with db:
        print(json.dumps({"ready": True}), flush=True)
        for op in SEQUENCE:
            print(json.dumps({"begin": op["n"]}), flush=True)
            try:
                run(c, op)
            except vecstore.VecstoreError as exc:
                print(json.dumps({"error": op["n"], "type": type(exc).__name__}), flush=True)
                continue
            print(json.dumps({"ack": op["n"]}), flush=True)
    print(json.dumps({"steps": io_steps()}), flush=True)
    """
)


# Errors after which a write has changed nothing, for sure.
REFUSED = ("DiskFullError", "IdNotFound")


def run_child(path, fault: str | None, index: str = "flat") -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("VECSTORE_FAULT", None)
    if fault:
        env["VECSTORE_FAULT"] = fault
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), index],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if fault is None or not fault.startswith("kill"):
        assert proc.returncode == 0, proc.stderr[-2000:]
    else:
        assert proc.returncode in (0, -9), proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.endswith("}")]


def check_store(path, messages: list[dict]) -> None:
    """The store equals the acknowledged writes, plus the unfinished one wholly or not."""
    model: dict = {}
    unsure = None
    by_n = {op["n"]: op for op in SEQUENCE}
    done = {m["ack"] for m in messages if "ack" in m}
    for msg in messages:
        if "ack" in msg:
            after = apply(model, by_n[msg["ack"]])
            model = after if after is not None else model
        elif msg.get("type") in REFUSED:
            continue  # refused whole: the write changed nothing
        elif "begin" in msg and msg["begin"] not in done:
            if any(m.get("error") == msg["begin"] and m["type"] in REFUSED for m in messages):
                continue
            unsure = by_n[msg["begin"]]  # the first write not acknowledged: failed or killed
            break
    allowed = [model]
    if unsure is not None and unsure["n"] not in done:
        after = apply(model, unsure)
        if after is not None:
            allowed.append(after)
    with vecstore.open(path, seal_rows=64) as db:
        # Whatever a crash leaves is provably garbage: deleted, never quarantined.
        assert not (path / "quarantine").exists()
        report = db.verify()
        assert report.ok and not report.warnings, (report.problems, report.warnings)
        if "c" not in db.list_collections():
            assert not done
            return
        c = db.get_collection("c")
        state = snapshot(c)  # reads every vector: every segment's checksum is verified
        assert state in allowed
        assert c.count() == len(state)
        check_text_index(c, state, sorted({i for op in SEQUENCE for i in op["ids"]}))
        c.upsert(["probe"], vectors=vector("probe", 0)[None, :])
        assert c.query(vector("probe", 0), k=1).ids == ["probe"]  # index files verified too
        for i, (v, _, _) in list(state.items())[:20]:  # the lists agree with the segments
            assert c.query(vector(i, v), k=1).ids == [i]


def total_steps(tmp_path, index: str) -> int:
    messages = run_child(tmp_path / "clean", None, index)
    assert [m["ack"] for m in messages if "ack" in m] == [op["n"] for op in SEQUENCE]
    check_store(tmp_path / "clean", messages)
    return messages[-1]["steps"]


@pytest.mark.parametrize("index", ["flat", "ivfpq", "hnsw", "hnsw_first"])
@pytest.mark.parametrize("mode", ["kill", "eio", "enospc"])
def test_every_crash_point_leaves_a_consistent_store(tmp_path, mode, index, long_run):
    if index == "hnsw_first" and not long_run:
        pytest.skip("the first add publishing its graph runs with --long (several minutes a mode)")
    if index == "hnsw" and mode != "kill" and not long_run:
        # the graph files are published on the same path as IVF's list files, which the
        # default run covers in every mode; the HNSW sequence's faults run under --long
        pytest.skip("HNSW under injected EIO/ENOSPC runs with --long")
    steps = total_steps(tmp_path, index)
    assert steps > 30  # the sequence really exercises the write path
    for n in range(1, steps + 1):
        path = tmp_path / f"{mode}{n}"
        messages = run_child(path, f"{mode}@{n}", index)
        if mode == "eio":
            errors = [m for m in messages if "error" in m]
            if not errors:  # the step was an unlink, which is best effort by design
                assert len([m for m in messages if "ack" in m]) == len(SEQUENCE), n
            else:
                assert all(e["type"] == "StoreIOError" for e in errors), (n, messages)
                # after an I/O failure the handle refuses every further write
                assert [m for m in messages if m.get("ack", 0) > errors[0]["error"]] == []
        elif mode == "enospc":
            errors = [m for m in messages if "error" in m]
            # one write refused for the full disk; an update of the rows it would have added
            # is then refused as well (IdNotFound), which the model knows
            assert [e["type"] for e in errors if e["type"] != "IdNotFound"] in (
                [],
                ["DiskFullError"],
            ), (n, messages)
            # a full disk refuses one write; the handle goes on with the next ones (error 0:
            # creating the store failed, and the child stopped)
            failed = {e["error"] for e in errors}
            expected = [] if 0 in failed else [op["n"] for op in SEQUENCE if op["n"] not in failed]
            assert [m["ack"] for m in messages if "ack" in m] == expected, (n, messages)
        check_store(path, messages)


def test_fault_spec_is_inert_without_env(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        db.create_collection("c", dim=2).add(["a"], vectors=np.ones((1, 2)))
        assert db.get_collection("c").count() == 1
