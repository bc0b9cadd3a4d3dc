"""The store: ``vecstore.open(path)`` returns a ``Database`` over one directory.

A store directory holds ``catalog.db`` (SQLite, WAL), a ``LOCK`` file that serialises writers
across processes, and ``collections/<dir>/`` folders of immutable segment files. The Database
is the public face of the store's engine (``store.Store``, which owns the catalog connection,
the writer lock and the caches): it checks arguments, manages collections and hands out
``Collection`` objects over the same engine. Thread-safe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import inputs
from .collection import Collection
from .config import METRICS, CollectionConfig, Metric, Vectors, check_vectors
from .encoders.factory import resolve_encoder
from .errors import (
    CollectionNotFound,
    DimensionMismatch,
    EncoderMismatch,
    InvalidInput,
)
from .index import specs
from .index.specs import Flat, Spec
from .storage.catalog import CollectionRecord
from .store import STAGING_PREFIX, Store
from .text import DEFAULT_LANGUAGE, Analyzer

if TYPE_CHECKING:
    from .audit import VerifyReport
    from .portable import ExportInfo
    from .storage.backup import BackupInfo
    from .storage.cleanup import RestoreInfo

DURABILITY = ("full", "normal")


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
        seal_rows = inputs.integer("seal_rows", seal_rows, minimum=1)
        self.path = Path(path)
        self.read_only = read_only
        self.lock_timeout = inputs.lock_timeout(lock_timeout)
        self.seal_rows = seal_rows
        self.progress = bool(progress)
        self._store = Store(
            self.path,
            read_only=read_only,
            durability=durability,
            lock_timeout=self.lock_timeout,
            seal_rows=seal_rows,
            progress=self.progress,
            create=create,
        )

    # -- public API ---------------------------------------------------------------------

    @inputs.chroma_names
    def create_collection(
        self,
        name: str,
        *,
        dim: int | None = None,
        metric: Metric = "cosine",
        encoder: Any = None,
        index: Spec | None = None,
        language: str = DEFAULT_LANGUAGE,
        vectors: Vectors = "float32",
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
        index : Flat, IVF, IVFPQ or HNSW, optional
            The search index (default ``Flat()``: exact). An IVF or IVFPQ collection searches
            exactly until it holds the spec's ``min_rows``, then trains its index and keeps
            it up to date by itself (see ``Collection.create_index``). An HNSW collection
            builds a graph per segment once it holds ``min_rows``.
        language : str
            The keyword index's stemmer and stopwords (``"english"``, the default;
            ``"french"``, ``"german"``... any of ``vecstore.text.LANGUAGES``, through the
            ``languages`` extra; ``"none"``: neither). Stored with the collection.
        vectors : {"float32", "float16", "int8", "binary"}
            How exact queries read the vectors. ``"float32"`` (the default) scans the
            originals. The others also keep compressed codes per segment (2 bytes, 1 byte or
            1 bit per dimension), scan those for ``k`` times an oversampling factor of
            candidates and re-rank them with the float32 originals, which stay on disk for
            re-ranking, ``get`` and export. Fixed at creation.

        Raises ``CollectionExists`` if the name is taken; ``InvalidInput`` for an unknown
        ``language`` or ``vectors``.
        """
        name = inputs.collection_name(name)
        if metric not in METRICS:
            raise InvalidInput(f"metric must be one of {METRICS}; got {metric!r}")
        vectors = check_vectors(vectors)
        analyzer = Analyzer(language).require()
        enc, spec = None, None
        if encoder is not None:
            with self._store.encoding():
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
        record = self._store.create_collection(
            name, CollectionConfig(dim, metric, index, spec, analyzer, vectors), enc
        )
        return Collection(self._store, record, owner=self)

    @inputs.chroma_names
    def get_collection(self, name: str, *, encoder: Any = None) -> Collection:
        """The collection called ``name``; raises ``CollectionNotFound``.

        An embedding collection rebuilds its stored encoder when first used. Pass
        ``encoder`` to supply it yourself (required for a callable encoder, which cannot be
        stored); it must match the stored spec, else ``EncoderMismatch``.
        """
        record = self._record(name)
        if record is None:
            raise CollectionNotFound(
                f"no collection {name!r} in {self.path}; existing: {self.list_collections()}"
            )
        if encoder is not None:
            self._attach_encoder(record, encoder)
        return Collection(self._store, record, owner=self)

    def _attach_encoder(self, record: CollectionRecord, encoder: Any) -> None:
        stored = CollectionConfig.of(record).encoder
        with self._store.encoding():
            enc = resolve_encoder(encoder)
            if stored is None:
                raise EncoderMismatch(
                    f"collection {record.name!r} was created without an encoder; "
                    "give it vectors, or create a new collection with encoder="
                )
            given = enc.config()
        diffs = stored.differences(given)
        if diffs:
            raise EncoderMismatch(
                f"collection {record.name!r} was embedded with {stored.kind} encoder "
                f"{stored.model!r}; the encoder given differs ({'; '.join(diffs)})"
            )
        self._store.replace_encoder(record, enc)

    @inputs.chroma_names
    def get_or_create_collection(
        self,
        name: str,
        *,
        dim: int | None = None,
        metric: Metric = "cosine",
        encoder: Any = None,
        index: Spec | None = None,
        language: str | None = None,
    ) -> Collection:
        """The collection ``name`` if it exists (it must match ``dim``, ``metric``,
        ``encoder`` and ``language`` where given; ``index`` applies only to a new one), else
        a new one (in English unless ``language`` says otherwise)."""
        with self._store.lock:
            try:
                coll = self.get_collection(name, encoder=encoder)
            except CollectionNotFound:
                return self.create_collection(
                    name,
                    dim=dim,
                    metric=metric,
                    encoder=encoder,
                    index=index,
                    language=DEFAULT_LANGUAGE if language is None else language,
                )
            if (dim is not None and coll.dim != dim) or coll.metric != metric:
                raise InvalidInput(
                    f"collection {name!r} exists with dim={coll.dim}, metric={coll.metric!r}; "
                    f"got dim={dim}, metric={metric!r}"
                )
            if language is not None and coll.language != language:
                raise InvalidInput(
                    f"collection {name!r} exists with language={coll.language!r}; "
                    f"got language={language!r}"
                )
            return coll

    def list_collections(self) -> list[str]:
        """Names of every collection, sorted."""
        with self._store.reading() as cat:
            return [r.name for r in cat.collections() if not r.name.startswith(STAGING_PREFIX)]

    def _record(self, name: Any) -> CollectionRecord | None:
        """The catalog record of the collection a user names (never a staged import's)."""
        if not isinstance(name, str) or name.startswith(STAGING_PREFIX):
            return None
        with self._store.reading() as cat:
            return cat.collection_by_name(name)

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its files; raises ``CollectionNotFound``."""
        record = self._record(name)
        if record is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.path}")
        self._store.drop_collection(record)

    def clear_embedding_cache(self) -> int:
        """Delete every cached embedding; return how many. Texts are embedded again the
        next time they are written. (``compact`` already drops those no live row has.)"""
        return self._store.clear_embedding_cache()

    def clear_query_caches(self, *, filter_columns: bool = True) -> None:
        """Forget what this process keeps to answer repeated queries faster: filter results,
        query embeddings and the per-field columns filters are evaluated on. Nothing on disk
        changes; the next queries evaluate their filters and embed their texts again (for
        measuring a first-time query, say). ``filter_columns=False`` keeps the columns: a
        filter then runs as one seen for the first time on a field already read (as a new
        tenant id would)."""
        self._store.clear_query_caches(filter_columns=filter_columns)

    def restore_quarantine(self) -> RestoreInfo:
        """Move back into the store the quarantined files that the catalog names again.

        A read-write open moves files no catalog row names to ``<store>/quarantine/``
        instead of deleting them. If the catalog had lost them (a truncated WAL, an older
        or another store's ``catalog.db``), put the right catalog back, open the store and
        call this; then ``verify``. Files the catalog does not name stay in quarantine
        (delete the folder once you know they are not needed). See docs/reliability.md.
        """
        return self._store.restore_quarantine()

    def verify(self) -> VerifyReport:
        """Check every segment checksum and catalog invariant; the report lists what is
        wrong (``report.ok``, ``report.problems``) instead of raising for it."""
        from .audit import verify

        return verify(self._store)

    def backup(self, dest: str | os.PathLike) -> BackupInfo:
        """Copy the store to the new folder ``dest``: a consistent snapshot, taken while
        writers in any process go on writing; segment checksums are verified on the way."""
        from .storage.backup import copy_store

        return copy_store(self._store.reading, self.path, Path(dest))

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
        return import_collection(
            self, self._store, source, name=name, format=format, if_exists=if_exists
        )

    def close(self) -> None:
        """Close the store. Further use raises ``StoreClosed``. Closing twice is harmless."""
        self._store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._store.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = (
            "closed" if self._store.closed else ("read-only" if self.read_only else "read-write")
        )
        return f"<vecstore.Database {str(self.path)!r} {state}>"
