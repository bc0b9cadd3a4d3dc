"""Opening, creating and refusing stores; collections as named, isolated directories."""

from __future__ import annotations

import fcntl
import gc
import os
import sqlite3

import numpy as np
import pytest

import vecstore


def test_open_creates_and_reopens(tmp_path, data):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        c = db.create_collection("docs", dim=32, metric="dot")
        c.add(["a", "b"], vectors=data[:2], documents=["x", None], metadata=[{"k": 1}, None])
        assert repr(db).endswith("read-write>")
    with vecstore.open(path) as db:
        assert db.list_collections() == ["docs"]
        c = db.get_collection("docs")
        assert (c.dim, c.metric) == (32, "dot")
        got = c.get(["b", "a"], include_vectors=True)
        assert got.ids == ["b", "a"]
        assert got.documents == [None, "x"]
        assert got.metadata == [{}, {"k": 1}]
        np.testing.assert_array_equal(got.vectors, data[[1, 0]])


def test_collection_management(db):
    db.create_collection("a", dim=4)
    with pytest.raises(vecstore.CollectionExists):
        db.create_collection("a", dim=4)
    assert db.get_or_create_collection("a", dim=4).dim == 4
    with pytest.raises(vecstore.InvalidInput, match="dim=4"):
        db.get_or_create_collection("a", dim=8)
    assert db.get_or_create_collection("b", dim=8, metric="l2").metric == "l2"
    assert db.list_collections() == ["a", "b"]
    db.delete_collection("a")
    assert db.list_collections() == ["b"]
    with pytest.raises(vecstore.CollectionNotFound) as err:
        db.get_collection("a")
    assert isinstance(err.value, KeyError)
    with pytest.raises(vecstore.CollectionNotFound):
        db.delete_collection("a")


def test_handle_to_deleted_collection_raises(db, data):
    c = db.create_collection("gone", dim=32)
    c.add(["a"], vectors=data[:1])
    db.delete_collection("gone")
    with pytest.raises(vecstore.CollectionNotFound):
        c.count()
    with pytest.raises(vecstore.CollectionNotFound):
        c.add(["b"], vectors=data[1:2])
    again = db.create_collection("gone", dim=32)
    assert again.count() == 0


@pytest.mark.parametrize(
    "name", ["", "../x", "a/b", "..", ".hidden", "a\x00b", "x" * 129, "a b", 5, None, "a..b"]
)
def test_bad_collection_names(db, name):
    with pytest.raises(vecstore.InvalidInput):
        db.create_collection(name, dim=4)
    assert db.list_collections() == []


def test_collection_directories_are_safe(db):
    db.create_collection("a.b-c_d", dim=4)
    (entry,) = (db.path / "collections").iterdir()
    assert entry.parent == db.path / "collections"
    assert entry.name.startswith("a.b-c_d-")


@pytest.mark.parametrize("metric", ["cos", "", None, "L2"])
def test_bad_metric(db, metric):
    with pytest.raises(vecstore.InvalidInput):
        db.create_collection("x", dim=4, metric=metric)


@pytest.mark.parametrize("dim", [0, -1, 1.5, "4", True, 70_000])
def test_bad_dim(db, dim):
    with pytest.raises(vecstore.InvalidInput):
        db.create_collection("x", dim=dim)


