"""The catalog's schema guard."""

from __future__ import annotations

from vecstore.storage import catalog


def test_schema_fingerprint_matches_the_migrations():
    # If this fails after a schema change, add a migration and update SCHEMA_SHA256.
    assert catalog._fingerprint(catalog._expected_schema()) == catalog.SCHEMA_SHA256
