"""Kill -9 a writing process at random moments; every acknowledged write must survive whole.

The child applies a seeded stream of operations (add, upsert, update, delete, compact) and
prints each one before starting it and again once acknowledged. After SIGKILL the parent
reopens the store and checks it equals the model of acknowledged operations, with the
in-flight operation applied wholly or not at all, that keyword search finds exactly the live
documents (the keyword index changes in the rows' transactions), and that the store accepts
writes again.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

import vecstore

# 200 kill cycles by default, 1,000 under ``pytest --long``; VECSTORE_KILL_CYCLES overrides both.
CYCLES, LONG_CYCLES = 200, 1_000
DIM = 8

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import vecstore
    from tests.reliability.test_kill import CHILD_RUN as run
    from tests.reliability.test_kill import operations

    path, seed, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with vecstore.open(path, seal_rows=16) as db:
        c = db.get_or_create_collection("c", dim=DIM)
        for op in operations(seed, start):
            print(json.dumps({"begin": op}), flush=True)
            try:
                run(c, op)
            except (vecstore.DuplicateIdError, vecstore.IdNotFound):
                pass  # refused, changing nothing: the model knows
            print(json.dumps({"ack": op["n"]}), flush=True)
    """
).replace("DIM", str(DIM))


def CHILD_RUN(c, op) -> None:  # noqa: N802 - the op runner the child scripts import
    kind, ids, version = op["kind"], op["ids"], op["version"]
    vecs = np.stack([vector(i, version) for i in ids]) if ids else None
    docs = [f"{i}@{version}" for i in ids]
    meta = [{"v": version, "tag": i[-1]} for i in ids]
    if kind == "add":
        c.add(ids, vectors=vecs, documents=docs, metadata=meta)
    elif kind == "upsert":
        c.upsert(ids, vectors=vecs, documents=docs, metadata=meta)
    elif kind == "update":
        c.update(ids, vectors=vecs, metadata=meta)
    elif kind == "delete":
        c.delete(ids)
    elif kind == "delete_where":
        c.delete(where={"tag": op["tag"]})
    elif kind == "compact":
        c.compact()


def vector(id_: str, version: int) -> np.ndarray:
    seed = [zlib.crc32(id_.encode()), version]  # str hash() differs between processes
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def operations(seed: int, start: int):
    """An endless, deterministic stream of operations on ids ``k0..k299``."""
    rng = np.random.default_rng(seed)
    n = start
    while True:
        n += 1
        kind = rng.choice(
            ["add", "upsert", "upsert", "update", "delete", "delete_where", "compact"],
            p=[0.3, 0.25, 0.1, 0.1, 0.1, 0.05, 0.1],
        )
        size = int(rng.choice([1, 2, 5, 20, 40]))
        ids = sorted({f"k{int(i)}" for i in rng.integers(0, 300, size)})
        op = {"n": n, "kind": str(kind), "ids": ids, "version": n, "tag": str(rng.integers(0, 10))}
        if kind == "compact":
            op["ids"] = []
        yield op


def apply(model: dict, op: dict) -> dict | None:
    """The model after ``op``, or None if the store must have refused it (changing nothing)."""
    new = dict(model)
    kind, ids, version = op["kind"], op["ids"], op["version"]
    if kind == "add":
        if any(i in model for i in ids):
            return None
        for i in ids:
            new[i] = (version, f"{i}@{version}", version)
    elif kind == "upsert":
        for i in ids:
            new[i] = (version, f"{i}@{version}", version)
    elif kind == "update":
        if any(i not in model for i in ids):
            return None
        for i in ids:
            new[i] = (version, model[i][1], version)
    elif kind == "delete":
        for i in ids:
            new.pop(i, None)
    elif kind == "delete_where":
        new = {i: v for i, v in model.items() if i[-1] != op["tag"]}
    return new


def snapshot(c) -> dict:
    got = c.get(include_vectors=True)
    out = {}
    for i, doc, meta, vec in zip(got.ids, got.documents, got.metadata, got.vectors):
        assert meta["tag"] == i[-1]
        np.testing.assert_array_equal(vec, vector(i, meta["v"]))
        out[i] = (meta["v"], doc, meta["v"])
    return out


