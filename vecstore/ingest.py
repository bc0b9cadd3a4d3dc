"""Offline RAG ingestion: files, folders and globs of documents into an embedding collection.

``.txt`` and ``.md`` files are one document each, split into overlapping chunks
(``chunking.py``); ``.jsonl`` and ``.csv`` files hold one document per line or record;
``.png``, ``.jpg`` and ``.webp`` files are one image each (for a collection with a CLIP
encoder), their path the row's id and document. Every row
records where it came from, so re-ingesting an unchanged file does nothing and a changed file
has its rows replaced in the same transaction that writes the new ones. Reads the user's input
files (never the store's: writes go through the collection); must not import ``cli``.
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import inputs
from .chunking import Chunking, TokenCounter, approximate_tokens, split
from .errors import InvalidInput, MissingDependency, ReadOnlyError
from .storage.filters import kind_of

if TYPE_CHECKING:
    from .collection import Collection
    from .encoders.base import EncoderSpec
    from .store import Store
    from .writes import Writer

FORMATS = {".txt": "text", ".md": "text", ".jsonl": "jsonl", ".csv": "csv"}
FORMATS |= {".png": "image", ".jpg": "image", ".jpeg": "image", ".webp": "image"}
# Metadata ingest adds to every row. A record field of the same name is refused, not
# silently overwritten (choose fields with metadata_fields=).
CHUNK_KEYS = ("source", "chunk", "start", "end", "content_hash", "source_hash")
RECORD_KEYS = ("source", "line", "content_hash", "source_hash")
FINGERPRINT_VERSION = 1  # bump when the rows made from a file change for the same settings
MAX_GROUP_SOURCES = 1_000  # files per transaction (a $in filter takes at most 10,000 values)
PROGRESS_MIN_BYTES = 1 << 16
_INT = re.compile(r"[+-]?\d{1,19}")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class IngestResult:
    """What one ``Collection.ingest`` call did.

    Attributes
    ----------
    files : int
        Files found under the paths given.
    new, changed, unchanged : int
        Files never ingested before, ingested with other content or settings (their rows
        were replaced), and ingested before exactly so (nothing was written for them).
    rows_written : int
        Chunks and records written (added or replaced).
    rows_deleted : int
        Rows of changed files that their new version no longer has.
    written : list of str
        The sources (resolved paths) of new and changed files.
    """

    files: int
    new: int
    changed: int
    unchanged: int
    rows_written: int
    rows_deleted: int
    written: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "rows_written": self.rows_written,
            "rows_deleted": self.rows_deleted,
            "written": list(self.written),
        }


@dataclass(frozen=True)
class RecordFields:
    """Where the fields of ``.jsonl`` and ``.csv`` records go.

    Parameters
    ----------
    text : str
        The field holding the document to embed (required in every record).
    id : str, optional
        The field holding the row id (str or int); without it, ids are ``<source>:<line>``.
    metadata : list of str, optional
        The fields kept as metadata; default all but ``text`` and ``id``.
    """

    text: str = "text"
    id: str | None = None
    metadata: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name, value in (("text_field", self.text), ("id_field", self.id)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"{name} must be a non-empty str; got {value!r}")
        if self.metadata is not None and not all(isinstance(f, str) and f for f in self.metadata):
            raise InvalidInput(f"metadata_fields must be non-empty strs; got {self.metadata!r}")

    def to_json(self) -> dict:
        meta = None if self.metadata is None else list(self.metadata)
        return {"text": self.text, "id": self.id, "metadata": meta}


@dataclass
class _Source:
    """One file's rows, ready to be embedded and written."""

    path: str
    fingerprint: str
    existed: bool
    ids: list[str]
    documents: list[str]
    metadata: list[dict]
    image: bool = False  # an image file: its one row's vector embeds the file itself


