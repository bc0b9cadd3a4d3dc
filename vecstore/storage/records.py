"""How a row's metadata is stored: a msgpack record, and its filterable projection.

The msgpack blob in ``rows.meta`` is what users get back (it keeps bools, ints, floats, lists
and key order exactly). ``mindex`` holds one ``(key, kind, value, elem)`` entry per scalar
value and per distinct list element, derived from the record and nothing else, so the entries
of a row can always be recomputed from its blob. Imports msgpack and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgpack

from ..errors import CorruptStoreError, InvalidInput
from .filters import kind_of

MAX_META_BYTES = 1 << 20  # packed, per row


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
