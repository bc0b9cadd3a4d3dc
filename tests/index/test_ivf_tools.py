"""The store's tools know about ANN index files: verify checks them, backup copies them,
export carries the index spec, and an import trains the index again."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore

SPEC = vecstore.IVFPQ(nlist=16, m=8, nbits=6, min_rows=600)


@pytest.fixture
def store(tmp_path, rng):
    x = rng.standard_normal((1500, 32)).astype(np.float32)
    with vecstore.open(tmp_path / "s", progress=False) as db:
        c = db.create_collection("c", dim=32, index=SPEC)
        c.add([str(i) for i in range(len(x))], vectors=x)
        assert c.index_info()["trained"]
    return tmp_path / "s", x


def test_verify_checks_index_files(store):
    path, _ = store
    with vecstore.open(path) as db:
        assert db.verify().ok
    victim = max(path.glob("collections/*/*.vidx"), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    with vecstore.open(path) as db:
        report = db.verify()
        assert not report.ok
        assert any(victim.name in p for p in report.problems)


def test_backup_copies_the_index(store, tmp_path):
    path, x = store
    with vecstore.open(path) as db:
        db.backup(tmp_path / "copy")
        want = [r.ids for r in db.get_collection("c").query_many(x[:20], k=5)]
    with vecstore.open(tmp_path / "copy") as db:
        assert db.verify().ok
        c = db.get_collection("c")
        assert c.index_info()["trained"]
        assert [r.ids for r in c.query_many(x[:20], k=5)] == want
    assert sorted(p.name for p in (tmp_path / "copy").glob("collections/*/*.vidx")) == sorted(
        p.name for p in path.glob("collections/*/*.vidx")
    )


def test_export_carries_the_spec_and_import_trains(store, tmp_path):
    path, x = store
    with vecstore.open(path) as db:
        db.get_collection("c").export(tmp_path / "c.jsonl")
    with vecstore.open(tmp_path / "other") as db:
        db.import_collection(tmp_path / "c.jsonl")
        c = db.get_collection("c")
        assert c.index == SPEC
        assert c.index_info()["trained"]
        assert c.query(x[3], k=1).ids == ["3"]
