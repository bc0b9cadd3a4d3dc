"""Sharded collections: one collection spread over N stores, rows routed by a hash of the id.

``ShardedCollection`` holds a collection of the same name in each of N stores (one per
worker, disk or node). Writes route each row to the shard ``shard_of(id, N)`` names (a
stable hash, never Python's salted ``hash``); reads fan out to every shard with the same
filters, and the per-shard top-k are merged exactly, so an exact search returns what one
store holding all the rows would. With a Dask ``client`` each shard runs on a worker of its
own (``client.submit`` pinned to it); without one, the shards are opened in this process
and called in turn. Writes are atomic per shard, not across shards. Must not import dask.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import inputs
from .errors import InvalidInput
from .results import GetResult, QueryResult

__all__ = ["ShardedCollection", "open_sharded", "shard_of"]


def shard_of(id: str, n: int) -> int:
    """The shard (0 .. n-1) that row ``id`` lives on: blake2b of its UTF-8 bytes, mod n."""
    digest = hashlib.blake2b(id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n


# -- the shard side: runs in this process, or in a Dask worker --------------------------

_OPEN: dict[str, Any] = {}  # path -> open Database, per process (a worker keeps its shards)
_OPEN_LOCK = threading.Lock()


def _database(path: str):
    import vecstore

    with _OPEN_LOCK:
        db = _OPEN.get(path)
        if db is None:
            db = _OPEN[path] = vecstore.open(path)
        return db


def _forget(paths: list[str]) -> None:
    with _OPEN_LOCK:
        for p in paths:
            db = _OPEN.pop(p, None)
            if db is not None:
                db.close()


def _on_shard(path: str, name: str, encoder: Any, create: dict | None, fn: Callable, *args):
    db = _database(path)
    if create is not None:
        coll = db.get_or_create_collection(name, encoder=encoder, **create)
    else:
        coll = db.get_collection(name, encoder=encoder)
    return fn(coll, *args)


def _describe(coll) -> tuple[int, str]:
    return coll.dim, coll.metric


def _embed(coll, texts: list[str]) -> np.ndarray:
    enc = coll.encoder
    if enc is None:
        raise InvalidInput(f"collection {coll.name!r} has no encoder: query with vectors")
    return inputs.matrix(enc.encode(texts, "query"), coll.dim, n=len(texts))


def _search(coll, xq, k, where, where_document, nprobe, refine, exact) -> list[QueryResult]:
    return coll.query_many(
        xq,
        k=k,
        where=where,
        where_document=where_document,
        nprobe=nprobe,
        refine=refine,
        exact=exact,
    )


def _add(coll, upsert, ids, vectors, documents, metadata) -> int:
    if upsert:
        coll.upsert(ids, vectors=vectors, documents=documents, metadata=metadata)
    else:
        coll.add(ids, vectors=vectors, documents=documents, metadata=metadata)
    return len(ids)


def _get(coll, ids, where, limit, include_vectors) -> GetResult:
    return coll.get(ids, where=where, limit=limit, include_vectors=include_vectors)


def _sample(coll, fraction: float, seed: int) -> np.ndarray:
    ids = coll.get().ids
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(ids))[: max(1, round(fraction * len(ids)))] if ids else []
    chosen = [ids[i] for i in np.sort(pick)]
    if not chosen:
        return np.zeros((0, coll.dim), np.float32)
    return coll.get(chosen, include_vectors=True).vectors


def _install(coll, spec, model) -> dict:
    coll.install_index(spec, model)
    return coll.index_info()


def _count(coll, where) -> int:
    return coll.count(where)


def _delete(coll, ids, where) -> int:
    return coll.delete(ids, where=where)


# -- the client side ---------------------------------------------------------------------


class ShardedCollection:
    """One collection over the stores ``paths``; get one from ``open_sharded``.

    ``add``/``upsert`` route rows by ``shard_of(id, len(paths))``; ``query``,
    ``query_many``, ``get``, ``count`` and ``delete`` fan out to every shard with the
    filters, and merge. Vector queries only (BM25 statistics are per shard, so keyword and
    hybrid scores would not merge exactly). Not atomic across shards: a write that fails on
    one shard may have landed on others.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        name: str,
        *,
        client: Any = None,
        encoder: Any = None,
        create: dict | None = None,
    ):
        if isinstance(paths, (str, os.PathLike)) or not paths:
            raise InvalidInput("paths must be a non-empty list of store folders, one per shard")
        self.paths = [os.fspath(p) for p in paths]
        if len(set(self.paths)) != len(self.paths):
            raise InvalidInput("two shards share a store folder")
        self.name = name
        self._client = client
        self._encoder = encoder
        self._workers: list[str] = []
        if client is not None:
            workers = sorted(client.scheduler_info()["workers"])
            if not workers:
                raise InvalidInput("the Dask client has no workers")
            self._workers = [workers[i % len(workers)] for i in range(len(self.paths))]
        self._create = create
        self.dim, self.metric = self._gather([(i, _describe, ()) for i in range(len(self.paths))])[
            0
        ]
        self._create = None  # created (or found) on every shard now

    def __repr__(self) -> str:
        where = "dask" if self._client is not None else "in-process"
        return (
            f"<vecstore.ShardedCollection {self.name!r} shards={len(self.paths)} "
            f"dim={self.dim} metric={self.metric!r} ({where})>"
        )

    @property
    def shards(self) -> int:
        return len(self.paths)

    def close(self) -> None:
        """Close the shards' stores, in this process and on the client's workers."""
        if self._client is not None and self._client.status == "running":
            self._client.run(_forget, self.paths)
        _forget(self.paths)

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running calls on shards ------------------------------------------------------

    def _gather(self, calls: list[tuple[int, Callable, tuple]]) -> list:
        """Run ``fn(collection, *args)`` on shard ``i`` for each call; results in order."""
        if self._client is None:
            return [
                _on_shard(self.paths[i], self.name, self._encoder, self._create, fn, *args)
                for i, fn, args in calls
            ]
        futures = [
            self._client.submit(
                _on_shard,
                self.paths[i],
                self.name,
                self._encoder,
                self._create,
                fn,
                *args,
                workers=[self._workers[i]],
                allow_other_workers=True,
                pure=False,
            )
            for i, fn, args in calls
        ]
        return self._client.gather(futures)

    def _route(self, ids: list[str]) -> dict[int, np.ndarray]:
        n = len(self.paths)
        owner = np.fromiter((shard_of(i, n) for i in ids), dtype=np.int64, count=len(ids))
        return {s: np.flatnonzero(owner == s) for s in range(n) if (owner == s).any()}

    # -- writes -----------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Any = None,
        metadata: Any = None,
    ) -> None:
        """Add rows, each to its shard (``DuplicateIdError`` if an id exists there)."""
        self._write(False, ids, vectors, documents, metadata)

    def upsert(
        self,
        ids: Sequence[str],
        *,
        vectors: Any = None,
        documents: Any = None,
        metadata: Any = None,
    ) -> None:
        """Add or replace rows, each on its shard."""
        self._write(True, ids, vectors, documents, metadata)

    def _write(self, upsert: bool, ids, vectors, documents, metadata) -> None:
        ids = inputs.ids(ids)
        n = len(ids)
        x = None if vectors is None else inputs.matrix(vectors, self.dim, n=n)
        docs = None if documents is None else inputs.documents(documents, n)
        metas = None if metadata is None else inputs.metadata(metadata, n)
        calls = []
        for s, rows in self._route(ids).items():
            calls.append(
                (
                    s,
                    _add,
                    (
                        upsert,
                        [ids[j] for j in rows],
                        None if x is None else x[rows],
                        None if docs is None else [docs[j] for j in rows],
                        None if metas is None else [metas[j] for j in rows],
                    ),
                )
            )
        self._gather(calls)

    def delete(self, ids: Sequence[str] | None = None, *, where: dict | None = None) -> int:
        """Delete rows by id (on their shards) and/or filter (on every shard)."""
        if ids is None:
            calls = [(s, _delete, (None, where)) for s in range(self.shards)]
        else:
            ids = inputs.ids(ids)
            calls = [
                (s, _delete, ([ids[j] for j in rows], where))
                for s, rows in self._route(ids).items()
            ]
        return sum(self._gather(calls))

    # -- the ANN index ----------------------------------------------------------------

    def create_index(self, spec: Any, *, seed: int = 0) -> list[dict]:
        """Train one IVF or IVF-PQ model on a uniform sample of all shards' rows, then
        install it in every shard (``Collection.install_index``): the shards share their
        coarse quantiser and codebooks, so a query probes the same lists on each, and no
        shard retrains alone. Returns each shard's ``index_info()``."""
        from .index import ivf, specs

        if not isinstance(spec, (specs.IVF, specs.IVFPQ)):
            raise InvalidInput(f"create_index needs an IVF or IVFPQ spec; got {spec!r}")
        n_total = self.count()
        nlist = spec.nlist or specs.default_nlist(n_total)
        want = nlist * specs.TRAIN_POINTS_PER_LIST + ivf.TUNE_QUERIES
        if isinstance(spec, specs.IVFPQ):
            want = max(want, specs.PQ_TRAIN_ROWS + ivf.TUNE_QUERIES)
        fraction = min(1.0, want / max(n_total, 1))
        parts = self._gather([(s, _sample, (fraction, seed + s)) for s in range(self.shards)])
        sample = np.concatenate(parts)
        sample = sample[np.random.default_rng(seed).permutation(len(sample))]
        model = ivf.TrainedModel.train(sample, self.metric, spec, n_total, seed=seed)
        return self._gather([(s, _install, (spec, model)) for s in range(self.shards)])

    # -- reads ------------------------------------------------------------------------

    def count(self, where: dict | None = None) -> int:
        return sum(self._gather([(s, _count, (where,)) for s in range(self.shards)]))

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: dict | None = None,
        limit: int | None = None,
        include_vectors: bool = False,
    ) -> GetResult:
        """Rows by id (in the order given, missing ones skipped) or by filter (shard by
        shard, each in its insertion order, at most ``limit`` in all)."""
        limit = inputs.integer("limit", limit, optional=True)
        if ids is not None:
            ids = inputs.ids(ids)
            routed = self._route(ids)
            got = self._gather(
                [
                    (s, _get, ([ids[j] for j in rows], where, None, include_vectors))
                    for s, rows in routed.items()
                ]
            )
            found: dict[str, tuple] = {}
            for res in got:
                for j, id_ in enumerate(res.ids):
                    vec = None if res.vectors is None else res.vectors[j]
                    found[id_] = (res.documents[j], res.metadata[j], vec)
            order = [i for i in dict.fromkeys(ids) if i in found]
            order = order if limit is None else order[:limit]
            rows = [found[i] for i in order]
        else:
            got = self._gather(
                [(s, _get, (None, where, limit, include_vectors)) for s in range(self.shards)]
            )
            order, rows = [], []
            for res in got:
                for j, id_ in enumerate(res.ids):
                    order.append(id_)
                    vec = None if res.vectors is None else res.vectors[j]
                    rows.append((res.documents[j], res.metadata[j], vec))
            if limit is not None:
                order, rows = order[:limit], rows[:limit]
        vectors = None
        if include_vectors:
            vectors = np.zeros((len(rows), self.dim), dtype=np.float32)
            for j, r in enumerate(rows):
                vectors[j] = r[2]
        return GetResult(order, [r[0] for r in rows], [r[1] for r in rows], vectors)

    def query(
        self,
        q: Any,
        *,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
    ) -> QueryResult:
        """The ``k`` best rows over all shards for ``q`` (a vector, or a text embedded once
        by shard 0's encoder), merged exactly from each shard's top ``k``."""
        if isinstance(q, str):
            return self.query_many(
                [q],
                k=k,
                where=where,
                where_document=where_document,
                nprobe=nprobe,
                refine=refine,
                exact=exact,
            )[0]
        xq = inputs.query_vector(q, self.dim)
        return self.query_many(
            xq,
            k=k,
            where=where,
            where_document=where_document,
            nprobe=nprobe,
            refine=refine,
            exact=exact,
        )[0]

    def query_many(
        self,
        queries: Any,
        *,
        k: int = 10,
        where: dict | None = None,
        where_document: dict | None = None,
        nprobe: int | None = None,
        refine: int | None = None,
        exact: bool = False,
    ) -> list[QueryResult]:
        """``query`` for each row of ``(nq, dim)`` or each text of a list."""
        k = inputs.top_k(k)
        if isinstance(queries, (list, tuple)) and queries and isinstance(queries[0], str):
            if not all(isinstance(t, str) for t in queries):
                raise InvalidInput("query texts must all be str")
            xq = self._gather([(0, _embed, (list(queries),))])[0]
        else:
            xq = inputs.matrix(queries, self.dim, what="queries")
        inputs.query_batch(len(xq), k)
        per_shard = self._gather(
            [
                (s, _search, (xq, k, where, where_document, nprobe, refine, exact))
                for s in range(self.shards)
            ]
        )
        return [merge([res[i] for res in per_shard], k) for i in range(len(xq))]


