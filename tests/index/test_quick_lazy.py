"""The quick single-query path's lean result (``QueryResult.of_rows``): documents and metadata
are made on first access, from what the query read, so they equal the full path's (explain
always takes it) with every kind of stored value, follow commits made by another process
before the query, and never show a version committed after it."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecstore
from vecstore import HNSW
from vecstore.index import cold
from vecstore.results import QueryResult

N, DIM = 400, 16


def _meta(i: int) -> dict:
    if i % 5 == 0:
        return {}  # a row without metadata
    if i % 5 == 1:
        return {"tags": ["a", str(i)], "mixed": [1.5, None, i]}  # lists: not kept unpacked
    return {"i": i, "name": f"r\u00e9sum\u00e9-{i}", "ok": bool(i % 2), "f": i / 3}


def _doc(i: int) -> str | None:
    return None if i % 4 == 0 else f"document {i} \u2603"


@pytest.fixture
def store(tmp_path, rng):
    x = rng.standard_normal((N, DIM), dtype=np.float32)
    with vecstore.open(tmp_path / "s", seal_rows=N, progress=False) as db:
        c = db.create_collection("c", dim=DIM, index=HNSW(M=8, min_rows=1))
        names = [str(i) for i in range(N)]
        c.add(names, vectors=x, documents=[_doc(i) for i in range(N)],
              metadata=[_meta(i) for i in range(N)])  # fmt: skip
        assert c.index_info()["trained"]
    return tmp_path / "s", x


def _quick(c, q, calls, **kw):
    """``c.query(q)`` answered by the quick path (asserted; ``calls``: the
    ``graph_one_calls`` fixture)."""
    c.query(q, k=10, **kw)  # keeps the snapshot
    assert cold.wait(120)
    c.query(q, k=10, **kw)  # builds the plan
    calls.clear()
    got = c.query(q, k=10, **kw)
    assert calls, "the quick path was not taken"
    return got


def _same(got: QueryResult, want: QueryResult) -> None:
    assert got.ids == want.ids
    np.testing.assert_array_equal(got.scores, want.scores)
    assert got.documents == want.documents
    assert got.metadata == want.metadata
    assert got.to_dict() == want.to_dict() and got.to_list() == want.to_list()
    assert list(got) == list(want)


def _other_process(path, code: str) -> None:
    script = textwrap.dedent(f"""
        import vecstore
        with vecstore.open({str(path)!r}, progress=False) as db:
            c = db.get_collection("c")
    """) + textwrap.indent(textwrap.dedent(code), " " * 4)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_documents_and_metadata_equal_the_full_path(store, rng, graph_one_calls):
    path, x = store
    with vecstore.open(path, read_only=True, progress=False) as db:
        c = db.get_collection("c")
        for j in range(4):
            q = x[rng.integers(N)] + 0.01 * rng.standard_normal(DIM, dtype=np.float32)
            got = _quick(c, q, graph_one_calls, ef=None if j % 2 else 40)
            want = c.explain(q, k=10, ef=None if j % 2 else 40).result
            assert "_rows" in vars(got)  # lazy until read
            _same(got, want)
            # each read gives the caller its own dicts: changing them changes nothing kept
            got.metadata[0]["added"] = 1
            again = c.query(q, k=10, ef=None if j % 2 else 40)
            assert again.metadata == want.metadata


def test_commits_of_another_process_before_and_after_the_query(store, graph_one_calls):
    path, x = store
    q = x[7] + 0.01
    with vecstore.open(path, progress=False) as db:
        c = db.get_collection("c")
        before = _quick(c, q, graph_one_calls)
        assert before.ids[0] == "7"
        # another process changes the best rows' documents and metadata and deletes one
        _other_process(
            path,
            f"""
            ids = {before.ids[:3]!r}
            c.update(ids, documents=["new " + i for i in ids],
                     metadata=[{{"v": i, "l": [1, 2]}} for i in ids])
            c.delete([{before.ids[3]!r}])
        """,
        )
        # read only now: the values the query read, not the committed ones
        assert before.documents == [_doc(int(i)) for i in before.ids]
        assert before.metadata == [_meta(int(i)) for i in before.ids]
        after = _quick(c, q, graph_one_calls)
        _same(after, c.explain(q, k=10).result)
        assert after.documents[:3] == ["new " + i for i in before.ids[:3]]
        assert after.metadata[:3] == [{"v": i, "l": [1, 2]} for i in before.ids[:3]]
        assert before.ids[3] not in after.ids
        # and the same after reopening (a new process state: the snapshot is read anew)
    with vecstore.open(path, read_only=True, progress=False) as db:
        c = db.get_collection("c")
        _same(_quick(c, q, graph_one_calls), after)


def test_a_lazy_result_copies_and_pickles_whole(store, graph_one_calls):
    path, x = store
    with vecstore.open(path, read_only=True, progress=False) as db:
        c = db.get_collection("c")
        got = _quick(c, x[3], graph_one_calls)
        want = c.explain(x[3], k=10).result
    for made in (pickle.loads(pickle.dumps(got)), copy.copy(got), copy.deepcopy(got)):
        assert "_rows" not in vars(made)
        _same(made, want)
    fresh = dataclasses.replace(got, metric="dot")
    assert fresh.documents == want.documents and fresh.metadata == want.metadata
    assert dataclasses.asdict(got)["documents"] == want.documents
    with pytest.raises(AttributeError):
        got.no_such_field  # noqa: B018
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.documents = []


def test_of_rows_makes_the_same_result_as_the_constructor():
    class Rows:
        def fill(self):
            return [None, "doc"], [{}, {"x": 1}]

    scores = np.array([0.5, 0.25], np.float32)
    lazy = QueryResult.of_rows(["a", "b"], scores, Rows(), "l2")
    eager = QueryResult(["a", "b"], scores, [None, "doc"], [{}, {"x": 1}], "l2")
    for f in dataclasses.fields(QueryResult):
        if f.name != "scores":
            assert getattr(lazy, f.name) == getattr(eager, f.name)
    assert lazy.scores is eager.scores
    assert repr(lazy) == repr(eager) and lazy.to_dict() == eager.to_dict()
    assert lazy.documents is lazy.documents  # made once


def test_a_read_result_lets_go_of_the_rows_it_was_made_from(store, graph_one_calls):
    # the rows point to the snapshot's cache of unpacked metadata: a kept result must not
    # keep that cache alive once its own documents and metadata are made
    path, x = store
    with vecstore.open(path, progress=False) as db:
        got = _quick(db.get_collection("c"), x[3], graph_one_calls)
        assert "_rows" in vars(got)
        docs, meta = got.documents, got.metadata
        assert "_rows" not in vars(got)
        assert got.documents is docs and got.metadata is meta
