"""Filters answered from per-field columns (vecstore/fieldcols.py, fieldeval.py) keep exactly
the rows their SQL keeps.

Differential: random metadata of every kind and corner (ints and floats that compare equal,
True beside 1, ints past 2**53, -0.0 and infinities, "1" beside 1, unicode, lists, None,
missing keys) and a few hundred random filters; ``get`` (always SQL) and ``query`` over every
row (the columns, once read) must name the same rows. Then the columns follow the store:
another process's write, updates and deletes, reopening.
"""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

import vecstore
from vecstore import fieldcols, fieldeval

DIM = 4
N = 240
KEYS = ("a", "b", "c", "d")
BIG = 2**53
STORED = [
    None, True, False, 0, 1, -1, 2, 3, 1.0, 0.5, 2.5, -0.0, 0.0,
    BIG, BIG + 1, BIG - 1, float(BIG), 2**63 - 1, -(2**63), 1e300, -1e300,
    "", "1", "a", "b", "ab", "B", "é", "日本", "a\x00b", "😀", "z",
]  # fmt: skip
# filters may also name infinities (metadata may not hold them)
SCALARS = STORED + [float("inf"), float("-inf")]


def _value(r: random.Random):
    if r.random() < 0.15:
        return [r.choice(STORED) for _ in range(r.randint(0, 3))]
    return r.choice(STORED)


def _meta(r: random.Random) -> dict:
    return {k: _value(r) for k in KEYS if r.random() < 0.8}


