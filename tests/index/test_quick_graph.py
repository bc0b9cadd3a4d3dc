"""The single-query path of an HNSW collection (``index/quick.py``, ``kernels.single``): the
same rows, scores and metadata as the full path (``explain`` always takes it), for every
metric, with deletes, and after reopening (the walk block is rebuilt in memory)."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore import HNSW
from vecstore.index import cold


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_quick_graph_path_agrees_with_the_full_one(tmp_path, rng, metric, graph_one_calls):
    calls = graph_one_calls
    x = rng.standard_normal((600, 24), dtype=np.float32)
    qs = rng.standard_normal((6, 24), dtype=np.float32)
    names = [str(i) for i in range(600)]

    def check(c):
        c.query(qs[0], k=10)
        assert cold.wait(120)  # the kernels are loaded: the quick path answers
        out = []
        for q in qs:
            for ef in (None, 12, 80):
                c.query(q, k=10, ef=ef)  # keeps the snapshot: the next one is quick
                got, want = c.query(q, k=10, ef=ef), c.explain(q, k=10, ef=ef).result
                assert got.ids == want.ids and got.metadata == want.metadata
                np.testing.assert_array_equal(got.scores, want.scores)
                out.append(got.ids)
        assert calls, "the quick path was not taken"
        calls.clear()
        return out

    with vecstore.open(tmp_path / "s", seal_rows=600, progress=False) as db:
        c = db.create_collection("c", dim=24, metric=metric, index=HNSW(M=8, min_rows=1))
        c.add(names, vectors=x, metadata=[{"i": i} for i in range(600)])
        assert c.index_info()["trained"]
        first = check(c)
        c.delete(names[::7])
        after_delete = check(c)
        assert all(int(i) % 7 for ids in after_delete for i in ids)
    assert first != after_delete
    for read_only in (False, True):
        with vecstore.open(tmp_path / "s", read_only=read_only, progress=False) as db:
            assert check(db.get_collection("c")) == after_delete


def test_of_vector_makes_the_same_result_as_the_constructor():
    import dataclasses

    from vecstore.results import QueryResult

    args = (["a", "b"], np.array([0.5, 0.25], np.float32), [None, "doc"], [{}, {"x": 1}], "l2")
    fast, slow = QueryResult.of_vector(*args), QueryResult(*args)
    for f in dataclasses.fields(QueryResult):
        assert getattr(fast, f.name) is getattr(slow, f.name)
    assert repr(fast) == repr(slow) and fast.to_dict() == slow.to_dict()
    assert list(fast) == list(slow) and len(fast) == 2
    np.testing.assert_array_equal(fast.distances, slow.distances)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.ids = []
    assert dataclasses.replace(fast, metric="dot").metric == "dot"
