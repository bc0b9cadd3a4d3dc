"""``where`` and ``where_document`` filters against a Python oracle of the documented semantics.

The oracle below implements the semantics in the module docstring of
``vecstore/storage/filters.py``; a collection of a few hundred rows with varied metadata
(every kind, lists, missing keys, unicode, SQL metacharacters) is checked through ``count``,
``get`` and ``query`` with hand-written and Hypothesis-generated filters. Malformed filters must
raise ``InvalidFilter``; the compiled SQL text must depend only on a filter's shape.
"""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecstore
from tests.conftest import typed
from vecstore.storage.filters import compile_filters

DIM = 4
N_ROWS = 320
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------------------------

MISSING = object()


def kind(v):
    """The comparison kind of a scalar, or None for a list (or anything else)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "str"
    return None


def same(a, b) -> bool:
    """Scalar equality within a kind: 1 == 1.0, True != 1, None == None."""
    ka = kind(a)
    return ka is not None and ka == kind(b) and a == b


def scalar(meta: dict, key: str):
    """The row's scalar value at key, or MISSING (missing key or a list value)."""
    v = meta.get(key, MISSING)
    return MISSING if isinstance(v, list) else v


def field_op(meta: dict, key: str, op: str, value) -> bool:
    v = scalar(meta, key)
    if op == "$eq":
        return v is not MISSING and same(v, value)
    if op == "$ne":
        return not field_op(meta, key, "$eq", value)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if v is MISSING or kind(v) != kind(value):
            return False
        return {"$gt": v > value, "$gte": v >= value, "$lt": v < value, "$lte": v <= value}[op]
    if op == "$in":
        return v is not MISSING and any(same(v, x) for x in value)
    if op == "$nin":
        return not field_op(meta, key, "$in", value)
    if op == "$contains":
        lst = meta.get(key)
        return isinstance(lst, list) and any(same(e, value) for e in lst)
    raise AssertionError(op)


def matches(meta: dict, where: dict) -> bool:
    for key, cond in where.items():
        if key == "$and":
            ok = all(matches(meta, c) for c in cond)
        elif key == "$or":
            ok = any(matches(meta, c) for c in cond)
        elif key == "$not":
            ok = not matches(meta, cond)
        elif isinstance(cond, dict):
            ok = all(field_op(meta, key, op, v) for op, v in cond.items())
        else:
            ok = field_op(meta, key, "$eq", cond)
        if not ok:
            return False
    return True


def doc_matches(doc: str | None, node: dict) -> bool:
    ((op, value),) = node.items()
    if op == "$contains":
        return doc is not None and value in doc
    if op == "$not_contains":
        return doc is None or value not in doc
    if op == "$and":
        return all(doc_matches(doc, n) for n in value)
    if op == "$or":
        return any(doc_matches(doc, n) for n in value)
    raise AssertionError(op)


def test_oracle_follows_the_documented_rules():
    assert matches({"a": 1.0}, {"a": 1}) and not matches({"a": True}, {"a": 1})
    assert not matches({"a": 1}, {"a": True}) and matches({"a": None}, {"a": None})
    assert not matches({}, {"a": None}) and matches({}, {"a": {"$ne": None}})
    assert not matches({"a": [1]}, {"a": 1}) and matches({"a": [1]}, {"a": {"$nin": [1]}})
    assert matches({"a": [1, "x"]}, {"a": {"$contains": 1.0}})
    assert not matches({"a": [True]}, {"a": {"$contains": 1}})
    assert not matches({"a": "2"}, {"a": {"$gt": 1}}) and matches({}, {})
    assert doc_matches(None, {"$not_contains": ""}) and not doc_matches(None, {"$contains": ""})


# ---------------------------------------------------------------------------------------------
# the data set
# ---------------------------------------------------------------------------------------------