def _leaf(r: random.Random) -> dict:
    key = r.choice(KEYS + ("missing",))
    op = r.choice(["eq", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains"])
    if op in ("$in", "$nin"):
        return {key: {op: [r.choice(SCALARS) for _ in range(r.randint(0, 4))]}}
    if op in ("$gt", "$gte", "$lt", "$lte"):
        value = r.choice([s for s in SCALARS if s is not None and not isinstance(s, bool)])
        if r.random() < 0.3:  # two bounds on one key: a range
            other = r.choice(["$gt", "$gte", "$lt", "$lte"])
            return {key: {op: value, other: r.choice([value, 1, 2.5, "b", BIG])}}
        return {key: {op: value}}
    value = r.choice(SCALARS)
    return {key: value} if op == "eq" else {key: {op: value}}


def _filter(r: random.Random, depth: int = 0) -> dict:
    roll = r.random()
    if depth >= 3 or roll < 0.45:
        return _leaf(r)
    if roll < 0.6:
        return {"$not": _filter(r, depth + 1)}
    if roll < 0.7:  # several keys in one dict: AND
        out: dict = {}
        for _ in range(2):
            out.update(_leaf(r))
        return out
    op = r.choice(["$and", "$or"])
    return {op: [_filter(r, depth + 1) for _ in range(r.randint(1, 3))]}


def _counting(monkeypatch) -> dict:
    """Count the filters answered from columns: by one value's rows, or by ``evaluate``."""
    calls = {"n": 0}
    evaluate, single_value = fieldeval.evaluate, fieldeval.single_value

    def counting_evaluate(*args):
        calls["n"] += 1
        return evaluate(*args)

    def counting_single(*args):
        out = single_value(*args)
        calls["n"] += out is not None
        return out

    monkeypatch.setattr(fieldeval, "evaluate", counting_evaluate)
    monkeypatch.setattr(fieldeval, "single_value", counting_single)
    return calls


@pytest.fixture
def answered(monkeypatch):
    """Read a field's column at its first filter; count the filters the columns answer."""
    monkeypatch.setattr(fieldcols, "BUILD_AFTER", 1)
    return _counting(monkeypatch)


def _store(path, seed: int = 0):
    r = random.Random(seed)
    db = vecstore.open(path, seal_rows=64)  # sealed segments and a pending block
    coll = db.create_collection("t", dim=DIM)
    vecs = np.random.default_rng(seed).standard_normal((N, DIM)).astype(np.float32)
    coll.add([f"r{i}" for i in range(N)], vectors=vecs, metadata=[_meta(r) for _ in range(N)])
    return db, coll


def _both(coll, where) -> tuple[set, set]:
    by_sql = set(coll.get(where=where).ids)
    found = coll.query(np.ones(DIM, np.float32), k=N + 10, where=where).ids
    assert len(found) == len(set(found)), where  # a row's retired vector never comes back
    return by_sql, set(found)


def test_columns_keep_exactly_the_rows_sql_keeps(tmp_path, answered):
    db, coll = _store(tmp_path / "s")
    r = random.Random(1)
    with db:
        for case in range(300):
            where = _filter(r)
            by_sql, by_columns = _both(coll, where)
            assert by_columns == by_sql, (case, where)
    assert answered["n"] >= 260  # the columns answered (not the SQL fallback)


def test_the_tricky_corners(tmp_path, answered):
    with vecstore.open(tmp_path / "s") as db:
        coll = db.create_collection("t", dim=DIM)
        metas = [
            {"x": 1}, {"x": 1.0}, {"x": True}, {"x": "1"}, {"x": BIG + 1}, {"x": float(BIG)},
            {"x": None}, {}, {"x": [1, "1", True]}, {"x": -0.0}, {"x": 2**63 - 1},
            {"x": "é"}, {"x": "e\u0301"}, {"x": 1e300},
        ]  # fmt: skip
        n = len(metas)
        vecs = np.eye(n, DIM, dtype=np.float32) + 1
        coll.add([f"r{i}" for i in range(n)], vectors=vecs, metadata=metas)
        for where in [
            {"x": 1}, {"x": True}, {"x": "1"}, {"x": BIG}, {"x": BIG + 1},
            {"x": {"$gt": BIG}}, {"x": {"$gte": float(BIG)}}, {"x": {"$lt": BIG + 1}},
            {"x": {"$gt": 2**63 - 2}}, {"x": {"$ne": 1}}, {"x": None}, {"x": {"$ne": None}},
            {"x": {"$contains": 1}}, {"x": {"$contains": True}}, {"x": {"$in": [True, "1"]}},
            {"x": {"$nin": [1, None]}}, {"x": 0}, {"x": {"$gt": "e"}}, {"x": {"$lt": 1e300}},
            {"x": {"$in": []}}, {"x": {"$nin": []}}, {"$not": {"x": {"$gte": -1}}},
        ]:  # fmt: skip
            by_sql, by_columns = _both(coll, where)
            assert by_columns == by_sql, where
    assert answered["n"] >= 20


WRITER = """
import sys, numpy as np, vecstore
with vecstore.open(sys.argv[1]) as db:
    db.get_collection("t").add(["new"], vectors=np.ones((1, 4), np.float32),
                               metadata=[{"a": "fresh", "b": 7}])
"""


def test_columns_follow_every_commit(tmp_path, answered):
    path = tmp_path / "s"
    db, coll = _store(path)
    with db:
        assert _both(coll, {"a": "fresh"}) == (set(), set())
        built = answered["n"]
        # another process writes: the next filter on a known field sees its row
        subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, timeout=120)
        assert _both(coll, {"a": "fresh"}) == ({"new"}, {"new"})
        assert _both(coll, {"b": {"$gte": 7, "$lt": 8}})[1] >= {"new"}
        # an update of metadata in this process moves the row
        coll.update(["new"], metadata=[{"a": "stale"}])
        assert _both(coll, {"a": "fresh"}) == (set(), set())
        assert _both(coll, {"a": "stale"}) == ({"new"}, {"new"})
        assert "new" not in _both(coll, {"b": 7})[1]
        # a delete drops it
        coll.delete(["r0", "new"])
        sql, cols = _both(coll, {"$or": [{"a": "stale"}, {"a": {"$ne": "zzz"}}]})
        assert sql == cols and "new" not in cols and "r0" not in cols
        coll.delete(where={"b": 1})  # tombstones in sealed segments
        # new vectors for sealed rows: their old positions, same rids, are tombstoned
        coll.upsert(["r3", "r70"], vectors=np.ones((2, DIM), np.float32), metadata=[{"a": "b"}] * 2)
        for value in STORED:  # one value: the rows come straight from the column's order
            by_sql, by_columns = _both(coll, {"a": value})
            assert by_columns == by_sql
        # columns kept, filter results cleared: a new value on a known field
        db.clear_query_caches(filter_columns=False)
        by_sql, by_columns = _both(coll, {"a": {"$in": ["a", "b"]}})
        assert by_columns == by_sql
    assert answered["n"] > built
    with vecstore.open(path) as db:  # reopen
        coll = db.get_collection("t")
        for where in ({"a": "stale"}, {"b": {"$ne": 7}}, {"c": {"$contains": "a"}}):
            by_sql, by_columns = _both(coll, where)
            assert by_columns == by_sql


def test_a_field_is_read_after_some_sql_evaluations(tmp_path, monkeypatch):
    """The first filters on a field run in SQL; once BUILD_AFTER of them ran (reading being
    made dear here), later ones are answered from the column; clearing the query caches
    forgets the columns unless told to keep them."""
    monkeypatch.setattr(fieldcols, "READ_SECONDS_PER_ROW", 1.0)
    monkeypatch.setattr(fieldcols, "BUILD_AFTER", 3)
    calls = _counting(monkeypatch)
    q = np.ones(DIM, np.float32)
    db, coll = _store(tmp_path / "s")
    with db:
        for v in range(3):
            coll.query(q, k=5, where={"a": v})
        assert calls["n"] == 0
        for v in range(5):
            coll.query(q, k=5, where={"a": f"s{v}"})
        assert calls["n"] == 5
        db.clear_query_caches(filter_columns=False)  # a repeated filter, columns kept
        coll.query(q, k=5, where={"a": "s0"})
        assert calls["n"] == 6
        db.clear_query_caches()
        coll.query(q, k=5, where={"a": "s0"})
        assert calls["n"] == 6


def test_a_field_is_read_once_its_sql_took_as_long_as_reading_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fieldcols, "READ_SECONDS_PER_ROW", 0.0)
    calls = _counting(monkeypatch)
    q = np.ones(DIM, np.float32)
    db, coll = _store(tmp_path / "s")
    with db:
        coll.query(q, k=5, where={"b": 1})
        assert calls["n"] == 0
        coll.query(q, k=5, where={"b": 2})
        assert calls["n"] == 1


