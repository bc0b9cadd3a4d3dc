"""Keyword and hybrid queries through the public API, against a plain-Python BM25 oracle."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

import vecstore
from vecstore import text

DIM = 8
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "café",
    "cafe",
    "CAFÉS",
    "running",
    "runs",
    "ran",
    "数据库",
    "向量",
    "数",
    "the",
    "and",
    "Ünïcode",
    "x1",
    "naïve",
    "résumé",
    "Straße",
]
SEPARATORS = [" ", " ", ", ", "-", "@", "; ", "\n", "'s "]


def random_doc(r: random.Random) -> str | None:
    if r.random() < 0.1:
        return None
    out = ""
    for _ in range(r.randint(0, 8)):
        out += r.choice(WORDS) + r.choice(SEPARATORS)
    return out


def bm25_oracle(docs: dict[str, str | None], query: str) -> dict[str, float]:
    """BM25 (k1 = 1.2, b = 0.75, Lucene's idf) of every document matching ``query``."""
    analyzer = text.Analyzer()  # what a new collection analyses with
    terms = analyzer.query_terms(query)
    analysed = {i: analyzer.terms(d) for i, d in docs.items() if d is not None}
    if not analysed:
        return {}
    n = len(analysed)
    avgdl = sum(len(t) for t in analysed.values()) / n
    df = Counter(t for ts in analysed.values() for t in set(ts))
    out = {}
    for i, ts in analysed.items():
        tf = Counter(ts)
        s = 0.0
        for t in terms:
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * tf[t] * 2.2 / (tf[t] + 1.2 * (0.25 + 0.75 * len(ts) / max(avgdl, 1e-9)))
        if s > 0:
            out[i] = s
    return out


def assert_ranked(res, expected: dict[str, float], k: int) -> None:
    """``res`` is a correct top-k of ``expected`` (ties in any order)."""
    assert len(res) == min(k, len(expected))
    assert res.mode == "text"
    for id_, score in zip(res.ids, res.scores):
        assert id_ in expected, id_
        assert score == pytest.approx(expected[id_], rel=1e-4)
    assert np.all(np.diff(res.scores) <= 1e-5)
    if len(res):
        rest = [v for i, v in expected.items() if i not in set(res.ids)]
        assert all(v <= res.scores[-1] * (1 + 1e-4) for v in rest)
    np.testing.assert_array_equal(res.text_ranks, np.arange(1, len(res) + 1))
    assert res.vector_ranks is None


def vec(r: random.Random) -> np.ndarray:
    return np.array([r.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)


QUERIES = ["alpha", "cafe", "café running", "数据", "向量数据库", "Straße naive resume", "x1 beta"]


def test_text_mode_ranks_by_bm25(db):
    r = random.Random(1)
    c = db.create_collection("c", dim=DIM)
    docs = {f"d{i}": random_doc(r) for i in range(300)}
    c.add(list(docs), vectors=np.stack([vec(r) for _ in docs]), documents=list(docs.values()))
    for q in QUERIES:
        for k in (1, 5, 50, 1000):
            assert_ranked(c.query(q, mode="text", k=k), bm25_oracle(docs, q), k)


def test_writes_keep_keyword_results_in_sync_with_a_dict_model(tmp_path):
    """add, upsert, update, delete (by id and filter), compact and reopen, against a model."""
    r = random.Random(2)
    model: dict[str, tuple[str | None, int]] = {}  # id -> (document, tag)
    path = tmp_path / "s"
    db = vecstore.open(path, seal_rows=16)
    c = db.create_collection("c", dim=DIM)
    bystander = db.create_collection("other", dim=DIM)
    bystander.add(["b"], vectors=vec(r)[None], documents=["alpha alpha beta"])
    for step in range(120):
        op = r.choice(["add", "upsert", "upsert", "update", "delete", "delete_where", "compact"])
        ids = sorted({f"k{r.randint(0, 60)}" for _ in range(r.choice([1, 3, 20]))})
        docs = [random_doc(r) for _ in ids]
        tags = [r.randint(0, 3) for _ in ids]
        vs = np.stack([vec(r) for _ in ids])
        if op == "add":
            ids = [i for i in ids if i not in model]
            if ids:
                c.add(
                    ids,
                    vectors=vs[: len(ids)],
                    documents=docs[: len(ids)],
                    metadata=[{"tag": t} for t in tags[: len(ids)]],
                )
                model.update({i: (d, t) for i, d, t in zip(ids, docs, tags)})
        elif op == "upsert":
            c.upsert(ids, vectors=vs, documents=docs, metadata=[{"tag": t} for t in tags])
            model.update({i: (d, t) for i, d, t in zip(ids, docs, tags)})
        elif op == "update":
            ids = [i for i in ids if i in model]
            if ids:
                c.update(ids, documents=docs[: len(ids)])
                model.update({i: (d, model[i][1]) for i, d in zip(ids, docs)})
        elif op == "delete":
            c.delete(ids)
            for i in ids:
                model.pop(i, None)
        elif op == "delete_where":
            c.delete(where={"tag": tags[0]})
            model = {i: v for i, v in model.items() if v[1] != tags[0]}
        else:
            c.compact()
        if step % 40 == 39:
            db.close()
            db = vecstore.open(path, seal_rows=16)
            c = db.get_collection("c")
            bystander = db.get_collection("other")
        if step % 4 == 0:
            docs_now = {i: d for i, (d, _) in model.items()}
            for q in QUERIES:
                assert_ranked(c.query(q, mode="text", k=10), bm25_oracle(docs_now, q), 10)
            full = bm25_oracle(docs_now, "alpha beta cafe")
            got = c.query("alpha beta cafe", mode="text", k=10, where={"tag": 1})
            tagged = {i for i, (_, t) in model.items() if t == 1}
            assert_ranked(got, {i: v for i, v in full.items() if i in tagged}, 10)
    assert bystander.query("alpha", mode="text").ids == ["b"]
    db.close()


def test_cjk_and_accented_documents_are_found(db):
    c = db.create_collection("c", dim=DIM)
    docs = [
        "向量数据库很快",
        "数据库系统",
        "Café au lait",
        "cafe noir",
        "Crème brûlée",
        "日本語のテキスト",
    ]
    c.add([f"d{i}" for i in range(6)], vectors=np.eye(6, DIM), documents=docs)
    assert set(c.query("数据库", mode="text").ids) == {"d0", "d1"}
    assert c.query("向量", mode="text").ids == ["d0"]
    assert set(c.query("café", mode="text").ids) == {"d2", "d3"}
    assert set(c.query("CAFE", mode="text").ids) == {"d2", "d3"}
    assert c.query("creme brulee", mode="text").ids == ["d4"]
    assert c.query("テキスト", mode="text").ids == ["d5"]
    assert c.query("数据库", mode="text").text_scores[0] > 0


HOSTILE = [
    '"',
    '""',
    '"unterminated',
    "alpha OR beta",
    "alpha AND NOT beta",
    "NEAR(alpha beta, 2)",
    "alpha*",
    "-alpha",
    "+alpha",
    "document:alpha",
    "{document}: alpha",
    "^alpha",
    "alpha\x00beta",
    "\x00",
    "'; DROP TABLE rows; --",
    "') OR 1=1 --",
    "!!!",
    "...",
    "()",
    "*",
    ":",
    "alpha " * 20_000,
    "".join(chr(c) for c in range(32, 127)),
    "\u200b\u2028\ufeff",
    "🙂 alpha",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_query_strings_are_plain_keywords(db, query):
    r = random.Random(3)
    c = db.create_collection("c", dim=DIM)
    docs = {f"d{i}": random_doc(r) for i in range(60)}
    docs["q"] = "a document mentioning NEAR and OR and document: alpha"
    c.add(list(docs), vectors=np.stack([vec(r) for _ in docs]), documents=list(docs.values()))
    assert_ranked(c.query(query, mode="text", k=10), bm25_oracle(docs, query), 10)
    hybrid = c.query(vec(r), text=query, mode="hybrid", k=10)
    assert len(hybrid) == 10
    got = c.get(where_document={"$contains": query})
    assert set(got.ids) == {i for i, d in docs.items() if d is not None and query in d}


@pytest.mark.parametrize("query", ["", "   ", "the and of", "to be or", "!?"])
def test_empty_and_stopword_queries(db, query):
    r = random.Random(4)
    c = db.create_collection("c", dim=DIM)
    c.add(
        ["a", "b", "c"],
        vectors=np.stack([vec(r) for _ in range(3)]),
        documents=["the cat", "and the dog", None],
    )
    res = c.query(query, mode="text")
    assert len(res) == 0 and res.ids == [] and res.scores.shape == (0,)
    q = vec(r)
    hybrid = c.query(q, text=query, mode="hybrid", k=2)
    assert hybrid.ids == c.query(q, k=2).ids  # the vector half alone
    assert list(hybrid.text_ranks) == [0, 0]


def test_hybrid_with_filters_never_returns_an_excluded_row(db):
    r = random.Random(5)
    c = db.create_collection("c", dim=DIM)
    n = 400
    docs = [random_doc(r) for _ in range(n)]
    metas = [{"tag": i % 7, "year": 2000 + i % 25} for i in range(n)]
    c.add(
        [f"d{i}" for i in range(n)],
        vectors=np.stack([vec(r) for _ in range(n)]),
        documents=docs,
        metadata=metas,
    )
    filters = [
        {"tag": 3},
        {"$and": [{"tag": {"$in": [1, 2]}}, {"year": {"$gte": 2020}}]},
        {"year": 2001, "tag": 1},  # one row
        {"tag": 99},  # none
    ]
    for where in filters:
        matches = c.count(where=where)
        allowed = set(c.get(where=where).ids)
        for fusion in ("rrf", "weighted"):
            for k in (1, 10, 1000):
                res = c.query(
                    vec(r), text="alpha cafe 数据库", mode="hybrid", k=k, where=where, fusion=fusion
                )
                assert set(res.ids) <= allowed
                assert len(res) == min(k, matches)
        text_only = c.query("alpha cafe", mode="text", k=1000, where=where)
        assert set(text_only.ids) <= allowed
        expected = bm25_oracle({f"d{i}": docs[i] for i in range(n)}, "alpha cafe")
        # BM25 statistics are the collection's; the filter only removes rows.
        assert_ranked(text_only, {i: s for i, s in expected.items() if i in allowed}, 1000)
    res = c.query(vec(r), text="alpha", mode="hybrid", k=5, where_document={"$contains": "beta"})
    assert all("beta" in d for d in res.documents)


def test_hybrid_reports_both_halves_and_fuses_by_reciprocal_rank(db):
    r = random.Random(6)
    c = db.create_collection("c", dim=DIM)
    n = 200
    docs = [random_doc(r) for _ in range(n)]
    c.add([f"d{i}" for i in range(n)], vectors=np.stack([vec(r) for _ in range(n)]), documents=docs)
    q = vec(r)
    vector = c.query(q, k=100)
    keyword = c.query("alpha café", mode="text", k=100)
    res = c.query(q, text="alpha café", mode="hybrid", k=20)
    assert res.mode == "hybrid" and len(res) == 20
    vrank = {i: n + 1 for n, i in enumerate(vector.ids)}
    trank = {i: n + 1 for n, i in enumerate(keyword.ids)}
    for hit in res:
        assert hit.vector_rank == vrank.get(hit.id, 0)
        assert hit.text_rank == trank.get(hit.id, 0)
        expect = sum(1 / (60 + rk) for rk in (hit.vector_rank, hit.text_rank) if rk)
        assert hit.score == pytest.approx(expect, rel=1e-5)
        if hit.text_rank:
            assert hit.text_score == pytest.approx(keyword.scores[hit.text_rank - 1], rel=1e-6)
        else:
            assert hit.text_score is None
    assert np.all(np.diff(res.scores) <= 0)
    only_vector = c.query(q, text="alpha café", mode="hybrid", k=20, weight=1.0)
    assert only_vector.ids == vector.ids[:20]
    weighted = c.query(q, text="alpha café", mode="hybrid", k=20, fusion="weighted", weight=0.0)
    assert weighted.ids[: len(keyword.ids)] == keyword.ids[:20][: len(weighted.ids)]
    assert c.query(q, text="alpha", mode="hybrid", k=5, rrf_k=0).scores[0] <= 2.0
    many = c.query_many(np.stack([q, q]), text=["alpha café", "beta"], mode="hybrid", k=20)
    assert many[0].ids == res.ids
    assert many[1].ids == c.query(q, text="beta", mode="hybrid", k=20).ids
    texts = c.query_many(["alpha", "beta"], mode="text", k=5)
    assert [t.ids for t in texts] == [c.query(w, mode="text", k=5).ids for w in ("alpha", "beta")]


def test_vector_results_are_unchanged(db):
    c = db.create_collection("c", dim=DIM)
    c.add(["a", "b"], vectors=np.eye(2, DIM), documents=["alpha", None])
    res = c.query(np.eye(1, DIM)[0], k=2)
    assert res.mode == "vector" and res.text_ranks is None and res.vector_ranks is None
    assert set(res.to_dict()) == {"ids", "scores", "documents", "metadata"}
    assert set(res.to_list()[0]) == {"id", "score", "document", "metadata"}
    assert res[0].text_rank is None and "metric='cosine'" in repr(res)
    hybrid = c.query(np.eye(1, DIM)[0], text="alpha", mode="hybrid", k=2)
    assert set(hybrid.to_dict()) >= {"vector_ranks", "text_ranks", "vector_scores", "text_scores"}
    assert hybrid.to_list()[0]["text_rank"] == 1 and "mode='hybrid'" in repr(hybrid)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "keyword"},
        {"mode": "vector", "fusion": "rrf"},
        {"mode": "vector", "text": "alpha"},
        {"mode": "text", "weight": 0.5},
        {"mode": "hybrid", "fusion": "max"},
        {"mode": "hybrid", "weight": 1.5},
        {"mode": "hybrid", "weight": True},
        {"mode": "hybrid", "rrf_k": -1},
        {"mode": "hybrid", "fusion": "weighted", "rrf_k": 10},
    ],
)
def test_bad_options_are_refused(db, kwargs):
    c = db.create_collection("c", dim=DIM)
    c.add(["a"], vectors=np.ones((1, DIM)), documents=["alpha"])
    with pytest.raises(vecstore.InvalidInput):
        c.query(np.ones(DIM) if kwargs["mode"] != "text" else "alpha", **kwargs)


