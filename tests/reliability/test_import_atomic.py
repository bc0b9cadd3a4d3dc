"""An import is all or nothing: a bad row anywhere, or a kill at any point, leaves no
collection behind, and errors name the line of the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vecstore
from vecstore.portable import BATCH

DIM = 4


def export_file(tmp_path: Path, n: int, name: str = "src") -> Path:
    """An export of ``n`` rows (line i + 2 of the file holds row i)."""
    rng = np.random.default_rng(0)
    with vecstore.open(tmp_path / "source", durability="normal", progress=False) as db:
        c = db.create_collection(name, dim=DIM)
        c.add_batches(
            (
                {"id": f"r{i}", "vector": rng.standard_normal(DIM), "metadata": {"i": i}}
                for i in range(n)
            ),
            batch_size=50_000,
        )
        out = tmp_path / f"{name}.jsonl"
        c.export(out)
    return out


def spoil(path: Path, line: int, row: dict) -> Path:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line - 1] = (json.dumps(row) + "\n").encode()
    bad = path.with_name("bad-" + path.name)
    bad.write_bytes(b"".join(lines))
    return bad


def test_a_bad_row_past_the_first_batch_creates_nothing_and_names_its_line(tmp_path):
    good = export_file(tmp_path, BATCH + 700)
    line = BATCH + 618  # in the second batch
    bad = spoil(good, line, {"id": "x", "vector": [1.0] * DIM, "metadata": {"k": {"a": 1}}})
    with vecstore.open(tmp_path / "store", progress=False) as db:
        with pytest.raises(vecstore.InvalidInput) as info:
            db.import_collection(bad)
        assert f"{bad}:{line}:" in str(info.value)
        assert db.list_collections() == []
        # fixed, the same import goes through: nothing was left to collide with
        assert db.import_collection(good).rows == BATCH + 700
        assert db.get_collection("src").count() == BATCH + 700


def test_a_vector_of_the_wrong_size_names_its_line(tmp_path):
    good = export_file(tmp_path, 30)
    bad = spoil(good, 20, {"id": "x", "vector": [1.0] * (DIM + 1)})
    with vecstore.open(tmp_path / "store", progress=False) as db:
        with pytest.raises(vecstore.DimensionMismatch, match=f"{bad}:20:"):
            db.import_collection(bad)
        assert db.list_collections() == []


def test_an_id_given_twice_names_both_lines_and_creates_nothing(tmp_path):
    good = export_file(tmp_path, BATCH + 10)
    bad = spoil(good, BATCH + 5, {"id": "r3", "vector": [1.0] * DIM})
    with vecstore.open(tmp_path / "store", progress=False) as db:
        with pytest.raises(vecstore.DuplicateIdError) as info:
            db.import_collection(bad)
        assert f"{bad}:{BATCH + 5}" in str(info.value) and f"{bad}:5" in str(info.value)
        assert db.list_collections() == []


def test_a_bad_row_writes_nothing_into_an_existing_collection(tmp_path):
    good = export_file(tmp_path, BATCH + 100)
    bad = spoil(good, BATCH + 50, {"id": "x", "vector": ["a"] * DIM})
    with vecstore.open(tmp_path / "store", progress=False) as db:
        db.create_collection("src", dim=DIM).add(["keep"], vectors=np.ones((1, DIM)))
        with pytest.raises(vecstore.InvalidInput, match=f"{bad}:{BATCH + 50}:"):
            db.import_collection(bad, if_exists="upsert")
        assert db.get_collection("src").get().ids == ["keep"]


def test_staged_collections_are_hidden_and_unreachable(tmp_path):
    good = export_file(tmp_path, 10)
    with vecstore.open(tmp_path / "store", progress=False) as db:
        db.import_collection(good, name="copy")
        assert db.list_collections() == ["copy"]
        with pytest.raises(vecstore.InvalidInput):
            db.create_collection(".staged-x", dim=DIM)
        with pytest.raises(vecstore.CollectionNotFound):
            db.get_collection(".staged-x")


KILL_CHILD = """
import sys, vecstore
with vecstore.open(sys.argv[1], progress=False) as db:
    db.import_collection(sys.argv[2], name="big")
"""


@pytest.mark.slow
def test_a_killed_import_leaves_no_collection(tmp_path):
    src = export_file(tmp_path, 8 * BATCH)
    store = tmp_path / "store"
    with vecstore.open(store, progress=False) as db:
        db.create_collection("other", dim=DIM).add(["a"], vectors=np.ones((1, DIM)))
    proc = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(store), str(src)])
    staged = None
    deadline = time.monotonic() + 300
    try:
        # kill once the staged collection holds a published segment: rows were committed
        while staged is None and time.monotonic() < deadline and proc.poll() is None:
            for d in (store / "collections").iterdir():
                if d.name.startswith("staged-") and any(f.suffix == ".vseg" for f in d.iterdir()):
                    staged = d
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert staged is not None, "the import finished before it could be killed"
    with vecstore.open(store, progress=False) as db:
        assert db.list_collections() == ["other"]
        assert not staged.exists()  # the staged rows and files are gone
        assert db.verify().ok
        assert db.import_collection(src, name="big").rows == 8 * BATCH  # a retry works