def check_text_index(c, state: dict, ids: list[str]) -> None:
    """Keyword search agrees with the rows: a document ``"<id>@<version>"`` is found by its
    id (and only it), by its version (with every live row of that version), and a deleted
    or replaced document is found by neither."""
    found = c.query_many(ids, mode="text", k=5)
    for id_, res in zip(ids, found):
        assert res.ids == ([id_] if id_ in state else []), (id_, res.ids)
    by_version: dict[str, set[str]] = {}
    for id_, (_, doc, _) in state.items():
        by_version.setdefault(doc.split("@")[1], set()).add(id_)
    versions = sorted(by_version)
    for v, res in zip(versions, c.query_many(versions, mode="text", k=len(ids))):
        assert set(res.ids) == by_version[v], v


def test_kill_minus_nine_loses_nothing(tmp_path, long_run):
    cycles = int(os.environ.get("VECSTORE_KILL_CYCLES", LONG_CYCLES if long_run else CYCLES))
    path = tmp_path / "store"
    rng = np.random.default_rng(7)
    model: dict = {}
    next_op = 0
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.monotonic()
    for cycle in range(cycles):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(cycle), str(next_op)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        fd = child.stdout.fileno()
        # One cycle in eight is killed while the child starts and opens the store (recovery
        # and cleanup run there); the others after a random stretch of writing.
        spawned = time.monotonic()
        in_startup = rng.random() < 1 / 8
        work = rng.uniform(0.0, 1.0)
        deadline = spawned + (rng.uniform(0.0, 1.0) if in_startup else 30.0)
        raw = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.01)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                if not raw and not in_startup:  # the child is writing: let it go on a while
                    deadline = time.monotonic() + work
                raw += chunk
        child.send_signal(signal.SIGKILL)
        child.wait()
        while chunk := os.read(fd, 65536):  # whatever was written before the kill
            raw += chunk
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        began: dict = {}
        acked: list[int] = []
        for line in raw.decode().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # a line cut by the kill was never acknowledged
            msg = json.loads(line)
            if "begin" in msg:
                began[msg["begin"]["n"]] = msg["begin"]
            else:
                acked.append(msg["ack"])
        missing = [n for n in acked if n not in began]
        assert not missing, (cycle, missing, sorted(began)[-3:], acked[-3:])
        for n in acked:
            result = apply(model, began[n])
            if result is not None:
                model = result
        in_flight = [began[n] for n in began if n not in acked]
        assert len(in_flight) <= 1
        with vecstore.open(path, seal_rows=16) as db:
            # what a kill leaves is provably garbage: deleted, never quarantined
            assert not (path / "quarantine").exists(), f"cycle {cycle}"
            if "c" not in db.list_collections():
                assert not model
                next_op = max(began, default=next_op)
                continue
            c = db.get_or_create_collection("c", dim=DIM)
            state = snapshot(c)
            allowed = [model]
            if in_flight:
                after = apply(model, in_flight[0])
                if after is not None:
                    allowed.append(after)
            assert state in allowed, f"cycle {cycle}: store diverged from acknowledged writes"
            model = state
            assert c.count() == len(model)
            check_text_index(c, model, [f"k{i}" for i in range(300)])
            if model:
                some = next(iter(model))
                assert some in c.query(vector(some, model[some][0]), k=3).ids
            c.upsert(["probe"], vectors=vector("probe", 0)[None, :])
            c.delete(["probe"])
        next_op = max(began, default=next_op)
    assert next_op > cycles  # the children did real work
    print(
        f"\nkill -9 loop: {cycles} cycles, {next_op} operations, 0 losses, "
        f"{time.monotonic() - started:.0f} s"
    )


@pytest.mark.parametrize("kind", ["add", "upsert"])
def test_apply_model(kind):
    op = {"n": 1, "kind": kind, "ids": ["a"], "version": 1, "tag": "0"}
    assert apply({}, op) == {"a": (1, "a@1", 1)}
