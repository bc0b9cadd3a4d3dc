"""The pending-vector buffer and the embedding cache: a mixin of ``Catalog``.

Small writes wait in ``pending`` until they are sealed into a segment; ``embed_cache`` maps an
encoder and a text hash to its vector, and holds only texts some live row still has (pruned
by compaction and by dropping a collection). Both blobs carry checksums (checksums.py),
checked on every read. Only SQL; imports no numba.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import VecstoreError
from .checksums import blob_crc, cache_key, check_blob, rid_key
from .sqlbits import chunked, placeholders

SQL_TEXT_HASH = "vecstore_text_hash"  # text_hash, in SQL on every catalog connection


def text_hash(text: str | None) -> bytes | None:
    """The embedding cache's key for a text: the first 16 bytes of its SHA-256."""
    if text is None:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


class Buffers:
    conn: sqlite3.Connection
    path: Path

    def insert_pending(self, coll: int, rids: Sequence[int], blobs: Iterable[bytes]) -> None:
        self.conn.executemany(
            "INSERT INTO pending (coll, rid, vec, chk) VALUES (?, ?, ?, ?)",
            ((coll, rid, b, blob_crc(rid_key(rid), b)) for rid, b in zip(rids, blobs)),
        )

    def pending(self, coll: int) -> list[tuple[int, int]]:
        """``(pseq, rid)`` of the collection's pending vectors, oldest first."""
        return self.conn.execute(
            "SELECT pseq, rid FROM pending WHERE coll = ? ORDER BY pseq", (coll,)
        ).fetchall()

    def pending_count(self, coll: int) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM pending WHERE coll = ?", (coll,)).fetchone()[
            0
        ]

    def pending_vectors(self, pseqs: Sequence[int]) -> dict[int, bytes]:
        out = {}
        for part in chunked(pseqs):
            for pseq, rid, vec, chk in self.conn.execute(
                "SELECT pseq, rid, vec, chk FROM pending "
                f"WHERE pseq IN ({placeholders(len(part))})",
                part,
            ):
                check_blob(self, f"the pending vector of row {rid!r}", rid_key(rid), vec, chk)
                out[pseq] = vec
        return out

    def clear_pending(self, pseqs: Sequence[int]) -> None:
        for part in chunked(pseqs):
            self.conn.execute(
                f"DELETE FROM pending WHERE pseq IN ({placeholders(len(part))})", part
            )

    def cached_embeddings(self, encoder: str, hashes: Sequence[bytes]) -> dict[bytes, bytes]:
        """``hash -> vector bytes`` for the given text hashes the cache holds."""
        out: dict[bytes, bytes] = {}
        for part in chunked(hashes):
            for h, vec, chk in self.conn.execute(
                f"SELECT hash, vec, chk FROM embed_cache WHERE encoder = ? "
                f"AND hash IN ({placeholders(len(part))})",
                (encoder, *part),
            ):
                check_blob(self, "a cached embedding", cache_key(encoder, h), vec, chk)
                out[h] = vec
        return out

    def cache_embeddings(self, encoder: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO embed_cache (encoder, hash, vec, chk) VALUES (?, ?, ?, ?)",
            ((encoder, h, v, blob_crc(cache_key(encoder, h), v)) for h, v in items),
        )

    def prune_embeddings(self, key_of: Callable[[str], str | None]) -> int:
        """Delete the cached embeddings no live row refers to; return how many.

        ``key_of`` maps a collection's stored configuration (its JSON text) to the key its
        embeddings are cached under (None if they are not cached). An entry is kept only if
        a collection with its key holds a row whose document has its text hash. Call inside a write
        transaction; it reads every document of the collections that cache embeddings.
        """
        users: dict[str, list[int]] = {}
        for coll, config in self.conn.execute("SELECT id, config FROM collections"):
            try:
                key = key_of(config)
            except (ValueError, TypeError, AttributeError, VecstoreError):
                continue  # a damaged record: its entries go (it is only a cache)
            if key is not None:
                users.setdefault(key, []).append(coll)
        removed = self.conn.execute(
            "DELETE FROM embed_cache WHERE encoder NOT IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(users)),),
        ).rowcount
        for key, colls in users.items():
            removed += self.conn.execute(
                f"DELETE FROM embed_cache WHERE encoder = ? AND hash NOT IN (SELECT "
                f"{SQL_TEXT_HASH}(document) FROM rows WHERE coll IN (SELECT value FROM "
                "json_each(?)) AND document IS NOT NULL)",
                (key, json.dumps(colls)),
            ).rowcount
        return removed

    def clear_embeddings(self) -> int:
        """Delete every cached embedding (inside a write transaction); return how many."""
        return self.conn.execute("DELETE FROM embed_cache").rowcount