INJECTION = "'; DROP TABLE rows; --"
WEIRD_KEY = 'we\'ird "key"; --'
UNICODE_KEY = "ключ"
INTS = [-5, -1, 0, 1, 2, 3, 7, 42, 2**62, -(2**63), 2**63 - 1]
# Stored floats are finite (inputs.py refuses infinities: JSON cannot carry them); the
# largest ones stand in for them, and filters still compare against +-inf.
BIGGEST = sys.float_info.max
FLOATS = [-2.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.25, 1e300, -1e-300, BIGGEST, -BIGGEST]
STRINGS = [
    "",
    "a",
    "A",
    "ab",
    "b",
    "B",
    "1",
    "1.0",
    "True",
    "None",
    "null",
    "ünïcödé",
    "日本語",
    "🙂",
    "é",
    "e\u0301",
    INJECTION,
    "x' OR '1'='1",
    '"',
    "'",
    "%",
    "_",
    "a%",
    "\\",
    "O'Brien",
    "tab\there",
    "line\nbreak",
    "z" * 40,
]
BOOLS = [True, False]
SCALARS = INTS + FLOATS + STRINGS + BOOLS + [None]
KEYS = ["i", "f", "n", "s", "b", "z", "mix", "tags", WEIRD_KEY, UNICODE_KEY]
# Keys that filters use: the row keys plus keys no row has.
FILTER_KEYS = KEYS + ["missing", "I", "tags2"]
DOCS = [
    None,
    "",
    "Hello World",
    "hello world",
    "HELLO",
    "naïve café",
    "Straße",
    "日本語のテキスト",
    "emoji 🙂 here",
    INJECTION,
    "50% off_sale",
    "back\\slash",
    "quote ' and \" both",
    "multi\nline",
    "a",
    "aaa",
    "world",
]


def _value(r: random.Random):
    return r.choice(SCALARS)


def make_meta(r: random.Random, row: int) -> dict | None:
    if row == 0:
        return None
    if row == 1:
        return {}
    gens = {
        "i": lambda: r.choice(INTS[:8]) if r.random() < 0.9 else r.choice(INTS),
        "f": lambda: r.choice(FLOATS),
        "n": lambda: r.choice([1, 1.0, 2, 2.0, -0.0, 0, 3, 2.5, True, False]),
        "s": lambda: r.choice(STRINGS),
        "b": lambda: r.choice(BOOLS),
        "z": lambda: None,
        "mix": lambda: (
            _value(r) if r.random() < 0.8 else [_value(r) for _ in range(r.randint(0, 3))]
        ),
        "tags": lambda: [_value(r) for _ in range(r.randint(0, 4))],
        WEIRD_KEY: lambda: r.choice([1, "x", INJECTION, None, True]),
        UNICODE_KEY: lambda: r.choice(["значение", "日本", 5, 5.0]),
    }
    return {k: g() for k, g in gens.items() if r.random() < 0.75}


class Store:
    def __init__(self, db, coll, ids, metas, docs, vectors):
        self.db, self.coll = db, coll
        self.ids, self.metas, self.docs, self.vectors = ids, metas, docs, vectors
        self.by_id = dict(zip(ids, range(len(ids)), strict=False))

    def expect(self, where=None, where_document=None) -> list[str]:
        return [
            i
            for i, m, d in zip(self.ids, self.metas, self.docs, strict=False)
            if (where is None or matches(m, where))
            and (where_document is None or doc_matches(d, where_document))
        ]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    r = random.Random(20261123)
    ids = [f"row-{i:03d}" for i in range(N_ROWS)]
    ids[7], ids[8] = INJECTION, "ünï 🙂"
    raw = [make_meta(r, j) for j in range(N_ROWS)]
    docs = [r.choice(DOCS) for _ in range(N_ROWS)]
    vectors = np.random.default_rng(5).standard_normal((N_ROWS, DIM)).astype(np.float32)
    path = tmp_path_factory.mktemp("filters") / "store"
    db = vecstore.open(path, seal_rows=64)
    coll = db.create_collection("f", dim=DIM, metric="cosine")
    # A bystander whose rows match most filters: nothing of it may leak into results.
    other = db.create_collection("g", dim=DIM)
    other.add(
        [f"g{i}" for i in range(50)], vectors=vectors[:50], metadata=raw[2:52], documents=docs[:50]
    )
    # Mixed batch sizes: direct segments, pending rows and a seal in between.
    for lo, hi in [(0, 100), (100, 130), (130, 131), (131, 250), (250, 320)]:
        coll.add(ids[lo:hi], vectors=vectors[lo:hi], documents=docs[lo:hi], metadata=raw[lo:hi])
    metas = [{} if m is None else m for m in raw]
    s = Store(db, coll, ids, metas, docs, vectors)
    yield s
    db.close()