def test_a_column_too_large_to_keep_leaves_its_filters_to_sql(tmp_path, monkeypatch):
    monkeypatch.setattr(fieldcols, "BUILD_AFTER", 1)
    monkeypatch.setattr(fieldcols, "FIELD_COLUMN_BYTES", 2_000)  # a column here: ~2.5 kB
    calls = _counting(monkeypatch)
    db, coll = _store(tmp_path / "s")
    with db:
        for v in range(6):
            by_sql, by_columns = _both(coll, {"a": {"$ne": v}})
            assert by_columns == by_sql
    assert calls["n"] == 0


def test_a_collection_too_large_for_any_column_never_reads_one(tmp_path, monkeypatch):
    """Where even the smallest column of the collection could not be kept, no field is read
    (a read whose column is then dropped would be repeated after every commit)."""
    from vecstore.storage import fields

    monkeypatch.setattr(fieldcols, "BUILD_AFTER", 1)
    monkeypatch.setattr(fieldcols, "FIELD_COLUMN_BYTES", 4 * fieldcols.MIN_BYTES_PER_ROW * N - 4)
    reads = {"n": 0}
    field_groups = fields.field_groups

    def counting(*args):
        reads["n"] += 1
        return field_groups(*args)

    monkeypatch.setattr(fields, "field_groups", counting)
    db, coll = _store(tmp_path / "s")
    with db:
        for v in range(6):
            by_sql, by_columns = _both(coll, {"a": {"$ne": v}})
            assert by_columns == by_sql
            coll.add([f"x{v}"], vectors=np.ones((1, DIM), np.float32), metadata=[{"a": v}])
    assert reads["n"] == 0