def test_refuses_non_store_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(vecstore.StoreNotFound):
        vecstore.open(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_read_only_requires_existing_store(tmp_path):
    with pytest.raises(vecstore.StoreNotFound):
        vecstore.open(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()


def test_read_only_refuses_writes(tmp_path, data):
    with vecstore.open(tmp_path / "s") as db:
        db.create_collection("c", dim=32).add(["a"], vectors=data[:1])
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        c = db.get_collection("c")
        assert c.count() == 1
        assert c.query(data[0], k=1).ids == ["a"]
        for write in (
            lambda: c.add(["b"], vectors=data[1:2]),
            lambda: c.delete(["a"]),
            lambda: db.create_collection("d", dim=2),
            lambda: db.delete_collection("c"),
            c.compact,
        ):
            with pytest.raises(vecstore.ReadOnlyError):
                write()


def test_closed_database(tmp_path):
    db = vecstore.open(tmp_path / "s")
    c = db.create_collection("c", dim=2)
    db.close()
    db.close()
    with pytest.raises(vecstore.StoreClosed):
        c.count()
    with pytest.raises(vecstore.StoreClosed):
        db.list_collections()


def test_a_collection_keeps_its_database_open(tmp_path):
    # the database object is dropped at once: the collection must stay usable
    c = vecstore.open(tmp_path / "s").create_collection("c", dim=2)
    gc.collect()
    c.add(["a"], vectors=[[1.0, 0.0]])
    gc.collect()
    assert vecstore.open(tmp_path / "s", read_only=True).get_collection("c").query(
        [1.0, 0.0], k=1
    ).ids == ["a"]


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    conn = sqlite3.connect(path / "catalog.db")
    conn.execute("CREATE TABLE mine (x)")
    conn.commit()
    conn.close()
    with pytest.raises(vecstore.CorruptStoreError):
        vecstore.open(path)
    with pytest.raises(vecstore.CorruptStoreError):
        vecstore.open(path, read_only=True)


def test_garbage_catalog_is_refused(tmp_path):
    path = tmp_path / "s"
    path.mkdir()
    (path / "catalog.db").write_bytes(os.urandom(8192))
    for read_only in (False, True):
        with pytest.raises(vecstore.CorruptStoreError):
            vecstore.open(path, read_only=read_only)


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TRIGGER evil AFTER INSERT ON rows BEGIN DELETE FROM rows; END",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TABLE extra (x)",
        "CREATE INDEX extra_ix ON rows(document)",
        "DROP INDEX idx_segments_coll",
        "ALTER TABLE rows ADD COLUMN extra",
    ],
)
def test_catalog_with_altered_schema_is_refused(tmp_path, ddl):
    path = tmp_path / "s"
    vecstore.open(path).close()
    conn = sqlite3.connect(path / "catalog.db")
    conn.execute(ddl)
    conn.commit()
    conn.close()
    for read_only in (False, True):
        with pytest.raises(vecstore.CorruptStoreError, match="schema"):
            vecstore.open(path, read_only=read_only)


def _segment_files(db):
    return sorted((db.path / "collections").glob("*/*.vseg"))


def test_flipped_segment_byte_gives_clean_error(tmp_path, data):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=64) as db:
        db.create_collection("c", dim=32).add([str(i) for i in range(2000)], vectors=data)
        (seg,) = _segment_files(db)
    raw = bytearray(seg.read_bytes())
    for offset in (3, 60, 128 + 4 * 1000, len(raw) - 3):
        flipped = bytearray(raw)
        flipped[offset] ^= 0x40
        seg.write_bytes(flipped)
        with vecstore.open(path) as db:
            c = db.get_collection("c")
            assert c.count() == 2000  # the catalog alone is fine
            with pytest.raises(vecstore.CorruptStoreError):
                c.query(data[0])
    seg.write_bytes(raw[:1000])
    with vecstore.open(path) as db, pytest.raises(vecstore.CorruptStoreError):
        db.get_collection("c").query(data[0])
    seg.write_bytes(raw)
    with vecstore.open(path) as db:
        assert db.get_collection("c").query(data[0], k=1).ids == ["0"]


def test_header_declaring_huge_count_is_refused_before_mapping(tmp_path, data):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=64) as db:
        db.create_collection("c", dim=32).add([str(i) for i in range(2000)], vectors=data)
        (seg,) = _segment_files(db)
    raw = bytearray(seg.read_bytes())
    raw[24:32] = (2**40).to_bytes(8, "little")  # count
    seg.write_bytes(raw)
    with vecstore.open(path) as db, pytest.raises(vecstore.CorruptStoreError):
        db.get_collection("c").query(data[0])


def test_missing_segment_file_is_reported(tmp_path, data):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=64) as db:
        db.create_collection("c", dim=32).add([str(i) for i in range(2000)], vectors=data)
        (seg,) = _segment_files(db)
    seg.unlink()
    with vecstore.open(path) as db, pytest.raises(vecstore.CorruptStoreError, match="missing"):
        db.get_collection("c").query(data[0])


