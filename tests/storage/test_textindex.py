"""The keyword index's tables: migration of v2 stores, the schema guard, collection removal."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import vecstore
from vecstore.storage import catalog

# The fingerprint of schema v2 (SCHEMA_SHA256 before v3): the downgraded store below is
# exactly what vecstore 0.1 with schema v2 wrote.
V2_SCHEMA_SHA256 = "5c73b073ffd046da48e762b6b2676b4623618bd7f920387f09aaed5fec98606c"
V3_TABLES = ("text_terms", "text_postings", "text_docs", "text_stats")

DOCS = ["Café au lait", "向量数据库很快", "the running dogs", None, "cafe society", ""]


def _store(path) -> dict[str, list[str]]:
    """A store with two collections of documents; returns the text-mode results to expect."""
    with vecstore.open(path, seal_rows=4) as db:
        a = db.create_collection("a", dim=3)
        b = db.create_collection("b", dim=3)
        ids = [f"d{i}" for i in range(len(DOCS))]
        a.add(ids, vectors=np.ones((len(DOCS), 3)), documents=DOCS)
        b.add(["x", "y"], vectors=np.ones((2, 3)), documents=["cafe", "dogs run"])
        a.delete(["d2"])
        a.upsert(["d2"], vectors=np.ones((1, 3)), documents=["a running dog"])
        return {
            q: [c.query(q, mode="text").to_dict() for c in (a, b)]
            for q in ("cafe", "数据库", "run", "dog", "society")
        }


def _downgrade_to_v2(path) -> None:
    conn = sqlite3.connect(path / "catalog.db")
    for table in (*V3_TABLES, "ivf_files"):  # v4's table too: a store as v2 left it
        conn.execute(f"DROP TABLE {table}")
    for table in ("rows", "pending", "embed_cache", "collections", "segments", "tombstones"):  # v5
        conn.execute(f"ALTER TABLE {table} DROP COLUMN chk")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    assert catalog._fingerprint(catalog._schema_of(conn)) == V2_SCHEMA_SHA256
    conn.close()


def test_a_v2_store_is_indexed_when_opened_read_write(tmp_path):
    path = tmp_path / "s"
    expected = _store(path)
    _downgrade_to_v2(path)
    with pytest.raises(vecstore.CorruptStoreError, match="open it read-write once to migrate"):
        vecstore.open(path, read_only=True)
    with vecstore.open(path) as db:
        a, b = db.get_collection("a"), db.get_collection("b")
        got = {q: [c.query(q, mode="text").to_dict() for c in (a, b)] for q in expected}
        assert got == expected
        assert a.get(where_document={"$contains": "au lait"}).ids == ["d0"]
    with vecstore.open(path, read_only=True) as db:  # now at the current version
        assert db.get_collection("a").query("cafe", mode="text").ids == ["d4", "d0"]
    conn = sqlite3.connect(path / "catalog.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (len(catalog.MIGRATIONS),)
    assert catalog._fingerprint(catalog._schema_of(conn)) == catalog.SCHEMA_SHA256
    conn.close()


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE VIRTUAL TABLE fts USING fts5(document)",
        "CREATE TRIGGER evil AFTER INSERT ON text_postings BEGIN DELETE FROM rows; END",
        "CREATE INDEX extra_ix ON text_postings(rid)",
        "DROP TABLE text_stats",
        "ALTER TABLE text_terms ADD COLUMN extra",
    ],
)
def test_an_altered_keyword_index_is_refused(tmp_path, ddl):
    path = tmp_path / "s"
    vecstore.open(path).close()
    conn = sqlite3.connect(path / "catalog.db")
    conn.execute(ddl)
    conn.commit()
    conn.close()
    for read_only in (False, True):
        with pytest.raises(vecstore.CorruptStoreError, match="schema"):
            vecstore.open(path, read_only=read_only)


def test_deleting_a_collection_removes_its_index(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        a = db.create_collection("a", dim=3)
        a.add(["1", "2"], vectors=np.ones((2, 3)), documents=["alpha beta", "alpha"])
        assert a.query("alpha", mode="text").ids == ["2", "1"]
        keep = db.create_collection("keep", dim=3)
        keep.add(["k"], vectors=np.ones((1, 3)), documents=["alpha gamma"])
        db.delete_collection("a")
        a = db.create_collection("a", dim=3)
        a.add(["3"], vectors=np.ones((1, 3)), documents=["beta"])
        assert a.query("alpha", mode="text").ids == []
        assert a.query("beta", mode="text").ids == ["3"]
        assert keep.query("alpha", mode="text").ids == ["k"]
    conn = sqlite3.connect(path / "catalog.db")
    # Only the live documents' postings remain: "beta" of a, "alpha" and "gamma" of keep.
    assert conn.execute("SELECT COUNT(*) FROM text_postings").fetchone() == (3,)
    assert conn.execute("SELECT COUNT(*) FROM text_docs").fetchone() == (2,)
    assert conn.execute("SELECT SUM(ndocs) FROM text_stats").fetchone() == (2,)
    conn.close()


def test_compact_prunes_unused_terms(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=3)
        c.add(["1", "2"], vectors=np.ones((2, 3)), documents=["alpha beta", "gamma"])
        c.update(["1"], documents=["delta"])
        c.delete(["2"])
        c.compact()
        assert c.query("alpha beta gamma", mode="text").ids == []
        assert c.query("delta", mode="text").ids == ["1"]
    conn = sqlite3.connect(tmp_path / "s" / "catalog.db")
    assert conn.execute("SELECT term FROM text_terms").fetchall() == [("delta",)]
    conn.close()
