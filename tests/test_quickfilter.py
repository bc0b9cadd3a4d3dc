"""The lean path of a filtered single query (``Reader.quick_filtered``): the same rows, scores,
documents and metadata as the full path (``explain`` runs the full path) over random filters,
on collections with several segments, pending rows, deleted rows and commits by another
connection and another process; always min(k, matches) rows; and a filter that needs SQL, or
a commit since the last query, takes the full path."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecstore
from vecstore import HNSW, IVFPQ
from vecstore.reader import Reader

DIM = 16


@pytest.fixture
def lean(monkeypatch):
    """Counts the queries the lean path answered."""
    calls = {"answered": 0, "declined": 0}
    real = Reader.quick_filtered

    def counted(self, *args, **kwargs):
        got = real(self, *args, **kwargs)
        calls["answered" if got is not None else "declined"] += 1
        return got

    monkeypatch.setattr(Reader, "quick_filtered", counted)
    return calls


def _rows(rng, start: int, n: int):
    ids = [str(i) for i in range(start, start + n)]
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    meta = [
        {"c10": i % 10, "c3": i % 3, "tag": "ab"[i % 2], "ok": bool(i % 4 == 0), "f": i / 7}
        for i in range(start, start + n)
    ]
    docs = [f"doc {i}" for i in range(start, start + n)]
    return ids, x, meta, docs


def _filters(rng, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        kind = int(rng.integers(0, 7))
        v = int(rng.integers(0, 10))
        if kind == 0:
            out.append({"c10": v})
        elif kind == 1:
            out.append({"c3": {"$eq": v % 3}})
        elif kind == 2:
            out.append({"tag": "ab"[v % 2]})
        elif kind == 3:
            out.append({"ok": bool(v % 2)})
        elif kind == 4:
            out.append({"c10": {"$in": [v, (v + 3) % 10]}})
        elif kind == 5:
            out.append({"$and": [{"c3": v % 3}, {"f": {"$gt": v * 100 / 7}}]})
        else:
            out.append({"c10": 99})  # no row matches
    return out


def _same(got, want):
    assert got.ids == want.ids
    np.testing.assert_array_equal(got.scores, want.scores)
    assert got.documents == want.documents
    assert got.metadata == want.metadata
    assert got.metric == want.metric and got.mode == want.mode


def _check(c, rng, nfilters: int, k: int = 10):
    for where in _filters(rng, nfilters):
        q = rng.standard_normal(DIM).astype(np.float32)
        matches = c.count(where)
        first = c.query(q, k=k, where=where)  # fills the filter cache (full path or lean)
        again = c.query(q, k=k, where=where)  # the cached filter: the lean path
        full = c.explain(q, k=k, where=where).result  # the full path
        assert len(full) == min(k, matches)
        _same(first, full)
        _same(again, full)
        assert len(set(again.ids)) == len(again)


@pytest.mark.parametrize("index", [None, "ivfpq", "hnsw"])
def test_lean_path_equals_full_path(tmp_path, rng, lean, index):
    db = vecstore.open(tmp_path / "s", seal_rows=300, progress=False)
    spec = {
        None: None,
        "ivfpq": IVFPQ(m=4, nlist=32, min_rows=1000),
        "hnsw": HNSW(M=8, ef_construction=32, min_rows=1000),
    }[index]
    c = db.create_collection("c", dim=DIM, metric="cosine", **({"index": spec} if spec else {}))
    for start in (0, 2000, 4000):  # segments (writes above seal_rows go straight to one)
        ids, x, meta, docs = _rows(rng, start, 2000)
        c.add(ids, vectors=x, metadata=meta, documents=docs)
    ids, x, meta, docs = _rows(rng, 6000, 120)  # pending rows, below seal_rows
    c.add(ids, vectors=x, metadata=meta, documents=docs)
    c.delete([str(i) for i in range(0, 6120, 9)])
    if index:
        assert c.index_info()["trained"]
        plan = c.explain(x[0], k=10, where={"tag": "a"}).plan  # kept rows > 2,000
        assert plan == ("IVF-PQ" if index == "ivfpq" else "HNSW")
    _check(c, rng, 25)
    _check(c, rng, 5, k=1000)  # k above most filters' matches: min(k, matches) rows

    db2 = vecstore.open(tmp_path / "s", progress=False)
    other = db2.get_collection("c")
    ids, x, meta, docs = _rows(rng, 9000, 50)
    other.add(ids, vectors=x, metadata=meta, documents=docs)  # another connection's commit
    other.delete([str(i) for i in range(1, 700, 5)])
    other.update(["2"], metadata=[{"c10": 3, "c3": 0}])
    db2.close()
    _check(c, rng, 15)

    script = textwrap.dedent(
        f"""
        import numpy as np, vecstore
        with vecstore.open({str(tmp_path / "s")!r}, progress=False) as db:
            c = db.get_collection("c")
            x = np.random.default_rng(3).standard_normal((40, {DIM})).astype(np.float32)
            c.add([f"p{{i}}" for i in range(40)], vectors=x,
                  metadata=[{{"c10": i % 10, "c3": 1, "tag": "a", "ok": True, "f": 0.5}}
                            for i in range(40)])
            c.delete(["3", "4"])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    _check(c, rng, 15)
    assert lean["answered"] > 0
    db.close()