def find_files(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, images: bool = True
) -> list[Path]:
    """The files to ingest: each path is a file, a folder (searched recursively, skipping
    hidden names) or a glob (``**`` matches folders recursively); files of other types found
    in folders and globs are skipped, and so are images unless ``images`` (the collection's
    encoder embeds them). Sorted within each path, duplicates dropped."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wanted = {s for s, kind in FORMATS.items() if images or kind != "image"}
    found: dict[Path, None] = {}
    for raw in paths:
        if not isinstance(raw, (str, os.PathLike)):
            raise InvalidInput(f"paths must be str or path-like; got {type(raw).__name__}")
        p = Path(raw).expanduser()
        if p.is_file():
            if p.suffix.lower() not in FORMATS:
                raise InvalidInput(
                    f"{p}: unsupported file type {p.suffix or '(none)'!r}; ingest reads "
                    f"{', '.join(FORMATS)}"
                )
            matches = [p]
        elif p.is_dir():
            matches = sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in wanted
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif any(ch in str(raw) for ch in "*?["):
            matches = sorted(
                Path(f)
                for f in glob.glob(os.fspath(p), recursive=True)
                if Path(f).suffix.lower() in wanted and Path(f).is_file()
            )
            if not matches:
                raise InvalidInput(
                    f"{raw}: the glob matches no {', '.join(FORMATS)} file; check the pattern "
                    "(quote it so the shell does not expand it first)"
                )
        else:
            raise InvalidInput(f"{raw}: no such file or folder")
        for f in matches:
            found.setdefault(f.resolve(), None)
    return list(found)


def ingest(
    coll: Collection,
    writer: Writer,
    store: Store,
    paths: Any,
    *,
    chunking: Chunking,
    fields: RecordFields,
    encoding: str = "utf-8",
    batch_size: int = 256,
) -> IngestResult:
    """Ingest files into an embedding collection through its ``writer``:
    ``Collection.ingest`` documents it."""
    inputs.integer("batch_size", batch_size, minimum=1)
    if store.read_only:
        raise ReadOnlyError(f"store {store.path} was opened read-only")
    if coll.encoder is None:
        raise InvalidInput(
            f"ingest embeds documents, but collection {coll.name!r} has no encoder: create "
            "it with encoder= (the default model is sentence-transformers/all-MiniLM-L6-v2)"
        )
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise InvalidInput(f"unknown text encoding {encoding!r}") from None
    # a text collection ingesting a folder skips its pictures; one named explicitly is refused
    files = find_files(paths, images=hasattr(coll.encoder, "encode_images"))
    settings = {
        "version": FINGERPRINT_VERSION,
        "chunking": chunking.to_json(),
        "fields": fields.to_json(),
        "encoding": encoding,
    }
    counter = _lazy_token_counter(coll) if chunking.unit == "tokens" else None
    counts = {"new": 0, "changed": 0, "unchanged": 0, "rows_written": 0, "rows_deleted": 0}
    written: list[str] = []
    group: list[_Source] = []
    group_ids: set[str] = set()
    pending_bytes = 0  # of files read but not yet written: the bar moves when they are

    sizes = [_size(f) for f in files]
    with store.progress(sum(sizes), "ingesting", unit="B", minimum=PROGRESS_MIN_BYTES) as advance:

        def flush() -> None:
            nonlocal pending_bytes
            if group:
                counts["rows_written"] += len(group_ids)
                counts["rows_deleted"] += _write_group(writer, group)
                group.clear()
                group_ids.clear()
            advance(pending_bytes)
            pending_bytes = 0

        for path, size in zip(files, sizes):
            source = _read(coll, path, settings, chunking, fields, encoding, counter)
            if source is None:
                counts["unchanged"] += 1
                advance(size)
                continue
            counts["changed" if source.existed else "new"] += 1
            written.append(source.path)
            if not group_ids.isdisjoint(source.ids) or (group and group[0].image != source.image):
                flush()  # an id given by two files: the later file's row wins; images and
                # texts are embedded differently, so a group holds one or the other
            group.append(source)
            group_ids.update(source.ids)
            pending_bytes += size
            if len(group_ids) >= batch_size or len(group) >= MAX_GROUP_SOURCES:
                flush()
        flush()
    return IngestResult(files=len(files), written=written, **counts)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read(
    coll: Collection,
    path: Path,
    settings: dict,
    chunking: Chunking,
    fields: RecordFields,
    encoding: str,
    counter: TokenCounter | None,
) -> _Source | None:
    """The rows of one file, or None if it is ingested already exactly so."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the file ({exc.strerror})") from None
    src = str(path)
    fingerprint = hashlib.sha256(
        json.dumps([src, hashlib.sha256(data).hexdigest(), settings], sort_keys=True).encode()
    ).hexdigest()
    # A file's rows are always written in one transaction, so all or none of them carry its
    # fingerprint: equal counts mean this exact version is in the store, whole.
    have = coll.count({"source": src})
    if have and coll.count({"source_hash": fingerprint}) == have:
        return None
    if FORMATS[path.suffix.lower()] == "image":
        meta = {"source": src, "content_hash": hashlib.sha256(data).hexdigest()}
        meta["source_hash"] = fingerprint
        return _Source(src, fingerprint, bool(have), [src], [src], [meta], image=True)
    # A UTF-8 byte-order mark is not text: offsets count from after it.
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path}: not valid {encoding} text ({exc.reason} at byte {exc.start}); convert "
            "it, or pass the file's encoding (--encoding)"
        ) from None
    source = _rows_of(path, text, src, fingerprint, chunking, fields, counter)
    source.existed = bool(have)
    if not source.ids and not have:
        return None  # an empty file never ingested: nothing to write, nothing to replace
    return source


