"""The engine under the public objects: one open store directory and its shared state.

A ``Store`` owns what every collection of a store shares: the catalog connection and its read
and write transactions, the cross-process writer lock, the thread lock, the failure flag that
refuses writes after an I/O error, the collection directories, the cache of mapped segment
files and the snapshots built over them, the encoders, the keyword-postings cache, the
query-embedding cache and the progress bars. ``Database`` creates one; ``Collection``, its
reader and writer, ingest, export and audit hold it. Must not import ``database`` or ``collection``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import CollectionConfig, cache_key
from .encoders import base as encoder_base
from .encoders.base import Encoder
from .errors import (
    CollectionExists,
    CollectionNotFound,
    CorruptStoreError,
    DiskFullError,
    LockTimeout,
    ReadOnlyError,
    StoreClosed,
    StoreIOError,
    StoreNotFound,
)
from .fieldcols import FieldColumns
from .filtercache import FilterCache
from .index import flat
from .index.bm25 import PostingCache
from .index.plan import ResidentPages
from .lru import LRU
from .storage import cleanup, layout, staging
from .storage.catalog import Catalog, CollectionRecord
from .storage.changes import ChangeCounter
from .storage.files import WriterLock, make_dir
from .storage.intents import Intent
from .storage.layout import CATALOG, COLLECTIONS, LOCK
from .storage.paths import collection_dir
from .storage.records import Record
from .storage.segments import Segment

if TYPE_CHECKING:
    from .storage.cleanup import RestoreInfo

PROGRESS_MIN = 500  # items of work before a progress bar is worth showing
# Query embeddings kept in memory (1.5 MB at 384 dimensions): an interactive user or a
# service repeats queries, and embedding one costs ~20 ms, a search far less.
QUERY_CACHE_SIZE = 1024
#: Records (id, document, metadata) a collection's ``Fresh`` keeps at most, and their bytes
#: (documents and packed metadata) at most: past either it starts over. Reading a record
#: costs ~2 us of SQL (random b-tree look-ups), a kept one ~0.1 us: a graph query's ten rows
#: are a tenth of its time when read.
FRESH_RECORDS = 65536
FRESH_BYTES = 16 << 20
#: Names of collections being imported; a user's collection name cannot start with ".".
STAGING_PREFIX = ".staged-"


class SnapshotRace(Exception):
    """A file a snapshot needs was unlinked by a commit after the read transaction began
    (a compaction or retrain): retry in a fresh transaction. Never escapes the package."""


class Fresh:
    """A collection's snapshot and the records read for it, valid while the catalog's
    ``stamp`` is unchanged: a query may then use them without a read transaction or SQL."""

    __slots__ = ("stamp", "snap", "spec", "records", "metas", "nbytes", "counter", "plan")

    def __init__(self, stamp: tuple, snap: flat.Snapshot, spec: Any):
        self.stamp = stamp
        self.snap = snap
        self.spec = spec  # the index spec at ``stamp``, for checking per-query overrides
        self.records: dict[int, Record] = {}
        # unpacked metadata of kept records whose values are all scalars (never handed out:
        # a query returns copies), by rid
        self.metas: dict[int, dict] = {}
        self.nbytes = 0
        # the change counter's value while ``stamp`` is known to hold (None: not known yet;
        # ``Store.fresh`` sets it once an SQL check has confirmed the stamp)
        self.counter: int | None = None
        # the single-query plan of ``snap`` (``index.quick``), built on first use
        self.plan: Any = None


class Store:
    """One open store directory. Thread-safe: one re-entrant lock guards every operation.

    Parameters are those of ``vecstore.open``, already validated.
    """

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool,
        durability: str,
        lock_timeout: float,
        seal_rows: int,
        progress: bool,
        create: bool,
    ):
        self.path = path
        self.read_only = read_only
        self.lock_timeout = lock_timeout
        self.seal_rows = seal_rows
        self.show_progress = progress
        self.lock = threading.RLock()
        # Caches keyed by the collection's directory name, unique for every collection ever
        # created (catalog ids can be reused after a delete).
        self._files: dict[str, dict[str, Segment]] = {}
        self._snapshots: dict[str, flat.Snapshot] = {}
        self._pages: dict[str, ResidentPages] = {}
        self._fresh: dict[str, Fresh] = {}
        self._encoders: dict[str, Encoder] = {}
        self.text_cache = PostingCache()
        self.query_cache = LRU(QUERY_CACHE_SIZE)
        self.filter_cache = FilterCache()
        self.field_columns = FieldColumns()
        self._broken: str | None = None
        self._writer: WriterLock | None = None
        self._catalog: Catalog | None = None
        # None: no counter (an older store opened read-only), every fresh check uses SQL
        self._changes: ChangeCounter | None = None
        catalog_path = path / CATALOG
        if read_only or not create:
            if not os.path.lexists(catalog_path):  # not a file: Catalog names what it is
                raise StoreNotFound(f"no vecstore store at {path} (no {CATALOG})")
        if read_only:
            self._catalog = Catalog(
                catalog_path, read_only=True, synchronous=durability, busy_timeout=lock_timeout
            )
            try:
                self._catalog.check_schema()
                if not self._catalog.immutable:  # nobody writes: the counter means nothing
                    self._changes = ChangeCounter.open(path, write=False)
            except BaseException:
                self._catalog.close()
                self._catalog = None
                raise
            return
        layout.prepare(path)
        self._writer = WriterLock(path / LOCK)
        try:
            self._changes = ChangeCounter.open(path, write=True)
            self._writer.acquire(lock_timeout)
            try:
                self._changes.begin()  # opening may migrate and clean up: commits
                try:
                    self._open_for_writing(catalog_path, durability)
                finally:
                    self._changes.end()
            finally:
                self._writer.release()
        except BaseException:
            self._writer.close()
            if self._changes is not None:
                self._changes.close()
                self._changes = None
            raise

    def _open_for_writing(self, catalog_path: Path, durability: str) -> None:
        cat = Catalog(
            catalog_path, read_only=False, synchronous=durability, busy_timeout=self.lock_timeout
        )
        try:
            if cat.is_empty() and any((self.path / COLLECTIONS).iterdir()):
                # An empty catalog beside collection data was emptied, not created:
                # migrating would start a new store and its cleanup delete the data.
                raise CorruptStoreError(
                    f"catalog {catalog_path} is empty but {self.path / COLLECTIONS} "
                    "holds collection files; refusing to open (restore the catalog "
                    "from a backup)"
                )
            cat.migrate(analyzer=lambda config: CollectionConfig.parse(config, "?").text.counts)
            cat.check_schema()
            self._drop_staged(cat)
            self._remove_orphans(cat)
        except BaseException:
            cat.close()
            raise
        self._catalog = cat

    def _remove_orphans(self, cat: Catalog) -> None:
        """Delete the leftovers of unacknowledged writes; move any other file no catalog
        row names to ``quarantine/`` and warn (storage/cleanup.py). Runs under the writer
        lock, so no other process can be between writing a file and publishing it."""
        start = time.perf_counter()
        staging.sweep(self.path)  # runs of staged ingests whose client died (staging.py)
        report = cleanup.tidy(self.path, cat)
        if report.deleted or report.quarantined or report.failed:
            logging.getLogger(__name__).info(
                "cleanup of %s: %d leftover files deleted, %d quarantined, %d left, in %.3f s",
                self.path,
                len(report.deleted),
                len(report.quarantined),
                len(report.failed),
                time.perf_counter() - start,
            )
        message = report.warning(self.path)
        if message:
            warnings.warn(f"vecstore.open({str(self.path)!r}): {message}", RuntimeWarning, 6)

    # -- transactions -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._catalog is None

    def check_open(self) -> None:
        if self._catalog is None:
            raise StoreClosed(f"store {self.path} is closed")

    @contextmanager
    def reading(self) -> Iterator[Catalog]:
        """The catalog inside one read transaction (a consistent snapshot)."""
        with self.lock:
            self.check_open()
            with self._catalog.read():
                yield self._catalog

    @contextmanager
    def writing(self) -> Iterator[Catalog]:
        """Hold the thread lock and the cross-process writer lock (not yet a transaction)."""
        with self.lock:
            self.check_open()
            if self.read_only:
                raise ReadOnlyError(f"store {self.path} was opened read-only")
            if self._broken:
                raise StoreIOError(
                    f"store {self.path} refuses writes after an earlier I/O failure "
                    f"({self._broken}); close and reopen it"
                )
            self._writer.acquire(self.lock_timeout)
            try:
                # readers of any process trust their kept snapshots again only after end()
                self._changes.begin()
                try:
                    yield self._catalog
                finally:
                    self._changes.end()
            except DiskFullError:
                raise  # nothing was published or committed: the handle stays usable
            except StoreIOError as exc:
                self.mark_broken(exc)
                raise
            finally:
                self._writer.release()

    def mark_broken(self, exc: StoreIOError) -> None:
        """Refuse every later write: after a failed write or fsync the kernel may have
        dropped dirty pages, so nothing written through this handle can be trusted."""
        if not isinstance(exc, DiskFullError):
            self._broken = str(exc)

    # -- collections --------------------------------------------------------------------

    def create_collection(
        self, name: str, config: CollectionConfig, encoder: Encoder | None = None
    ) -> CollectionRecord:
        """Create a collection (the caller checked ``name``); ``CollectionExists`` if taken."""
        with self.writing() as cat:
            if cat.collection_by_name(name) is not None:
                raise CollectionExists(f"collection {name!r} already exists")
            dirname = f"{name.lstrip('.')}-{uuid.uuid4().hex[:12]}"
            make_dir(self.path / COLLECTIONS / dirname)
            with cat.write():
                coll = cat.insert_collection(
                    name, dirname, config.dim, config.metric, config.to_json()
                )
            record = cat.collection_by_id(coll)
        if encoder is not None:
            self.replace_encoder(record, encoder)
        return record

    def create_staged(self, config: CollectionConfig, encoder: Encoder | None) -> CollectionRecord:
        """A collection under a name no user can give (``STAGING_PREFIX``), hidden from
        listings and dropped by the next read-write open unless ``publish`` renames it: a
        whole import becomes visible in one commit, or never."""
        return self.create_collection(f"{STAGING_PREFIX}{uuid.uuid4().hex}", config, encoder)

    def publish(self, record: CollectionRecord, name: str) -> CollectionRecord:
        """Give a staged collection its real name, in one transaction."""
        with self.writing() as cat:
            if cat.collection_by_name(name) is not None:
                raise CollectionExists(f"collection {name!r} already exists")
            with cat.write():
                cat.rename_collection(record.id, name)
            return cat.collection_by_id(record.id)

    def drop_collection(self, record: CollectionRecord) -> None:
        """Delete a collection's rows, and the embeddings only it used, in one commit; then
        its folder, and the WAL's copies of its rows."""
        with self.writing() as cat:
            self._drop(cat, record)
            self.forget(record)
            cat.checkpoint(truncate=True)

    def _drop(self, cat: Catalog, record: CollectionRecord) -> None:
        intent = Intent(self.path, cat)  # removes the folder after the commit
        intent.retiring_folder(self.collection_dir(record))  # refused if it leads outside
        with cat.fully_synced(), intent.transaction():
            cat.drop_collection(record.id)
            cat.prune_embeddings(cache_key)  # its texts, unless another collection has them

    def _drop_staged(self, cat: Catalog) -> None:
        """Drop the staged collections of imports that never published (a killed process)."""
        with cat.read():  # a damaged catalog: CorruptStoreError, not a raw sqlite3 error
            staged = cat.collections_named(STAGING_PREFIX)
        for record in staged:
            self._drop(cat, record)

    def clear_embedding_cache(self) -> int:
        """Delete every cached embedding; return how many."""
        with self.writing() as cat:
            with cat.write():
                removed = cat.clear_embeddings()
            cat.checkpoint(truncate=True)
        self.query_cache.clear()
        return removed

    def restore_quarantine(self) -> RestoreInfo:
        """Move back the quarantined files the catalog names again (storage/cleanup.py)."""
        with self.writing() as cat:
            return cleanup.restore(self.path, cat)

    # -- collection files ---------------------------------------------------------------

    def collection_dir(self, record: CollectionRecord) -> Path:
        return collection_dir(self.path, record.dir)  # checked: inside the store

    def file_cache(self, record: CollectionRecord) -> dict[str, Segment]:
        """The collection's mapped segment and index files, by file name."""
        return self._files.setdefault(record.dir, {})

    def forget_files(self, record: CollectionRecord, names: Iterable[str]) -> None:
        """Unmap files a commit has just unpublished (its intent unlinks them). Readers that
        mapped them keep their view; the next snapshot no longer names them."""
        cache = self._files.get(record.dir, {})
        for name in names:
            cache.pop(name, None)

    def snapshot(
        self, cat: Catalog, record: CollectionRecord, *, defer_checks: bool = False
    ) -> flat.Snapshot:
        """The snapshot of the catalog version visible in the current read transaction, its
        segments verified; with ``defer_checks``, segments mapped now may still have to be
        (see ``flat.load_snapshot``: the query path verifies them as it scans them).

        Raises ``CollectionNotFound`` if the collection was deleted, ``SnapshotRace`` if a
        file it names vanished meanwhile (retry in a fresh transaction).
        """
        version = cat.version(record.id, record.dir)
        if version is None:
            raise CollectionNotFound(f"collection {record.name!r} was deleted")
        snap = self._snapshots.get(record.dir)
        if snap is None or snap.version != version:
            try:
                snap = flat.load_snapshot(
                    cat,
                    record.id,
                    self.collection_dir(record),
                    record.dim,
                    version,
                    snap,
                    self.file_cache(record),
                    defer_checks=defer_checks,
                )
            except FileNotFoundError as exc:
                raise SnapshotRace(str(exc)) from exc
            self._snapshots[record.dir] = snap
        if not defer_checks:
            snap.verify()
        return snap

    def fresh(self, record: CollectionRecord) -> Fresh | None:
        """The collection's ``Fresh`` if no commit, by any connection of any process, has
        happened since it was kept; else None. One ``pread`` of the change counter while it
        holds the value recorded with the entry, else one ``PRAGMA data_version`` (no
        transaction), after which the counter's value is recorded if it was steady."""
        with self.lock:
            if self._catalog is None:
                self.check_open()
            entry = self._fresh.get(record.dir)
            if entry is None:
                return None
            changes = self._changes
            now = None if changes is None else changes.read()
            if now is not None and now == entry.counter:
                return entry
            if entry.stamp != self._catalog.stamp():
                return None
            # ``now`` was read before the stamp was confirmed: if it was even, every writer
            # counted in it had finished, and any later commit moves the counter off it first
            if ChangeCounter.steady(now):
                entry.counter = now
            return entry

    def still_fresh(self, entry: Fresh) -> bool:
        """Whether nothing was committed since ``entry`` was last confirmed fresh, by the
        change counter alone (False when the counter cannot tell). Call holding ``lock``."""
        changes = self._changes
        return (
            changes is not None and entry.counter is not None and (changes.read() == entry.counter)
        )

    def records_at(self, entry: Fresh, rids: list[int]) -> dict[int, Record] | None:
        """The records of ``rids`` as they were when ``entry`` was last found fresh, added to
        it; None if a commit has landed since (the caller starts over). While the change
        counter vouches for the entry this is one SELECT, no transaction: the counter, read
        again after it, says whether any commit began before it ended."""
        with self.lock:
            self.check_open()
            cat = self._catalog
            if self.still_fresh(entry):
                try:
                    got = cat.records(rids)
                except CorruptStoreError:
                    if self.still_fresh(entry):
                        raise
                    return None  # a commit deleted rows meanwhile: no damage, start over
                if not self.still_fresh(entry):
                    return None
            else:
                with cat.read():
                    if cat.stamp() != entry.stamp:
                        return None
                    got = cat.records(rids)
            self.add_records(entry, got)
            return got

    def keep_fresh(
        self,
        cat: Catalog,
        record: CollectionRecord,
        snap: flat.Snapshot,
        found: dict,
        spec: Callable[[], Any],
    ) -> None:
        """Keep ``snap`` and the records ``found`` for the next queries, stamped with the
        state of the current read transaction (nothing is kept inside a write). ``spec``
        gives the collection's index spec in that transaction, read once per new entry."""
        stamp = cat.stamp()
        if stamp is None:
            return
        entry = self._fresh.get(record.dir)
        if entry is None or entry.stamp != stamp or entry.snap is not snap:
            entry = self._fresh[record.dir] = Fresh(stamp, snap, spec())
        self.add_records(entry, found)

    def add_records(self, entry: Fresh, found: dict[int, Record]) -> None:
        """Add records read at ``entry``'s stamp to it, within ``FRESH_RECORDS`` and
        ``FRESH_BYTES``."""
        size = sum(len(r.id) + len(r.document or "") + len(r.meta or b"") for r in found.values())
        if len(entry.records) + len(found) > FRESH_RECORDS or entry.nbytes + size > FRESH_BYTES:
            entry.records, entry.metas, entry.nbytes = {}, {}, 0
        if size <= FRESH_BYTES:
            entry.records.update(found)
            entry.nbytes += size

    def model(self, cat: Catalog, record: CollectionRecord):
        """The collection's ANN model, or None (read inside the current transaction)."""
        try:
            return flat.load_model(
                cat, record.id, self.collection_dir(record), self.file_cache(record)
            )
        except FileNotFoundError as exc:
            raise SnapshotRace(str(exc)) from exc

    def resident_pages(self, record: CollectionRecord) -> ResidentPages:
        """What re-ranking has faulted in of the collection's mapped segments."""
        pages = self._pages.get(record.dir)  # not setdefault: it would build one per query
        if pages is None:
            pages = self._pages[record.dir] = ResidentPages()
        return pages

    def forget(self, record: CollectionRecord) -> None:
        """Drop everything cached for a deleted collection."""
        self._files.pop(record.dir, None)
        self._snapshots.pop(record.dir, None)
        self._pages.pop(record.dir, None)
        self._fresh.pop(record.dir, None)
        self._encoders.pop(record.dir, None)
        self.text_cache.drop(record.dir)
        self.filter_cache.drop(record.dir)
        self.field_columns.drop(record.dir)

    # -- encoders and progress ----------------------------------------------------------

    def encoder(self, record: CollectionRecord) -> Encoder | None:
        """The encoder in use for a collection, if one was attached or built."""
        return self._encoders.get(record.dir)

    def set_encoder(self, record: CollectionRecord, encoder: Encoder) -> Encoder:
        """Attach ``encoder`` unless another thread attached one first; return the one kept."""
        with self.lock:
            return self._encoders.setdefault(record.dir, encoder)

    def replace_encoder(self, record: CollectionRecord, encoder: Encoder) -> None:
        with self.lock:
            self._encoders[record.dir] = encoder

    def encoding(self):
        """A context in which encoders load models with progress output only if the store
        shows progress (``progress=`` of ``vecstore.open``, the command line's ``-q``)."""
        return encoder_base.progress(self.show_progress)

    @contextmanager
    def progress(
        self, total: int, what: str, *, unit: str = "text", minimum: int = PROGRESS_MIN
    ) -> Iterator[Callable[[int], None]]:
        """A tqdm progress bar with an ETA for long work (if tqdm is installed and progress is
        on); yields a function to call with the number of units done."""
        bar = None
        if self.show_progress and total >= minimum:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                bar = tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "B", leave=False)
        try:
            yield (bar.update if bar is not None else lambda n: None)
        finally:
            if bar is not None:
                bar.close()

    # -- closing ------------------------------------------------------------------------

    def clear_query_caches(self, *, filter_columns: bool = True) -> None:
        """Drop the in-process filter results and query embeddings, and unless told
        otherwise the per-field filter columns (``Database``)."""
        self.filter_cache.clear()
        self.query_cache.clear()
        if filter_columns:
            self.field_columns.clear()

    def close(self) -> None:
        """Close the store. Further use raises ``StoreClosed``. Closing twice is harmless."""
        with self.lock:
            if self._catalog is None:
                return
            self._files.clear()
            self._snapshots.clear()
            self._pages.clear()
            self._fresh.clear()
            self._encoders.clear()
            self.query_cache.clear()
            self.filter_cache.clear()
            self.field_columns.clear()
            self.text_cache = PostingCache()
            # Closing the last connection checkpoints the WAL; serialise that with writers in
            # other processes (SQLite's WAL-reset bug needs two at once). If another writer
            # keeps the lock past the timeout, close anyway.
            locked = False
            if self._writer is not None:
                try:
                    self._writer.acquire(self.lock_timeout)
                    locked = True
                except LockTimeout:
                    pass
            try:
                self._catalog.close()
            finally:
                self._catalog = None
                if self._changes is not None:
                    self._changes.close()
                    self._changes = None
                if self._writer is not None:
                    if locked:
                        self._writer.release()
                    self._writer.close()
