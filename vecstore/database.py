"""The store: ``vecstore.open(path)`` returns a ``Database`` over one directory.

A store directory holds ``catalog.db`` (SQLite, WAL), a ``LOCK`` file that serialises writers
across processes, and ``collections/<dir>/`` folders of immutable segment files. The Database
owns the catalog connection, the writer lock and the cache of mapped segments; it hands out
``Collection`` objects. Thread-safe: one re-entrant lock guards every operation.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import inputs, text
from .collection import METRICS, Collection
from .encoders.base import Encoder, cache_key_of, resolve_encoder
from .errors import (
    CollectionExists,
    CollectionNotFound,
    CorruptStoreError,
    DimensionMismatch,
    DiskFullError,
    EncoderMismatch,
    InvalidInput,
    LockTimeout,
    ReadOnlyError,
    StoreClosed,
    StoreIOError,
    StoreNotFound,
)
from .index import specs
from .index.bm25 import PostingCache
from .index.flat import Snapshot
from .index.specs import Flat, Spec
from .storage import cleanup, layout
from .storage.catalog import Catalog, CollectionRecord
from .storage.files import WriterLock, fsync_dir
from .storage.intents import Intent
from .storage.layout import CATALOG, COLLECTIONS, LOCK
from .storage.segments import Segment

if TYPE_CHECKING:
    from .audit import VerifyReport
    from .portable import ExportInfo
    from .storage.backup import BackupInfo
    from .storage.cleanup import RestoreInfo

DURABILITY = ("full", "normal")
PROGRESS_MIN = 500  # items of work before a progress bar is worth showing


def open(
    path: str | os.PathLike,
    *,
    read_only: bool = False,
    durability: Literal["full", "normal"] = "full",
    lock_timeout: float = 10.0,
    seal_rows: int = 4096,
    progress: bool = True,
    create: bool = True,
) -> Database:
    """Open (or create) the store in directory ``path``.

    Parameters
    ----------
    path : str or path-like
        The store's directory. Read-write opening creates it if it does not exist; an
        existing non-empty directory that is not a store is refused.
    read_only : bool
        Open without taking part in writes; many read-only processes may share a store
        with one writing process.
    durability : {"full", "normal"}
        ``"full"`` (default): every acknowledged write has been fsynced. ``"normal"``:
        faster commits; a power loss (not a process crash) may lose the last writes, but
        never corrupts the store.
    lock_timeout : float
        Seconds a writer waits for another process's write to finish before raising
        ``LockTimeout``: a finite number from 0 to 1,000,000.
    seal_rows : int
        Small writes wait durably in the catalog and are sealed into a segment file once
        this many vectors are pending; writes of at least this many rows go straight to a
        segment file.
    progress : bool
        Show tqdm progress bars on long work (embedding many documents). Off for scripts.
    create : bool
        Whether a read-write open creates a missing store; if False it raises
        ``StoreNotFound`` instead.
    """
    return Database(
        path,
        read_only=read_only,
        durability=durability,
        lock_timeout=lock_timeout,
        seal_rows=seal_rows,
        progress=progress,
        create=create,
    )


class Database:
    """A vecstore store. Use ``vecstore.open()``; close it, or use it as a context manager."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        read_only: bool = False,
        durability: str = "full",
        lock_timeout: float = 10.0,
        seal_rows: int = 4096,
        progress: bool = True,
        create: bool = True,
    ):
        if durability not in DURABILITY:
            raise InvalidInput(f"durability must be one of {DURABILITY}; got {durability!r}")
        if isinstance(seal_rows, bool) or not isinstance(seal_rows, int) or seal_rows < 1:
            raise InvalidInput(f"seal_rows must be a positive int; got {seal_rows!r}")
        self.path = Path(path)
        self.read_only = read_only
        self.lock_timeout = inputs.lock_timeout(lock_timeout)
        self.seal_rows = seal_rows
        self.progress = bool(progress)
        self._lock = threading.RLock()
        # Caches keyed by the collection's directory name, unique for every collection ever
        # created (catalog ids can be reused after a delete).
        self._segments: dict[str, dict[str, Segment]] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._encoders: dict[str, Encoder] = {}
        self._text_cache = PostingCache()
        self._broken: str | None = None
        self._writer: WriterLock | None = None
        catalog_path = self.path / CATALOG
        if read_only or not create:
            if not catalog_path.is_file():
                raise StoreNotFound(f"no vecstore store at {self.path} (no {CATALOG})")
        if read_only:
            self._catalog = Catalog(
                catalog_path, read_only=True, synchronous=durability, busy_timeout=self.lock_timeout
            )
            try:
                self._catalog.check_schema()
            except BaseException:
                self._catalog.close()
                raise
            return
        layout.prepare(self.path)
        self._writer = WriterLock(self.path / LOCK)
        try:
            self._writer.acquire(self.lock_timeout)
            try:
                self._catalog = Catalog(
                    catalog_path,
                    read_only=False,
                    synchronous=durability,
                    busy_timeout=self.lock_timeout,
                )
                try:
                    if self._catalog.is_empty() and any((self.path / COLLECTIONS).iterdir()):
                        # An empty catalog beside collection data was emptied, not created:
                        # migrating would start a new store and its cleanup delete the data.
                        raise CorruptStoreError(
                            f"catalog {catalog_path} is empty but {self.path / COLLECTIONS} "
                            "holds collection files; refusing to open (restore the catalog "
                            "from a backup)"
                        )
                    self._catalog.migrate(analyze=text.counts)
                    self._catalog.check_schema()
                    self._remove_orphans()
                except BaseException:
                    self._catalog.close()
                    raise
            finally:
                self._writer.release()
        except BaseException:
            self._writer.close()
            raise

    def _remove_orphans(self) -> None:
        """Delete the leftovers of unacknowledged writes; move any other file no catalog
        row names to ``quarantine/`` and warn (storage/cleanup.py). Runs under the writer
        lock, so no other process can be between writing a file and publishing it."""
        message = cleanup.tidy(self.path, self._catalog).warning(self.path)
        if message:
            warnings.warn(f"vecstore.open({str(self.path)!r}): {message}", RuntimeWarning, 4)

    # -- plumbing used by Collection ----------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Catalog]:
        with self._lock:
            self._check_open()
            with self._catalog.read():
                yield self._catalog

    @contextmanager
    def _writing(self) -> Iterator[Catalog]:
        """Hold the thread lock and the cross-process writer lock (not yet a transaction)."""
        with self._lock:
            self._check_open()
            if self.read_only:
                raise ReadOnlyError(f"store {self.path} was opened read-only")
            if self._broken:
                raise StoreIOError(
                    f"store {self.path} refuses writes after an earlier I/O failure "
                    f"({self._broken}); close and reopen it"
                )
            self._writer.acquire(self.lock_timeout)
            try:
                yield self._catalog
            except DiskFullError:
                raise  # nothing was published or committed: the handle stays usable
            except StoreIOError as exc:
                # After a failed write or fsync the kernel may have dropped dirty pages:
                # nothing written through this handle can be trusted any more.
                self._broken = str(exc)
                raise
            finally:
                self._writer.release()

    @contextmanager
    def _progress(
        self, total: int, what: str, *, unit: str = "text", minimum: int = PROGRESS_MIN
    ) -> Iterator[Callable[[int], None]]:
        """A tqdm progress bar with an ETA for long work (if tqdm is installed and ``progress``
        is on); yields a function to call with the number of units done."""
        bar = None
        if self.progress and total >= minimum:
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

    def _check_open(self) -> None:
        if self._catalog is None:
            raise StoreClosed(f"store {self.path} is closed")

    def _collection_dir(self, record: CollectionRecord) -> Path:
        return self.path / COLLECTIONS / record.dir

    # -- public API ---------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        *,
        dim: int | None = None,
        metric: str = "cosine",
        encoder: Any = None,
        index: Spec | None = None,
    ) -> Collection:
        """Create a collection of ``dim``-dimensional vectors compared by ``metric``.

        Parameters
        ----------
        name : str
        dim : int, optional
            Required without an encoder; with one, it comes from the encoder.
        metric : {"cosine", "dot", "l2"}
        encoder : str, Encoder or callable, optional
            Makes an embedding collection: ``add(documents=...)`` and ``query("text")``
            embed through it. A str is a sentence-transformers model name or path, such as
            ``"sentence-transformers/all-MiniLM-L6-v2"``. Its spec is stored, so reopening
            the collection rebuilds it.
        index : Flat, IVF or IVFPQ, optional
            The search index (default ``Flat()``: exact). An IVF or IVFPQ collection searches
            exactly until it holds the spec's ``min_rows``, then trains its index and keeps
            it up to date by itself (see ``Collection.create_index``).

        Raises ``CollectionExists`` if the name is taken.
        """
        name = inputs.collection_name(name)
        if metric not in METRICS:
            raise InvalidInput(f"metric must be one of {METRICS}; got {metric!r}")
        enc, spec = None, None
        if encoder is not None:
            enc = resolve_encoder(encoder)
            spec = enc.config()
            if dim is not None and inputs.dimension(dim) != spec.dim:
                raise DimensionMismatch(
                    f"encoder {spec.model!r} makes {spec.dim}-d vectors; got dim={dim}"
                )
            dim = spec.dim
        elif dim is None:
            raise InvalidInput("create_collection needs dim=, or an encoder= to take it from")
        dim = inputs.dimension(dim)
        index = specs.check(Flat() if index is None else index, dim)
        with self._writing() as cat:
            if cat.collection_by_name(name) is not None:
                raise CollectionExists(f"collection {name!r} already exists")
            dirname = f"{name}-{uuid.uuid4().hex[:12]}"
            directory = self.path / COLLECTIONS / dirname
            directory.mkdir(parents=True)
            fsync_dir(directory.parent)
            config = {"dim": dim, "metric": metric, "index": index.to_json()}
            if spec is not None:
                config["encoder"] = spec.to_json()
            with cat.write():
                coll = cat.insert_collection(name, dirname, dim, metric, json.dumps(config))
            if enc is not None:
                self._encoders[dirname] = enc
            return Collection(self, cat.collection_by_id(coll))

    def get_collection(self, name: str, *, encoder: Any = None) -> Collection:
        """The collection called ``name``; raises ``CollectionNotFound``.

        An embedding collection rebuilds its stored encoder when first used. Pass
        ``encoder`` to supply it yourself (required for a callable encoder, which cannot be
        stored); it must match the stored spec, else ``EncoderMismatch``.
        """
        with self._reading() as cat:
            record = cat.collection_by_name(name) if isinstance(name, str) else None
        if record is None:
            raise CollectionNotFound(
                f"no collection {name!r} in {self.path}; existing: {self.list_collections()}"
            )
        if encoder is not None:
            self._attach_encoder(record, encoder)
        return Collection(self, record)

    def _attach_encoder(self, record: CollectionRecord, encoder: Any) -> None:
        stored = Collection.stored_spec(record)
        enc = resolve_encoder(encoder)
        if stored is None:
            raise EncoderMismatch(
                f"collection {record.name!r} was created without an encoder; "
                "give it vectors, or create a new collection with encoder="
            )
        diffs = stored.differences(enc.config())
        if diffs:
            raise EncoderMismatch(
                f"collection {record.name!r} was embedded with {stored.kind} encoder "
                f"{stored.model!r}; the encoder given differs ({'; '.join(diffs)})"
            )
        with self._lock:
            self._encoders[record.dir] = enc

    def get_or_create_collection(
        self,
        name: str,
        *,
        dim: int | None = None,
        metric: str = "cosine",
        encoder: Any = None,
        index: Spec | None = None,
    ) -> Collection:
        """The collection ``name`` if it exists (it must match ``dim``, ``metric`` and
        ``encoder`` where given; ``index`` applies only to a new one), else a new one."""
        with self._lock:
            try:
                coll = self.get_collection(name, encoder=encoder)
            except CollectionNotFound:
                return self.create_collection(
                    name, dim=dim, metric=metric, encoder=encoder, index=index
                )
            if (dim is not None and coll.dim != dim) or coll.metric != metric:
                raise InvalidInput(
                    f"collection {name!r} exists with dim={coll.dim}, metric={coll.metric!r}; "
                    f"got dim={dim}, metric={metric!r}"
                )
            return coll

    def list_collections(self) -> list[str]:
        """Names of every collection, sorted."""
        with self._reading() as cat:
            return [r.name for r in cat.collections()]

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its files; raises ``CollectionNotFound``."""
        with self._writing() as cat:
            record = cat.collection_by_name(name) if isinstance(name, str) else None
            if record is None:
                raise CollectionNotFound(f"no collection {name!r} in {self.path}")
            intent = Intent(self.path, cat)  # removes the folder after the commit
            intent.retiring_folder(self._collection_dir(record))
            with cat.fully_synced(), intent.transaction():
                cat.drop_collection(record.id)
                cat.prune_embeddings(cache_key_of)  # its texts, unless another has them
            self._segments.pop(record.dir, None)
            self._snapshots.pop(record.dir, None)
            self._encoders.pop(record.dir, None)
            self._text_cache.drop(record.dir)
            cat.checkpoint(truncate=True)  # the WAL's copies of its rows go too

    def clear_embedding_cache(self) -> int:
        """Delete every cached embedding; return how many. Texts are embedded again the
        next time they are written. (``compact`` already drops those no live row has.)"""
        with self._writing() as cat:
            with cat.write():
                removed = cat.clear_embeddings()
            cat.checkpoint(truncate=True)
        return removed

    def restore_quarantine(self) -> RestoreInfo:
        """Move back into the store the quarantined files that the catalog names again.

        A read-write open moves files no catalog row names to ``<store>/quarantine/``
        instead of deleting them. If the catalog had lost them (a truncated WAL, an older
        or another store's ``catalog.db``), put the right catalog back, open the store and
        call this; then ``verify``. Files the catalog does not name stay in quarantine
        (delete the folder once you know they are not needed). See docs/reliability.md.
        """
        with self._writing() as cat:
            return cleanup.restore(self.path, cat)

    def verify(self) -> VerifyReport:
        """Check every segment checksum and catalog invariant; the report lists what is
        wrong (``report.ok``, ``report.problems``) instead of raising for it."""
        from .audit import verify

        return verify(self)

    def backup(self, dest: str | os.PathLike) -> BackupInfo:
        """Copy the store to the new folder ``dest``: a consistent snapshot, taken while
        writers in any process go on writing; segment checksums are verified on the way."""
        from .storage.backup import copy_store

        return copy_store(self._reading, self.path, Path(dest))

    def import_collection(
        self,
        source: Any,
        *,
        name: str | None = None,
        format: str | None = None,
        if_exists: Literal["error", "upsert"] = "error",
    ) -> ExportInfo:
        """Create a collection from an export file (``Collection.export``), named as exported
        unless ``name`` is given; ``if_exists="upsert"`` writes into an existing one."""
        from .portable import import_collection

        if name is not None:  # checked here: an empty name must not mean "as exported"
            name = inputs.collection_name(name)
        return import_collection(self, source, name=name, format=format, if_exists=if_exists)

    def close(self) -> None:
        """Close the store. Further use raises ``StoreClosed``. Closing twice is harmless."""
        with self._lock:
            if self._catalog is None:
                return
            self._segments.clear()
            self._snapshots.clear()
            self._encoders.clear()
            self._text_cache = PostingCache()
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
                if self._writer is not None:
                    if locked:
                        self._writer.release()
                    self._writer.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = (
            "closed" if self._catalog is None else ("read-only" if self.read_only else "read-write")
        )
        return f"<vecstore.Database {str(self.path)!r} {state}>"
