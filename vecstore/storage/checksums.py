"""Row checksums for the catalog: SQLite pages carry none, so vecstore adds its own.

Every record of rows, pending vectors, cached embeddings, collections, segments, tombstones
and index files carries a CRC-32 of its content and key in a ``chk`` column, checked whenever
it is read, so a flipped byte in the catalog raises ``CorruptStoreError`` instead of returning
altered data. Imports msgpack and the standard library.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgpack

from ..errors import CorruptStoreError

if TYPE_CHECKING:
    import sqlite_utils

SQL_ROW_CRC = "vecstore_row_crc"  # the SQL names of row_crc and record_crc on every
SQL_RECORD_CRC = "vecstore_record_crc"  # catalog connection
# The other checksummed tables and the columns their record_crc covers, in order.
RECORD_COLUMNS = {
    "collections": ("id", "name", "dir", "dim", "metric", "config", "nrows"),
    "segments": ("id", "coll", "file", "count", "dim", "size", "crc"),
    "tombstones": ("seg", "pos"),
    "ivf_files": ("coll", "seg", "file", "size", "crc", "nrows", "err"),
}


class Checked(Protocol):
    """The catalog, as the checks see it."""

    path: Path
    checking: bool


def row_crc(rid: int, coll: int, id_: str, document: str | None, meta: bytes | None) -> int:
    """CRC-32 of a row's key and content. Ids hold no NUL, so the fields cannot run together;
    a tag byte tells a missing document or metadata from an empty one."""
    # One CRC over b"<rid>:<coll>:<id>\0" + (b"\0" | b"\1" <document>) + (b"\0" | b"\1" <meta>),
    # computed in as few calls as the row allows (bulk inserts run it for every row).
    if document is None:
        if meta is None:
            return zlib.crc32(b"%d:%d:%s\0\0\0" % (rid, coll, id_.encode()))
        crc = zlib.crc32(b"%d:%d:%s\0\0\1" % (rid, coll, id_.encode()))
        return zlib.crc32(meta, crc)
    crc = zlib.crc32(b"%d:%d:%s\0\1" % (rid, coll, id_.encode()))
    crc = zlib.crc32(document.encode(), crc)
    crc = zlib.crc32(b"\0" if meta is None else b"\1", crc)
    return crc if meta is None else zlib.crc32(meta, crc)


def record_crc(*values) -> int:
    """CRC-32 of a catalog record's values (ints, floats, strings, None), in column order."""
    return zlib.crc32(msgpack.packb(values))


def check_record(cat: Checked, table: str, values: tuple, crc) -> None:
    if not cat.checking:
        return
    try:
        ok = crc == record_crc(*values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CorruptStoreError(
            f"catalog {cat.path}: a record of table {table} failed its checksum; the catalog is "
            "damaged (restore a backup, or run `vecstore verify` for the full list)"
        )


def blob_crc(key: bytes, blob: bytes) -> int:
    """CRC-32 of a vector blob and the key it is stored under."""
    return zlib.crc32(blob, zlib.crc32(key))


def rid_key(rid: int) -> bytes:
    """The key a pending vector's checksum covers."""
    return b"%d:" % rid


def cache_key(encoder, text_hash) -> bytes:
    """The key a cached embedding's checksum covers: the encoder, a NUL, the text hash
    (a damaged record of the wrong type gives a key no checksum matches)."""
    enc = encoder.encode() if isinstance(encoder, str) else b"\xff"
    return enc + b"\0" + (text_hash if isinstance(text_hash, bytes) else b"\xff")


def check_row(cat: Checked, rid, coll, id_, document, meta, crc) -> None:
    """Raise ``CorruptStoreError`` unless ``crc`` is the row's checksum."""
    if not cat.checking:
        return
    try:
        ok = crc == row_crc(rid, coll, id_, document, meta)
    except (TypeError, AttributeError, UnicodeEncodeError):  # a value of the wrong type
        ok = False
    if not ok:
        raise CorruptStoreError(
            f"catalog {cat.path}: row {rid!r} failed its checksum; the catalog is damaged "
            "(restore a backup, or run `vecstore verify` for the full list)"
        )


def check_blob(cat: Checked, what: str, key: bytes, blob, crc) -> None:
    if not cat.checking:
        return
    if not isinstance(blob, bytes) or crc != blob_crc(key, blob):
        raise CorruptStoreError(
            f"catalog {cat.path}: {what} failed its checksum; the catalog is damaged "
            "(restore a backup, or run `vecstore verify` for the full list)"
        )


def migrate_v5_checksums(db: sqlite_utils.Database) -> None:
    """Add the checksum columns and fill them in for the rows an older store holds."""
    for table in ("rows", "pending", "embed_cache", *RECORD_COLUMNS):
        db.execute(f"ALTER TABLE [{table}] ADD COLUMN [chk] INTEGER")
    conn = db.conn
    for table, columns in RECORD_COLUMNS.items():
        cols = ", ".join(columns)
        conn.executemany(
            f"UPDATE [{table}] SET chk = ? WHERE rowid = ?",
            (
                (record_crc(*values), rowid)
                for rowid, *values in conn.execute(
                    f"SELECT rowid, {cols} FROM [{table}]"
                ).fetchall()
            ),
        )
    conn.executemany(
        "UPDATE rows SET chk = ? WHERE rid = ?",
        (
            (row_crc(rid, coll, id_, doc, meta), rid)
            for rid, coll, id_, doc, meta in conn.execute(
                "SELECT rid, coll, id, document, meta FROM rows"
            ).fetchall()
        ),
    )
    conn.executemany(
        "UPDATE pending SET chk = ? WHERE pseq = ?",
        (
            (blob_crc(rid_key(rid), vec), pseq)
            for pseq, rid, vec in conn.execute("SELECT pseq, rid, vec FROM pending").fetchall()
        ),
    )
    conn.executemany(
        "UPDATE embed_cache SET chk = ? WHERE encoder = ? AND hash = ?",
        (
            (blob_crc(cache_key(enc, h), vec), enc, h)
            for enc, h, vec in conn.execute("SELECT encoder, hash, vec FROM embed_cache").fetchall()
        ),
    )
