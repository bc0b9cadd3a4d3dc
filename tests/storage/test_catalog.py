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
