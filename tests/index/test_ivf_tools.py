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


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "vecstore", "-q", *map(str, args)], capture_output=True, text=True
    )


def test_cli_index_options(tmp_path, rng):
    import json

    path = tmp_path / "s"
    spec = '{"kind": "ivfpq", "nlist": 8, "m": 4, "nbits": 4, "min_rows": 200}'
    assert _cli("collections", "create", path, "c", "--dim", 16, "--index", spec).returncode == 0
    x = rng.standard_normal((400, 16)).astype(np.float32)
    with vecstore.open(path) as db:
        db.get_collection("c").add([str(i) for i in range(400)], vectors=x)
    q = json.dumps(x[5].tolist())
    out = _cli("query", path, "c", q, "-k", 1, "--nprobe", 8, "--refine", 4, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["id"] == "5"
    assert _cli("query", path, "c", q, "--exact", "--json").returncode == 0
    assert _cli("collections", "index", path, "c", "flat").returncode == 0
    refused = _cli("query", path, "c", q, "--nprobe", 8)
    assert refused.returncode == 1 and "Flat index" in refused.stderr
    bad = _cli("collections", "create", path, "d", "--dim", 4, "--index", '{"kind": "lsh"}')
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    with vecstore.open(path) as db:
        assert db.get_collection("c").index == vecstore.Flat()
