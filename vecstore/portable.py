"""Export and import collections in a portable format (docs/format.md, "Export files").

JSON Lines: a header object naming the collection's settings, then one object per row with
its id, vector (a list of numbers: float32 values written exactly, so an import is
bit-identical), document and metadata. Parquet (through pyarrow, optional) holds the same
columns with the header in the schema metadata. Reads and writes the user's export files,
never the store's: rows go through the public Collection API. Must not import ``cli``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .encoders.base import EncoderSpec
from .encoders.factory import encoder_from_spec
from .errors import (
    CollectionExists,
    CollectionNotFound,
    CorruptStoreError,
    DimensionMismatch,
    EncoderMismatch,
    InvalidInput,
    MissingDependency,
)
from .index import specs
from .results import GetResult
from .storage import records, scan

if TYPE_CHECKING:
    from .collection import Collection
    from .database import Database
    from .index.flat import Snapshot
    from .storage.catalog import Catalog

FORMAT = "vecstore-export"
VERSION = 1
FORMATS = ("jsonl", "parquet")
PAGE = 4096  # rows read or written at a time
SNAPSHOT_RETRIES = 5
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class ExportInfo:
    """What an export or import moved: the collection, its row count and the format."""

    collection: str
    rows: int
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "rows": self.rows, "format": self.format}


def format_of(path: str | os.PathLike | None, format: str | None) -> str:
    """The format named, else the one the file name implies (JSON Lines by default)."""
    if format is not None:
        if format not in FORMATS:
            raise InvalidInput(f"format must be one of {FORMATS}; got {format!r}")
        return format
    if path is not None and Path(path).suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    return "jsonl"


def header(coll: Collection) -> dict[str, Any]:
    spec = coll.stored_spec(coll._record)
    return {
        "format": FORMAT,
        "version": VERSION,
        "collection": coll.name,
        "dim": coll.dim,
        "metric": coll.metric,
        "encoder": None if spec is None else spec.to_json(),
        "index": coll.index.to_json(),
        "count": coll.count(),
    }


def export(
    coll: Collection, dest: str | os.PathLike | IO[bytes], *, format: str | None
) -> ExportInfo:
    """Write every row of ``coll`` to ``dest`` (a path, or a binary file object), from one
    consistent snapshot. A path is written under a temp name and renamed when complete."""
    path = None if hasattr(dest, "write") else Path(dest)
    fmt = format_of(path, format)
    if path is None:
        return _export_to(coll, dest, fmt)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as fh:
            info = _export_to(coll, fh, fmt)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return info


def _export_to(coll: Collection, fh: IO[bytes], fmt: str) -> ExportInfo:
    # One read transaction for the header and every page: the file is one snapshot, however
    # the collection changes meanwhile.
    for _ in range(SNAPSHOT_RETRIES):
        with coll._db._reading() as cat:
            coll._require(cat)
            try:
                snap = coll._snapshot(cat)
            except FileNotFoundError:
                continue  # a compaction replaced a segment after this snapshot began
            head = header(coll)
            pages = _pages(coll, cat, snap)
            if fmt == "jsonl":
                fh.write(_line(head))
                n = 0
                for got in pages:
                    for i in range(len(got)):
                        row = {
                            "id": got.ids[i],
                            "vector": got.vectors[i].tolist(),
                            "document": got.documents[i],
                            "metadata": got.metadata[i],
                        }
                        fh.write(_line(row))
                    n += len(got)
            else:
                n = _write_parquet(fh, head, pages)
        return ExportInfo(coll.name, n, fmt)
    raise CorruptStoreError(
        f"collection {coll.name!r}: segment files kept vanishing under {SNAPSHOT_RETRIES} "
        "snapshots; retry the export"
    )


def _pages(coll: Collection, cat: Catalog, snap: Snapshot) -> Iterator[GetResult]:
    after = 0
    while rows := scan.rows_after(cat, coll._record.id, after, PAGE):
        yield GetResult(
            ids=[r[0] for r in rows],
            documents=[r[4] for r in rows],
            metadata=[records.unpack(r[5]) for r in rows],
            vectors=snap.vectors_of([r[1:4] for r in rows], coll.dim),
        )
        after = rows[-1][1]


def _line(obj: Any) -> bytes:
    # Python's float repr is the shortest string that reads back to the same double, and a
    # float32 widened to a double is exact: the numbers read back to the very same float32.
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency(
            "Parquet export and import need pyarrow: pip install pyarrow (or use JSON Lines)"
        ) from None
    return pa, pq


def _write_parquet(fh: IO[bytes], head: dict, pages: Iterator[Any]) -> int:
    pa, pq = _pyarrow()
    dim = head["dim"]
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("document", pa.string()),
            ("metadata", pa.string()),
        ],
        metadata={b"vecstore": json.dumps(head).encode()},
    )
    n = 0
    with pq.ParquetWriter(fh, schema) as writer:
        for got in pages:
            flat = pa.array(np.ascontiguousarray(got.vectors, dtype="<f4").reshape(-1))
            table = pa.table(
                [
                    pa.array(got.ids, pa.string()),
                    pa.FixedSizeListArray.from_arrays(flat, dim),
                    pa.array(got.documents, pa.string()),
                    pa.array([json.dumps(m, ensure_ascii=False) for m in got.metadata]),
                ],
                schema=schema,
            )
            writer.write_table(table)
            n += len(got)
    return n


def import_collection(
    db: Database,
    source: str | os.PathLike | IO[bytes],
    *,
    name: str | None,
    format: str | None,
    if_exists: str,
) -> ExportInfo:
    """Create a collection from an export file (``Database.import_collection`` documents it)."""
    if if_exists not in ("error", "upsert"):
        raise InvalidInput(f"if_exists must be 'error' or 'upsert'; got {if_exists!r}")
    path = None if hasattr(source, "read") else Path(source)
    where = str(path) if path is not None else "<input>"
    if path is not None and not path.is_file():
        raise InvalidInput(f"{path}: no such export file")
    fh = open(path, "rb") if path is not None else source
    try:
        fmt = format or _sniff(fh, path)
        if fmt not in FORMATS:
            raise InvalidInput(f"format must be one of {FORMATS}; got {fmt!r}")
        if fmt == "jsonl":
            head, rows = _read_jsonl(fh, where)
        else:
            head, rows = _read_parquet(fh, where)
        coll = _target(db, head, name or head["collection"], if_exists, where)
        n = coll.add_batches(rows, batch_size=PAGE * 4, replace=if_exists == "upsert")
        return ExportInfo(coll.name, n, fmt)
    finally:
        if path is not None:
            fh.close()


def _sniff(fh: IO[bytes], path: Path | None) -> str:
    if path is not None and path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    if path is not None:
        start = fh.read(4)
        fh.seek(0)
        return "parquet" if start == PARQUET_MAGIC else "jsonl"
    return "jsonl"


def _check_header(head: Any, where: str) -> dict:
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise InvalidInput(
            f'{where}: not a vecstore export (its header lacks "format": "{FORMAT}")'
        )
    if head.get("version") != VERSION:
        raise InvalidInput(
            f"{where}: export format version {head.get('version')!r}; this vecstore reads "
            f"version {VERSION}"
        )
    for key, kind in (("collection", str), ("dim", int), ("metric", str)):
        if not isinstance(head.get(key), kind):
            raise InvalidInput(f"{where}: the header's {key!r} must be a {kind.__name__}")
    if head.get("encoder") is not None and not isinstance(head["encoder"], dict):
        raise InvalidInput(f"{where}: the header's 'encoder' must be an object or null")
    return head


def _read_jsonl(fh: IO[bytes], where: str) -> tuple[dict, Iterator[Mapping]]:
    # Binary lines, decoded one at a time: no text wrapper that would close the caller's file.
    first = fh.readline()
    try:
        parsed = _loads(first) if first.strip() else None
    except ValueError as exc:
        raise InvalidInput(f"{where}:1: not valid JSON ({_reason(exc)})") from None
    head = _check_header(parsed, f"{where}:1")
    dim = head["dim"]

    def rows() -> Iterator[Mapping]:
        for n, raw in enumerate(fh, start=2):
            if not raw.strip():
                continue
            try:
                row = _loads(raw)
            except ValueError as exc:
                raise InvalidInput(f"{where}:{n}: not valid JSON ({_reason(exc)})") from None
            yield _row(row, dim, f"{where}:{n}")

    return head, rows()


def _loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _reason(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"


def _row(row: Any, dim: int, where: str) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise InvalidInput(f'{where}: each row must be an object with a string "id"')
    vector = row.get("vector")
    if isinstance(vector, np.ndarray):
        pass  # a Parquet column, already float32 of the header's dim
    elif vector is not None:
        if not isinstance(vector, list) or len(vector) != dim:
            got = len(vector) if isinstance(vector, list) else type(vector).__name__
            raise DimensionMismatch(f'{where}: "vector" must be a list of {dim} numbers; got {got}')
        try:
            vector = np.asarray(vector, dtype=np.float64).astype(np.float32)
        except (TypeError, ValueError):
            raise InvalidInput(f'{where}: "vector" must hold numbers only') from None
    meta = row.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput(f'{where}: "metadata" must be an object or null')
    doc = row.get("document")
    if doc is not None and not isinstance(doc, str):
        raise InvalidInput(f'{where}: "document" must be a string or null')
    return {"id": row["id"], "vector": vector, "document": doc, "metadata": meta}


def _read_parquet(fh: IO[bytes], where: str) -> tuple[dict, Iterator[Mapping]]:
    pa, pq = _pyarrow()
    if not fh.seekable():
        fh = io.BytesIO(fh.read())
    try:
        pf = pq.ParquetFile(fh)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{where}: not a Parquet file ({exc})") from None
    raw = (pf.schema_arrow.metadata or {}).get(b"vecstore")
    try:
        head = _check_header(json.loads(raw) if raw else None, where)
    except json.JSONDecodeError:
        raise InvalidInput(f"{where}: the vecstore header in the schema is not JSON") from None
    dim = head["dim"]
    names = set(pf.schema_arrow.names)
    if not {"id", "vector"} <= names:
        raise InvalidInput(f"{where}: Parquet columns must include 'id' and 'vector'")

    def rows() -> Iterator[Mapping]:
        n = 0
        for batch in pf.iter_batches(batch_size=PAGE):
            ids = batch.column("id").to_pylist()
            vec = batch.column("vector")
            flat = vec.flatten().to_numpy(zero_copy_only=False)
            if len(flat) != len(ids) * dim:
                raise DimensionMismatch(f"{where}: vectors must have {dim} values each")
            x = np.asarray(flat, dtype=np.float32).reshape(len(ids), dim)
            docs = (
                batch.column("document").to_pylist() if "document" in names else [None] * len(ids)
            )
            metas = (
                batch.column("metadata").to_pylist() if "metadata" in names else [None] * len(ids)
            )
            for i, id_ in enumerate(ids):
                n += 1
                meta = json.loads(metas[i]) if metas[i] else None
                yield _row(
                    {"id": id_, "vector": x[i], "document": docs[i], "metadata": meta},
                    dim,
                    f"{where}: row {n}",
                )

    return head, rows()


def _target(db: Database, head: dict, name: str, if_exists: str, where: str) -> Collection:
    try:
        spec = EncoderSpec.from_json(head["encoder"]) if head.get("encoder") else None
    except TypeError as exc:
        raise InvalidInput(f"{where}: the header's encoder spec is incomplete ({exc})") from None
    try:
        coll = db.get_collection(name)
    except CollectionNotFound:
        encoder = None if spec is None else _StoredEncoder(spec)
        try:  # optional: files from before index specs have none (exact search)
            index = (
                specs.from_json(head.get("index")) if isinstance(head.get("index"), dict) else None
            )
        except TypeError as exc:
            raise InvalidInput(f"{where}: the header's index spec is invalid ({exc})") from None
        return db.create_collection(
            name, dim=head["dim"], metric=head["metric"], encoder=encoder, index=index
        )
    if if_exists == "error":
        raise CollectionExists(
            f"collection {name!r} already exists; import under another name, or pass "
            "if_exists='upsert' (--upsert) to write the rows into it"
        )
    if coll.dim != head["dim"] or coll.metric != head["metric"]:
        raise DimensionMismatch(
            f"{where} holds dim={head['dim']}, metric={head['metric']!r}; collection {name!r} "
            f"has dim={coll.dim}, metric={coll.metric!r}"
        )
    stored = coll.stored_spec(coll._record)
    if (stored is None) != (spec is None) or (stored is not None and stored.differences(spec)):
        raise EncoderMismatch(
            f"{where} was embedded with {spec.model if spec else 'no encoder'!r}; collection "
            f"{name!r} with {stored.model if stored else 'no encoder'!r}"
        )
    return coll


class _StoredEncoder:
    """Stands for an exported collection's encoder, creating the collection from its spec
    without loading the model; it loads (rebuilding from the spec) only if asked to embed."""

    def __init__(self, spec: EncoderSpec):
        self._spec = spec
        self.name = spec.model
        self.dim = spec.dim
        self._real = None

    def encode(self, texts, kind="document"):
        if self._real is None:
            self._real = encoder_from_spec(self._spec)
            if self._real is None:
                raise InvalidInput(
                    f"the {self._spec.kind} encoder {self._spec.model!r} cannot be rebuilt "
                    "from its spec; reopen the collection with encoder="
                )
        return self._real.encode(texts, kind)

    def config(self) -> EncoderSpec:
        return self._spec
