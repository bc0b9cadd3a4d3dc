"""Database.verify finds every kind of damage and reports it in one line each; a sound store
is reported sound. Collection.info reports sizes and settings."""

from __future__ import annotations

import re
import sqlite3

import pytest

import vecstore
from tests.conftest import hashing_encoder


def build(path, data) -> list:
    """A store with a sealed segment, pending rows, deletions and metadata; its segment files."""
    with vecstore.open(path, seal_rows=64) as db:
        c = db.create_collection("c", dim=32)
        c.add(
            [str(i) for i in range(500)],
            vectors=data[:500],
            metadata=[{"i": i} for i in range(500)],
        )
        c.add(["p1", "p2"], vectors=data[500:502], metadata=[{"tag": ["x", "y"]}, None])
        c.delete([str(i) for i in range(0, 500, 7)])
        db.create_collection("empty", dim=4)
        return sorted((path / "collections").glob("c-*/*.vseg"))


def test_sound_store_is_reported_sound(tmp_path, data):
    files = build(tmp_path / "s", data)
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        report = db.verify()
    assert report.ok and report.problems == [] and report.warnings == []
    assert report.collections == 2 and report.segments == len(files) >= 1
    assert report.rows == 500 - len(range(0, 500, 7)) + 2
    assert report.bytes == sum(f.stat().st_size for f in files)
    assert report.to_dict()["ok"] is True and "ok" in repr(report)


def test_flipped_segment_byte(tmp_path, data):
    files = build(tmp_path / "s", data)
    raw = bytearray(files[0].read_bytes())
    raw[128 + 4 * 33] ^= 0x01
    files[0].write_bytes(raw)
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        report = db.verify()
    assert not report.ok
    (line,) = report.problems
    assert files[0].name in line and "checksum" in line


def test_list_files_that_do_not_fit_their_model(tmp_path, data, monkeypatch):
    # A list file with a valid checksum can still be wrong for its model (codes past a 4-bit
    # sub-quantizer's 16 centroids, a narrower code width): queries refuse it, and verify
    # names it. (The damage is made as the file is read, so its checksum stays valid.)
    from dataclasses import replace

    from vecstore.storage import integrity

    with vecstore.open(tmp_path / "s", seal_rows=64) as db:
        c = db.create_collection(
            "c", dim=32, index=vecstore.IVFPQ(nlist=4, m=4, nbits=4, nprobe=4, min_rows=120)
        )
        c.add([str(i) for i in range(300)], vectors=data[:300])
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        assert db.verify().ok
    opened = integrity.open_arrays
    for damage in (lambda codes: codes | 0xF0, lambda codes: codes[:, :2].copy()):

        def damaged(path, info, verify=True, damage=damage):
            f = opened(path, info, verify=verify)
            if "codes" not in f.arrays:
                return f
            return replace(f, arrays={**f.arrays, "codes": damage(f.arrays["codes"])})

        monkeypatch.setattr(integrity, "open_arrays", damaged)
        with vecstore.open(tmp_path / "s", read_only=True) as db:
            report = db.verify()
        assert not report.ok and report.problems
        assert all("does not fit its segment or model" in p for p in report.problems)


def test_missing_segment_and_stray_files(tmp_path, data):
    files = build(tmp_path / "s", data)
    files[0].unlink()
    (files[0].parent / "leftover.vseg").write_bytes(b"x")  # unaccounted for: damage
    (files[0].parent / "f.vseg.0123456789ab.tmp").write_bytes(b"x")  # a temp file: harmless
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        report = db.verify()
    (missing,) = [p for p in report.problems if files[0].name in p]
    (unnamed,) = [p for p in report.problems if p != missing]
    assert "is missing" in missing
    assert "catalog names fewer files than the store holds" in unnamed
    assert "leftover.vseg" in unnamed
    (warning,) = report.warnings
    assert "f.vseg.0123456789ab.tmp" in warning and "unacknowledged write" in warning


def tamper(path, *statements) -> None:
    conn = sqlite3.connect(path / "catalog.db", isolation_level=None)
    for sql in statements:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    ("statements", "match"),
    [
        (["UPDATE collections SET nrows = nrows + 1 WHERE name = 'c'"], "counts .* rows but holds"),
        (
            ["DELETE FROM mindex WHERE rowid IN (SELECT rowid FROM mindex LIMIT 1)"],
            "metadata index",
        ),
        (["UPDATE rows SET meta = x'c1' WHERE id = '1'"], "metadata records are corrupt"),
        (["UPDATE rows SET pos = 100000 WHERE id = '1'"], "past the end of segment"),
        (
            ["UPDATE rows SET pos = (SELECT pos FROM rows WHERE id = '2') WHERE id = '1'"],
            "vectors segment .* stores for other rows",
        ),
        (
            ["INSERT INTO tombstones (seg, pos) SELECT seg, pos FROM rows WHERE id = '1'"],
            "deleted vectors",
        ),
        (
            ["DELETE FROM pending WHERE rid = (SELECT rid FROM rows WHERE id = 'p1')"],
            "rows have no vector",
        ),
        (
            ["UPDATE pending SET vec = x'00' WHERE rid = (SELECT rid FROM rows WHERE id = 'p2')"],
            "pending vectors are not 32 float32",
        ),
        (["UPDATE rows SET seg = 999 WHERE id = '1'"], "segments it does not have"),
        (
            ["INSERT INTO rows (rid, coll, id) VALUES (99999, 42, 'ghost')"],
            "rows entries belong to no collection",
        ),
    ],
)
def test_catalog_damage(tmp_path, data, statements, match):
    build(tmp_path / "s", data)
    tamper(tmp_path / "s", *statements)
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        report = db.verify()
    assert not report.ok
    assert any(re.search(match, p) for p in report.problems), report.problems


def test_info(tmp_path, data):
    build(tmp_path / "s", data)
    with vecstore.open(tmp_path / "s") as db:
        info = db.get_collection("c").info()
        assert (info.name, info.dim, info.metric, info.index, info.encoder) == (
            "c",
            32,
            "cosine",
            "flat",
            None,
        )
        assert info.count == db.get_collection("c").count() and info.deleted == 72
        assert info.segments >= 1 and info.pending == 2
        files = sum(f.stat().st_size for f in (tmp_path / "s" / "collections").glob("c-*/*"))
        assert info.disk_bytes == files + 2 * 32 * 4  # segment files + pending vectors
        db.get_collection("c").compact()
        after = db.get_collection("c").info()
        assert (after.segments, after.pending, after.deleted) == (1, 0, 0)
        assert after.disk_bytes < info.disk_bytes
        e = db.create_collection("e", encoder=hashing_encoder).info()
        assert e.encoder["kind"] == "callable" and e.encoder["dim"] == 16
        assert set(e.to_dict()) == {
            "name",
            "count",
            "dim",
            "metric",
            "encoder",
            "index",
            "segments",
            "pending",
            "deleted",
            "disk_bytes",
        }
        handle = db.get_collection("e")
        db.delete_collection("e")
        with pytest.raises(vecstore.CollectionNotFound):
            handle.info()