def test_sql_filters_and_stale_snapshots_take_the_full_path(tmp_path, rng, lean):
    db = vecstore.open(tmp_path / "s", progress=False)
    c = db.create_collection("c", dim=DIM)
    ids, x, meta, docs = _rows(rng, 0, 200)
    c.add(ids, vectors=x, metadata=meta, documents=docs)
    q = x[5]
    assert c.query(q, k=3).ids[0] == "5"  # keeps the snapshot
    db.clear_query_caches()
    got = c.query(q, k=3, where={"c10": 5})  # neither cache answers: SQL, the full path
    assert got.ids[0] == "5" and lean["declined"] == 1 and lean["answered"] == 0
    assert c.query(q, k=3, where={"c10": 5}).ids == got.ids  # cached now: lean
    assert lean["answered"] == 1
    c.update(["5"], metadata=[{"c10": 4}])  # a commit: the kept snapshot is stale
    assert "5" not in c.query(q, k=3, where={"c10": 5}).ids
    assert c.query(q, k=3, where={"c10": 4}).ids[0] == "5"
    # filters the lean path leaves to the full path keep their errors
    with pytest.raises(vecstore.InvalidInput):
        c.query(q, k=3, where={"c10": {"$bad": 1}})
    with pytest.raises(vecstore.InvalidInput):
        c.query(np.full(DIM, np.nan, dtype=np.float32), k=3, where={"c10": 1})
    with pytest.raises(vecstore.InvalidInput):
        c.query(q, k=0, where={"c10": 1})
    # True and 1 are different filters, though equal as Python keys
    c.add(["t"], vectors=[q], metadata=[{"c10": True}])
    one = c.query(q, k=300, where={"c10": 1})
    c.query(q, k=300, where={"c10": True})
    assert "t" not in one.ids
    assert c.query(q, k=300, where={"c10": True}).ids == ["t"]
    assert "t" not in c.query(q, k=300, where={"c10": 1}).ids
    db.close()


def test_deep_and_cyclic_filters_are_refused_not_kept(tmp_path):
    db = vecstore.open(tmp_path / "s", progress=False)
    c = db.create_collection("c", dim=2)
    c.add(["a"], vectors=[[1.0, 0.0]], metadata=[{"k": 1}])
    deep: dict = {"k": 1}
    for _ in range(200):
        deep = {"$not": deep}
    cyclic: dict = {}
    cyclic["$not"] = cyclic
    for where in (deep, cyclic):
        for _ in range(2):
            with pytest.raises(vecstore.InvalidFilter):
                c.query(np.array([1.0, 0.0], dtype=np.float32), k=1, where=where)
    db.close()


def test_filters_with_many_parameters_are_compiled_each_time_not_kept():
    from vecstore.quickfilter import MAX_KEPT_PARAMS, CompiledFilters

    calls = []

    def compiler(where):
        calls.append(1)
        values = where["u"]["$in"]
        return "x IN (" + ",".join("?" * len(values)) + ")", list(values)

    kept = CompiledFilters(compiler)
    short = {"u": {"$in": [str(i) for i in range(MAX_KEPT_PARAMS)]}}
    long = {"u": {"$in": [str(i) for i in range(MAX_KEPT_PARAMS + 1)]}}
    for _ in range(3):
        kept.get(short)
    assert len(calls) == 1
    for _ in range(3):
        assert kept.get(long)[1] == tuple(long["u"]["$in"])
    assert len(calls) == 4
