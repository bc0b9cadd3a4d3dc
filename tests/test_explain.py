"""``Collection.explain``: the plan a query took and why, what it touched, and each stage's
time, from the same code path as ``query`` (so the same result); and ``query --explain``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vecstore
from vecstore.explain import Explanation


@pytest.fixture
def coll(tmp_path, rng):
    db = vecstore.open(tmp_path / "s", seal_rows=1000)
    c = db.create_collection("c", dim=16)
    x = rng.standard_normal((3000, 16), dtype=np.float32)
    c.add(
        [str(i) for i in range(3000)],
        vectors=x,
        documents=[f"word{i % 40} filler" for i in range(3000)],
        metadata=[{"u": i % 100} for i in range(3000)],
    )
    yield c, x
    db.close()


def test_exact_plan_and_the_same_result_as_query(coll):
    c, x = coll
    e = c.explain(x[5], k=7)
    assert isinstance(e, Explanation)
    assert e.plan == "exact"
    assert "no trained ANN index" in e.reason
    assert e.facts["candidates_scored"] == 3000
    assert e.facts["rows_reranked"] == 0
    assert e.facts["segments"]  # sealed segments touched
    assert list(e.stages_ms)[-1] == "total"
    assert {"search", "results"} <= set(e.stages_ms)
    assert e.stages_ms["total"] >= e.stages_ms["search"]
    q = c.query(x[5], k=7)
    assert e.result.ids == q.ids and e.result.ids[0] == "5"
    np.testing.assert_allclose(e.result.scores, q.scores, rtol=1e-5)


def test_a_filter_gives_a_filtered_scan_and_its_selectivity(coll):
    c, x = coll
    e = c.explain(x[5], k=5, where={"u": {"$lt": 3}})
    assert e.plan == "filtered scan"
    assert e.facts["filter_rows"] == 90 and e.facts["live_rows"] == 3000
    assert e.facts["selectivity"] == pytest.approx(0.03)
    assert e.facts["estimated_selectivity"] == pytest.approx(0.03)
    assert e.facts["candidates_scored"] == 90
    assert "filter" in e.stages_ms
    assert e.result.ids == c.query(x[5], k=5, where={"u": {"$lt": 3}}).ids


def test_an_ivf_pq_plan_names_its_lists_and_reranking(coll):
    c, x = coll
    c.create_index(vecstore.IVFPQ(nlist=16, m=4, min_rows=1000))
    e = c.explain(x[5], k=5, nprobe=4, refine=3)
    assert e.plan == "IVF-PQ"
    assert e.facts["nlist"] == 16 and e.facts["lists_probed"] == 4
    assert e.facts["rows_reranked"] == 15
    assert 0 < e.facts["candidates_scored"] < 3000
    assert e.result.ids == c.query(x[5], k=5, nprobe=4, refine=3).ids
    assert c.explain(x[5], k=5, exact=True).reason.startswith("exact=True")


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_compressed_codes_report_the_rows_they_rerank(tmp_path, rng, kind):
    db = vecstore.open(tmp_path / "s", seal_rows=1000)
    c = db.create_collection("c", dim=64, vectors=kind)
    x = rng.standard_normal((2500, 64), dtype=np.float32)
    for a, b in ((0, 1200), (1200, 2400), (2400, 2500)):  # two segments, 100 rows pending
        c.add(
            [str(i) for i in range(a, b)],
            vectors=x[a:b],
            metadata=[{"u": i % 10} for i in range(a, b)],
        )
    e = c.explain(x[5], k=4)
    per_segment = {"int8": 20, "binary": 50}[kind]  # compressed.MIN_CANDIDATES
    assert "compressed codes" in e.reason and len(e.facts["segments"]) >= 2
    assert e.facts["rows_reranked"] == per_segment * len(e.facts["segments"])
    assert e.result.ids == c.query(x[5], k=4).ids
    e = c.explain(x[5], k=4, refine=3)  # k x refine candidates a segment
    assert e.facts["rows_reranked"] == 12 * len(e.facts["segments"])
    e = c.explain(x[5], k=4, where={"u": 5})
    assert 0 < e.facts["rows_reranked"] <= per_segment * len(e.facts["segments"])
    assert c.explain(x[5], k=4, exact=True).facts["rows_reranked"] == 0
    db.close()


def test_keyword_and_hybrid_plans(coll):
    c, x = coll
    assert c.explain("word3", mode="text", k=5).plan == "keyword"
    e = c.explain(x[3], text="word3", mode="hybrid", k=5)
    assert e.plan == "hybrid: keyword + exact"
    assert e.result.ids == c.query(x[3], text="word3", mode="hybrid", k=5).ids


def test_explain_checks_its_arguments_as_query_does(coll):
    c, x = coll
    with pytest.raises(vecstore.errors.InvalidInput):
        c.explain(x[0], k=0)
    with pytest.raises(vecstore.errors.InvalidInput):
        c.explain(x[0], nprobe=4)  # a Flat collection


def test_cli_query_explain(coll, tmp_path):
    c, x = coll
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    vec = json.dumps(x[5].tolist())
    base = [sys.executable, "-m", "vecstore", "query", str(tmp_path / "s"), "c", vec, "-k", "3"]
    out = subprocess.run([*base, "--explain"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "plan: exact" in out.stdout and "time per stage (ms):" in out.stdout
    out = subprocess.run([*base, "--explain", "--json"], capture_output=True, text=True, env=env)
    got = json.loads(out.stdout)
    assert got["plan"] == "exact" and got["result"][0]["id"] == "5"
