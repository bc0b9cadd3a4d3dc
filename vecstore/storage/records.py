"""How a row is stored: the batch a write hands the catalog, the tuples reads get back, and
its metadata as a msgpack record with a filterable projection.

The msgpack blob in ``rows.meta`` is what users get back (it keeps bools, ints, floats, lists
and key order exactly). ``mindex`` holds one ``(key, kind, value, elem)`` entry per scalar
value and per distinct list element, derived from the record and nothing else, so the entries
of a row can always be recomputed from its blob. Imports msgpack and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import numpy as np

from ..errors import CorruptStoreError, InvalidInput
from .filters import kind_of

MAX_META_BYTES = 1 << 20  # packed, per row


class Location(NamedTuple):
    """Where a row's vector is: position ``pos`` of segment ``seg``, or pending (both None)."""

    rid: int
    seg: int | None
    pos: int | None


class Record(NamedTuple):
    """What a query returns of a row: its id, document and packed metadata."""

    id: str
    document: str | None
    meta: bytes | None


class StoredRow(NamedTuple):
    """A whole row as ``get`` and export read it."""

    id: str
    rid: int
    seg: int | None
    pos: int | None
    document: str | None
    meta: bytes | None

    @property
    def location(self) -> Location:
        return Location(self.rid, self.seg, self.pos)


@dataclass(frozen=True, eq=False)
class RowBatch:
    """Validated rows on their way to the catalog, as parallel sequences of one length.

    ``vectors`` is float32 (n, dim), or None when the rows keep their vectors (an update of
    documents or metadata only); ``documents``/``metadata`` are None where a write leaves
    that field as it is. ``packed`` holds ``pack`` of each metadata dict and ``counts`` the
    analysed documents (their keyword postings).
    """

    ids: list[str]
    vectors: np.ndarray | None
    documents: list[str | None] | None
    metadata: list[dict] | None
    packed: list[bytes | None] | None
    counts: list[Any] | None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx: Sequence[int]) -> RowBatch:
        """The rows at positions ``idx``, in that order."""
        idx = list(idx)

        def pick(values):
            return None if values is None else [values[i] for i in idx]

        return RowBatch(
            ids=[self.ids[i] for i in idx],
            vectors=None if self.vectors is None else self.vectors[idx],
            documents=pick(self.documents),
            metadata=pick(self.metadata),
            packed=pick(self.packed),
            counts=pick(self.counts),
        )


def pack(meta: dict) -> bytes | None:
    """The stored form of a validated metadata dict; ``None`` for an empty one."""
    if not meta:
        return None
    packed = msgpack.packb(meta, use_bin_type=True)
    if len(packed) > MAX_META_BYTES:
        raise InvalidInput(
            f"metadata of one row packs to {len(packed)} bytes; the limit is {MAX_META_BYTES}"
        )
    return packed


def unpack(blob: bytes | None) -> dict:
    if blob is None:
        return {}
    try:
        meta = msgpack.unpackb(blob, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise CorruptStoreError(f"a stored metadata record is corrupt: {exc}") from None
    if not isinstance(meta, dict):
        raise CorruptStoreError("a stored metadata record is not a map")
    return meta


def entries(rid: int, meta: dict) -> list[tuple]:
    """The ``(key, kind, value, elem, rid)`` filter entries of one row's metadata."""
    out = []
    for key, value in meta.items():
        if isinstance(value, list):
            seen = set()
            for v in value:
                kv = kind_of(v)
                if kv is None:
                    raise CorruptStoreError(f"metadata {key!r} holds an unsupported value")
                if kv not in seen:
                    seen.add(kv)
                    out.append((key, kv[0], kv[1], 1, rid))
        else:
            kv = kind_of(value)
            if kv is None:
                raise CorruptStoreError(f"metadata {key!r} holds an unsupported value")
            out.append((key, kv[0], kv[1], 0, rid))
    return out


def all_entries(rows: Iterable[tuple[int, dict]]) -> list[tuple]:
    out: list[tuple] = []
    for rid, meta in rows:
        if meta:
            out += entries(rid, meta)
    return out