def test_temp_files_are_removed_and_other_orphans_quarantined_on_open(tmp_path, data):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=64) as db:
        db.create_collection("c", dim=32).add([str(i) for i in range(2000)], vectors=data)
        (seg,) = _segment_files(db)
    temp, stray = seg.parent / "x.vseg.0123456789ab.tmp", seg.parent / "deadbeef.vseg"
    for f in (temp, stray):
        f.write_bytes(b"partial")
    (path / "collections" / "old-collection-dir").mkdir()  # empty: holds no data
    with vecstore.open(path, read_only=True):
        assert temp.exists() and stray.exists()  # readers never delete
    with pytest.warns(RuntimeWarning, match="moved to .*quarantine"), vecstore.open(path) as db:
        assert _segment_files(db) == [seg]
        assert not temp.exists() and not stray.exists()
        assert not (path / "collections" / "old-collection-dir").exists()
        assert db.get_collection("c").count() == 2000
    # a file no write of this store accounts for is kept, in quarantine, never deleted
    (kept,) = (path / "quarantine").glob(f"*/collections/{seg.parent.name}/deadbeef.vseg")
    assert kept.read_bytes() == b"partial"


def test_second_writer_times_out_with_clear_error(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path, lock_timeout=0.2) as db:
        c = db.create_collection("c", dim=2)
        # Hold the writer lock (an flock on LOCK, see docs/format.md) as a long write would.
        fd = os.open(path / "LOCK", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with pytest.raises(vecstore.LockTimeout, match="lock_timeout") as err:
                c.add(["x"], vectors=[[1.0, 0.0]])
            assert isinstance(err.value, TimeoutError)
            assert c.count() == 0  # reads never wait for the writer lock
        finally:
            os.close(fd)
        c.add(["x"], vectors=[[1.0, 0.0]])
        assert c.count() == 1


def test_handle_of_a_deleted_collection_never_reaches_its_successor(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        c = db.create_collection("c", dim=2)
        c.add(["p"], vectors=[[1.0, 0.0]])
        with vecstore.open(path, read_only=True) as reader:
            rc = reader.get_collection("c")
            assert rc.query([1.0, 0.0], k=1).ids == ["p"]  # cached snapshot
            db.delete_collection("c")
            d = db.create_collection("d", dim=3)  # may get the deleted collection's id
            d.add(["q"], vectors=[[1.0, 0.0, 0.0]])
            with pytest.raises(vecstore.CollectionNotFound):
                rc.query([1.0, 0.0], k=1)
        with pytest.raises(vecstore.CollectionNotFound):
            c.add(["z"], vectors=[[1.0, 1.0]])
        assert d.count() == 1 and d.query([1.0, 0.0, 0.0], k=5).ids == ["q"]


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_durability_modes_round_trip(tmp_path, data, durability):
    path = tmp_path / "s"
    with vecstore.open(path, durability=durability, seal_rows=16) as db:
        c = db.create_collection("c", dim=32)
        c.add([str(i) for i in range(100)], vectors=data[:100])
        c.delete([str(i) for i in range(50)])
        c.compact()
    with vecstore.open(path) as db:
        assert db.get_collection("c").count() == 50


def test_failed_tidying_after_a_commit_is_a_warning(tmp_path, monkeypatch):
    import vecstore.writes

    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=2) as db:
        c = db.create_collection("c", dim=2)
        c.add(["a"], vectors=[[1.0, 0.0]])

        def disk_full(*args, **kwargs):
            raise vecstore.StoreIOError("could not write: the disk is full")

        monkeypatch.setattr(vecstore.writes, "write_segment", disk_full)
        with pytest.warns(RuntimeWarning, match="the write succeeded"):
            c.add(["b"], vectors=[[0.0, 1.0]])  # committed; sealing 2 pending rows fails
        assert c.count() == 2
        with pytest.raises(vecstore.StoreIOError, match="refuses writes"):
            c.add(["c"], vectors=[[1.0, 1.0]])
    monkeypatch.undo()
    with vecstore.open(path, seal_rows=2) as db:
        c = db.get_collection("c")
        assert c.get().ids == ["a", "b"]
        c.add(["c"], vectors=[[1.0, 1.0]])
        assert c.count() == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(ids=["a\ud800"]),
        dict(ids=["ok"], documents=["x\udfff"]),
        dict(ids=["ok"], metadata=[{"k": "\ud800"}]),
        dict(ids=["ok"], metadata=[{"\ud800": 1}]),
    ],
)
def test_lone_surrogates_are_refused(db, kwargs):
    c = db.create_collection("c", dim=2)
    with pytest.raises(vecstore.InvalidInput, match="Unicode"):
        c.add(vectors=[[1.0, 0.0]], **kwargs)
    with pytest.raises(vecstore.InvalidFilter):
        c.count({"k": "\ud800"})
    assert c.count() == 0 and c.get().ids == []