def _rows_of(
    path: Path,
    text: str,
    src: str,
    fingerprint: str,
    chunking: Chunking,
    fields: RecordFields,
    counter: TokenCounter | None,
) -> _Source:
    source = _Source(src, fingerprint, False, [], [], [])
    kind = FORMATS[path.suffix.lower()]
    if kind == "text":
        for chunk in split(text, chunking, count_tokens=counter):
            source.ids.append(f"{src}#{chunk.index}")
            source.documents.append(chunk.text)
            source.metadata.append(
                {
                    "source": src,
                    "chunk": chunk.index,
                    "start": chunk.start,
                    "end": chunk.end,
                    "content_hash": _hash(chunk.text),
                    "source_hash": fingerprint,
                }
            )
        return source
    if kind == "jsonl":
        records = _jsonl(path, text)
    else:  # the id and the document stay as written: "007" is not the number 7
        records = _csv(path, text, verbatim=(fields.text, fields.id))
    first_line: dict[str, int] = {}
    for line, record in records:
        doc, id_, meta = _record(path, line, record, fields)
        if id_ is None:
            id_ = f"{src}:{line}"
        if id_ in first_line:
            raise InvalidInput(
                f"{path}:{line}: id {id_!r} repeats the record of line {first_line[id_]}; "
                "ids must be unique"
            )
        first_line[id_] = line
        meta.update(source=src, line=line, content_hash=_hash(doc), source_hash=fingerprint)
        source.ids.append(id_)
        source.documents.append(doc)
        source.metadata.append(meta)
    return source


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonl(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{line}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise InvalidInput(f"{path}:{line}: not valid JSON (it nests too deeply)") from None
        if not isinstance(record, dict):
            raise InvalidInput(
                f"{path}:{line}: expected a JSON object per line; got {type(record).__name__}"
            )
        yield line, record


def _csv(path: Path, text: str, verbatim: Sequence[str | None]) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) != len(header) or not all(header):
            raise InvalidInput(f"{path}:1: the header needs distinct, non-empty column names")
        line = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise InvalidInput(
                        f"{path}:{line}: {len(row)} fields; the header has {len(header)}"
                    )
                yield line, {k: v if k in verbatim else _csv_value(v) for k, v in zip(header, row)}
            line = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInput(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _csv_value(v: str) -> Any:
    """CSV cells are text; numbers become ints and floats (so range filters work), empty
    cells become None."""
    if v == "":
        return None
    if _INT.fullmatch(v):
        n = int(v)
        return n if kind_of(n) is not None else v
    if _FLOAT.fullmatch(v):
        x = float(v)
        return x if math.isfinite(x) else v
    return v


def _record(
    path: Path, line: int, record: dict, fields: RecordFields
) -> tuple[str, str | None, dict]:
    where = f"{path}:{line}"
    doc = record.get(fields.text)
    if not isinstance(doc, str):
        got = "no such field" if fields.text not in record else type(doc).__name__
        raise InvalidInput(
            f"{where}: the text field {fields.text!r} must hold a string ({got}); choose the "
            f"field with text_field= (--text-field); fields here: {sorted(record)[:8]}"
        )
    id_ = None
    if fields.id is not None:
        value = record.get(fields.id)
        if fields.id not in record:
            raise InvalidInput(
                f"{where}: no id field {fields.id!r}; fields here: {sorted(record)[:8]}"
            )
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise InvalidInput(
                f"{where}: the id field {fields.id!r} must hold a non-empty string or an int; "
                f"got {value!r}"
            )
        id_ = str(value)
    keep = fields.metadata
    if keep is None:
        keep = tuple(k for k in record if k not in (fields.text, fields.id))
    meta = {}
    for key in keep:
        if key in RECORD_KEYS:
            raise InvalidInput(
                f"{where}: field {key!r} clashes with the metadata ingest adds "
                f"({', '.join(RECORD_KEYS)}); rename it, or list the fields to keep "
                "with metadata_fields= (--metadata-fields)"
            )
        if key in record:
            meta[key] = _storable(record[key])
    try:
        (meta,) = inputs.metadata([meta], 1)
        if id_ is not None:
            inputs.ids([id_])
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return doc, id_, meta


def _storable(value: Any) -> Any:
    """A metadata value as stored: scalars and flat lists of scalars as they are; nested
    objects, and numbers metadata cannot hold (NaN, infinities, ints beyond 64 bits), as
    JSON text."""
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        if all(inputs.storable(v) for v in value):
            return value
    elif not isinstance(value, (list, dict)) and inputs.storable(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _write_group(writer: Writer, group: list[_Source]) -> int:
    """Write the rows of whole files and delete their stale rows in one transaction; return
    how many stale rows were deleted.

    One transaction per group means a kill leaves each file's old rows or its new ones, never
    a mix and never neither. The stale rows are those of these sources that the new versions
    did not overwrite (their fingerprint is not a new one).
    """
    ids = [i for s in group for i in s.ids]
    docs = [d for s in group for d in s.documents]
    metas = [m for s in group for m in s.metadata]
    if ids and group[0].image:  # the documents are the files' paths
        rows = writer.rows(ids, writer.embed_images(docs), docs, metas)
    else:
        rows = writer.rows(ids, None, docs, metas) if ids else None  # validates and embeds
    stale = {
        "$and": [
            {"source": {"$in": [s.path for s in group]}},
            {"source_hash": {"$nin": [s.fingerprint for s in group]}},
        ]
    }
    return writer.replace_where(rows, stale)


def _lazy_token_counter(coll: Collection) -> TokenCounter:
    """``_token_counter``, loaded on first use: unchanged files never load a tokenizer."""
    loaded: list[TokenCounter] = []

    def count(words: Sequence[str]) -> Sequence[int]:
        if not loaded:
            loaded.append(_token_counter(coll))
        return loaded[0](words)

    return count


def _token_counter(coll: Collection) -> TokenCounter:
    """Token counts with the collection's own tokenizer where it has one (sentence-transformers
    and transformers models); otherwise words and punctuation marks."""
    spec: EncoderSpec | None = coll.encoder_spec
    if spec is None or spec.kind not in ("sentence-transformers", "transformers"):
        return approximate_tokens
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependency(
            "chunking by tokens needs the transformers package: pip install -e '.[embed]'"
        ) from None
    from .encoders.sentence_transformers import resolve_model

    target, _ = resolve_model(spec.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise MissingDependency(
            f"chunking by tokens needs the tokenizer of {spec.model!r}, which is not available "
            f"offline ({type(exc).__name__}); chunk by characters, or install the model"
        ) from None

    def count(words: Sequence[str]) -> list[int]:
        ids = tokenizer(list(words), add_special_tokens=False)["input_ids"]
        return [max(1, len(x)) for x in ids]

    return count


__all__ = ["IngestResult", "RecordFields", "find_files", "ingest"]
