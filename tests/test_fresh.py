"""A query reuses the last snapshot and its rows only while nothing was committed since:
commits by another connection (as another process makes them) and by this one are seen by
the next query, whatever was kept."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore.errors import StoreClosed


@pytest.fixture
def two(tmp_path, rng):
    a = vecstore.open(tmp_path / "s")
    ca = a.create_collection("c", dim=8)
    x = rng.standard_normal((50, 8), dtype=np.float32)
    ca.add([str(i) for i in range(50)], vectors=x, metadata=[{"v": i} for i in range(50)])
    b = vecstore.open(tmp_path / "s")
    yield ca, b.get_collection("c"), x
    b.close()
    a.close()


def test_another_connections_commits_are_seen(two):
    mine, other, x = two
    q = x[3] + 0.01
    for _ in range(3):  # kept and reused
        assert mine.query(q, k=1).ids == ["3"]
    other.add(["new"], vectors=[q])
    assert mine.query(q, k=1).ids == ["new"]
    other.update(["new"], metadata=[{"v": -1}])
    assert mine.query(q, k=1).metadata == [{"v": -1}]
    other.delete(["new"])
    assert mine.query(q, k=1).ids == ["3"]
    other.update(["3"], documents=["changed"])
    assert mine.query(q, k=1).documents == ["changed"]


def test_own_commits_are_seen(two):
    mine, _, x = two
    q = x[7] + 0.01
    assert mine.query(q, k=1).ids == ["7"]
    mine.upsert(["7"], vectors=[-q])
    assert mine.query(q, k=1).ids != ["7"]
    mine.update(["7"], vectors=[q])
    got = mine.query(q, k=1)
    assert got.ids == ["7"] and got.metadata == [{}]  # upsert replaced the whole row


def test_a_dropped_collection_and_a_closed_store(tmp_path, rng):
    db = vecstore.open(tmp_path / "s")
    c = db.create_collection("c", dim=4)
    c.add(["a"], vectors=[[1, 0, 0, 0]])
    c.query([1, 0, 0, 0], k=1)
    other = vecstore.open(tmp_path / "s")
    other.delete_collection("c")
    with pytest.raises(vecstore.errors.CollectionNotFound):
        c.query([1, 0, 0, 0], k=1)
    other.close()
    db.close()
    with pytest.raises(StoreClosed):
        c.query([1, 0, 0, 0], k=1)


def test_per_query_overrides_reuse_the_snapshot_and_are_still_checked(two):
    mine, other, x = two
    q = x[3] + 0.01
    for _ in range(2):  # kept by the first query, reused by the second: refused both times
        assert mine.query(q, k=1).ids == ["3"]
        with pytest.raises(vecstore.InvalidInput, match="ef applies to HNSW"):
            mine.query(q, k=1, ef=20)
    other.create_index(vecstore.HNSW(M=4, ef_construction=16, min_rows=10))  # another connection
    for _ in range(2):
        assert mine.query(q, k=1, ef=20).ids == ["3"]  # the new spec is seen
        with pytest.raises(vecstore.InvalidInput, match="nprobe does not apply"):
            mine.query(q, k=1, nprobe=2)
    assert mine.explain(q, k=1, ef=20).facts["snapshot"].startswith("reused")