def merge(results: Sequence[QueryResult], k: int) -> QueryResult:
    """The exact top ``k`` of several shards' results for one query (each holding its own
    top ``k``): best score first; ties keep shard order."""
    scores = np.concatenate([r.scores for r in results]).astype(np.float32, copy=False)
    order = np.argsort(-scores, kind="stable")[:k]
    ids = [i for r in results for i in r.ids]
    docs = [d for r in results for d in r.documents]
    metas = [m for r in results for m in r.metadata]
    return QueryResult(
        [ids[j] for j in order],
        scores[order],
        [docs[j] for j in order],
        [metas[j] for j in order],
        results[0].metric,
    )


def open_sharded(
    paths: Sequence[str | os.PathLike],
    name: str,
    *,
    client: Any = None,
    encoder: Any = None,
    dim: int | None = None,
    metric: str | None = None,
    index: Any = None,
) -> ShardedCollection:
    """The collection ``name`` over the stores ``paths`` (one shard each), created on any
    shard that lacks it with ``dim``/``metric``/``encoder``/``index`` as
    ``Database.get_or_create_collection`` takes them. With a Dask ``client``, shard ``i``
    runs on worker ``i mod workers``; the stores must be reachable there."""
    create = {}
    if dim is not None:
        create["dim"] = dim
    if metric is not None:
        create["metric"] = metric
    if index is not None:
        create["index"] = index
    return ShardedCollection(paths, name, client=client, encoder=encoder, create=create)
