"""A Hypothesis state machine: a Collection against a plain dict model.

The model is ``{id: (vector, document, metadata)}``; Python dicts keep insertion order the way
the store does (replacing a row keeps its place, deleting and re-adding moves it to the end).
Every rule applies one write to both; after every step the invariants compare everything the
public API can read back: counts, rows (documents, metadata, exact float32 vectors), order,
and exact top-k queries (with and without filters) against a NumPy computation of the metric,
and keyword queries against a BM25 oracle.

``seal_rows`` is tiny and batches straddle it, so the pending buffer, sealing, direct segment
writes, tier merges, mostly-dead rewrites, ``compact()`` and reopening all run. A bystander
collection in the same store must never change.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import vecstore
from tests.conftest import typed
from tests.test_hybrid import assert_ranked, bm25_oracle

DIM = 4
SEAL = 8
METRICS = ("cosine", "dot", "l2")

ID_POOL = [f"id{i}" for i in range(36)] + [
    "ünïcödé",
    "with space",
    "'; DROP TABLE rows; --",
    "🙂",
    'q"uote',
    "x" * 200,
]
DOCS = [None, "", "alpha", "Beta gamma", "ünïcödé", "it's", "%_*", "a\nb"]
METAS = [
    None,
    {},
    {"a": 1},
    {"a": 2, "t": "x"},
    {"a": 3.5, "t": "y", "flag": True},
    {"a": True},
    {"a": 2.0, "flag": False},
    {"tags": ["x", "y"], "t": "z"},
    {"t": "x", "tags": []},
    {"a": None, "tags": [1, "y", None]},
    {"ключ": "значение", "a": -7},
]
BATCH = st.sampled_from([1, 1, 2, 3, 5, 7, 8, 9, 13, 20])


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# (where filter, the same predicate over a metadata dict)
WHERES = [
    ({"a": {"$gte": 2}}, lambda m: _num(m.get("a")) and m["a"] >= 2),
    ({"a": 1}, lambda m: _num(m.get("a")) and m["a"] == 1),
    ({"a": True}, lambda m: m.get("a") is True),
    ({"t": "x"}, lambda m: m.get("t") == "x"),
    ({"flag": True}, lambda m: m.get("flag") is True),
    ({"tags": {"$contains": "y"}}, lambda m: isinstance(m.get("tags"), list) and "y" in m["tags"]),
    (
        {"$or": [{"a": 1}, {"t": "y"}]},
        lambda m: (_num(m.get("a")) and m["a"] == 1) or m.get("t") == "y",
    ),
    ({"a": {"$ne": 1}}, lambda m: not (_num(m.get("a")) and m["a"] == 1)),
    ({"$not": {"t": "x"}}, lambda m: m.get("t") != "x"),
    (
        {"a": {"$in": [2, -7, None]}},
        lambda m: "a" in m and (m["a"] is None or (_num(m["a"]) and m["a"] in (2, -7))),
    ),
    ({}, lambda m: True),
]
# The selective ones, for delete(where=...): the broad ones would empty the model too often.
DELETE_WHERES = [0, 1, 2, 3, 4, 5, 9]


def make_vectors(n: int, seed: int, kind: str) -> np.ndarray:
    r = np.random.default_rng(seed)
    if kind == "normal":
        x = r.standard_normal((n, DIM))
    elif kind == "ints":  # ties, duplicates and the occasional zero vector
        x = r.integers(-2, 3, (n, DIM))
    else:  # "scaled": a wide range of magnitudes
        x = r.standard_normal((n, DIM)) * 10.0 ** r.integers(-3, 4, (n, 1))
    return x.astype(np.float32)


def oracle_scores(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "dot":
        return x64 @ q64
    if metric == "cosine":
        den = np.linalg.norm(x64, axis=1) * np.linalg.norm(q64)
        return np.where(den > 0, (x64 @ q64) / np.where(den > 0, den, 1.0), 0.0)
    return -((x64 - q64) ** 2).sum(axis=1)


def tolerance(q: np.ndarray, x: np.ndarray, metric: str) -> float:
    qn = float(np.linalg.norm(q.astype(np.float64)))
    xn = float(np.linalg.norm(x.astype(np.float64), axis=1).max()) if len(x) else 0.0
    scale = {"cosine": 1.0, "dot": qn * xn, "l2": (qn + xn) ** 2}[metric]
    return 1e-4 * scale + 1e-6


class CollectionMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="vecstore-sm-"))
        self.path = self.tmp / "store"
        self.db = None
        self.coll = None
        self.model: dict[str, tuple[np.ndarray, str | None, dict]] = {}
        self.fresh = 0
        self.step = 0

    # -- setup and teardown -----------------------------------------------------------

    @initialize(metric=st.sampled_from(METRICS))
    def setup(self, metric):
        self.metric = metric
        self.db = vecstore.open(self.path, seal_rows=SEAL)
        # A bystander with rows the filters below would match: it must never change.
        other = self.db.create_collection("other", dim=DIM, metric="dot")
        self.other_vectors = make_vectors(11, 7, "normal")
        self.other_ids = [f"id{i}" for i in range(11)]
        other.add(
            self.other_ids,
            vectors=self.other_vectors,
            documents=["o"] * 11,
            metadata=[{"a": 1, "t": "x"}] * 11,
        )
        self.coll = self.db.create_collection("c", dim=DIM, metric=metric)
        assert self.db.list_collections() == ["c", "other"]

    def teardown(self):
        if self.db is not None:
            self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------

    def fresh_ids(self, data, n: int) -> list[str]:
        free = [i for i in ID_POOL if i not in self.model]
        take = data.draw(st.integers(0, min(n, len(free))), label="from pool")
        out = data.draw(st.permutations(free), label="pool order")[:take]
        while len(out) < n:
            self.fresh += 1
            out.append(f"new-{self.fresh}")
        return out

    def existing_ids(self, data, lo: int, hi: int) -> list[str]:
        have = list(self.model)
        hi = min(hi, len(have))
        if hi == 0:
            return []
        return data.draw(
            st.lists(st.sampled_from(have), min_size=min(lo, hi), max_size=hi, unique=True),
            label="existing ids",
        )

    @staticmethod
    def draw_docs(data, n: int):
        return data.draw(
            st.none() | st.lists(st.sampled_from(DOCS), min_size=n, max_size=n), label="documents"
        )

    @staticmethod
    def draw_metas(data, n: int):
        return data.draw(
            st.none() | st.lists(st.sampled_from(METAS), min_size=n, max_size=n), label="metadata"
        )

    @staticmethod
    def draw_vectors(data, n: int) -> np.ndarray:
        seed = data.draw(st.integers(0, 2**32 - 1), label="vector seed")
        kind = data.draw(st.sampled_from(["normal", "ints", "scaled"]), label="vector kind")
        return make_vectors(n, seed, kind)

    def shuffled(self, data, ids: list[str]) -> list[str]:
        return data.draw(st.permutations(ids), label="order") if ids else []

    # -- writes -----------------------------------------------------------------------

    @rule(data=st.data(), n=BATCH)
    def add_new(self, data, n):
        self.add_rows(data, n)

    def add_rows(self, data, n):
        ids = self.fresh_ids(data, n)
        x = self.draw_vectors(data, n)
        docs, metas = self.draw_docs(data, n), self.draw_metas(data, n)
        self.coll.add(ids, vectors=x, documents=docs, metadata=metas)
        for j, i in enumerate(ids):
            self.model[i] = (
                x[j].copy(),
                None if docs is None else docs[j],
                {} if metas is None or metas[j] is None else dict(metas[j]),
            )

    @rule(data=st.data(), n=st.sampled_from([16, 24, 40]))
    def add_bulk(self, data, n):
        """A second add rule, with big batches, so the collection usually holds some rows."""
        self.add_rows(data, n)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), n_new=st.sampled_from([0, 1, 3, 9]))
    def add_existing_refused(self, data, n_new):
        ids = self.shuffled(data, self.existing_ids(data, 1, 10) + self.fresh_ids(data, n_new))
        x = self.draw_vectors(data, len(ids))
        with pytest.raises(vecstore.DuplicateIdError):
            self.coll.add(
                ids,
                vectors=x,
                documents=self.draw_docs(data, len(ids)),
                metadata=self.draw_metas(data, len(ids)),
            )

    @rule(data=st.data(), n=st.sampled_from([1, 8]))
    def add_duplicate_in_batch_refused(self, data, n):
        ids = self.fresh_ids(data, n)
        ids = self.shuffled(data, ids + [ids[0]])
        with pytest.raises(vecstore.DuplicateIdError):
            self.coll.add(ids, vectors=self.draw_vectors(data, len(ids)))

    @rule(
        data=st.data(),
        n_new=st.sampled_from([0, 1, 2, 8, 10]),
        n_old=st.sampled_from([0, 1, 3, 8, 12]),
    )
    def upsert(self, data, n_new, n_old):
        ids = self.shuffled(data, self.existing_ids(data, 0, n_old) + self.fresh_ids(data, n_new))
        if not ids:
            return
        n = len(ids)
        x = self.draw_vectors(data, n)
        docs, metas = self.draw_docs(data, n), self.draw_metas(data, n)
        self.coll.upsert(ids, vectors=x, documents=docs, metadata=metas)
        for j, i in enumerate(ids):
            self.model[i] = (
                x[j].copy(),
                None if docs is None else docs[j],
                {} if metas is None or metas[j] is None else dict(metas[j]),
            )

    @precondition(lambda self: self.model)
    @rule(
        data=st.data(),
        n=st.sampled_from([1, 2, 7, 8, 12]),
        fields=st.sets(st.sampled_from(["vectors", "documents", "metadata"])),
    )
    def update(self, data, n, fields):
        ids = self.existing_ids(data, 1, n)
        k = len(ids)
        x = self.draw_vectors(data, k) if "vectors" in fields else None
        docs = (
            data.draw(st.lists(st.sampled_from(DOCS), min_size=k, max_size=k))
            if "documents" in fields
            else None
        )
        metas = (
            data.draw(st.lists(st.sampled_from(METAS), min_size=k, max_size=k))
            if "metadata" in fields
            else None
        )
        self.coll.update(ids, vectors=x, documents=docs, metadata=metas)
        for j, i in enumerate(ids):
            v, d, m = self.model[i]
            self.model[i] = (
                v if x is None else x[j].copy(),
                d if docs is None else docs[j],
                m if metas is None else ({} if metas[j] is None else dict(metas[j])),
            )

    @rule(
        data=st.data(),
        n_missing=st.sampled_from([1, 2, 9]),
        fields=st.sets(st.sampled_from(["vectors", "documents", "metadata"]), min_size=1),
    )
    def update_missing_refused(self, data, n_missing, fields):
        ids = self.shuffled(data, self.existing_ids(data, 0, 9) + self.fresh_ids(data, n_missing))
        k = len(ids)
        with pytest.raises(vecstore.IdNotFound):
            self.coll.update(
                ids,
                vectors=self.draw_vectors(data, k) if "vectors" in fields else None,
                documents=["changed"] * k if "documents" in fields else None,
                metadata=[{"a": 1, "t": "x"}] * k if "metadata" in fields else None,
            )

    @rule(
        data=st.data(),
        n_old=st.sampled_from([0, 1, 3, 8, 20]),
        n_missing=st.sampled_from([0, 1, 4]),
    )
    def delete_ids(self, data, n_old, n_missing):
        old = self.existing_ids(data, 0, n_old)
        ids = self.shuffled(data, old + self.fresh_ids(data, n_missing))
        assert self.coll.delete(ids) == len(old)
        for i in old:
            del self.model[i]

    @rule(data=st.data(), which=st.sampled_from(DELETE_WHERES), with_ids=st.booleans())
    def delete_where(self, data, which, with_ids):
        where, pred = WHERES[which]
        if with_ids:
            ids = self.existing_ids(data, 0, 10) + self.fresh_ids(data, 2)
            gone = [i for i in ids if i in self.model and pred(self.model[i][2])]
            got = self.coll.delete(ids, where=where)
        else:
            gone = [i for i, (_, _, m) in self.model.items() if pred(m)]
            got = self.coll.delete(where=where)
        assert got == len(gone)
        for i in gone:
            del self.model[i]

    @rule()
    def compact(self):
        self.coll.compact()

    @rule(
        seal_rows=st.sampled_from([SEAL, SEAL, 3]), durability=st.sampled_from(["full", "normal"])
    )
    def reopen(self, seal_rows, durability):
        self.db.close()
        with pytest.raises(vecstore.StoreClosed):
            self.coll.count()
        self.db = vecstore.open(self.path, seal_rows=seal_rows, durability=durability)
        self.coll = self.db.get_collection("c")
        assert (self.coll.name, self.coll.dim, self.coll.metric) == ("c", DIM, self.metric)
        assert self.db.list_collections() == ["c", "other"]

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def rows_match_model(self):
        if self.coll is None:
            return
        ids = list(self.model)
        n = len(ids)
        assert self.coll.count() == n
        assert self.coll.count({}) == n

        got = self.coll.get(include_vectors=True)
        assert got.ids == ids  # insertion order
        assert got.documents == [self.model[i][1] for i in ids]
        assert typed(got.metadata) == typed([self.model[i][2] for i in ids])
        assert got.vectors.dtype == np.float32 and got.vectors.shape == (n, DIM)
        if n:
            expect = np.stack([self.model[i][0] for i in ids])
            assert np.array_equal(got.vectors, expect)

        # By ids: the order given, missing ids skipped.
        r = np.random.default_rng(self.step)
        self.step += 1
        ask = list(r.permutation(ids + ["never-there", "id-missing"]))
        by_id = self.coll.get(ask, include_vectors=True)
        present = [i for i in ask if i in self.model]
        assert by_id.ids == present
        assert by_id.documents == [self.model[i][1] for i in present]
        assert typed(by_id.metadata) == typed([self.model[i][2] for i in present])
        for j, i in enumerate(present):
            assert np.array_equal(by_id.vectors[j], self.model[i][0])
        assert self.coll.get(ask).vectors is None

        # Pagination and peek follow insertion order.
        assert self.coll.peek(3).ids == ids[:3]
        off, lim = int(r.integers(0, n + 2)), int(r.integers(0, 6))
        assert self.coll.get(limit=lim, offset=off).ids == ids[off : off + lim]

    @invariant()
    def queries_match_numpy(self):
        if self.coll is None:
            return
        ids = list(self.model)
        n = len(ids)
        r = np.random.default_rng(10_000 + self.step)
        q = r.standard_normal(DIM).astype(np.float32)
        x = np.stack([self.model[i][0] for i in ids]) if n else np.zeros((0, DIM), np.float32)
        scores = dict(zip(ids, oracle_scores(q, x, self.metric), strict=False))
        tol = tolerance(q, x, self.metric)

        k = max(1, n + int(r.integers(0, 3)))
        res = self.coll.query(q, k=k)
        assert sorted(res.ids) == sorted(ids)
        assert res.metric == self.metric and res.scores.dtype == np.float32
        self.check_hits(res, scores, tol)
        assert res.documents == [self.model[i][1] for i in res.ids]
        assert typed(res.metadata) == typed([self.model[i][2] for i in res.ids])

        # A filtered query returns exactly min(k, matches), all matching, and the best ones.
        where, pred = WHERES[int(r.integers(0, len(WHERES)))]
        matches = {i for i in ids if pred(self.model[i][2])}
        assert self.coll.count(where) == len(matches)
        k = int(r.integers(1, n + 3))
        for res in (
            self.coll.query(q, k=k, where=where),
            self.coll.query_many(np.stack([q, -q]), k=k, where=where)[0],
        ):
            assert len(res.ids) == min(k, len(matches))
            assert len(set(res.ids)) == len(res.ids)
            assert set(res.ids) <= matches
            self.check_hits(res, scores, tol)
            left = [scores[i] for i in matches - set(res.ids)]
            if res.ids and left:
                assert min(scores[i] for i in res.ids) >= max(left) - 2 * tol

    @staticmethod
    def check_hits(res, scores, tol):
        got = np.asarray(res.scores, dtype=np.float64)
        want = np.asarray([scores[i] for i in res.ids], dtype=np.float64)
        assert np.all(np.abs(got - want) <= tol), (res.ids, got, want)
        assert np.all(np.diff(got) <= 0), "scores must come best first"

    @invariant()
    def keyword_search_matches_model(self):
        # The keyword index follows every write: BM25 over the model's documents.
        if self.coll is None:
            return
        docs = {i: d for i, (_, d, _) in self.model.items()}
        for q in ("alpha", "beta gamma", "unicode its"):
            assert_ranked(self.coll.query(q, mode="text", k=5), bm25_oracle(docs, q), 5)

    @invariant()
    def bystander_untouched(self):
        if self.db is None:
            return
        other = self.db.get_collection("other")
        got = other.get(include_vectors=True)
        assert got.ids == self.other_ids
        assert got.documents == ["o"] * 11
        assert got.metadata == [{"a": 1, "t": "x"}] * 11
        assert np.array_equal(got.vectors, self.other_vectors)


CollectionMachine.TestCase.settings = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    stateful_step_count=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestCollectionStateMachine = CollectionMachine.TestCase
