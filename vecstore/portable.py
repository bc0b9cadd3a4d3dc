"""Export and import collections in a portable format (docs/format.md, "Export files").

JSON Lines: a header object naming the collection's settings, then one object per row with
its id, vector (a list of numbers: float32 values written exactly, so an import is
bit-identical), document and metadata. Parquet (through pyarrow, optional) holds the same
columns with the header in the schema metadata. Reads and writes the user's export files,
never the store's: an export reads one snapshot through the collection's reader, an import
writes through the public Collection API. Must not import ``cli``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from . import inputs
from .collection import Collection
from .config import METRICS, CollectionConfig
from .encoders.base import EncoderSpec
from .encoders.factory import encoder_from_spec
from .errors import (
    CollectionExists,
    DimensionMismatch,
    DuplicateIdError,
    EncoderMismatch,
    InvalidInput,
    MissingDependency,
    VecstoreError,
)
from .index import specs
from .storage import records
from .storage.backup import enclosing_store
from .text import DEFAULT_LANGUAGE, Analyzer

if TYPE_CHECKING:
    from .database import Database
    from .reader import Reader
    from .storage.catalog import Catalog
    from .store import Store

FORMAT = "vecstore-export"
VERSION = 1
FORMATS = ("jsonl", "parquet")
PAGE = 4096  # rows read or written at a time
BATCH = 4 * PAGE  # rows checked, and written, per transaction by an import
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
    spec = coll.encoder_spec
    return {
        "format": FORMAT,
        "version": VERSION,
        "collection": coll.name,
        "dim": coll.dim,
        "metric": coll.metric,
        "encoder": None if spec is None else spec.to_json(),
        "index": coll.index.to_json(),
        "language": coll.language,
        "count": coll.count(),
    }


def export(
    coll: Collection, reader: Reader, dest: str | os.PathLike | IO[bytes], *, format: str | None
) -> ExportInfo:
    """Write every row of ``coll`` to ``dest`` (a path, or a binary file object), from one
    consistent snapshot read through ``reader``. A path is written under a temp name and
    renamed when complete."""
    path = None if hasattr(dest, "write") else Path(dest)
    if path is not None and (store := enclosing_store(path)) is not None:
        raise InvalidInput(
            f"export target {path} is inside the store {store}, whose files it could "
            "overwrite: write the export outside any store folder"
        )
    fmt = format_of(path, format)
    if path is None:
        return _export_to(coll, reader, dest, fmt)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as fh:
            info = _export_to(coll, reader, fh, fmt)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return info


def _export_to(coll: Collection, reader: Reader, fh: IO[bytes], fmt: str) -> ExportInfo:
    # One read transaction for the header and every page: the file is one snapshot, however
    # the collection changes meanwhile.
    def read(cat: Catalog) -> int:
        pages = reader.pages(cat, PAGE)  # may start over: before anything is written
        head = header(coll)
        if fmt != "jsonl":
            return _write_parquet(fh, head, pages)
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
        return n

    return ExportInfo(coll.name, reader.consistent(read), fmt)


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
            "Parquet export and import need pyarrow: pip install 'vecstore-db[arrow]' (or use "
            "JSON Lines)"
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
    store: Store,
    source: str | os.PathLike | IO[bytes],
    *,
    name: str | None,
    format: str | None,
    if_exists: str,
) -> ExportInfo:
    """Create a collection from an export file (``Database.import_collection`` documents it).

    All or nothing: every row is checked (a failure names its line) before anything is
    written, and a new collection is written under a staged name and published in one
    commit at the end; a killed import leaves nothing (the next read-write open drops the
    staged collection). An upsert into an existing collection writes batch by batch after
    the check; a killed one may have written some batches, and re-running it completes it.
    """
    if if_exists not in ("error", "upsert"):
        raise InvalidInput(f"if_exists must be 'error' or 'upsert'; got {if_exists!r}")
    path = None if hasattr(source, "read") else Path(source)
    where = str(path) if path is not None else "<input>"
    if path is not None and not path.is_file():
        raise InvalidInput(f"{path}: no such export file")
    with contextlib.ExitStack() as stack:
        if path is not None:
            fh = stack.enter_context(open(path, "rb"))
        elif source.seekable():
            fh = source
        else:  # a stream is read twice: spool it to a temp file first
            fh = stack.enter_context(tempfile.TemporaryFile())
            shutil.copyfileobj(source, fh)
            fh.seek(0)
        start = fh.tell()
        fmt = format or _sniff(fh, path)
        if fmt not in FORMATS:
            raise InvalidInput(f"format must be one of {FORMATS}; got {fmt!r}")

        def read() -> tuple[dict, Iterator[tuple[str, dict]]]:
            fh.seek(start)
            return _read_jsonl(fh, where) if fmt == "jsonl" else _read_parquet(fh, where)

        head, rows = read()
        name = name or head["collection"]
        coll = _existing(db, head, name, if_exists, where)
        _check_rows(rows, head["dim"])
        rows = (row for _, row in read()[1])
        if coll is not None:
            n = coll.add_batches(rows, batch_size=BATCH, replace=True)
            return ExportInfo(coll.name, n, fmt)
        config, encoder = _settings(head, where)
        record = store.create_staged(config, encoder)
        try:
            n = Collection(store, record).add_batches(rows, batch_size=BATCH, replace=False)
            store.publish(record, name)
        except BaseException:
            try:
                store.drop_collection(record)
            except VecstoreError:
                pass  # a handle an I/O error broke: the next read-write open drops it
            raise
        return ExportInfo(name, n, fmt)


def _check_rows(rows: Iterator[tuple[str, dict]], dim: int) -> None:
    """Check every row as a write would, ``BATCH`` at a time; the first bad row's line is
    found by checking that batch row by row."""
    seen: dict[str, str] = {}
    for batch in _batched(rows, BATCH):
        for where, row in batch:
            if row["id"] in seen:
                raise DuplicateIdError(
                    f"{where}: id {row['id']!r} was already given at {seen[row['id']]}"
                )
            seen[row["id"]] = where
        try:
            _check_batch([row for _, row in batch], dim)
        except InvalidInput:
            for where, row in batch:
                try:
                    _check_batch([row], dim)
                except InvalidInput as exc:
                    raise type(exc)(f"{where}: {exc}") from None
            raise


def _check_batch(rows: list[dict], dim: int) -> None:
    n = len(rows)
    inputs.ids([r["id"] for r in rows])
    vectors = [r["vector"] for r in rows if r["vector"] is not None]
    if vectors:
        inputs.matrix(np.stack(vectors), dim, n=len(vectors))
    inputs.documents([r["document"] for r in rows], n)
    for meta in inputs.metadata([r["metadata"] for r in rows], n):
        records.pack(meta)


def _batched(items: Iterator, n: int) -> Iterator[list]:
    while batch := list(itertools.islice(items, n)):
        yield batch


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


def _read_jsonl(fh: IO[bytes], where: str) -> tuple[dict, Iterator[tuple[str, dict]]]:
    # Binary lines, decoded one at a time: no text wrapper that would close the caller's file.
    first = fh.readline()
    try:
        parsed = _loads(first) if first.strip() else None
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{where}:1: not valid JSON ({_reason(exc)})") from None
    head = _check_header(parsed, f"{where}:1")
    dim = head["dim"]

    def rows() -> Iterator[tuple[str, dict]]:
        for n, raw in enumerate(fh, start=2):
            if not raw.strip():
                continue
            line = f"{where}:{n}"
            try:
                row = _loads(raw)
            except (ValueError, RecursionError) as exc:
                raise InvalidInput(f"{line}: not valid JSON ({_reason(exc)})") from None
            yield line, _row(row, dim, line)

    return head, rows()


def _loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _reason(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, RecursionError):
        return "it nests too deeply"
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
            vector = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float64
            raise InvalidInput(f'{where}: "vector" must hold numbers only') from None
    meta = row.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput(f'{where}: "metadata" must be an object or null')
    doc = row.get("document")
    if doc is not None and not isinstance(doc, str):
        raise InvalidInput(f'{where}: "document" must be a string or null')
    return {"id": row["id"], "vector": vector, "document": doc, "metadata": meta}


def _read_parquet(fh: IO[bytes], where: str) -> tuple[dict, Iterator[tuple[str, dict]]]:
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

    def rows() -> Iterator[tuple[str, dict]]:
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
                line = f"{where}: row {n}"
                try:
                    meta = json.loads(metas[i]) if metas[i] else None
                except (ValueError, RecursionError) as exc:
                    raise InvalidInput(
                        f"{line}: metadata is not valid JSON ({_reason(exc)})"
                    ) from None
                row = {"id": id_, "vector": x[i], "document": docs[i], "metadata": meta}
                yield line, _row(row, dim, line)

    return head, rows()


def _existing(db: Database, head: dict, name: str, if_exists: str, where: str):
    """The collection an upsert import writes into, or None when a new one is made (``if_exists``
    "error" refuses an existing one); checked before any row is read."""
    if name not in db.list_collections():
        inputs.collection_name(name)
        return None
    if if_exists == "error":
        raise CollectionExists(
            f"collection {name!r} already exists; import under another name, or pass "
            "if_exists='upsert' (--upsert) to write the rows into it"
        )
    coll = db.get_collection(name)
    spec = _settings(head, where)[0].encoder
    if coll.dim != head["dim"] or coll.metric != head["metric"]:
        raise DimensionMismatch(
            f"{where} holds dim={head['dim']}, metric={head['metric']!r}; collection {name!r} "
            f"has dim={coll.dim}, metric={coll.metric!r}"
        )
    stored = coll.encoder_spec
    if (stored is None) != (spec is None) or (stored is not None and stored.differences(spec)):
        raise EncoderMismatch(
            f"{where} was embedded with {spec.model if spec else 'no encoder'!r}; collection "
            f"{name!r} with {stored.model if stored else 'no encoder'!r}"
        )
    return coll


def _settings(head: dict, where: str) -> tuple[CollectionConfig, _StoredEncoder | None]:
    """The configuration of a collection made from ``head``, and a stand-in for its encoder."""
    try:
        spec = EncoderSpec.from_json(head["encoder"]) if head.get("encoder") else None
    except (TypeError, InvalidInput) as exc:
        raise InvalidInput(f"{where}: the header's encoder spec is invalid ({exc})") from None
    try:  # optional: files from before index specs have none (exact search)
        index = specs.from_json(head.get("index")) if isinstance(head.get("index"), dict) else None
    except (TypeError, InvalidInput) as exc:
        raise InvalidInput(f"{where}: the header's index spec is invalid ({exc})") from None
    dim = inputs.dimension(head["dim"])
    if head["metric"] not in METRICS:
        raise InvalidInput(f"{where}: metric must be one of {METRICS}; got {head['metric']!r}")
    if spec is not None and spec.dim != dim:
        raise DimensionMismatch(f"{where}: the encoder makes {spec.dim}-d vectors; dim is {dim}")
    index = specs.check(specs.Flat() if index is None else index, dim)
    try:  # optional: files from before per-collection languages are English
        analyzer = Analyzer(head.get("language", DEFAULT_LANGUAGE)).require()
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: the header's language is invalid ({exc})") from None
    encoder = None if spec is None else _StoredEncoder(spec)
    # the rows are indexed anew as they are imported: by the current analyzer version
    return CollectionConfig(dim, head["metric"], index, spec, analyzer), encoder


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