def check(
    store: Store, where=None, where_document=None, k: int | None = None, seed: int = 0
) -> list[str]:
    """count / get / get-by-ids / query / query_many agree with the oracle."""
    coll = store.coll
    want = store.expect(where, where_document)
    if where_document is None:
        assert coll.count(where) == len(want), where
    got = coll.get(where=where, where_document=where_document)
    assert got.ids == want, (where, where_document)
    assert typed(got.metadata) == typed([store.metas[store.by_id[i]] for i in want])
    assert got.documents == [store.docs[store.by_id[i]] for i in want]
    r = np.random.default_rng(seed)
    subset = [store.ids[j] for j in r.permutation(N_ROWS)[:40]] + ["nope"]
    by_ids = coll.get(subset, where=where, where_document=where_document)
    wanted = set(want)
    assert by_ids.ids == [i for i in subset if i in wanted]
    if k is None:
        k = int(r.choice([1, 5, 17, 100, N_ROWS + 5]))
    q = r.standard_normal(DIM).astype(np.float32)
    res = coll.query(q, k=k, where=where, where_document=where_document)
    assert len(res.ids) == min(k, len(want))
    assert len(set(res.ids)) == len(res.ids) and set(res.ids) <= wanted
    # The hits are the best matching rows.
    x = store.vectors.astype(np.float64)
    sims = (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    sim = {i: sims[store.by_id[i]] for i in want}
    if res.ids and len(res.ids) < len(want):
        rest = max(sim[i] for i in wanted - set(res.ids))
        assert min(sim[i] for i in res.ids) >= rest - 1e-4
    assert np.allclose(res.scores, [sim[i] for i in res.ids], atol=1e-4)
    assert typed(res.metadata) == typed([store.metas[store.by_id[i]] for i in res.ids])
    assert res.documents == [store.docs[store.by_id[i]] for i in res.ids]
    both = coll.query_many(np.stack([q, -q]), k=k, where=where, where_document=where_document)
    assert set(both[0].ids) == set(res.ids)
    assert np.allclose(both[0].scores, res.scores, atol=1e-4)
    assert len(both[1].ids) == min(k, len(want)) and set(both[1].ids) <= wanted
    return want


# ---------------------------------------------------------------------------------------------
# (a) hand-written filters
# ---------------------------------------------------------------------------------------------

HAND_WHERES = [
    {},
    {"i": 1},
    {"i": 1.0},
    {"i": {"$eq": 0}},
    {"i": {"$eq": -0.0}},
    {"n": 1},
    {"n": True},
    {"n": False},
    {"n": 0},
    {"n": {"$ne": 1}},
    {"n": {"$gt": 1}},
    {"n": {"$gte": 1.0}},
    {"n": {"$lt": 1}},
    {"n": {"$in": [True]}},
    {"n": {"$in": [1, 2.5]}},
    {"b": True},
    {"b": False},
    {"b": 1},
    {"b": {"$ne": True}},
    {"b": {"$in": [0, 1]}},
    {"z": None},
    {"z": {"$ne": None}},
    {"z": {"$in": [None]}},
    {"z": {"$nin": [None]}},
    {"missing": None},
    {"missing": {"$ne": None}},
    {"missing": {"$nin": [1, "a"]}},
    {"missing": {"$gt": 0}},
    {"i": {"$gt": 2}},
    {"i": {"$gte": 2, "$lt": 42}},
    {"i": {"$lte": -1}},
    {"i": {"$gt": 2**62 - 1}},
    {"i": {"$lt": -(2**62)}},
    {"i": {"$gt": -math.inf}},
    {"i": {"$lt": float(2**63)}},
    {"i": {"$gte": float(2**62)}},
    {"i": float(2**62)},
    {"i": {"$lte": float(-(2**63))}},
    {"f": {"$gt": 0.0}},
    {"f": {"$lt": 0}},
    {"f": {"$gte": math.inf}},
    {"f": {"$lte": -math.inf}},
    {"f": 0},
    {"f": -0.0},
    {"f": {"$in": [0.5, 1, 1e300]}},
    {"f": {"$gt": "a"}},
    {"s": ""},
    {"s": "a"},
    {"s": "A"},
    {"s": {"$gt": "a"}},
    {"s": {"$gte": "", "$lt": "b"}},
    {"s": {"$lt": "B"}},
    {"s": {"$gt": "é"}},
    {"s": "e\u0301"},
    {"s": "é"},
    {"s": INJECTION},
    {"s": "x' OR '1'='1"},
    {"s": {"$in": ["'", '"', "%", "_", "\\"]}},
    {"s": {"$nin": ["a", "b", ""]}},
    {"s": {"$gt": 1}},
    {"s": "1"},
    {"s": 1},
    {"s": "True"},
    {"s": "None"},
    {"mix": 1},
    {"mix": "1"},
    {"mix": True},
    {"mix": None},
    {"mix": {"$ne": 1}},
    {"mix": {"$gte": 0}},
    {"mix": {"$gte": ""}},
    {"mix": {"$contains": 1}},
    {"mix": {"$contains": None}},
    {"mix": {"$in": [1, "1", True, None]}},
    {"mix": {"$nin": []}},
    {"mix": {"$in": []}},
    {"tags": {"$contains": 1}},
    {"tags": {"$contains": 1.0}},
    {"tags": {"$contains": True}},
    {"tags": {"$contains": False}},
    {"tags": {"$contains": 0}},
    {"tags": {"$contains": None}},
    {"tags": {"$contains": ""}},
    {"tags": {"$contains": INJECTION}},
    {"tags": {"$contains": "a", "$ne": "a"}},
    {"tags": 1},
    {"tags": {"$ne": 1}},
    {"tags": {"$in": [1, "a"]}},
    {"tags": {"$nin": [1, "a"]}},
    {"tags": {"$gt": 0}},
    {"i": {"$contains": 1}},
    {"missing": {"$contains": 1}},
    {WEIRD_KEY: 1},
    {WEIRD_KEY: INJECTION},
    {WEIRD_KEY: {"$ne": "x"}},
    {UNICODE_KEY: 5},
    {UNICODE_KEY: "значение"},
    {UNICODE_KEY: {"$gt": "a"}},
    {"i": 1, "b": True},
    {"i": {"$gte": 0}, "s": {"$ne": ""}, "z": None},
    {"$and": [{"i": {"$gte": 0}}, {"i": {"$lte": 3}}]},
    {"$or": [{"i": 1}, {"s": "a"}, {"tags": {"$contains": True}}]},
    {"$or": [{"missing": 1}, {"z": None}]},
    {"$not": {"i": 1}},
    {"$not": {}},
    {"$not": {"$not": {"b": True}}},
    {"$not": {"$or": [{"i": 1}, {"b": False}]}},
    {"$and": [{"$or": [{"i": 0}, {"i": 1}]}, {"$not": {"b": True}}]},
    {"$and": [{}]},
    {"$or": [{}, {"i": 1}]},
    {"$and": [{"i": 1}], "$or": [{"b": True}, {"b": False}], "s": {"$ne": "a"}},
    {"i": {"$in": (1, 2, 3)}},
]

HAND_DOCUMENTS = [
    {"$contains": "world"},
    {"$contains": "World"},
    {"$contains": "WORLD"},
    {"$contains": ""},
    {"$not_contains": ""},
    {"$not_contains": "world"},
    {"$contains": "%"},
    {"$contains": "_"},
    {"$contains": "%_"},
    {"$contains": "'"},
    {"$contains": '"'},
    {"$contains": "\\"},
    {"$contains": "é"},
    {"$contains": "ß"},
    {"$contains": "ss"},
    {"$contains": "🙂"},
    {"$contains": "の"},
    {"$contains": "\n"},
    {"$contains": INJECTION},
    {"$contains": "' OR 1=1 --"},
    {"$contains": "aa"},
    {"$and": [{"$contains": "o"}, {"$not_contains": "H"}]},
    {"$or": [{"$contains": "café"}, {"$contains": "Straße"}, {"$not_contains": "a"}]},
    {"$and": [{"$or": [{"$contains": "a"}, {"$contains": "e"}]}, {"$not_contains": "aaa"}]},
]


@pytest.mark.parametrize("where", HAND_WHERES, ids=repr)
def test_hand_written_where(store, where):
    check(store, where, seed=len(repr(where)))


@pytest.mark.parametrize("where_document", HAND_DOCUMENTS, ids=repr)
def test_hand_written_where_document(store, where_document):
    check(store, None, where_document, seed=len(repr(where_document)))


@pytest.mark.parametrize(
    "where, where_document",
    [
        ({"i": {"$gte": 0}}, {"$contains": "o"}),
        ({"b": True}, {"$not_contains": "world"}),
        ({}, {"$contains": ""}),
        ({"$not": {"z": None}}, {"$or": [{"$contains": "a"}, {"$contains": "A"}]}),
    ],
)
def test_where_and_where_document_together(store, where, where_document):
    check(store, where, where_document)


def test_data_set_exercises_the_kinds(store):
    """The filters above are only meaningful if the data holds every case."""
    seen = {kind(v) for m in store.metas for v in m.values()}
    assert seen >= {"null", "bool", "number", "str", None}
    assert store.coll.count({"n": 1}) > store.coll.count({"n": True}) > 0
    assert 0 < store.coll.count({"tags": {"$contains": 1}}) < N_ROWS
    assert sum(1 for m in store.metas if not m) >= 2
    assert store.docs.count(None) > 0


def test_paginated_filtered_get(store):
    where = {"i": {"$gte": 0}}
    want = store.expect(where)
    pages = [store.coll.get(where=where, limit=7, offset=o).ids for o in range(0, len(want) + 7, 7)]
    assert sum(pages, []) == want


def test_large_in_list(store):
    """$in takes up to 10,000 values (MAX_IN_VALUES in filters.py)."""
    values = list(range(-2000, 3000))
    want = check(store, {"i": {"$in": values}})
    assert want == store.expect({"i": {"$gte": -2000, "$lt": 3000}})
    check(store, {"i": {"$nin": values}})
    check(store, {"s": {"$in": [f"s{j}" for j in range(9_999)] + ["a"]}})


BIG_WHERES = {
    "wide $or": {"$or": [{"i": j} for j in range(-1500, 1500)]},
    "wide $and": {"$and": [{"i": {"$ne": j}} for j in range(2000, 5000)]},
    "two full $in": {"i": {"$in": list(range(10_000))}, "n": {"$nin": list(range(10_000))}},
    "many $in": {
        "$or": [{"i": {"$in": list(range(j * 10, j * 10 + 10))}} for j in range(-5, 2000)]
    },
}


@pytest.mark.parametrize("where", BIG_WHERES.values(), ids=BIG_WHERES.keys())
def test_big_filters_are_answered_or_refused_cleanly(store, where):
    """A very big filter either works or raises InvalidFilter, never a raw sqlite3 error."""
    try:
        got = store.coll.count(where)
    except vecstore.InvalidFilter:
        return
    assert got == len(store.expect(where))
    check(store, where)


def test_wide_where_document_is_answered_or_refused_cleanly(store):
    where_document = {"$or": [{"$contains": f"{j}x"} for j in range(3000)] + [{"$contains": "o"}]}
    try:
        got = store.coll.get(where_document=where_document).ids
    except vecstore.InvalidFilter:
        return
    assert got == store.expect(None, where_document)


# ---------------------------------------------------------------------------------------------
# (b) random filters
# ---------------------------------------------------------------------------------------------

scalars = st.sampled_from(SCALARS) | st.integers(-6, 6) | st.floats(-4, 4, width=32)
ordered = (
    st.sampled_from([v for v in SCALARS if kind(v) in ("number", "str")])
    | st.integers(-6, 6)
    | st.floats(-4, 4)
)
keys = st.sampled_from(FILTER_KEYS)


def field_ops():
    return st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne", "$contains"]), scalars),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ordered),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalars, max_size=5)),
    )