def test_keyword_queries_need_text(db):
    c = db.create_collection("c", dim=DIM)
    c.add(["a"], vectors=np.ones((1, DIM)), documents=["alpha"])
    with pytest.raises(vecstore.InvalidInput):
        c.query(np.ones(DIM), mode="text")
    with pytest.raises(vecstore.InvalidInput):
        c.query(np.ones(DIM), mode="hybrid")  # a plain-vector collection needs text=
    with pytest.raises(vecstore.InvalidInput):
        c.query("alpha", mode="text", text="beta")
    with pytest.raises(vecstore.InvalidInput):
        c.query_many(np.ones((2, DIM)), text=["alpha"], mode="hybrid")
    with pytest.raises(vecstore.InvalidInput):
        c.query_many(np.ones((2, DIM)), mode="text")
    assert c.query("alpha", mode="text").ids == ["a"]  # no encoder needed for keywords


def test_contains_filter_through_the_index_equals_a_substring_scan(db):
    r = random.Random(7)
    c = db.create_collection("c", dim=DIM)
    docs = {f"d{i}": random_doc(r) for i in range(300)}
    c.add(list(docs), vectors=np.stack([vec(r) for _ in docs]), documents=list(docs.values()))
    texts = [d for d in docs.values() if d]
    for _ in range(300):
        doc = r.choice(texts)
        i = r.randint(0, len(doc))
        sub = doc[i : r.randint(i, len(doc))]
        want = {k for k, d in docs.items() if d is not None and sub in d}
        assert set(c.get(where_document={"$contains": sub}).ids) == want, sub
        res = c.query(vec(r), k=5, where_document={"$contains": sub})
        assert len(res) == min(5, len(want)) and set(res.ids) <= want


