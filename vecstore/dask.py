"""vecstore on a Dask cluster: distributed ingest, and sharded collections across workers.

``ingest`` embeds the partitions of a Dask Bag or DataFrame on the workers, which write them
as staged partitions into the store (vecstore/staged.py), and adopts them all in one
transaction on the client: the store must be on a file system the workers share (or the
cluster a ``LocalCluster``). ``ShardedCollection`` (vecstore/sharded.py) fans queries out
to N stores through Dask futures. Needs the ``[dask]`` extra; ``import vecstore`` never
imports this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .encoders.factory import resolve_encoder
from .errors import EncoderMismatch, InvalidInput, MissingDependency
from .sharded import ShardedCollection, open_sharded, shard_of
from .staged import StagingTarget, describe_partition, stage_partition

try:
    import dask
    import dask.bag
    import dask.dataframe
except ImportError as exc:  # pragma: no cover - the [dask] extra is missing
    raise MissingDependency("vecstore.dask needs Dask: pip install 'vecstore-db[dask]'") from exc

if TYPE_CHECKING:
    from .collection import Collection

__all__ = ["IngestReport", "ShardedCollection", "ingest", "open_sharded", "shard_of"]


@dataclass(frozen=True)
class IngestReport:
    """What ``ingest`` did: rows added, partitions staged and adopted, partitions skipped
    because an earlier ingest adopted them, and the seconds each phase took."""

    added: int
    partitions: int
    skipped: int
    seconds_describe: float
    seconds_stage: float
    seconds_adopt: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ingest(
    collection: Collection,
    data: Any,
    *,
    text: str = "text",
    id: str = "id",
    metadata: list[str] | None = None,
    encoder: Any = None,
    client: Any = None,
    retries: int = 2,
) -> IngestReport:
    """Embed and add the rows of a Dask Bag (of dicts) or DataFrame on a Dask cluster.

    Each partition is embedded on a worker and written there as a staged partition
    (checksummed, fsynced); then the client adopts them all in one catalog transaction, no
    vector rewritten. A partition is identified by a hash of its content: a task retried
    after a worker died rewrites the same files, and a partition an earlier ingest adopted
    is skipped (so re-running an interrupted ingest adds only what is missing). An id that
    exists already raises ``DuplicateIdError`` and nothing is added, as ``add`` does.

    Parameters
    ----------
    collection : Collection
        An embedding collection of a store opened read-write by this process; its folder
        must be reachable at the same path by every worker.
    data : dask.bag.Bag or dask.dataframe.DataFrame
        Rows: dicts (a Bag) or records (a DataFrame) with the fields named below.
    text, id : str
        The fields holding each row's document (embedded) and id.
    metadata : list of str, optional
        Fields stored as metadata (absent fields of a Bag's dicts are left out).
    encoder : Encoder or named callable, optional
        Embeds on the workers (pickled to them); by default the collection's stored
        encoder is rebuilt once per worker process. Required for a callable encoder.
    client : distributed.Client, optional
        The cluster; None uses Dask's current scheduler.
    retries : int
        How many times a failed task is retried (a killed worker's tasks are rescheduled
        by the scheduler regardless).
    """
    if isinstance(data, dask.dataframe.DataFrame):
        kind = "frame"
    elif isinstance(data, dask.bag.Bag):
        kind = "bag"
    else:
        raise InvalidInput(
            f"ingest needs a dask.bag.Bag of dicts or a dask.dataframe.DataFrame; got "
            f"{type(data).__name__}"
        )
    for name, value in (("text", text), ("id", id)):
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a field name (str); got {value!r}")
    fields = None if metadata is None else list(metadata)
    if fields is not None and not all(isinstance(f, str) for f in fields):
        raise InvalidInput(f"metadata must be a list of field names; got {metadata!r}")
    spec = collection.encoder_spec
    if spec is None:
        raise InvalidInput(f"collection {collection.name!r} has no encoder; ingest embeds")
    if encoder is None and spec.kind == "callable":
        encoder = collection.encoder  # the one attached on get_collection (raises if none)
    elif encoder is not None:
        encoder = resolve_encoder(encoder)
        diffs = spec.differences(encoder.config())
        if diffs:
            raise EncoderMismatch(
                f"collection {collection.name!r} was embedded with {spec.kind} encoder "
                f"{spec.model!r}; the encoder given differs ({'; '.join(diffs)})"
            )
    parts = data.to_delayed()
    with collection.stage() as run:
        target = run.target
        start = time.perf_counter()
        described = _compute(
            client,
            [dask.delayed(_describe)(target, p, kind, text, id, fields) for p in parts],
            retries,
        )
        tokens = [t for t, _ in described]
        if len(set(tokens)) != len(tokens):
            raise InvalidInput("two partitions hold the same rows; nothing was added")
        done = run.adopted(tokens)
        todo = [(p, t, n) for p, (t, n) in zip(parts, described) if t not in done and n]
        starts = run.reserve({t: n for _, t, n in todo})
        mid = time.perf_counter()
        _compute(
            client,
            [
                dask.delayed(_stage)(target, starts[t], p, kind, text, id, fields, encoder)
                for p, t, _ in todo
            ],
            retries,
        )
        staged = time.perf_counter()
        added = run.adopt([t for _, t, _ in todo])
        end = time.perf_counter()
    return IngestReport(
        added, len(todo), len(parts) - len(todo), mid - start, staged - mid, end - staged
    )


def _compute(client: Any, tasks: list, retries: int) -> list:
    if client is None:
        return list(dask.compute(*tasks))
    futures = client.compute(tasks, retries=retries)
    return client.gather(futures)


def _columns(part: Any, kind: str, text: str, id: str, fields: list[str] | None):
    """A partition's ids, documents and metadata dicts, as Python values."""
    if kind == "frame":
        for name in (id, text, *(fields or ())):
            if name not in part.columns:
                raise InvalidInput(f"the DataFrame has no column {name!r}")
        ids = part[id].tolist()
        docs = part[text].tolist()
        if fields is None:
            return ids, docs, None
        cols = [part[f].tolist() for f in fields]
        return ids, docs, [dict(zip(fields, vals)) for vals in zip(*cols)] if cols else None
    rows = list(part)
    for r in rows[:1]:
        if not isinstance(r, dict) or id not in r or text not in r:
            raise InvalidInput(f"a Bag row must be a dict with {id!r} and {text!r}; got {r!r}")
    ids = [r[id] for r in rows]
    docs = [r[text] for r in rows]
    if fields is None:
        return ids, docs, None
    return ids, docs, [{f: r[f] for f in fields if f in r} for r in rows]


def _describe(target: StagingTarget, part, kind, text, id, fields) -> tuple[str, int]:
    return describe_partition(target, *_columns(part, kind, text, id, fields))


def _stage(target: StagingTarget, rid_start, part, kind, text, id, fields, encoder):
    return stage_partition(target, rid_start, *_columns(part, kind, text, id, fields), encoder)
