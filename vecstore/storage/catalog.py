"""The catalog: one SQLite database (WAL) holding collections, segments, rows and filters.

Managed through sqlite-utils: migrations are an ordered list keyed by ``PRAGMA user_version``,
and a store's schema must equal exactly what those migrations build before anything in it is
trusted. All SQL of the package lives here, in filters.py and in textindex.py (the keyword
index, a mixin of ``Catalog``). Imports no numba.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptStoreError, DiskFullError, LockTimeout, StoreIOError
from . import catalogfile, paths, records
from .annfiles import AnnFiles, migrate_v4_ann
from .buffers import SQL_TEXT_HASH, Buffers, text_hash
from .checksums import (
    SQL_RECORD_CRC,
    SQL_ROW_CRC,
    check_record,
    check_row,
    migrate_v5_checksums,
    record_crc,
    row_crc,
)
from .files import io_step
from .filters import INT64_MAX, rid_query
from .records import Location, Record, RowBatch, StoredRow
from .segtables import SegmentTables
from .sqlbits import chunked, placeholders
from .textindex import Counts, TextIndex, migrate_v3_text

if TYPE_CHECKING:  # imported when first needed (migrations, new collections), not on open
    import sqlite_utils

STORE_FORMAT = "vecstore"
COLLECTIONS = "collections"  # the folder beside the catalog that holds collection files
#: SQLite page cache per connection, KiB: at most this much memory for catalog pages (16 MiB
#: holds a 100k-row catalog whole; SQLite's default is 2 MB).
CACHE_KIB = 16 * 1024
#: How long a checkpoint that truncates the WAL waits for other connections' reads to end.
TRUNCATE_WAIT_MS = 200
# A Record straight from its fields: a query builds k of them, and NamedTuple's own
# constructor costs a Python-level call each.
_new_record = tuple.__new__
INTENT_KEY = "intent:"  # store_info keys of committed intents (storage/intents.py)
RID_FLOOR_KEY = "rid_floor"  # row ids below it are taken or reserved (reserve_rids)
ADOPTED_KEY = "adopted:"  # store_info keys of adopted staged partitions (storage/staging.py)


def _migrate_v1(db: sqlite_utils.Database) -> None:
    db["store_info"].create({"key": str, "value": str}, pk="key")
    # nrows is kept equal to the collection's row count by insert_rows and delete_rows, so
    # count() is O(1) instead of a walk over a million index entries.
    db["collections"].create(
        {
            "id": int,
            "name": str,
            "dir": str,
            "dim": int,
            "metric": str,
            "config": str,
            "version": int,
            "nrows": int,
            "created": float,
        },
        pk="id",
        not_null=["name", "dir", "dim", "metric", "config", "version", "nrows"],
    )
    db["collections"].create_index(["name"], unique=True)
    db["segments"].create(
        {
            "id": int,
            "coll": int,
            "file": str,
            "count": int,
            "dim": int,
            "size": int,
            "crc": int,
            "created": float,
        },
        pk="id",
        not_null=["coll", "file", "count", "dim", "size", "crc"],
    )
    db["segments"].create_index(["coll"])
    # rid is the internal row id; seg/pos locate the vector in a segment, or are NULL while
    # the vector waits in `pending`. meta is the msgpack record returned to users; mindex is
    # its filterable projection (one row per scalar, one per distinct list element).
    db["rows"].create(
        {
            "rid": int,
            "coll": int,
            "id": str,
            "seg": int,
            "pos": int,
            "document": str,
            "meta": bytes,
        },
        pk="rid",
        not_null=["coll", "id"],
    )
    db["rows"].create_index(["coll", "id"], unique=True)
    # AUTOINCREMENT: a pending entry's pseq is never reused, so readers may cache by it.
    db.execute(
        "CREATE TABLE [pending] ([pseq] INTEGER PRIMARY KEY AUTOINCREMENT, "
        "[coll] INTEGER NOT NULL, [rid] INTEGER NOT NULL, [vec] BLOB NOT NULL)"
    )
    db["pending"].create_index(["coll"])
    db["pending"].create_index(["rid"])
    db["tombstones"].create({"seg": int, "pos": int}, pk=("seg", "pos"))
    # BLOB affinity on `value` keeps ints, floats and text exactly as bound.
    db["mindex"].create(
        {"coll": int, "key": str, "kind": int, "value": bytes, "elem": int, "rid": int},
        not_null=["coll", "key", "kind", "elem", "rid"],
    )
    # No index on rid alone: a row's entries are deleted by recomputing them from its meta
    # record (records.entries), which saves a third of the cost of every metadata insert.
    db["mindex"].create_index(["coll", "key", "elem", "kind", "value", "rid"])


def _migrate_v2_embed_cache(db: sqlite_utils.Database) -> None:
    # The embedding cache: (encoder key, text hash) -> float32 vector bytes, so the same text
    # is never embedded twice by the same encoder, whatever collection it lands in.
    db["embed_cache"].create(
        {"encoder": str, "hash": bytes, "vec": bytes},
        pk=("encoder", "hash"),
        not_null=["vec"],
    )


# v3: the keyword index (textindex.py); migrating an older store also indexes its documents.
# v4: the ANN index files (annfiles.py). v5: row checksums (checksums.py).
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migrate_v1,
    _migrate_v2_embed_cache,
    migrate_v3_text,
    migrate_v4_ann,
    migrate_v5_checksums,
]


def _schema_of(conn: sqlite3.Connection) -> set[tuple]:
    return set(
        conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "OR type IN ('trigger', 'view')"
        ).fetchall()
    )


# sha256 of the schema the migrations build (tests/storage/test_catalog.py keeps it current).
# Comparing against it lets an open skip importing sqlite-utils and rebuilding the schema.
SCHEMA_SHA256 = "4806ba8688292377fe6256d4616311446329aa0515291ca73d2797304a7a3a07"


def _fingerprint(schema: Iterable[tuple]) -> str:
    return hashlib.sha256(repr(sorted(schema, key=repr)).encode()).hexdigest()


@cache
def _expected_schema() -> frozenset:
    import sqlite_utils

    conn = sqlite3.connect(":memory:", isolation_level=None)
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    for step in MIGRATIONS:
        step(db)
    schema = frozenset(_schema_of(conn))
    conn.close()
    return schema


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    # Plain DatabaseError is SQLite's SQLITE_CORRUPT / SQLITE_NOTADB family; its subclasses
    # (IntegrityError, OperationalError "locked"...) are not corruption unless they say so.
    msg = str(exc).lower()
    return (
        type(exc) is sqlite3.DatabaseError
        or "malformed" in msg
        or "not a database" in msg
        or "could not decode" in msg  # text that is not UTF-8: a damaged record
    )


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's corruption and I/O failures into vecstore's typed errors."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        msg = str(exc).lower()
        if "disk is full" in msg:
            raise DiskFullError(f"catalog {path}: the disk is full ({exc})") from exc
        if "disk i/o error" in msg:
            raise StoreIOError(f"catalog {path}: {exc}") from exc
        if "readonly database" in msg or "unable to open database" in msg:
            raise StoreIOError(
                f"catalog {path}: {exc}; check that this process may write the catalog and "
                "its folder, or open the store with read_only=True"
            ) from exc
        if "database is locked" in msg or "database is busy" in msg:
            raise LockTimeout(f"catalog {path} stayed locked past the timeout: {exc}") from exc
        if _is_corruption(exc):
            raise CorruptStoreError(f"catalog {path} is corrupt: {exc}") from exc
        raise
    except UnicodeDecodeError as exc:  # SQLite's message quotes damaged schema text
        raise CorruptStoreError(f"catalog {path} is corrupt: {exc}") from exc


@dataclass(frozen=True)
class CollectionRecord:
    id: int
    name: str
    dir: str
    dim: int
    metric: str
    config: str
    version: int


def _in_coll(sql: str) -> str:
    """The collection term of a filtered statement over ``rows r``.

    With a filter, the unary ``+`` keeps SQLite from driving the scan by the (coll, id)
    index, which costs a table lookup per row of the collection; it drives from the filter's
    metadata-index subqueries instead, or scans the table in rowid order.
    """
    return "r.coll = ?" if sql == "1" else "+r.coll = ?"


class Catalog(TextIndex, AnnFiles, Buffers, SegmentTables):
    """One connection to a store's catalog. Not thread-safe: the Database serialises use."""

    def __init__(self, path: Path, *, read_only: bool, synchronous: str, busy_timeout: float):
        self.path = path
        self.checking = True  # verify record checksums on read (off while auditing)
        self.read_only = read_only
        self.synchronous = synchronous
        self._db = None
        # set if the catalog was opened immutable, from read-only media (catalogfile.py)
        self._frozen: catalogfile.Signature | None = None
        # collection versions already read in the current read transaction, which cannot
        # change under it (a query checks the collection exists, then takes its snapshot)
        self._versions: dict[tuple[int, str], int | None] | None = None
        # whether the open transaction is one ``read`` began (nothing uncommitted in it)
        self._reading = False
        with translate_errors(path):
            self.conn, self._frozen = catalogfile.connect(
                path, read_only=read_only, busy_timeout=busy_timeout
            )
            try:
                self._setup(synchronous)
            except BaseException:
                self.conn.close()
                raise

    @property
    def immutable(self) -> bool:
        """Whether the catalog was opened immutable, from read-only media (no writer is
        expected: every read checks the file is unchanged, see ``catalogfile.py``)."""
        return self._frozen is not None

    @property
    def db(self) -> sqlite_utils.Database:
        """The connection as a sqlite-utils Database (created on first use)."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(
                self.conn, recursive_triggers=False, execute_plugins=False
            )
        return self._db

    def _setup(self, synchronous: str) -> None:
        c = self.conn
        c.execute("PRAGMA trusted_schema = OFF")
        c.execute("PRAGMA cell_size_check = ON")
        # The rows a query returns sit on random pages of the rows table. With SQLite's
        # default 2 MB page cache each query re-read them (5-10 preads, measured 60 us a query
        # at 100k rows); a bounded larger cache keeps a working set resident instead.
        c.execute(f"PRAGMA cache_size = -{CACHE_KIB:d}")
        c.create_function(SQL_ROW_CRC, 5, row_crc, deterministic=True)
        c.create_function(SQL_RECORD_CRC, -1, record_crc, deterministic=True)
        c.create_function(SQL_TEXT_HASH, 1, text_hash, deterministic=True)
        if not self.read_only:
            # Deleted rows (documents, vectors, cached embeddings) are overwritten with
            # zeros, in their pages and in freed pages: deleted text leaves the file.
            c.execute("PRAGMA secure_delete = ON")
            mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise CorruptStoreError(f"catalog {self.path}: could not enable WAL ({mode})")
        c.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")

    # -- schema -------------------------------------------------------------------------

    def user_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def check_schema(self) -> None:
        """Refuse a catalog whose schema is not exactly vecstore's (extra triggers, views...)."""
        with translate_errors(self.path):
            version = self.user_version()
            if version == 0:
                raise CorruptStoreError(self._unversioned())
            if version != len(MIGRATIONS):
                raise CorruptStoreError(
                    f"catalog {self.path} has schema version {version}; this vecstore "
                    f"reads version {len(MIGRATIONS)}"
                    + ("; open it read-write once to migrate" if version < len(MIGRATIONS) else "")
                )
            got = _schema_of(self.conn)
            if _fingerprint(got) != SCHEMA_SHA256 and got != _expected_schema():
                extra = sorted(f"{t} {n}" for t, n, *_ in got - _expected_schema())
                missing = sorted(f"{t} {n}" for t, n, *_ in _expected_schema() - got)
                raise CorruptStoreError(
                    f"catalog {self.path} does not have vecstore's schema "
                    f"(unexpected: {extra or 'none'}; missing or altered: {missing or 'none'}); "
                    "refusing to use it"
                )
            fmt = self.conn.execute("SELECT value FROM store_info WHERE key = 'format'").fetchone()
            if fmt != (STORE_FORMAT,):
                raise CorruptStoreError(f"catalog {self.path} is not a vecstore catalog")

    def _unversioned(self) -> str:
        """Why a catalog without a schema version is refused, worded as a read-write open
        (``Database``, ``migrate``) would refuse it, or say how it would accept it."""
        if not self.is_empty():
            return f"{self.path} is a SQLite database but not a vecstore catalog"
        data = self.path.parent / COLLECTIONS
        if data.is_dir() and any(data.iterdir()):
            return (
                f"catalog {self.path} is empty but {data} holds collection files; refusing to "
                "open (restore the catalog from a backup)"
            )
        return f"catalog {self.path} is empty: open the store read-write once to create it"

    def is_empty(self) -> bool:
        return (
            self.user_version() == 0
            and not self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
        )

    def migrate(self, *, analyzer: Callable[[str], Callable[[str | None], Counts]]) -> None:
        """Bring an empty or older catalog up to the current schema, in one transaction each.

        ``analyzer`` maps a collection's stored configuration to its analysis (the
        ``counts`` of its vecstore.text.Analyzer), which indexes the documents of a store
        older than v3 in the migration's transaction.
        """
        with translate_errors(self.path):
            start = self.user_version()
            if start == 0 and not self.is_empty():
                raise CorruptStoreError(self._unversioned())
            for version in range(start, len(MIGRATIONS)):
                with self.write():
                    MIGRATIONS[version](self.db)
                    if version == 0:
                        self.db["store_info"].insert_all(
                            [
                                {"key": "format", "value": STORE_FORMAT},
                                {"key": "created", "value": repr(time.time())},
                            ]
                        )
                    if version == 2:
                        self.backfill_text(analyzer)
                    self.conn.execute(f"PRAGMA user_version = {version + 1:d}")

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[None]:
        """A read transaction: one consistent snapshot for everything inside it."""
        if self.conn.in_transaction:
            yield
            return
        if self._frozen is not None:
            catalogfile.check_unchanged(self.path, self._frozen)
        with translate_errors(self.path):
            self.conn.execute("BEGIN")
            self._versions = {}
            self._reading = True
            try:
                yield
            finally:
                self._versions = None
                self._reading = False
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    def stamp(self) -> tuple[int, int] | None:
        """What names the committed state this connection reads: two equal stamps mean that
        no connection, in any process, committed a change between them. Inside a read
        transaction, the state that transaction sees; None inside a transaction that may
        hold uncommitted writes (a state no later stamp can vouch for).

        ``PRAGMA data_version`` changes when another connection commits (it checks the
        WAL index, about 3 us) but not for this connection's own commits, which
        ``total_changes`` counts (and never counts down, even for a rollback).
        """
        if self.conn.in_transaction and not self._reading:
            return None
        if self._frozen is not None:
            catalogfile.check_unchanged(self.path, self._frozen)
        try:
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.DatabaseError:
            with translate_errors(self.path):  # a context manager per query costs 1.5 us
                raise
        return version, self.conn.total_changes

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction; the caller must hold the store's writer lock."""
        with translate_errors(self.path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                io_step("commit")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError:
                # A COMMIT that fails for want of space leaves the transaction open and
                # uncommitted (SQLITE_FULL): roll it back so the connection stays usable.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            io_step("committed")

    @contextmanager
    def unchecked(self) -> Iterator[None]:
        """Reads inside return records whatever their checksums: for ``verify``, which
        reports each damaged record instead of stopping at the first."""
        self.checking = False
        try:
            yield
        finally:
            self.checking = True

    @contextmanager
    def fully_synced(self) -> Iterator[None]:
        """Commit with ``synchronous=FULL`` inside, whatever the store's durability: for
        transactions after which files are unlinked, which must never be undone by a power
        loss while the unlinks survive it."""
        if self.synchronous == "full":
            yield
            return
        self.conn.execute("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous = NORMAL")

    def checkpoint(self, *, truncate: bool = False) -> None:
        """Copy the WAL into the database file. ``truncate``: then empty the WAL file too,
        so that the pages of deleted rows leave it; that needs every other connection to
        be between reads, and is skipped (waiting at most ``TRUNCATE_WAIT_MS``) if one is
        not. The caller holds the writer lock (SQLite's WAL-reset bug)."""
        with translate_errors(self.path):
            if not truncate:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                return
            (wait,) = self.conn.execute("PRAGMA busy_timeout").fetchone()
            self.conn.execute(f"PRAGMA busy_timeout = {min(wait, TRUNCATE_WAIT_MS):d}")
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {wait:d}")

    def close(self) -> None:
        self.conn.close()

    # -- collections --------------------------------------------------------------------

    def _checked_collections(self, where: str, params: tuple) -> list[CollectionRecord]:
        out = []
        for cid, name, dir, dim, metric, config, version, nrows, chk in self.conn.execute(
            "SELECT id, name, dir, dim, metric, config, version, nrows, chk FROM collections "
            f"WHERE {where} ORDER BY name",
            params,
        ):
            check_record(self, "collections", (cid, name, dir, dim, metric, config, nrows), chk)
            if self.checking:
                paths.plain_name(dir, f"the folder of collection {name!r}", self.path)
            out.append(CollectionRecord(cid, name, dir, dim, metric, config, version))
        return out

    def _collection(self, where: str, param: Any) -> CollectionRecord | None:
        found = self._checked_collections(f"{where} = ?", (param,))
        return found[0] if found else None

    def collection_by_name(self, name: str) -> CollectionRecord | None:
        return self._collection("name", name)

    def collection_by_id(self, coll: int) -> CollectionRecord | None:
        return self._collection("id", coll)

    def collections(self) -> list[CollectionRecord]:
        return self._checked_collections("1", ())

    def collections_named(self, prefix: str) -> list[CollectionRecord]:
        """The collections whose names start with ``prefix``."""
        return self._checked_collections("substr(name, 1, ?) = ?", (len(prefix), prefix))

    def insert_collection(self, name: str, dir: str, dim: int, metric: str, config: str) -> int:
        table = self.db["collections"]
        table.insert(
            {
                "name": name,
                "dir": dir,
                "dim": dim,
                "metric": metric,
                "config": config,
                "version": 0,
                "nrows": 0,
                "created": time.time(),
            }
        )
        self._collection_changed(table.last_pk)
        return table.last_pk

    def _collection_changed(self, coll: int) -> None:
        self.conn.execute(
            f"UPDATE collections SET chk = {SQL_RECORD_CRC}(id, name, dir, dim, metric, config, "
            "nrows) WHERE id = ?",
            (coll,),
        )

    def rename_collection(self, coll: int, name: str) -> None:
        self.conn.execute("UPDATE collections SET name = ? WHERE id = ?", (name, coll))
        self._collection_changed(coll)

    def drop_collection(self, coll: int) -> list[str]:
        """Delete a collection's catalog rows; return the segment files it referenced."""
        files = [
            f for (f,) in self.conn.execute("SELECT file FROM segments WHERE coll = ?", (coll,))
        ]
        c = self.conn
        c.execute(
            "DELETE FROM tombstones WHERE seg IN (SELECT id FROM segments WHERE coll = ?)", (coll,)
        )
        files += [
            f for (f,) in self.conn.execute("SELECT file FROM ivf_files WHERE coll = ?", (coll,))
        ]
        self.drop_text(coll)
        for table in ("segments", "rows", "pending", "mindex", "ivf_files"):
            c.execute(f"DELETE FROM {table} WHERE coll = ?", (coll,))
        c.execute("DELETE FROM collections WHERE id = ?", (coll,))
        return [paths.plain_name(f, "a file", self.path) for f in files]

    def version(self, coll: int, dir: str) -> int | None:
        """The collection's write version; None if it no longer exists. ``dir`` (unique per
        collection ever created) guards against a deleted collection's id being reused."""
        known = self._versions
        if known is not None and (coll, dir) in known:
            return known[(coll, dir)]
        row = self.conn.execute(
            "SELECT version FROM collections WHERE id = ? AND dir = ?", (coll, dir)
        ).fetchone()
        version = row[0] if row else None
        if known is not None:
            known[(coll, dir)] = version
        return version

    def bump(self, coll: int) -> None:
        self._versions = None if self._versions is None else {}
        self.conn.execute("UPDATE collections SET version = version + 1 WHERE id = ?", (coll,))

    # -- rows ---------------------------------------------------------------------------

    def locate(self, coll: int, ids: Sequence[str]) -> dict[str, Location]:
        """Map the given ids that exist to where their vectors are."""
        # One statement whatever the count: the ids travel as one JSON array parameter.
        rows = self.conn.execute(
            "SELECT id, rid, seg, pos FROM rows "
            "WHERE coll = ? AND id IN (SELECT value FROM json_each(?))",
            (coll, json.dumps(list(ids))),
        )
        return {id_: Location(rid, seg, pos) for id_, rid, seg, pos in rows}

    def next_rid(self) -> int:
        # Past any range a staged ingest reserved (reserve_rids): its workers write those
        # rids into segment files before the rows exist.
        return self.conn.execute(
            "SELECT MAX((SELECT COALESCE(MAX(rid), 0) + 1 FROM rows), "
            "COALESCE((SELECT CAST(value AS INTEGER) FROM store_info WHERE key = ?), 0))",
            (RID_FLOOR_KEY,),
        ).fetchone()[0]

    def reserve_rids(self, n: int) -> int:
        """Inside a write transaction: reserve ``n`` consecutive row ids that no later
        write takes, for segments written elsewhere before their rows are inserted
        (storage/staging.py). Returns the first."""
        start = self.next_rid()
        self.conn.execute(
            "INSERT OR REPLACE INTO store_info (key, value) VALUES (?, ?)",
            (RID_FLOOR_KEY, str(start + n)),
        )
        return start

    def adopted(self, tokens: Sequence[str]) -> set[str]:
        """Which staged partitions ``tokens`` were adopted already (a token hashes its
        collection's folder name with its rows, so it names one collection)."""
        keys = [f"{ADOPTED_KEY}{t}" for t in tokens]
        found = self.conn.execute(
            "SELECT key FROM store_info WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(keys),),
        )
        return {key[len(ADOPTED_KEY) :] for (key,) in found}

    def record_adopted(self, tokens: Iterable[str]) -> None:
        """Inside the adopting transaction: partitions ``tokens`` are published, so a
        retried or repeated one is never published again."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO store_info (key, value) VALUES (?, '')",
            ((f"{ADOPTED_KEY}{t}",) for t in tokens),
        )

    def insert_rows(
        self,
        coll: int,
        rids: range,
        rows: RowBatch,
        seg: int | None,
        positions: Sequence[int] | None,
    ) -> None:
        """Insert ``rows`` with consecutive ``rids`` at ``positions`` of segment ``seg`` (None
        while pending), their filter entries and their documents' keyword postings."""
        ids, documents, packed = rows.ids, rows.documents, rows.packed
        self.index_documents(coll, rids, rows.counts)
        start = positions.start if isinstance(positions, range) else None
        self.conn.execute(
            "UPDATE collections SET nrows = nrows + ? WHERE id = ?", (len(rids), coll)
        )
        self._collection_changed(coll)
        if (
            all(m is None for m in packed)
            and (positions is None or start is not None)
            and not any("\x00" in d for d in documents if d is not None)
        ):
            # Without metadata blobs the rows travel as one JSON array, which SQLite unpacks
            # in C: about 3x faster than binding each row from Python. SQLite's JSON cuts a
            # text at an escaped NUL, so documents holding one take the path below (ids
            # hold none: inputs.ids refuses them).
            crcs = [row_crc(r, coll, i, d, None) for r, i, d in zip(rids, ids, documents)]
            table = json.dumps(list(zip(ids, documents, crcs)))
            self.conn.execute(
                "INSERT INTO rows (rid, coll, id, seg, pos, document, chk) "
                "SELECT ? + key, ?, value ->> 0, ?, ? + key, value ->> 1, value ->> 2 "
                "FROM json_each(?)",
                (rids.start, coll, seg, start, table),
            )
            return
        pos: Iterable = (int(p) for p in positions) if positions is not None else [None] * len(rids)
        self.conn.executemany(
            "INSERT INTO rows (rid, coll, id, seg, pos, document, meta, chk) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (
                (rid, coll, id_, seg, p, doc, meta, row_crc(rid, coll, id_, doc, meta))
                for rid, id_, p, doc, meta in zip(rids, ids, pos, documents, packed)
            ),
        )
        self._insert_entries(coll, records.all_entries(zip(rids, rows.metadata)))

    def _insert_entries(self, coll: int, entries: list[tuple]) -> None:
        self.conn.executemany(
            "INSERT INTO mindex (coll, key, kind, value, elem, rid) VALUES (?,?,?,?,?,?)",
            ((coll, *e) for e in entries),
        )

    def _delete_entries(self, coll: int, rids: Sequence[int]) -> None:
        stored = []
        for part in chunked(rids):
            stored += self.conn.execute(
                "SELECT rid, meta FROM rows "
                f"WHERE rid IN ({placeholders(len(part))}) AND meta IS NOT NULL",
                part,
            ).fetchall()
        self.conn.executemany(
            "DELETE FROM mindex WHERE coll = ? AND key = ? AND kind = ? AND value = ? "
            "AND elem = ? AND rid = ?",
            ((coll, *e) for e in records.all_entries((r, records.unpack(b)) for r, b in stored)),
        )

    def delete_rows(self, coll: int, rids: Sequence[int]) -> None:
        self._delete_entries(coll, rids)
        self.unindex_documents(coll, rids)
        deleted = 0
        for part in chunked(rids):
            deleted += self.conn.execute(
                f"DELETE FROM rows WHERE rid IN ({placeholders(len(part))})", part
            ).rowcount
        self.conn.execute("UPDATE collections SET nrows = nrows - ? WHERE id = ?", (deleted, coll))
        self._collection_changed(coll)

    def set_metadata(
        self, coll: int, rids: Sequence[int], metas: Sequence[dict], packed: Sequence[bytes | None]
    ) -> None:
        self._delete_entries(coll, rids)
        self.conn.executemany(
            f"UPDATE rows SET meta = ?1, chk = {SQL_ROW_CRC}(rid, coll, id, document, ?1) "
            "WHERE rid = ?2",
            zip(packed, rids),
        )
        self._insert_entries(coll, records.all_entries(zip(rids, metas)))

    def release_vectors(self, located: Iterable[Location]) -> None:
        """Retire the stored vectors of located rows: tombstones or pending rows."""
        sealed, waiting = [], []
        for rid, seg, pos in located:
            if seg is None:
                waiting.append(rid)
            else:
                sealed.append((seg, pos))
        self.conn.executemany(
            "INSERT INTO tombstones (seg, pos, chk) VALUES (?, ?, ?)",
            ((seg, int(pos), record_crc(seg, int(pos))) for seg, pos in sealed),
        )
        for part in chunked(waiting):
            self.conn.execute(f"DELETE FROM pending WHERE rid IN ({placeholders(len(part))})", part)

    def set_location(
        self, rids: Sequence[int], seg: int | None, positions: Sequence[int] | None
    ) -> None:
        pos: Iterable = positions if positions is not None else itertools.repeat(None)
        self.conn.executemany(
            "UPDATE rows SET seg = ?, pos = ? WHERE rid = ?",
            # int(): a NumPy integer would bind as an 8-byte BLOB (it has the buffer protocol)
            ((seg, None if p is None else int(p), int(r)) for p, r in zip(pos, rids)),
        )

    def set_documents(
        self,
        coll: int,
        rids: Sequence[int],
        documents: Sequence[str | None],
        counts: Sequence[Counts],
    ) -> None:
        """Replace documents and their keyword postings (``counts``: the analysed documents)."""
        self.unindex_documents(coll, rids)
        self.conn.executemany(
            f"UPDATE rows SET document = ?1, chk = {SQL_ROW_CRC}(rid, coll, id, ?1, meta) "
            "WHERE rid = ?2",
            zip(documents, rids),
        )
        self.index_documents(coll, rids, counts)

    # -- reads for search and get -------------------------------------------------------

    def filtered(self, coll: int, sql: str, params: list) -> list[Location]:
        """Where the vectors of ``coll``'s rows satisfying a compiled filter are."""
        rows = self.conn.execute(
            f"SELECT r.rid, r.seg, r.pos FROM rows r WHERE {_in_coll(sql)} AND {sql}",
            (coll, *params),
        )
        return [Location(*row) for row in rows]

    def filtered_rids(self, coll: int, sql: str, params: list) -> np.ndarray:
        """The sorted, distinct rids of ``coll``'s rows satisfying a compiled filter."""
        (text,) = self.conn.execute(rid_query(sql), (coll, *params)).fetchone()
        if not text:
            return np.zeros(0, dtype=np.int64)
        try:
            rids = np.fromstring(text, dtype=np.int64, sep=",")  # C parse: 7x split + int
        except ValueError:
            raise CorruptStoreError(
                f"{self.path}: a row id in the catalog is not an integer"
            ) from None
        if len(rids) > 1 and not (rids[1:] > rids[:-1]).all():
            rids = np.sort(rids)  # a filter read from several index ranges (or element rows)
            rids = rids[np.concatenate(([True], rids[1:] != rids[:-1]))]
        return rids  # sorted and distinct; np.unique would cost 10x (it hashes)

    def count(self, coll: int, sql: str, params: list) -> int:
        if sql == "1":
            row = self.conn.execute(
                "SELECT id, name, dir, dim, metric, config, nrows, chk FROM collections "
                "WHERE id = ?",
                (coll,),
            ).fetchone()
            check_record(self, "collections", row[:7], row[7])
            return row[6]
        return self.conn.execute(
            f"SELECT COUNT(*) FROM rows r WHERE {_in_coll(sql)} AND {sql}", (coll, *params)
        ).fetchone()[0]

    def records(self, rids: Sequence[int]) -> dict[int, Record]:
        """``rid -> Record(id, document, meta)`` for the given rids, which must all exist (they come
        from the snapshot's segments, pending rows or keyword postings)."""
        out = {}
        for part in chunked(rids):
            for rid, coll, id_, doc, meta, crc in self.conn.execute(
                "SELECT rid, coll, id, document, meta, chk FROM rows "
                f"WHERE rid IN ({placeholders(len(part))})",
                part,
            ):
                check_row(self, rid, coll, id_, doc, meta, crc)
                out[rid] = _new_record(Record, (id_, doc, meta))
        if len(out) != len(set(rids)):
            lost = sorted(set(rids) - set(out))[:5]
            raise CorruptStoreError(
                f"catalog {self.path}: rows {lost} are named by stored vectors or postings but "
                "missing from the catalog; it is damaged (run `vecstore verify`)"
            )
        return out

    def rows_by_id(self, coll: int, ids: Sequence[str]) -> dict[str, StoredRow]:
        """The rows of the ids that exist, by id."""
        out = {}
        for part in chunked(ids):
            for id_, rid, seg, pos, doc, meta, crc in self.conn.execute(
                "SELECT id, rid, seg, pos, document, meta, chk FROM rows "
                f"WHERE coll = ? AND id IN ({placeholders(len(part))})",
                (coll, *part),
            ):
                check_row(self, rid, coll, id_, doc, meta, crc)
                out[id_] = StoredRow(id_, rid, seg, pos, doc, meta)
        return out

    def rows_where(
        self, coll: int, sql: str, params: list, limit: int | None, offset: int
    ) -> list[StoredRow]:
        """Rows in insertion order, paginated. ``limit`` and ``offset`` may be any
        non-negative ints: past 2**63 - 1 (SQLite's largest) they mean the same as that."""
        rows = self.conn.execute(
            "SELECT r.id, r.rid, r.seg, r.pos, r.document, r.meta, r.chk FROM rows r "
            f"WHERE {_in_coll(sql)} AND {sql} ORDER BY r.rid LIMIT ? OFFSET ?",
            (
                coll,
                *params,
                -1 if limit is None else min(limit, INT64_MAX),
                min(offset, INT64_MAX),
            ),
        ).fetchall()
        for id_, rid, _, _, doc, meta, crc in rows:
            check_row(self, rid, coll, id_, doc, meta, crc)
        if sql == "1" and self.checking:  # all rows: as many as the (checksummed) count says
            expected = max(0, self.count(coll, "1", []) - offset)
            if len(rows) != (expected if limit is None else min(limit, expected)):
                raise CorruptStoreError(
                    f"catalog {self.path}: the collection counts {expected + offset} rows but "
                    f"its table gives {len(rows) + offset}; the catalog is damaged (run "
                    "`vecstore verify`)"
                )
        return [StoredRow(*row[:6]) for row in rows]

    def set_config(self, coll: int, config: str) -> None:
        self.conn.execute("UPDATE collections SET config = ? WHERE id = ?", (config, coll))
        self._collection_changed(coll)

    # -- intents (storage/intents.py) ---------------------------------------------------

    def record_intent(self, token: str, live: set[str]) -> None:
        """Inside the write transaction of intent ``token``: store the token, whose commit
        proves the transaction committed, and forget the tokens of intents whose records
        are no longer on disk (``live``: the tokens of those that are)."""
        hi = INTENT_KEY[:-1] + chr(ord(INTENT_KEY[-1]) + 1)
        stale = [
            (key,)
            for (key,) in self.conn.execute(
                "SELECT key FROM store_info WHERE key >= ? AND key < ?", (INTENT_KEY, hi)
            )
            if key[len(INTENT_KEY) :] not in live
        ]
        self.conn.executemany("DELETE FROM store_info WHERE key = ?", stale)
        self.conn.execute(
            "INSERT OR REPLACE INTO store_info (key, value) VALUES (?, '')", (INTENT_KEY + token,)
        )

    def intent_committed(self, token: str) -> bool:
        with translate_errors(self.path):
            return bool(
                self.conn.execute(
                    "SELECT 1 FROM store_info WHERE key = ?", (INTENT_KEY + token,)
                ).fetchone()
            )

    def segment_files(self) -> dict[str, set[str]]:
        """Every referenced file, by collection directory: what cleanup must keep."""
        with translate_errors(self.path):
            keep: dict[str, set[str]] = {
                d: set() for (d,) in self.conn.execute("SELECT dir FROM collections")
            }
            for table in ("segments", "ivf_files"):
                for d, f in self.conn.execute(
                    f"SELECT c.dir, t.file FROM {table} t JOIN collections c ON c.id = t.coll"
                ):
                    keep[d].add(f)
        if not all(
            isinstance(d, str) and all(isinstance(f, str) for f in fs) for d, fs in keep.items()
        ):
            raise CorruptStoreError(f"catalog {self.path}: a file name is not text; it is damaged")
        return keep