leaf = st.one_of(
    st.builds(lambda k, v: {k: v}, keys, scalars),
    st.builds(lambda k, ops: {k: dict(ops)}, keys, st.lists(field_ops(), min_size=1, max_size=3)),
    st.dictionaries(keys, scalars, min_size=2, max_size=3),
    st.just({}),
)


def _extend(children):
    return st.one_of(
        st.builds(lambda cs: {"$and": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda cs: {"$or": cs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda c: {"$not": c}, children),
        st.builds(lambda a, b: {**a, **b}, children, leaf),  # implicit AND with other keys
    )


wheres = st.recursive(leaf, _extend, max_leaves=8)
doc_leaf = st.builds(
    lambda op, s: {op: s},
    st.sampled_from(["$contains", "$not_contains"]),
    st.sampled_from(["", "a", "o", "world", "World", "é", "ß", "%", "'", "🙂", "aa", "\n"])
    | st.text(max_size=3),
)
documents = st.recursive(
    doc_leaf,
    lambda c: st.builds(
        lambda op, cs: {op: cs},
        st.sampled_from(["$and", "$or"]),
        st.lists(c, min_size=1, max_size=3),
    ),
    max_leaves=5,
)


@SETTINGS
@given(where=wheres, seed=st.integers(0, 1000))
def test_random_where(store, where, seed):
    check(store, where, seed=seed)


@settings(SETTINGS, max_examples=60)
@given(where=st.none() | wheres, where_document=documents, seed=st.integers(0, 1000))
def test_random_where_document(store, where, where_document, seed):
    check(store, where, where_document, seed=seed)


# ---------------------------------------------------------------------------------------------
# (c) malformed filters
# ---------------------------------------------------------------------------------------------


def short(f) -> str:
    """A short test id for a (possibly very deep) filter."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 4, 30, 30
    return r.repr(f)


def nested_not(depth: int) -> dict:
    f: dict = {"i": 1}
    for _ in range(depth):
        f = {"$not": f}
    return f


def nested_and(depth: int) -> dict:
    f: dict = {"i": 1}
    for _ in range(depth):
        f = {"$and": [f]}
    return f


BAD_WHERES = [
    {"$foo": 1},
    {"i": {"$foo": 1}},
    {"i": {"$regex": "a"}},
    {"i": {"eq": 1}},
    {"i": {}},
    {"$and": {"i": 1}},
    {"$and": []},
    {"$or": []},
    {"$or": {"i": 1}},
    {"$and": "i"},
    {"$and": [1]},
    {"$or": [{"i": 1}, "x"]},
    {"$not": []},
    {"$not": [{"i": 1}]},
    {"$not": "i"},
    {"i": [1, 2]},
    {"i": {"$eq": [1]}},
    {"i": {"$ne": [1]}},
    {"i": {"$eq": {"a": 1}}},
    {"i": {"$gt": True}},
    {"i": {"$gte": False}},
    {"i": {"$lt": None}},
    {"i": {"$lte": [1]}},
    {"i": {"$gt": math.nan}},
    {"i": {"$eq": math.nan}},
    {"i": 2**63},
    {"i": {"$in": 1}},
    {"i": {"$in": "abc"}},
    {"i": {"$nin": None}},
    {"i": {"$in": {"a": 1}}},
    {"i": {"$in": [[1]]}},
    {"i": {"$in": list(range(10_001))}},
    {"tags": {"$contains": [1]}},
    {"i": object()},
    {1: 1},
    {None: 1},
    {("i",): 1},
    {"": 1},
    nested_not(40),
    nested_and(40),
    nested_not(5_000),
    [],
    [{"i": 1}],
    "i = 1",
    "1=1; DROP TABLE rows; --",
    1,
    True,
]

BAD_DOCUMENTS = [
    {},
    {"$contains": "a", "$not_contains": "b"},
    {"$contains": 1},
    {"$contains": None},
    {"$contains": ["a"]},
    {"$not_contains": b"a"},
    {"$regex": "a"},
    {"contains": "a"},
    {"$and": []},
    {"$or": {"$contains": "a"}},
    {"$and": ["a"]},
    {"$not": {"$contains": "a"}},
    "hello",
    ["hello"],
]


@pytest.mark.parametrize("where", BAD_WHERES, ids=short)
def test_malformed_where_raises_invalid_filter(store, where):
    q = np.ones(DIM, dtype=np.float32)
    for call in (
        lambda: store.coll.count(where),
        lambda: store.coll.get(where=where),
        lambda: store.coll.get(["row-001"], where=where),
        lambda: store.coll.query(q, k=3, where=where),
        lambda: store.coll.query_many(np.stack([q, q]), k=3, where=where),
        lambda: store.coll.delete(where=where),
        lambda: store.coll.delete(["row-001"], where=where),
        lambda: compile_filters(1, where),
    ):
        with pytest.raises(vecstore.InvalidFilter) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, vecstore.VecstoreError)
    assert store.coll.count() == N_ROWS


@pytest.mark.parametrize("where_document", BAD_DOCUMENTS, ids=short)
def test_malformed_where_document_raises_invalid_filter(store, where_document):
    q = np.ones(DIM, dtype=np.float32)
    for call in (
        lambda: store.coll.get(where_document=where_document),
        lambda: store.coll.query(q, k=3, where_document=where_document),
        lambda: compile_filters(1, None, where_document),
    ):
        with pytest.raises(vecstore.InvalidFilter):
            call()


def test_nesting_limit(store):
    """Nesting up to 32 levels is fine; deeper raises InvalidFilter (not RecursionError)."""
    for depth in (1, 10, 31):
        check(store, nested_not(depth))
        check(store, nested_and(depth))
    for depth in (33, 100):
        with pytest.raises(vecstore.InvalidFilter):
            store.coll.count(nested_not(depth))
    doc = {"$contains": "a"}
    for _ in range(31):
        doc = {"$and": [doc]}
    check(store, None, doc)
    for _ in range(5):
        doc = {"$or": [doc]}
    with pytest.raises(vecstore.InvalidFilter):
        store.coll.get(where_document=doc)


# ---------------------------------------------------------------------------------------------
# (d) the SQL text depends only on the filter's shape
# ---------------------------------------------------------------------------------------------

SENTINEL = "\u2063"  # an invisible separator: never part of vecstore's SQL fragments
metachar = st.sampled_from(
    [
        "'",
        '"',
        ";",
        "--",
        "/*",
        "*/",
        "?",
        ":a",
        "@a",
        "$a",
        "%",
        "_",
        "\\",
        "\x00",
        ")",
        "(",
        " OR 1=1",
        "DROP TABLE rows",
        "\n",
        "`",
        "[",
    ]
)
user_str = st.builds(
    lambda a, b, c: SENTINEL + a + b + c + SENTINEL,
    st.text(max_size=6),
    metachar,
    st.text(max_size=6),
)
user_key = user_str.filter(lambda s: not s.startswith("$"))
user_scalar = st.one_of(
    user_str, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(), st.none()
)
user_ordered = st.one_of(user_str, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False))


def revalue(f, draw):
    """A filter of the same shape as ``f`` with every key and value drawn afresh."""
    if isinstance(f, dict):
        plain = [k for k in f if not k.startswith("$")]
        fresh = draw(st.lists(user_key, min_size=len(plain), max_size=len(plain), unique=True))
        names = dict(zip(plain, fresh, strict=False))
        out = {}
        for k, v in f.items():
            if k in ("$and", "$or"):
                out[k] = [revalue(c, draw) for c in v]
            elif k == "$not":
                out[k] = revalue(v, draw)
            elif k in ("$contains", "$not_contains"):  # where_document leaf
                out[k] = draw(user_str)
            elif isinstance(v, dict):  # operator dict of a field
                ops = {}
                for op, val in v.items():
                    if op in ("$in", "$nin"):
                        ops[op] = [draw(user_scalar) for _ in val]
                    elif op in ("$gt", "$gte", "$lt", "$lte"):
                        ops[op] = draw(user_ordered)
                    else:
                        ops[op] = draw(user_scalar)
                out[names[k]] = ops
            else:
                out[names[k]] = draw(user_scalar)
        return out
    raise AssertionError(f)


def user_strings(f) -> list[str]:
    """Every key and string value the user wrote (keys of fields that need no lookup, such as
    ``{"k": {"$in": []}}``, excepted: they need not be bound at all)."""
    out = []
    if isinstance(f, dict):
        for k, v in f.items():
            trivial = isinstance(v, dict) and all(
                op in ("$in", "$nin") and not x for op, x in v.items()
            )
            if not k.startswith("$") and not trivial:
                out.append(k)
            out += user_strings(v)
    elif isinstance(f, (list, tuple)):
        for v in f:
            out += user_strings(v)
    elif isinstance(f, str):
        out.append(f)
    return out


SQL_ALPHABET = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,()=<>?")


@settings(SETTINGS, max_examples=150)
@given(shape=wheres, doc_shape=st.none() | documents, data=st.data())
def test_sql_text_depends_only_on_shape(shape, doc_shape, data):
    coll = 987654321
    f1, f2 = revalue(shape, data.draw), revalue(shape, data.draw)
    d1 = None if doc_shape is None else revalue(doc_shape, data.draw)
    d2 = None if doc_shape is None else revalue(doc_shape, data.draw)
    sql1, params1 = compile_filters(coll, f1, d1)
    sql2, params2 = compile_filters(coll, f2, d2)
    assert sql1 == sql2
    assert sql1 == compile_filters(coll, shape, doc_shape)[0]
    for sql, params, f, d in ((sql1, params1, f1, d1), (sql2, params2, f2, d2)):
        assert set(sql) <= SQL_ALPHABET, sql
        assert SENTINEL not in sql and str(coll) not in sql
        assert sql.count("?") == len(params)
        strings = user_strings(f) + user_strings(d)
        for s in strings:
            assert s not in sql
            assert s in params  # it travels as a bound parameter, verbatim


@settings(SETTINGS, max_examples=60)
@given(shape=wheres, data=st.data())
def test_revalued_filters_run_against_the_store(store, shape, data):
    """Filters full of SQL metacharacters run, match what the oracle says, harm nothing."""
    where = revalue(shape, data.draw)
    check(store, where, k=N_ROWS)
    assert store.coll.count() == N_ROWS


INJECTIONS = [
    INJECTION,
    "x' OR '1'='1",
    "1) OR (1=1",
    "1 OR 1=1",
    "'); DELETE FROM rows; --",
    '" OR ""="',
    "%' OR 1=1 --",
    "*/ OR 1=1 /*",
    "\x00' OR 1=1",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_values_only_match_what_they_should(store, evil):
    for where in (
        {"s": evil},
        {"s": {"$ne": evil}},
        {"s": {"$gt": evil}},
        {"s": {"$in": [evil, "a"]}},
        {"tags": {"$contains": evil}},
        {evil: 1},
        {evil: {"$ne": evil}},
        {WEIRD_KEY: evil},
        {"$or": [{"s": evil}, {evil: evil}]},
    ):
        check(store, where)
    check(store, None, {"$contains": evil})
    check(store, None, {"$not_contains": evil})
    assert store.coll.delete(where={"s": evil + "\u2063never"}) == 0
    assert store.coll.delete(["no-such-id"], where={evil: evil}) == 0
    assert store.coll.count() == N_ROWS
    assert store.db.list_collections() == ["f", "g"]
    assert store.db.get_collection("g").count() == 50
    assert store.coll.get([INJECTION]).ids == [INJECTION]


def test_injection_in_stored_data_round_trips(store):
    """Stored strings with SQL in them come back verbatim and filter like any other."""
    got = store.coll.get(where={"s": INJECTION})
    assert got.ids and all(m["s"] == INJECTION for m in got.metadata)
    rows = store.coll.get(where={WEIRD_KEY: INJECTION})
    assert rows.ids == store.expect({WEIRD_KEY: INJECTION})
    assert all(m[WEIRD_KEY] == INJECTION for m in rows.metadata)
    docs = store.coll.get(where_document={"$contains": INJECTION})
    assert docs.ids and all(d == INJECTION for d in docs.documents)
