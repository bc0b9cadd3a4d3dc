"""Staged ingest: other processes embed and write rows, one transaction publishes them.

``Collection.stage()`` opens a ``StagedIngest``: a run folder in the store's staging area
(storage/staging.py) that workers write partitions into with ``stage_partition``, and which
``StagedIngest.adopt`` publishes into the collection in one catalog transaction (the
segment files are linked in as written). The workers need only a ``StagingTarget``, a small
picklable value: no open store, no catalog connection. ``vecstore.dask`` drives this on a
Dask cluster; anything that can run a function elsewhere (multiprocessing, a job queue) can
too. Must not import ``collection`` or ``database``; never imports dask.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import inputs
from .embedding import EMBED_BATCH
from .encoders.base import Encoder, EncoderSpec
from .errors import InvalidInput, VecstoreError
from .storage import records, staging
from .storage.catalog import CollectionRecord
from .store import Store
from .writes import Writer

__all__ = ["StagedIngest", "StagingTarget", "describe_partition", "stage_partition"]


@dataclass(frozen=True)
class StagingTarget:
    """What a worker needs to stage partitions of one run: the run folder, the collection's
    token namespace and dim, and its encoder's spec (JSON), rebuilt once per process when
    no encoder object is shipped with the task."""

    run: str
    collection: str
    dim: int
    encoder_spec: str | None


@dataclass(frozen=True)
class PartitionRows:
    """One partition's rows, checked as ``add`` checks them, and its content token."""

    token: str
    ids: list[str]
    documents: list[str | None]
    packed: list[bytes | None]

    def __len__(self) -> int:
        return len(self.ids)


def partition_rows(target: StagingTarget, ids: Any, documents: Any, metadata: Any) -> PartitionRows:
    """Check a partition's rows (the boundary: they come from user data) and hash them."""
    ids = inputs.ids(ids)
    n = len(ids)
    docs = inputs.documents(documents, n)
    packed = [records.pack(m) for m in inputs.metadata(metadata, n)]
    token = staging.partition_token(target.collection, ids, docs, packed)
    return PartitionRows(token, ids, docs, packed)


def describe_partition(
    target: StagingTarget, ids: Any, documents: Any, metadata: Any
) -> tuple[str, int]:
    """``(token, rows)`` of a partition: the first, cheap pass (no embedding) that lets the
    client reserve row ids and skip partitions adopted before."""
    rows = partition_rows(target, ids, documents, metadata)
    return rows.token, len(rows)


@lru_cache(maxsize=4)
def _rebuilt(spec_json: str) -> Encoder:
    from .encoders.factory import encoder_from_spec

    enc = encoder_from_spec(EncoderSpec.from_json(json.loads(spec_json)))
    if enc is None:
        raise InvalidInput("this collection's encoder cannot be rebuilt; pass encoder=")
    return enc


def stage_partition(
    target: StagingTarget,
    rid_start: int,
    ids: Any,
    documents: Any,
    metadata: Any,
    encoder: Any = None,
) -> tuple[str, int]:
    """On a worker: embed a partition's documents and write it into the run folder as a
    staged partition whose rows take ids ``rid_start ..``. Returns ``(token, rows)``.

    ``encoder`` (an Encoder or a named callable) embeds the documents; None rebuilds the
    collection's stored encoder. Idempotent: a retry rewrites the same files whole."""
    from .encoders.factory import resolve_encoder
    from .kernels.exact import row_norms

    rows = partition_rows(target, ids, documents, metadata)
    if any(d is None for d in rows.documents):
        raise InvalidInput("every row staged for embedding needs a document")
    enc = _rebuilt(target.encoder_spec) if encoder is None else resolve_encoder(encoder)
    n = len(rows)
    x = np.empty((n, target.dim), dtype=np.float32)
    for start in range(0, n, EMBED_BATCH):
        batch = rows.documents[start : start + EMBED_BATCH]
        x[start : start + len(batch)] = inputs.matrix(
            enc.encode(list(batch), "document"), target.dim, n=len(batch)
        )
    staging.write_partition(
        Path(target.run),
        rows.token,
        rid_start,
        x,
        row_norms(x),
        rows.ids,
        rows.documents,
        rows.packed,
    )
    return rows.token, n


class StagedIngest:
    """One staging run of a collection: reserve row ids, let workers stage partitions into
    ``target.run``, then ``adopt`` them in one transaction. A context manager: leaving it
    removes the run folder (adopted segments live on, linked into the collection)."""

    def __init__(self, store: Store, record: CollectionRecord, writer: Writer):
        self._store = store
        self._record = record
        self._writer = writer
        spec = _spec_of(record)
        self._run, self._fd = staging.new_run(store.path)
        self._reserved: dict[str, tuple[int, int]] = {}
        self.target = StagingTarget(
            str(self._run),
            record.dir,
            record.dim,
            None if spec is None else json.dumps(spec.to_json(), sort_keys=True),
        )

    def __repr__(self) -> str:
        return f"<vecstore.StagedIngest {self._record.name!r} run={self._run.name}>"

    def __enter__(self) -> StagedIngest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            staging.end_run(self._run, self._fd)
            self._fd = -1

    def adopted(self, tokens: Sequence[str]) -> set[str]:
        """Which of these partition tokens the collection has adopted already."""
        with self._store.reading() as cat:
            return cat.adopted(list(tokens))

    def reserve(self, sizes: dict[str, int]) -> dict[str, int]:
        """Reserve row ids for partitions ``{token: rows}`` in one transaction; returns
        each partition's first row id."""
        total = sum(sizes.values())
        with self._store.writing() as cat, cat.write():
            start = cat.reserve_rids(total)
        out = {}
        for token, n in sizes.items():
            out[token] = start
            self._reserved[token] = (start, n)
            start += n
        return out

    def adopt(self, tokens: Sequence[str]) -> int:
        """Publish the staged partitions ``tokens`` in one transaction; partitions adopted
        before are skipped. Each must have been reserved by this run and fully staged:
        ``VecstoreError`` names any that is not (and nothing is adopted). Returns how many
        rows were added."""
        parts = []
        for token in tokens:
            part = staging.read_partition(self._run, token, dim=self._record.dim)
            if part is None:
                raise VecstoreError(f"partition {token} was not staged (no manifest)")
            if self._reserved.get(token) != (part.rid_start, len(part)):
                raise VecstoreError(
                    f"partition {token} holds row ids {part.rid_start}+{len(part)}, not "
                    f"the range reserved for it {self._reserved.get(token)}"
                )
            parts.append(part)
        return self._writer.adopt(parts)


def _spec_of(record: CollectionRecord) -> EncoderSpec | None:
    from .config import CollectionConfig

    return CollectionConfig.of(record).encoder
