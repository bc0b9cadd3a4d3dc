"""Two writer processes and two reader processes share one store for 15 s (60 s under --long).

The store holds two collections, one exact (``Flat``) and one with an IVF-PQ index that
trains early in the run and keeps itself up to date. Each writer applies its own seeded
stream of whole-batch writes, in its own id space, to both, for the whole run: add a batch,
upsert a batch (all its rows plus a few new ones), update a batch, delete a batch by ids or
by filter, and now and then compact. Every row carries its batch number ``b``, the batch's
size ``n`` and ``tag = b % 4``. The writers contend for the writer lock; they open the store
with a long ``lock_timeout``, so waiting never surfaces as an error. Each reports what it
acknowledged.

Readers loop over get, count, query, query_many and ``where_document`` gets, and check every
answer against models of the writers' streams (``Model``):

- a full ``get()`` is one snapshot: for each writer it must equal the state after some
  prefix of its stream, no earlier than the prefix the reader saw before. So every batch is
  seen whole or not at all, nothing goes back in time, and no row mixes two versions;
- each call between two such snapshots is its own read transaction, so its answer must agree
  with a state between theirs: ``count(where)`` and ``len(get(where))`` equal the matching
  rows of such a state, query results hold exactly ``min(k, matching rows)`` rows that match
  the filter, with each row's vector, document and metadata from one version (scores are
  recomputed from the vectors the metadata names), and exact (Flat) results miss no row that
  stayed unchanged throughout.

At the end the store must hold exactly the writers' acknowledged writes (ids, metadata,
documents and vectors), and no process may have raised or warned. The measured rates are
printed (``pytest -s``) and written as one JSON line to ``concurrency.json`` in the test's
tmp directory. ``VECSTORE_CONCURRENCY_SECONDS`` overrides the duration.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import struct
import subprocess
import sys
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import vecstore

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261123
DIM = 16
SEAL_ROWS = 32  # batches of 40 rows go straight to a segment, smaller ones wait in pending
LOCK_TIMEOUT = 600.0  # seconds: lock waits must never surface as errors
TARGET_ROWS = 400  # live rows a writer's stream hovers around
SIZES = (1, 2, 3, 5, 8, 13, 40)
TAGS = 4
KINDS = ("add", "upsert", "update", "delete", "delete_where", "compact")
GROW = (0.45, 0.2, 0.1, 0.13, 0.1, 0.02)  # kind probabilities below TARGET_ROWS
SHRINK = (0.2, 0.2, 0.1, 0.28, 0.2, 0.02)
INDEXES = {
    "flat": vecstore.Flat(),
    # trains once the collection holds 200 rows (within the first second), probes every list
    "ivfpq": vecstore.IVFPQ(nlist=8, m=4, nbits=4, nprobe=8, min_rows=200),
}
ALL = frozenset((w, t) for w in (0, 1) for t in range(TAGS))
# Filters, each with the (writer, tag) pairs of the rows it keeps: the models count rows by
# writer and tag, so the expected counts of all of these are known for every state.
FILTERS = [
    (None, ALL),
    ({}, ALL),
    ({"w": 0}, frozenset((0, t) for t in range(TAGS))),
    ({"w": 1}, frozenset((1, t) for t in range(TAGS))),
    ({"tag": 2}, frozenset({(0, 2), (1, 2)})),
    ({"$and": [{"w": 1}, {"tag": {"$in": [0, 3]}}]}, frozenset({(1, 0), (1, 3)})),
    ({"w": 0, "tag": {"$ne": 1}}, frozenset({(0, 0), (0, 2), (0, 3)})),
    (
        {"$or": [{"tag": 1}, {"$and": [{"w": 1}, {"tag": {"$gte": 2}}]}]},
        frozenset({(0, 1), (1, 1), (1, 2), (1, 3)}),
    ),
    ({"$not": {"w": 0}}, frozenset((1, t) for t in range(TAGS))),
    ({"tag": {"$nin": [0, 1, 2, 3]}}, frozenset()),
]


# ---------------------------------------------------------------------------------------------
# the writers' streams and their model
# ---------------------------------------------------------------------------------------------


def row_id(writer: int, i: int) -> str:
    return f"w{writer}-{i}"


def writer_of(id_: str) -> int:
    return int(id_[1 : id_.index("-")])


def vector(id_: str, b: int) -> np.ndarray:
    """The vector row ``id_`` gets from batch ``b`` (str hash() differs between processes)."""
    return np.random.default_rng([zlib.crc32(id_.encode()), b]).standard_normal(DIM).astype("f4")


def document(id_: str, b: int) -> str:
    return f"{id_} writer{writer_of(id_)}-batch{b}."


def batch_meta(writer: int, b: int, n: int, kind: str) -> dict:
    return {"w": writer, "b": b, "n": n, "tag": b % TAGS, "op": kind}


def operations(writer: int) -> Iterator[dict]:
    """Writer ``writer``'s endless, deterministic stream of whole-batch operations.

    Operation ``n`` (from 1) writes its rows as batch ``b = n``: ``add`` new ids; ``upsert``
    every row of a live batch plus 0-3 new ids; ``update`` every row of a live batch;
    ``delete`` a live batch by ids, ``delete_where`` by ``{"w": writer, "b": old}``.
    """
    rng = np.random.default_rng([SEED, writer])
    live: dict[int, list[str]] = {}
    rows = fresh = 0
    for n in itertools.count(1):
        kind = (
            "add" if not live else str(rng.choice(KINDS, p=GROW if rows < TARGET_ROWS else SHRINK))
        )
        old = None
        if kind == "add":
            size = int(rng.choice(SIZES))
            ids = [row_id(writer, fresh + i) for i in range(size)]
            fresh += size
        elif kind == "compact":
            ids = []
        else:
            old = int(rng.choice(list(live)))
            ids = live.pop(old)
            if kind == "upsert":
                extra = int(rng.integers(0, 4))
                ids = ids + [row_id(writer, fresh + i) for i in range(extra)]
                fresh += extra
        if kind in ("add", "upsert", "update"):
            live[n] = ids
        rows = sum(map(len, live.values()))
        yield {"n": n, "kind": kind, "ids": ids, "old": old}


def row_hash(id_: str, b: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{id_}\0{b}".encode(), digest_size=8).digest(), "little")


class Model:
    """The states of one writer's stream, replayed lazily: after op ``j``, a fingerprint
    (XOR of row hashes, so a snapshot's is computed without ordering), row counts per tag,
    and each id's history of batches (None: deleted)."""

    def __init__(self, writer: int):
        self.writer = writer
        self.ops = operations(writer)
        self.rows: dict[str, int] = {}  # id -> batch, after op len(self.fp) - 1
        self.batches: dict[int, tuple[int, str]] = {}  # batch -> (size, kind)
        self.fp = [0]
        self.tag_counts = [(0,) * TAGS]
        self.by_fp: dict[int, list[int]] = {0: [0]}
        self.history: dict[str, tuple[list[int], list[int | None]]] = {}

    @property
    def last(self) -> int:
        return len(self.fp) - 1

    def extend(self, upto: int) -> None:
        """Replay the stream up to op ``upto``."""
        while self.last < upto:
            op = next(self.ops)
            fp, counts = self.fp[-1], list(self.tag_counts[-1])
            j = op["n"]
            new = j if op["kind"] in ("add", "upsert", "update") else None
            if new is not None:
                self.batches[j] = (len(op["ids"]), op["kind"])
            for id_ in op["ids"]:
                old = self.rows.pop(id_, None)
                if old is not None:
                    fp ^= row_hash(id_, old)
                    counts[old % TAGS] -= 1
                if new is not None:
                    self.rows[id_] = new
                    fp ^= row_hash(id_, new)
                    counts[new % TAGS] += 1
                js, values = self.history.setdefault(id_, ([], []))
                js.append(j)
                values.append(new)
            self.fp.append(fp)
            self.tag_counts.append(tuple(counts))
            self.by_fp.setdefault(fp, []).append(j)

    def match(self, rows: dict[str, int], lo: int, hi: int) -> list[int]:
        """Every op ``j`` in ``lo..hi`` after which the stream's state is exactly ``rows``
        (id -> batch). States can repeat (a compaction, or a delete undoing the add before
        it), so a snapshot can match several."""
        self.extend(hi)
        fp = 0
        for id_, b in rows.items():
            fp ^= row_hash(id_, b)
        js = self.by_fp.get(fp, [])
        found = js[bisect.bisect_left(js, lo) : bisect.bisect_right(js, hi)]
        return [j for j in found if sum(self.tag_counts[j]) == len(rows)]

    def values(self, id_: str, lo: int, hi: int) -> set:
        """The batches (None: absent) row ``id_`` holds in the states ``lo..hi``."""
        js, values = self.history.get(id_, ([], []))
        i = bisect.bisect_right(js, lo)
        out = {values[i - 1] if i else None}
        while i < len(js) and js[i] <= hi:
            out.add(values[i])
            i += 1
        return out

    def stable(self, id_: str, lo: int, hi: int) -> bool:
        """Whether row ``id_`` is unchanged from state ``lo`` to state ``hi``."""
        js, _ = self.history.get(id_, ([], []))
        i = bisect.bisect_right(js, lo)
        return i == len(js) or js[i] > hi

    def meta(self, id_: str, b: int) -> dict:
        n, kind = self.batches[b]
        return batch_meta(self.writer, b, n, kind)


def possible_counts(models: list[Model], pairs: frozenset, lo: list[int], hi: list[int]) -> set:
    """Every number of rows with (writer, tag) in ``pairs`` some state between the snapshots
    ``lo`` and ``hi`` (per writer) can hold."""
    totals = {0}
    for w, model in enumerate(models):
        tags = [t for (v, t) in pairs if v == w]
        own = {sum(model.tag_counts[j][t] for t in tags) for j in range(lo[w], hi[w] + 1)}
        totals = {a + b for a in totals for b in own}
    return totals


# ---------------------------------------------------------------------------------------------
# the child processes
# ---------------------------------------------------------------------------------------------


def run_op(c, writer: int, op: dict) -> None:
    kind, ids = op["kind"], op["ids"]
    if kind in ("add", "upsert", "update"):
        b = op["n"]
        getattr(c, kind)(
            ids,
            vectors=np.stack([vector(i, b) for i in ids]),
            documents=[document(i, b) for i in ids],
            metadata=[batch_meta(writer, b, len(ids), kind)] * len(ids),
        )
    elif kind == "delete":
        if (got := c.delete(ids)) != len(ids):
            raise AssertionError(f"op {op['n']}: delete removed {got} of {len(ids)} rows")
    elif kind == "delete_where":
        if (got := c.delete(where={"w": writer, "b": op["old"]})) != len(ids):
            raise AssertionError(f"op {op['n']}: delete_where removed {got} of {len(ids)} rows")
    else:
        c.compact()


def create_store(path: Path) -> None:
    with vecstore.open(path, seal_rows=SEAL_ROWS, progress=False) as db:
        for name, spec in INDEXES.items():
            db.create_collection(name, dim=DIM, index=spec)


def warm_up(directory: Path) -> None:
    """Write and read a scratch store as a run does, so the kernels are compiled into
    numba's on-disk cache (the parent) or loaded from it (a writer)."""
    create_store(directory)
    with vecstore.open(directory, seal_rows=SEAL_ROWS, progress=False) as db:
        for name in INDEXES:
            c = db.get_collection(name)
            ids = [row_id(0, i) for i in range(240)]  # past min_rows: the IVF-PQ index trains
            run_op(c, 0, {"n": 1, "kind": "add", "ids": ids})
            run_op(c, 0, {"n": 2, "kind": "upsert", "ids": ids[:5]})
            run_op(c, 0, {"n": 3, "kind": "add", "ids": [row_id(0, 300)]})
            run_op(c, 0, {"n": 4, "kind": "compact", "ids": []})
    warm_reads(directory)


def warm_reads(directory: Path) -> None:
    """Query a store as a reader does, so that its kernels are loaded before the run."""
    with vecstore.open(directory, read_only=True) as db:
        for name in INDEXES:
            c = db.get_collection(name)
            q = np.ones((3, DIM), dtype=np.float32)
            for where in (None, {"w": 0}):
                c.query(q[0], k=5, where=where)
                c.query_many(q, k=5, where=where)
            c.get(c.get(limit=5).ids, include_vectors=True)


def write(db, path: Path, writer: int, start: float, deadline: float) -> dict:
    """Apply the writer's stream to every collection until the deadline; report what was
    acknowledged (op numbers from 1 to ``acked``, and the rows they leave: id -> batch)."""
    out = {"role": "writer", "writer": writer, "acked": 0, "errors": []}
    kinds: Counter = Counter()
    rows = 0
    latencies = []
    live: dict[str, int] = {}
    cols = [db.get_collection(name) for name in INDEXES]
    progress = os.open(path.parent / f"started-{writer}", os.O_RDWR | os.O_CREAT, 0o644)
    for op in operations(writer):
        t = time.time()
        if t >= deadline:
            break
        os.pwrite(progress, struct.pack("<q", op["n"]), 0)
        try:
            for c in cols:
                run_op(c, writer, op)
        except Exception as exc:  # any error fails the test: report it, stop writing
            out["errors"].append(f"op {op['n']} {op['kind']}: {exc!r}")
            break
        latencies.append((time.time() - t, op["n"], op["kind"], len(op["ids"])))
        out["acked"] = op["n"]
        for id_ in op["ids"]:
            if op["kind"] in ("delete", "delete_where"):
                live.pop(id_)
            else:
                live[id_] = op["n"]
        kinds[op["kind"]] += 1
        rows += len(op["ids"])
    seconds = time.time() - start
    os.close(progress)
    lat = np.array([x[0] for x in latencies] or [0.0])
    out.update(
        seconds=round(seconds, 2),
        batches_per_s=round(out["acked"] / seconds, 1),
        writes_per_s=round(len(INDEXES) * out["acked"] / seconds, 1),
        rows_per_s=round(len(INDEXES) * rows / seconds, 1),
        latency_ms={"p50": round(1e3 * np.median(lat), 1), "max": round(1e3 * lat.max(), 1)},
        kinds=dict(kinds),
        slowest=[(round(1e3 * x[0]), *x[1:]) for x in sorted(latencies, reverse=True)[:3]],
        live=live,
    )
    return out


def started(path: Path) -> list[int]:
    """The op each writer has started (0 before its first): no snapshot taken before this
    call can hold a later one."""
    out = []
    for w in (0, 1):
        try:
            out.append(struct.unpack("<q", (path.parent / f"started-{w}").read_bytes()[:8])[0])
        except (FileNotFoundError, struct.error):
            out.append(0)
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class Checker:
    """A reader's view of one collection: rounds of reads between two full snapshots, each
    read checked against the states the writers' streams can have been in meanwhile."""

    def __init__(self, c, path: Path, models: list[Model], rng: np.random.Generator):
        self.c = c
        self.path = path
        self.exact = isinstance(INDEXES[c.name], vecstore.Flat)
        self.models = models
        self.rng = rng
        self.last = [0, 0]  # per writer, the first op the last snapshot can be at
        self.before: tuple | None = None
        self.pending: list = []
        self.reads = 0
        self.checked: Counter = Counter()
        self.problems: list[str] = []

    def problem(self, what: str) -> None:
        self.checked["inconsistent"] += 1
        if len(self.problems) < 10:
            self.problems.append(f"{self.c.name}: {what}")

    def round(self) -> None:
        if self.before is None:
            self.before = self.snapshot()
            return
        lo, _, prev = self.before
        self.pending = []
        self.read_count()
        self.read_get_where()
        self.read_ids(prev)
        self.read_document(prev)
        self.read_query(prev, many=False)
        self.read_query(prev, many=True)
        after = self.snapshot()
        if after is not None:
            for name, check in self.pending:
                self.checked[name] += 1
                if bad := check(lo, after[1], prev):
                    self.problem(bad)
        self.before = after

    def snapshot(self) -> tuple[list[int], list[int], list[dict[str, int]]] | None:
        """A full get(). Returns, per writer, the first and last op after which the stream's
        state is exactly the rows seen (at or after the snapshot before; at or before the
        op the writer has started), and the rows (id -> batch); None if there is none."""
        got = self.c.get()
        self.reads += 1
        self.checked["full_snapshots"] += 1
        rows: list[dict[str, int]] = [{}, {}]
        sizes: Counter = Counter()
        for id_, doc, meta in zip(got.ids, got.documents, got.metadata):
            w, b = meta.get("w"), meta.get("b")
            if w not in (0, 1) or writer_of(id_) != w or id_ in rows[w] or doc != document(id_, b):
                self.problem(f"row {id_!r} {meta} {doc!r}: malformed or repeated")
                return None
            rows[w][id_] = b
            sizes[(w, b, meta["n"])] += 1
        for (w, b, n), seen in sizes.items():
            if seen != n:
                self.problem(f"torn batch: writer {w} batch {b} shows {seen} of its {n} rows")
                return None
        bounds = started(self.path)  # read after the snapshot
        lows, highs = [], []
        for w, model in enumerate(self.models):
            js = model.match(rows[w], self.last[w], bounds[w])
            if not js:
                self.problem(
                    f"writer {w}: the {len(rows[w])} rows seen are its state after no op "
                    f"from {self.last[w]} (seen before) to {bounds[w]} (the last it started)"
                )
                return None
            lows.append(js[0])
            highs.append(js[-1])
        for id_, meta in zip(got.ids, got.metadata):
            if meta != self.models[meta["w"]].meta(id_, meta["b"]):
                self.problem(f"{id_!r}: metadata {meta} is not its batch's")
                return None
        self.last = lows
        return lows, highs, rows

    # -- reads between two snapshots; each leaves a check run once the next is taken --------

    def valid(self, id_: str, meta: dict, doc: str | None, lo, hi) -> str | None:
        """Whether a row read holds one version of row ``id_`` live between ops lo and hi."""
        w = writer_of(id_)
        b = meta.get("b")
        model = self.models[w]
        if b not in model.values(id_, lo[w], hi[w]):
            return f"{id_!r} batch {b} was not live between ops {lo[w]} and {hi[w]}"
        if meta != model.meta(id_, b):
            return f"{id_!r}: metadata {meta} is not batch {b}'s {model.meta(id_, b)}"
        if doc != document(id_, b):
            return f"{id_!r}: document {doc!r} is not batch {b}'s"
        return None

    def read_count(self) -> None:
        where, pairs = FILTERS[self.rng.integers(len(FILTERS))]
        n = self.c.count(where)
        self.reads += 1

        def check(lo, hi, _):
            if n not in possible_counts(self.models, pairs, lo, hi):
                return f"count({where}) = {n}: no state between ops {lo} and {hi} has that"

        self.pending.append(("counts", check))

    def read_get_where(self) -> None:
        where, pairs = FILTERS[self.rng.integers(len(FILTERS))]
        got = self.c.get(where=where)
        self.reads += 1

        def check(lo, hi, _):
            if len(got) not in possible_counts(self.models, pairs, lo, hi):
                return f"len(get(where={where})) = {len(got)}: no state between {lo} and {hi}"
            for id_, doc, meta in zip(got.ids, got.documents, got.metadata):
                if (meta["w"], meta["tag"]) not in pairs:
                    return f"get(where={where}) returned {meta}"
                if bad := self.valid(id_, meta, doc, lo, hi):
                    return bad

        self.pending.append(("filtered_gets", check))

    def read_ids(self, rows) -> None:
        known = [i for w in (0, 1) for i in rows[w]]
        pick = (
            [str(i) for i in self.rng.choice(known, 20, replace=False)]
            if len(known) > 20
            else known
        )
        pick += [row_id(0, 10**9), row_id(1, 10**9)]  # never written
        got = self.c.get(pick, include_vectors=True)
        self.reads += 1

        def check(lo, hi, _):
            if got.ids != [i for i in pick if i in set(got.ids)]:
                return f"get(ids) returned {got.ids[:5]}... not in the order asked"
            for id_, doc, meta, vec in zip(got.ids, got.documents, got.metadata, got.vectors):
                if bad := self.valid(id_, meta, doc, lo, hi):
                    return bad
                if not np.array_equal(vec, vector(id_, meta["b"])):
                    return f"{id_!r}: the vector is not batch {meta['b']}'s"
            for id_ in set(pick) - set(got.ids):
                w = writer_of(id_)
                if None not in self.models[w].values(id_, lo[w], hi[w]):
                    return f"get(ids) missed {id_!r}, live from op {lo[w]} to {hi[w]}"

        self.pending.append(("id_gets", check))

    def read_document(self, rows) -> None:
        batches = sorted({(w, b) for w in (0, 1) for b in rows[w].values()})
        if not batches:
            return
        w, b = batches[self.rng.integers(len(batches))]
        got = self.c.get(where_document={"$contains": f"writer{w}-batch{b}."})
        self.reads += 1

        def check(lo, hi, _):
            for id_, doc, meta in zip(got.ids, got.documents, got.metadata):
                if (meta["w"], meta["b"]) != (w, b):
                    return f"where_document writer{w}-batch{b}. returned {id_!r}: {meta}"
                if bad := self.valid(id_, meta, doc, lo, hi):
                    return bad
            if got.ids and len(got) != got.metadata[0]["n"]:
                return f"where_document returned {len(got)} rows of {got.metadata[0]}"

        self.pending.append(("document_gets", check))

    def read_query(self, rows, many: bool) -> None:
        where, pairs = FILTERS[self.rng.integers(len(FILTERS))]
        k = int(self.rng.choice([1, 5, 20]))
        known = [(i, b) for w in (0, 1) for i, b in rows[w].items()]
        if known and self.rng.random() < 0.5:  # a row's own vector
            i, b = known[self.rng.integers(len(known))]
            q = vector(i, b)[None, :]
        else:
            q = self.rng.standard_normal((1, DIM)).astype(np.float32)
        if many:
            q = np.concatenate([q, self.rng.standard_normal((2, DIM)).astype(np.float32)])
            results = self.c.query_many(q, k=k, where=where)
        else:
            results = [self.c.query(q[0], k=k, where=where)]
        self.reads += 1

        def check(lo, hi, prev):
            counts = possible_counts(self.models, pairs, lo, hi)
            for x, res in zip(q, results):
                if len(res) not in {min(k, n) for n in counts}:
                    return f"query(k={k}, where={where}) gave {len(res)} rows; counts {counts}"
                if len(set(res.ids)) != len(res.ids) or np.any(np.diff(res.scores) > 1e-6):
                    return f"query results repeat ids or are not best first: {res.ids}"
                for id_, doc, meta, score in zip(res.ids, res.documents, res.metadata, res.scores):
                    if (meta["w"], meta["tag"]) not in pairs:
                        return f"query(where={where}) returned {meta}"
                    if bad := self.valid(id_, meta, doc, lo, hi):
                        return bad
                    if abs(score - cosine(x, vector(id_, meta["b"]))) > 1e-4:
                        return f"{id_!r}: score {score} is not batch {meta['b']}'s vector's"
                if self.exact:  # no row unchanged throughout that beats the k-th is missing
                    floor = res.scores[-1] + 1e-4 if len(res) == k else -np.inf
                    for w in (0, 1):
                        for id_, b in prev[w].items():
                            if (
                                (w, b % TAGS) in pairs
                                and id_ not in res.ids
                                and self.models[w].stable(id_, lo[w], hi[w])
                                and cosine(x, vector(id_, b)) > floor
                            ):
                                return f"exact query(k={k}, where={where}) missed {id_!r}"

        self.pending.append(("queries", check))


def read(db, path: Path, reader: int, start: float, deadline: float) -> dict:
    """Check rounds of reads on every collection until the deadline; report the counts."""
    out = {"role": "reader", "reader": reader, "errors": []}
    models = [Model(0), Model(1)]  # shared: a pure function of the streams
    rng = np.random.default_rng([SEED, 99, reader])
    checkers = [Checker(db.get_collection(name), path, models, rng) for name in INDEXES]
    slowest = 0.0
    while time.time() < deadline:
        for ch in checkers:
            t = time.time()
            try:
                ch.round()
            except Exception as exc:  # any error fails the test: report it, go on reading
                ch.before = None
                if len(out["errors"]) < 10:
                    out["errors"].append(f"{exc!r}\n{traceback.format_exc(limit=4)}")
            slowest = max(slowest, time.time() - t)
    seconds = time.time() - start
    reads = sum(ch.reads for ch in checkers)
    checked = {ch.c.name: dict(ch.checked) for ch in checkers}
    out.update(
        seconds=round(seconds, 2),
        reads=reads,
        reads_per_s=round(reads / seconds, 1),
        snapshots_checked=sum(
            v for per in checked.values() for k, v in per.items() if k != "inconsistent"
        ),
        slowest_round_ms=round(1e3 * slowest, 1),
        checked=checked,
        inconsistent=sum(per.get("inconsistent", 0) for per in checked.values()),
        problems=[p for ch in checkers for p in ch.problems],
        last_ops={ch.c.name: ch.last for ch in checkers},
    )
    return out


def child() -> None:
    """A child process: ``role path number``. Warms up, opens the store, prints "ready",
    waits for "start deadline" (wall-clock times) on stdin, runs, prints its JSON report."""
    role, path, number = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if role == "write":
        warm_up(path.parent / f"warm-writer{number}")
    else:
        warm_reads(path.parent / "warm")  # the parent's scratch store
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if role == "write":
            db = vecstore.open(path, seal_rows=SEAL_ROWS, lock_timeout=LOCK_TIMEOUT)
        else:
            db = vecstore.open(path, read_only=True, lock_timeout=LOCK_TIMEOUT)
        with db:
            print("ready", flush=True)
            start, deadline = map(float, sys.stdin.readline().split())
            time.sleep(max(0.0, start - time.time()))
            out = (write if role == "write" else read)(db, path, number, start, deadline)
    out["warnings"] = [str(w.message) for w in caught]
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------------------------


def spawn(tmp_path: Path, role: str, number: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("VECSTORE_FAULT", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tests.reliability.test_concurrency import child; child()",
            role,
            str(tmp_path / "store"),
            str(number),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / f"{role}{number}.err").open("w"),
        text=True,
    )


def expected_rows(acked: list[int]) -> dict[str, dict]:
    """id -> metadata of every row the writers' acknowledged ops leave."""
    out = {}
    for w, n in enumerate(acked):
        model = Model(w)
        model.extend(n)
        for id_, b in model.rows.items():
            out[id_] = model.meta(id_, b)
    return out


def test_two_writers_two_readers_stay_consistent(tmp_path, long_run):
    duration = float(os.environ.get("VECSTORE_CONCURRENCY_SECONDS", 60 if long_run else 15))
    warm_up(tmp_path / "warm")
    create_store(tmp_path / "store")
    procs = [spawn(tmp_path, "write", w) for w in (0, 1)] + [
        spawn(tmp_path, "read", r) for r in (0, 1)
    ]
    for p in procs:
        line = p.stdout.readline()
        assert line.strip() == "ready", f"a child failed to start: see {tmp_path}/*.err"
    start = time.time() + 0.5
    for p in procs:
        p.stdin.write(f"{start} {start + duration}\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        out, _ = p.communicate(timeout=duration + 600)
        assert p.returncode == 0, f"a child failed: see {tmp_path}/*.err"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    writers = [r for r in reports if r["role"] == "writer"]
    readers = [r for r in reports if r["role"] == "reader"]

    final = {}
    with vecstore.open(tmp_path / "store", read_only=True) as db:
        for name in INDEXES:
            c = db.get_collection(name)
            final[name] = (c.get(include_vectors=True), c.count())
        verified = db.verify()
    figures = {
        "seconds": duration,
        "collections": list(INDEXES),
        "writers": [
            {
                k: r[k]
                for k in ("writer", "acked", "batches_per_s", "writes_per_s", "rows_per_s")
                + ("latency_ms", "slowest", "kinds")
            }
            for r in writers
        ],
        "readers": [
            {
                k: r[k]
                for k in ("reader", "reads", "reads_per_s", "snapshots_checked")
                + ("slowest_round_ms", "checked")
            }
            for r in readers
        ],
        "final_rows": {name: len(got) for name, (got, _) in final.items()},
        "errors": sum(len(r["errors"]) for r in reports),
        "warnings": sum(len(r["warnings"]) for r in reports),
        "inconsistent": sum(r["inconsistent"] for r in readers),
    }
    line = json.dumps(figures)
    (tmp_path / "concurrency.json").write_text(line + "\n")
    print(f"\nconcurrency figures ({tmp_path / 'concurrency.json'}):\n{line}")

    problems = {
        f"{r['role']} {r.get('writer', r.get('reader'))}": r["errors"]
        + r["warnings"]
        + r.get("problems", [])
        for r in reports
    }
    assert not any(problems.values()), problems
    for r in writers:
        assert r["acked"] > 10, r  # the writer wrote throughout the run
        assert r["kinds"].get("upsert") and r["kinds"].get("delete"), r
    for r in readers:
        for name, checked in r["checked"].items():
            assert checked["full_snapshots"] > 5 and checked.get("queries"), (name, r)
            assert max(r["last_ops"][name]) > 0, r  # the reader saw writes land
    want = expected_rows([r["acked"] for r in writers])
    acknowledged = {id_: b for r in writers for id_, b in r["live"].items()}
    assert acknowledged == {id_: meta["b"] for id_, meta in want.items()}
    for got, count in final.values():
        assert sorted(got.ids) == sorted(want)
        assert count == len(want)
        for id_, doc, meta, vec in zip(got.ids, got.documents, got.metadata, got.vectors):
            assert meta == want[id_]
            assert doc == document(id_, meta["b"])
            np.testing.assert_array_equal(vec, vector(id_, meta["b"]))
    assert verified.ok, verified.problems


def test_the_checks_catch_torn_batches_and_states_never_written(tmp_path):
    """The readers' checks are not vacuous: a batch missing a row, or a state no prefix of
    the stream leaves, is reported."""
    path = tmp_path / "store"
    create_store(path)
    with vecstore.open(path) as db:
        c = db.get_collection("flat")
        for op in itertools.islice(operations(0), 30):
            run_op(c, 0, op)
        (tmp_path / "started-0").write_bytes(struct.pack("<q", 30))
        checker = Checker(c, path, [Model(0), Model(1)], np.random.default_rng(0))
        for _ in range(3):
            checker.round()
        assert checker.problems == [] and checker.last == [30, 0]
        assert sum(checker.checked.values()) > 10
        model = checker.models[0]
        batch = next(b for b in sorted(set(model.rows.values())) if model.batches[b][0] > 1)
        ids = [i for i, b in model.rows.items() if b == batch]
        c.delete(ids[:1])
        assert checker.snapshot() is None and "torn batch" in checker.problems[-1]
        c.delete(ids[1:])  # the batch wholly gone, but by no op of the stream
        assert checker.snapshot() is None and "after no op" in checker.problems[-1]
