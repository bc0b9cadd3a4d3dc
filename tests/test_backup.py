"""Database.backup: a complete, verified, independent copy; bad destinations and corrupt
sources are refused without leaving a half-made backup. (The copy taken while another process
writes is tested through the command line, in test_cli.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder


def build(path, data):
    with vecstore.open(path, seal_rows=64) as db:
        c = db.create_collection("c", dim=32)
        c.add(
            [str(i) for i in range(1000)],
            vectors=data[:1000],
            metadata=[{"i": i} for i in range(1000)],
        )
        c.add(["p"], vectors=data[1000:1001])  # still pending
        c.delete([str(i) for i in range(0, 1000, 3)])
        e = db.create_collection("e", encoder=hashing_encoder)
        e.add(["t"], documents=["a cached text"])
        db.create_collection("empty", dim=3)


def rows(db, name):
    got = db.get_collection(name).get(include_vectors=True)
    return got.ids, got.documents, got.metadata, got.vectors.tobytes()


@pytest.mark.parametrize("read_only", [False, True])
def test_backup_is_a_complete_independent_store(tmp_path, data, read_only):
    build(tmp_path / "s", data)
    with vecstore.open(tmp_path / "s", read_only=read_only) as db:
        info = db.backup(tmp_path / "b")
        assert (info.collections, info.path) == (3, str(tmp_path / "b"))
        assert info.segments >= 1 and info.bytes > 0
        originals = {n: rows(db, n) for n in db.list_collections()}
    assert not list((tmp_path / "b").glob("*.tmp")) and (tmp_path / "b" / "LOCK").exists()
    with vecstore.open(tmp_path / "b", read_only=True) as copy:
        report = copy.verify()
        assert report.ok and report.warnings == [], report.problems
        assert {n: rows(copy, n) for n in copy.list_collections()} == originals
    with vecstore.open(tmp_path / "b") as copy:  # writable, and independent of the original
        c = copy.get_collection("c")
        c.add(["new"], vectors=np.ones(32))
        c.compact()
        e = copy.get_collection("e", encoder=hashing_encoder)
        assert e.query("a cached text", k=1).ids == ["t"]
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        assert db.get_collection("c").get(["new"]).ids == []
        assert db.verify().ok


def test_bad_destinations_are_refused(tmp_path, data):
    build(tmp_path / "s", data)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    (tmp_path / "empty").mkdir()
    with vecstore.open(tmp_path / "s") as db:
        with pytest.raises(vecstore.InvalidInput, match="not an empty folder"):
            db.backup(tmp_path / "full")
        with pytest.raises(vecstore.InvalidInput, match="inside the store"):
            db.backup(tmp_path / "s" / "inner")
        db.backup(tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with vecstore.open(tmp_path / "empty", read_only=True) as copy:
        assert copy.verify().ok


def test_corrupt_source_makes_no_backup(tmp_path, data):
    build(tmp_path / "s", data)
    seg = next((tmp_path / "s" / "collections").glob("c-*/*.vseg"))
    raw = bytearray(seg.read_bytes())
    raw[-1] ^= 0xFF
    seg.write_bytes(raw)
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        with pytest.raises(vecstore.CorruptStoreError, match="checksum"):
            db.backup(tmp_path / "b")
    assert not (tmp_path / "b").exists()
