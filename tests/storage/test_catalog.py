"""The catalog's schema guard."""

from __future__ import annotations

import vecstore
from vecstore.storage import catalog


def test_schema_fingerprint_matches_the_migrations():
    # If this fails after a schema change, add a migration and update SCHEMA_SHA256.
    assert catalog._fingerprint(catalog._expected_schema()) == catalog.SCHEMA_SHA256


def test_connections_use_a_bounded_larger_page_cache(tmp_path):
    # The rows a query returns sit on random pages; SQLite's default 2 MB cache re-read them
    # on every query. A writer's and a read-only connection both get the larger bound.
    with vecstore.open(tmp_path, progress=False) as db:
        db.create_collection("c", dim=2)
    for read_only in (False, True):
        cat = catalog.Catalog(
            tmp_path / "catalog.db", read_only=read_only, synchronous="full", busy_timeout=1.0
        )
        try:
            assert cat.conn.execute("PRAGMA cache_size").fetchone()[0] == -catalog.CACHE_KIB
        finally:
            cat.close()


def test_a_read_transaction_reads_a_collection_version_once(tmp_path):
    # A query checks that its collection exists and then takes its snapshot: both ask for
    # the version, which cannot change inside one read transaction, so SQLite sees one
    # statement; a later transaction sees a commit made meanwhile.
    with vecstore.open(tmp_path, progress=False) as db:
        db.create_collection("c", dim=2)

    def connect():
        return catalog.Catalog(
            tmp_path / "catalog.db", read_only=False, synchronous="full", busy_timeout=1.0
        )

    reader, writer = connect(), connect()
    try:
        rec = reader.collection_by_name("c")
        statements = []
        reader.conn.set_trace_callback(statements.append)
        with reader.read():
            before = reader.version(rec.id, rec.dir)
            with writer.write():
                writer.bump(rec.id)
            assert reader.version(rec.id, rec.dir) == before
            assert reader.version(rec.id, "elsewhere") is None
        assert sum("SELECT version" in s for s in statements) == 2
        with reader.read():
            assert reader.version(rec.id, rec.dir) == before + 1
    finally:
        reader.close()
        writer.close()