def test_cli_query_modes(tmp_path):
    import json
    import subprocess
    import sys

    path = tmp_path / "s"
    with vecstore.open(path) as db:
        c = db.create_collection("c", dim=4)
        c.add(
            ["a", "b", "c"],
            vectors=np.eye(4, dtype=np.float32)[:3],
            documents=["red apples and pears", "green grass", "red roses"],
            metadata=[{"g": 1}, {"g": 2}, {"g": 1}],
        )

    def cli(*args):
        cmd = [sys.executable, "-m", "vecstore", "query", str(path), "c", *args, "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        return out.returncode, (json.loads(out.stdout) if out.returncode == 0 else out.stderr)

    code, hits = cli("red roses", "--mode", "text")
    assert code == 0 and [h["id"] for h in hits] == ["c", "a"]
    code, hits = cli("[1, 0, 0, 0]", "--mode", "hybrid", "--text", "red roses", "-k", "2")
    assert code == 0 and {h["id"] for h in hits} == {"a", "c"}
    assert all("vector_rank" in h and "text_rank" in h for h in hits)
    code, hits = cli("red", "--mode", "text", "--where", '{"g": 2}')
    assert code == 0 and hits == []
    code, err = cli("red", "--mode", "text", "--fusion", "rrf")
    assert code == 1 and len(err.strip().splitlines()) == 1
