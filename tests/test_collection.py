"""Collection behaviour through the public API: writes, reads, search, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import vecstore
from tests.conftest import clustered


def oracle_scores(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "dot":
        return x64 @ q64
    if metric == "cosine":
        nx, nq = np.linalg.norm(x64, axis=1), np.linalg.norm(q64)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (x64 @ q64) / (nx * nq)
        return np.where((nx == 0) | (nq == 0), 0.0, s)
    return -((x64 - q64) ** 2).sum(axis=1)


def ids_of(n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_query_matches_oracle_across_pending_and_segments(db, data, metric):
    c = db.create_collection("c", dim=32, metric=metric)
    c.add(ids_of(1000), vectors=data[:1000])  # a segment
    for i in range(1000, 1100):  # pending rows, then a sealed segment of 64, then pending
        c.add([str(i)], vectors=data[i])
    c.delete([str(i) for i in range(0, 1100, 7)])
    live = [i for i in range(1100) if i % 7]
    for q in data[1500:1505]:
        res = c.query(q, k=20)
        expect = oracle_scores(data[live], q, metric)
        order = np.argsort(-expect, kind="stable")[:20]
        np.testing.assert_allclose(res.scores, expect[order], rtol=1e-4, atol=1e-4)
        got = {int(i) for i in res.ids}
        assert got <= set(live)
        kth = expect[order[-1]]
        assert all(expect[live.index(int(i))] >= kth - 1e-4 for i in res.ids)


def test_result_objects(db, data):
    c = db.create_collection("c", dim=32)
    c.add(
        ["a", "b", "c"],
        vectors=data[:3],
        documents=["A", None, "C"],
        metadata=[{"n": 1}, None, {"tags": ["x"]}],
    )
    res = c.query(data[0], k=2)
    assert len(res) == 2 and res.ids[0] == "a"
    assert res.scores.dtype == np.float32
    np.testing.assert_allclose(res.distances, 1 - res.scores)
    hits = list(res)
    assert hits[0] == vecstore.Hit("a", float(res.scores[0]), "A", {"n": 1})
    assert res[0].id == "a"
    as_dict = res.to_dict()
    assert as_dict["ids"] == res.ids and isinstance(as_dict["scores"][0], float)
    assert res.to_list()[0]["metadata"] == {"n": 1}
    assert "QueryResult(2 hits" in repr(res)
    got = c.get()
    assert got.ids == ["a", "b", "c"] and got.vectors is None
    assert got.to_list()[1] == {"id": "b", "document": None, "metadata": {}}
    assert c.peek(2).ids == ["a", "b"]
    assert c.get(limit=1, offset=1).ids == ["b"]
    batch = c.query_many(data[:4], k=1)
    assert isinstance(batch, list) and [r.ids for r in batch[:3]] == [["a"], ["b"], ["c"]]
    assert "dim=32" in repr(c)


def test_l2_scores_and_distances(db):
    c = db.create_collection("c", dim=2, metric="l2")
    c.add(["o", "p"], vectors=[[0, 0], [3, 4]])
    res = c.query([0.0, 0.0], k=2)
    assert res.ids == ["o", "p"]
    np.testing.assert_allclose(res.distances, [0, 25])
    np.testing.assert_allclose(res.scores, [0, -25])


def test_zero_vectors_with_cosine(db):
    c = db.create_collection("c", dim=3)
    c.add(["zero", "x"], vectors=[[0, 0, 0], [1, 0, 0]])
    res = c.query([1.0, 0.0, 0.0], k=2)
    assert res.ids == ["x", "zero"]
    np.testing.assert_allclose(res.scores, [1.0, 0.0], atol=1e-6)
    assert c.query([0.0, 0.0, 0.0], k=2).scores.tolist() == [0.0, 0.0]


def test_k_larger_than_collection_and_empty(db, data):
    c = db.create_collection("c", dim=32)
    assert len(c.query(data[0], k=5)) == 0
    c.add(ids_of(3), vectors=data[:3])
    assert len(c.query(data[0], k=100)) == 3


def test_filtered_query_returns_min_k_matches(db):
    x = clustered(3000, 16, seed=3)
    c = db.create_collection("c", dim=16)
    c.add(
        ids_of(3000),
        vectors=x,
        metadata=[{"bucket": i % 500, "odd": i % 2 == 1} for i in range(3000)],
    )
    c.add(["p1", "p2"], vectors=x[:2], metadata=[{"bucket": 7}, {"bucket": 7}])  # pending rows
    for where, matches in [
        ({"bucket": 7}, 8),
        ({"bucket": {"$in": [1, 2]}}, 12),
        ({"odd": True}, 1500),
        ({"bucket": -1}, 0),
    ]:
        for k in (1, 5, 10, 100):
            res = c.query(x[100], k=k, where=where)
            assert len(res) == min(k, matches)
            assert (
                all(m["bucket"] in (7, 1, 2) or m.get("odd") for m in res.metadata) or not matches
            )
    res = c.query(x[100], k=50, where={"bucket": 7})
    assert set(res.ids) == {"7", "507", "1007", "1507", "2007", "2507", "p1", "p2"}
    assert sorted(res.scores, reverse=True) == list(res.scores)


def test_where_document(db, data):
    c = db.create_collection("c", dim=32)
    c.add(ids_of(4), vectors=data[:4], documents=["red apple", "green apple", "Red car", None])
    assert c.get(where_document={"$contains": "apple"}).ids == ["0", "1"]
    assert c.get(where_document={"$not_contains": "apple"}).ids == ["2", "3"]
    assert c.count() == 4
    res = c.query(data[0], k=10, where_document={"$contains": "red"})
    assert res.ids == ["0"]


def test_upsert_update_delete(db, data):
    c = db.create_collection("c", dim=32, metric="dot")
    c.add(["a", "b"], vectors=data[:2], documents=["A", "B"], metadata=[{"v": 1}, {"v": 2}])
    c.upsert(["b", "c"], vectors=data[2:4], documents=["B2", "C"])
    got = c.get(["a", "b", "c"], include_vectors=True)
    assert got.documents == ["A", "B2", "C"]
    assert got.metadata == [{"v": 1}, {}, {}]
    np.testing.assert_array_equal(got.vectors, data[[0, 2, 3]])
    c.update(["a"], metadata=[{"v": 10}])
    c.update(["c"], documents=["C2"])
    c.update(["b"], vectors=data[9:10])
    got = c.get(["a", "b", "c"], include_vectors=True)
    assert got.metadata == [{"v": 10}, {}, {}] and got.documents == ["A", "B2", "C2"]
    np.testing.assert_array_equal(got.vectors, data[[0, 9, 3]])
    assert c.count({"v": 1}) == 0 and c.count({"v": 10}) == 1
    assert c.query(data[9], k=1).ids == ["b"] or c.query(data[9], k=3).ids.count("b") == 1
    with pytest.raises(vecstore.IdNotFound) as err:
        c.update(["a", "zz"], documents=["x", "y"])
    assert isinstance(err.value, KeyError) and "zz" in str(err.value)
    assert c.get(["a"]).documents == ["A"]
    assert c.delete(["a", "nope"]) == 1
    assert c.delete(where={"v": 10}) == 0
    assert c.delete(["b"], where={"v": 3}) == 0
    assert c.count() == 2
    assert c.delete(where={}) == 2
    assert c.count() == 0
    with pytest.raises(vecstore.InvalidInput):
        c.delete()


def test_small_adds_are_buffered_and_sealed(db, data):
    c = db.create_collection("c", dim=32)
    for i in range(1000):
        c.add([str(i)], vectors=data[i])
    files = list((db.path / "collections").glob("*/*.vseg"))
    assert len(files) <= 3 * 4  # a few segments per size tier, not one per add
    assert c.count() == 1000
    assert c.query(data[999], k=1).ids == ["999"]


def test_compact_removes_deleted_vectors_from_disk(db):
    c = db.create_collection("c", dim=4)
    marker = np.array([[1234.5, -987.25, 31.0, 0.125]], dtype=np.float32)
    x = np.vstack([marker, np.ones((199, 4), np.float32)])
    c.add(ids_of(200), vectors=x)
    c.add(["p"], vectors=marker)  # pending
    c.delete(["0", "p"])
    c.compact()
    needle = marker.tobytes()
    for f in db.path.rglob("*"):
        if f.is_file() and f.suffix == ".vseg":
            assert needle not in f.read_bytes()
    assert len(list((db.path / "collections").glob("*/*.vseg"))) == 1
    assert c.count() == 199 and c.get(["0", "p"]).ids == []


def test_reopen_after_compaction_and_merges(tmp_path, data):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=16) as db:
        c = db.create_collection("c", dim=32)
        for start in range(0, 2000, 50):
            c.add(ids_of(50, f"{start}-"), vectors=data[start : start + 50])
        c.delete(where={})
        c.add(["x"], vectors=data[:1])
    with vecstore.open(path) as db:
        c = db.get_collection("c")
        assert c.get().ids == ["x"]
        c.compact()
        assert c.query(data[0], k=3).ids == ["x"]


BAD_WRITES = [
    ("wrong dim", dict(ids=["n"], vectors=np.zeros((1, 31))), vecstore.DimensionMismatch),
    ("1-D for two ids", dict(ids=["n", "m"], vectors=np.zeros(32)), vecstore.DimensionMismatch),
    ("NaN", dict(ids=["n"], vectors=np.full((1, 32), np.nan)), vecstore.InvalidInput),
    ("inf", dict(ids=["n"], vectors=np.full((1, 32), np.inf)), vecstore.InvalidInput),
    ("float64 overflow", dict(ids=["n"], vectors=np.full((1, 32), 1e300)), vecstore.InvalidInput),
    ("strings", dict(ids=["n"], vectors=[["a"] * 32]), vecstore.InvalidInput),
    ("count mismatch", dict(ids=["n", "m"], vectors=np.zeros((3, 32))), vecstore.InvalidInput),
    ("dup in call", dict(ids=["n", "n"], vectors=np.zeros((2, 32))), vecstore.DuplicateIdError),
    ("existing id", dict(ids=["n", "a"], vectors=np.zeros((2, 32))), vecstore.DuplicateIdError),
    ("empty id", dict(ids=[""], vectors=np.zeros((1, 32))), vecstore.InvalidInput),
    ("int id", dict(ids=[5], vectors=np.zeros((1, 32))), vecstore.InvalidInput),
    ("NUL id", dict(ids=["a\x00"], vectors=np.zeros((1, 32))), vecstore.InvalidInput),
    ("no vectors", dict(ids=["n"], vectors=None), vecstore.InvalidInput),
    (
        "docs mismatch",
        dict(ids=["n"], vectors=np.zeros((1, 32)), documents=["a", "b"]),
        vecstore.InvalidInput,
    ),
    ("doc type", dict(ids=["n"], vectors=np.zeros((1, 32)), documents=[3]), vecstore.InvalidInput),
    (
        "nested meta",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"a": {"b": 1}}]),
        vecstore.InvalidInput,
    ),
    (
        "nested list",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"a": [[1]]}]),
        vecstore.InvalidInput,
    ),
    (
        "huge int",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"a": 2**64}]),
        vecstore.InvalidInput,
    ),
    (
        "NaN meta",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"a": float("nan")}]),
        vecstore.InvalidInput,
    ),
    (
        "$ key",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"$a": 1}]),
        vecstore.InvalidInput,
    ),
    (
        "int key",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{1: 1}]),
        vecstore.InvalidInput,
    ),
    (
        "meta type",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=["x"]),
        vecstore.InvalidInput,
    ),
    (
        "bytes value",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"a": b"x"}]),
        vecstore.InvalidInput,
    ),
    (
        "meta too big",
        dict(ids=["n"], vectors=np.zeros((1, 32)), metadata=[{"a": "x" * (2 << 20)}]),
        vecstore.InvalidInput,
    ),
]


@pytest.mark.parametrize("case, kwargs, error", BAD_WRITES, ids=[b[0] for b in BAD_WRITES])
@pytest.mark.parametrize("method", ["add", "upsert"])
def test_bad_writes_change_nothing(db, data, case, kwargs, error, method):
    c = db.create_collection("c", dim=32)
    c.add(["a"], vectors=data[:1], documents=["A"], metadata=[{"k": 1}])
    if method == "upsert" and case == "existing id":
        return  # upsert accepts existing ids by design
    kwargs = dict(kwargs)
    ids = kwargs.pop("ids")
    with pytest.raises(error):
        getattr(c, method)(ids, **kwargs)
    assert c.count() == 1
    got = c.get(include_vectors=True)
    assert (got.ids, got.documents, got.metadata) == (["a"], ["A"], [{"k": 1}])
    np.testing.assert_array_equal(got.vectors, data[:1])


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True, 10**9])
def test_bad_k(db, data, k):
    c = db.create_collection("c", dim=32)
    c.add(["a"], vectors=data[:1])
    with pytest.raises(vecstore.InvalidInput):
        c.query(data[0], k=k)


@pytest.mark.parametrize("q", ["text", np.zeros(31), np.zeros((2, 32)), [np.nan] * 32])
def test_bad_query_vectors(db, data, q):
    c = db.create_collection("c", dim=32)
    c.add(["a"], vectors=data[:1])
    with pytest.raises(vecstore.InvalidInput):
        c.query(q)


@pytest.mark.parametrize(
    "where", [{"a": {"$regex": "x"}}, {"$and": {}}, {"a": [1, 2]}, "a = 1", {"a": {"$gt": None}}]
)
def test_malformed_filters(db, data, where):
    c = db.create_collection("c", dim=32)
    c.add(["a"], vectors=data[:1])
    with pytest.raises(vecstore.InvalidFilter):
        c.query(data[0], where=where)
    with pytest.raises(vecstore.InvalidFilter):
        c.delete(where=where)
    assert c.count() == 1


def test_threads_share_a_database(db, data):
    c = db.create_collection("c", dim=32)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(40):
                c.add([f"{t}-{i}"], vectors=data[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(40):
                res = c.query(data[i], k=3)
                assert len(res) <= 3
                c.count()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert c.count() == 120


def test_empty_writes_are_no_ops(db, data):
    c = db.create_collection("c", dim=32)
    c.add([], vectors=np.zeros((0, 32)))
    c.upsert([], vectors=[])
    c.update([], documents=[])
    assert c.delete([]) == 0
    assert c.count() == 0
    with pytest.raises(vecstore.InvalidInput, match="needs vectors"):
        c.add(["a"])
