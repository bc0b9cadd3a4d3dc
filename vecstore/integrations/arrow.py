"""Collections to and from Arrow tables and pandas DataFrames (the extra ``[arrow]``).

A collection's rows become columns ``id``, ``document``, ``vector`` (a fixed-size list of
float32, a chunk per segment, over the mapped segment itself wherever none of its rows is
deleted or filtered out) and ``metadata``:
each row's metadata as JSON text, which carries every value vecstore stores exactly, or, with
``flatten=True``, one column per key. Tables come in by naming their id, text, vector and
metadata columns, one atomic upsert per batch. ``Collection.to_arrow`` and friends call
these; pyarrow and pandas are imported here only, on first use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import inputs
from ..errors import InvalidInput, MissingDependency

__all__ = ["table_of", "frame_of", "add_arrow", "add_dataframe"]

RESERVED = ("id", "document", "vector", "metadata")


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingDependency(
            "Arrow and pandas support needs pyarrow: pip install 'vecstore-db[arrow]'"
        ) from None
    return pyarrow


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise MissingDependency(
            "pandas support needs pandas and pyarrow: pip install 'vecstore-db[arrow]'"
        ) from None
    return pandas


def _kind(value: Any) -> str:
    # bool before int: True is an int to Python, but a different kind to vecstore.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return type(value).__name__
    return "list" if isinstance(value, list) else type(value).__name__


def _flat_columns(metadata: list[dict], pa: Any) -> dict[str, Any]:
    """One Arrow column per metadata key; a key whose values mix kinds (1 and 1.0, "1"
    and 1) would not come back exactly, so it is refused."""
    keys = list(dict.fromkeys(k for m in metadata for k in m))
    columns = {}
    for key in keys:
        if key in RESERVED:
            raise InvalidInput(f"metadata key {key!r} collides with a column: use flatten=False")
        values = [m.get(key) for m in metadata]
        kinds = {_kind(v) for v in values if v is not None}
        if len(kinds) > 1:
            raise InvalidInput(
                f"metadata key {key!r} holds values of several kinds ({sorted(kinds)}), which "
                "one Arrow column cannot hold exactly: use flatten=False (JSON text)"
            )
        columns[key] = pa.array(values)
    return columns


def table_of(rows: Any, *, include_vectors: bool, flatten: bool) -> Any:
    """A ``pyarrow.Table`` of ``rows`` (``reader.TableRows``: the live rows, their documents
    and metadata, from one snapshot), in their storage order."""
    pa = _pyarrow()
    live = rows.rows
    columns: dict[str, Any] = {
        "id": pa.array(live.ids, type=pa.string()),
        "document": pa.array(rows.documents, type=pa.string()),
    }
    if include_vectors:
        columns["vector"] = _vector_column(live, pa)
    if flatten:
        columns.update(_flat_columns(rows.metadata, pa))
    else:
        # allow_nan=False: vecstore stores no NaN or infinity, and JSON has none either
        text = [json.dumps(m, ensure_ascii=False, allow_nan=False) for m in rows.metadata]
        columns["metadata"] = pa.array(text, type=pa.string())
    return pa.table(columns)


def _vector_column(live: Any, pa: Any) -> Any:
    """The vectors as a chunked fixed-size list column, a chunk per part: over the mapped
    segment itself where the part has no deleted or filtered-out rows (Arrow then holds the
    map, which stays valid while the table lives), over a gathered copy elsewhere."""
    kind = pa.list_(pa.float32(), live.dim)
    chunks = []
    for vectors, _, pos in live.parts:
        block = vectors if pos is None else vectors[pos]
        if len(block):
            values = pa.array(np.ascontiguousarray(block).reshape(-1), type=pa.float32())
            chunks.append(pa.FixedSizeListArray.from_arrays(values, live.dim))
    return pa.chunked_array(chunks, type=kind)


def frame_of(table: Any, dim: int, *, flatten: bool) -> Any:
    """``table_of``'s table as a DataFrame; vectors are float32 arrays, metadata dicts (or,
    with ``flatten=True``, a column per key)."""
    _pandas()
    frame = table.to_pandas()
    if not flatten:
        frame["metadata"] = [json.loads(m) for m in table.column("metadata").to_pylist()]
    if "vector" in frame:
        vectors = table.column("vector").combine_chunks().flatten().to_numpy()
        frame["vector"] = list(vectors.reshape(len(frame), dim))
    return frame


def _vectors(column: Any, dim: int, pa: Any) -> np.ndarray:
    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if pa.types.is_fixed_size_list(column.type) and column.null_count == 0:
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
    values = column.to_pylist()
    if any(v is None for v in values):
        raise InvalidInput("the vector column has nulls: every row needs a vector, or name none")
    return np.asarray(values, dtype=np.float64) if values else np.zeros((0, dim))


def _metadata(batch: Any, metadata: Any) -> list[dict] | None:
    if metadata is None:
        return None
    if isinstance(metadata, str):
        texts = batch.column(metadata).to_pylist()
        return [None if t is None else json.loads(t) if isinstance(t, str) else t for t in texts]
    rows: list[dict] = [{} for _ in range(batch.num_rows)]
    for name in metadata:
        for row, value in zip(rows, batch.column(name).to_pylist()):
            if value is not None:  # a null is a missing key, as pandas' NaN is a missing value
                row[name] = value
    return rows


def _column_names(
    table: Any, id: str, text: str | None, vector: str | None, metadata: Any
) -> tuple[str | None, str | None, Any]:
    names = set(table.schema.names)
    wanted = [id, text, vector] + (
        [metadata] if isinstance(metadata, str) else list(metadata or [])
    )
    missing = [n for n in wanted if n is not None and n not in names]
    if missing:
        raise InvalidInput(
            f"the table has no column {missing[0]!r}; its columns are {sorted(names)}: name "
            "the columns with id=, text=, vector= and metadata="
        )
    if text is None and vector is None:
        raise InvalidInput("name a text= or a vector= column (or both)")
    return text, vector, metadata


def add_arrow(
    collection: Any,
    table: Any,
    *,
    id: str = "id",
    text: str | None = "document",
    vector: str | None = "vector",
    metadata: str | Sequence[str] | None = "metadata",
    batch_size: int = 4096,
    replace: bool = True,
) -> int:
    """Write a ``pyarrow.Table`` (or RecordBatch) into ``collection``; return the rows written.

    ``id``, ``text`` and ``vector`` name columns (``text``/``vector`` None: not given; the
    defaults are used only when the table has such a column). ``metadata`` names one column
    of JSON text or dicts, or a list of columns each becoming a key (a null leaves the key
    out). Each batch of ``batch_size`` rows is one atomic ``upsert`` (``add`` if not
    ``replace``).
    """
    pa = _pyarrow()
    if not isinstance(table, (pa.Table, pa.RecordBatch)):
        raise InvalidInput(f"add_arrow takes a pyarrow Table or RecordBatch; got {type(table)}")
    batch_size = inputs.integer("batch_size", batch_size, minimum=1, maximum=inputs.MAX_BATCH)
    names = set(table.schema.names)
    if text == "document" and "document" not in names:
        text = None
    if vector == "vector" and "vector" not in names:
        vector = None
    if metadata == "metadata" and "metadata" not in names:
        metadata = None
    text, vector, metadata = _column_names(table, id, text, vector, metadata)
    write = collection.upsert if replace else collection.add
    batches = (
        table.to_batches(max_chunksize=batch_size) if hasattr(table, "to_batches") else [table]
    )
    done = 0
    for batch in batches:
        ids = batch.column(id).to_pylist()
        write(
            ids,
            vectors=None if vector is None else _vectors(batch.column(vector), collection.dim, pa),
            documents=None if text is None else batch.column(text).to_pylist(),
            metadata=_metadata(batch, metadata),
        )
        done += len(ids)
    return done


def add_dataframe(
    collection: Any,
    frame: Any,
    *,
    id: str = "id",
    text: str | None = "document",
    vector: str | None = "vector",
    metadata: str | Sequence[str] | None = "metadata",
    batch_size: int = 4096,
    replace: bool = True,
) -> int:
    """``add_arrow`` over a pandas DataFrame (its index is not stored). A NaN in a metadata
    column is pandas' missing value, so it leaves the key out."""
    pa = _pyarrow()
    return add_arrow(
        collection,
        pa.Table.from_pandas(frame, preserve_index=False),
        id=id,
        text=text,
        vector=vector,
        metadata=metadata,
        batch_size=batch_size,
        replace=replace,
    )
