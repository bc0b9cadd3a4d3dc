"""Exact inputs: every string and number a user stores comes back exactly, or is refused at
the boundary with ``InvalidInput`` and changes nothing; and what comes back is safe to show.

Each test is one finding of issue 17's adversarial review (items 1, 2, 3, 11, 12, 13):
- NUL and other control characters in documents, ids and metadata, through every write path;
- vector components large enough to overflow float32 scores, or small enough that a squared
  norm underflows, refused at a stated limit; at the limit, every metric, batch, filter and
  ANN plan scores exactly;
- ``$contains`` never loses a match to NFKC joining characters across the substring's ends;
- non-finite metadata floats, ints past 64 bits in ``get``;
- the CLI on deeply nested JSON, export targets inside a store, emptied catalogs;
- control characters and escape sequences in table output.

tests/reliability/test_roundtrip_property.py checks the same promise on generated values.
"""

from __future__ import annotations

import json
import math
import sqlite3
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecstore
from tests.conftest import hashing_encoder, typed
from vecstore import cli, text
from vecstore.encoders import CallableEncoder
from vecstore.inputs import MAX_BATCH, MAX_COMPONENT, MAX_DIM, MIN_COMPONENT

ENCODER = "tests.conftest:hashing_encoder"
# Characters that SQLite, JSON, terminals or Unicode handle specially.
CONTROLS = [chr(c) for c in range(1, 32)] + ["\x7f", "\x85", "\x9b", "\u2028", "\u202e", "\ufeff"]
NASTY = ["abc\x00def", "\x00", "\x00\x00", "a\x1b[31mred\x1b[0m\x07", *CONTROLS, "\U0010ffff"]


def rows_of(coll) -> list:
    got = coll.get(include_vectors=True)
    return [
        (i, d, typed(m), v.tobytes())
        for i, d, m, v in zip(got.ids, got.documents, got.metadata, got.vectors)
    ]


def embedding_collection(db, name="e"):
    return db.create_collection(name, encoder=CallableEncoder(hashing_encoder, dim=16, name="h"))


# ---------------------------------------------------------------------------------------------
# 1. NUL and control characters are stored exactly, through every write path
# ---------------------------------------------------------------------------------------------

WRITE_PATHS = ["add", "add+metadata", "upsert", "update", "add_batches", "embed"]


@pytest.mark.parametrize("path", WRITE_PATHS)
def test_nul_and_control_characters_in_documents_are_stored_exactly(tmp_path, path):
    docs = NASTY
    ids = [f"r{i}" for i in range(len(docs))]
    x = np.eye(len(docs), 16, dtype=np.float32) + 1
    with vecstore.open(tmp_path / "s") as db:
        c = embedding_collection(db) if path == "embed" else db.create_collection("c", dim=16)
        if path == "add":  # no metadata: the catalog's one-statement JSON insert
            c.add(ids, vectors=x, documents=docs)
        elif path == "add+metadata":
            c.add(ids, vectors=x, documents=docs, metadata=[{"d": d} for d in docs])
        elif path == "upsert":
            c.upsert(ids, vectors=x, documents=docs)
            c.upsert(ids[3:6], vectors=x[3:6], documents=docs[3:6])  # replacing rows
        elif path == "update":
            c.add(ids, vectors=x)
            c.update(ids, documents=docs)
        elif path == "add_batches":
            c.add_batches(
                ({"id": i, "vector": v, "document": d} for i, v, d in zip(ids, x, docs)),
                batch_size=7,
            )
        else:
            c.add(ids, documents=docs)
        assert c.get(ids).documents == docs
        for d in ("abc\x00def", "\x00\x00", "\x1b[31m"):
            found = c.get(where_document={"$contains": d}).ids
            assert found == [i for i, doc in zip(ids, docs) if d in doc]
        expected = rows_of(c)
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        c = db.get_collection(c.name)
        assert rows_of(c) == expected
        assert c.get(ids).documents == docs
        assert db.verify().ok


def test_nul_and_control_characters_in_ids_and_metadata_are_stored_exactly_or_refused(tmp_path):
    keys = [k for k in NASTY if k] + ["k\x00"]
    meta = {k: k for k in keys} | {"list": keys}
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2)
        ids = [f"id{ch}" for ch in CONTROLS] + ["\x1b]0;title\x07"]
        c.add(ids, vectors=np.ones((len(ids), 2)), metadata=[meta] * len(ids))
        for bad in ("a\x00b", "\x00"):  # ids may not hold NUL: refused, nothing written
            with pytest.raises(vecstore.InvalidInput, match="NUL"):
                c.add([bad], vectors=np.ones((1, 2)))
            with pytest.raises(vecstore.InvalidInput, match="NUL"):
                c.upsert([bad], vectors=np.ones((1, 2)))
            with pytest.raises(vecstore.InvalidInput, match="NUL"):
                c.add_batches([{"id": bad, "vector": [1, 1]}])
        c.update(ids[:2], metadata=[meta, {"\x00": "nul\x00"}])
        expected = rows_of(c)
        assert c.get(ids[:2]).metadata == [meta, {"\x00": "nul\x00"}]
        for k in keys:
            assert c.count({k: k}) == len(ids) - 1
            assert c.count({"list": {"$contains": k}}) == len(ids) - 1
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        c = db.get_collection("c")
        assert rows_of(c) == expected
        assert [r[0] for r in expected] == ids
        assert db.verify().ok


# ---------------------------------------------------------------------------------------------
# 2. vector magnitudes: refused past the limit, exact at it
# ---------------------------------------------------------------------------------------------


def test_vectors_that_overflow_or_underflow_float32_scores_are_refused(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        cases = {  # the review's cases, and the underflow ones
            "l2": [[1e20, 0], [0, 1]],
            "cosine": [[1e20, 1e20], [0, 1]],
            "dot": [[1e-23, 1e-23], [0, 1]],
        }
        for metric, x in cases.items():
            c = db.create_collection(metric, dim=2, metric=metric)
            limit = "at (most 1e\\+16|least 1e-15) in magnitude"
            with pytest.raises(vecstore.InvalidInput, match=limit):
                c.add(["a", "b"], vectors=x)
            with pytest.raises(vecstore.InvalidInput, match=limit):
                c.upsert(["a", "b"], vectors=x)
            with pytest.raises(vecstore.InvalidInput, match=limit):
                c.add_batches([{"id": "a", "vector": x[0]}])
            c.add(["a", "b"], vectors=[[1, 0], [0, 1]])
            with pytest.raises(vecstore.InvalidInput, match=limit):
                c.update(["a"], vectors=[x[0]])
            for bad in ([1e17, 0], [3e38, 1], [1e-20, 0], [1e-46, 0]):  # queries too
                with pytest.raises(vecstore.InvalidInput, match=limit):
                    c.query(bad)
                with pytest.raises(vecstore.InvalidInput, match=limit):
                    c.query_many([[1, 1], bad])
            assert c.count() == 2
            assert c.get(include_vectors=True).vectors.tolist() == [[1, 0], [0, 1]]


def oracle(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    xx, qq = x.astype(np.float64), q.astype(np.float64)
    if metric == "l2":
        return -((xx - qq) ** 2).sum(1)
    s = xx @ qq
    if metric == "cosine":
        n = np.linalg.norm(xx, axis=1) * np.linalg.norm(qq)
        s = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    return s


def assert_exact(res, x, q, metric, keep, k):
    """``res`` holds min(k, matches) rows whose scores are the exact ones, best first."""
    s = oracle(x, q, metric)
    want = sorted(s[keep], reverse=True)[:k]
    assert len(res) == min(k, len(keep)), (len(res), k)
    assert np.isfinite(res.scores).all()
    tol = 1e-5 * max(1.0, float(np.abs(s).max())) if metric != "cosine" else 1e-5
    np.testing.assert_allclose(res.scores, want, rtol=1e-5, atol=tol)
    for i, score in zip(res.ids, res.scores):
        assert abs(s[int(i[1:])] - score) <= tol + 1e-5 * abs(score)


@pytest.mark.parametrize("metric", ["l2", "cosine", "dot"])
@pytest.mark.parametrize("dim", [2, MAX_DIM])
def test_vectors_at_the_magnitude_limits_score_exactly(tmp_path, metric, dim):
    M, m = MAX_COMPONENT, MIN_COMPONENT
    r = np.random.default_rng(3)
    x = np.zeros((7, dim), np.float32)
    x[0], x[1], x[2, 0], x[3, 1] = M, -M, M, m  # x[6] stays zero
    x[4] = m * r.choice([-1, 1], dim)
    x[5] = np.clip(r.standard_normal(dim) * M / 3, -M, M)
    ids = [f"r{i}" for i in range(len(x))]
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=dim, metric=metric)
        c.add(ids, vectors=x, metadata=[{"i": i} for i in range(len(x))])
        queries = np.stack([x[0], x[1], x[3], x[4], x[5], np.full(dim, m, np.float32)])
        even = [0, 2, 4, 6]
        for q in queries:
            assert_exact(c.query(q, k=len(x)), x, q, metric, list(range(len(x))), len(x))
            assert_exact(c.query(q, k=2), x, q, metric, list(range(len(x))), 2)
            got = c.query(q, k=len(x), where={"i": {"$in": even}})
            assert_exact(got, x, q, metric, even, len(x))
        batch = np.concatenate([queries] * 4)  # > 16 queries: the sgemm path
        for q, res in zip(batch, c.query_many(batch, k=3)):
            assert_exact(res, x, q, metric, list(range(len(x))), 3)
        if metric == "l2":  # the review's case, at the limit
            c2 = db.create_collection("c2", dim=2, metric="l2")
            c2.add(["a", "b"], vectors=[[M, 0], [0, 1]])
            res = c2.query([M, 0], k=2)
            assert res.ids == ["a", "b"] and np.isfinite(res.scores).all()
            np.testing.assert_allclose(res.scores, [0, -M * M], atol=1e-6 * M * M)
        if metric == "cosine":
            c2 = db.create_collection("c2", dim=2)
            c2.add(["a", "b"], vectors=[[M, M], [m, m]])
            res = c2.query([1, 1], k=2)
            np.testing.assert_allclose(res.scores, [1, 1], rtol=1e-6)


@pytest.mark.parametrize("metric", ["l2", "cosine", "dot"])
@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_ann_at_the_magnitude_limit_gives_full_finite_exactly_rescored_results(
    tmp_path, metric, kind
):
    n, dim = 1200, 16
    r = np.random.default_rng(4)
    x = np.clip(r.standard_normal((n, dim)) * MAX_COMPONENT / 4, -MAX_COMPONENT, MAX_COMPONENT)
    x = x.astype(np.float32)
    spec = (
        vecstore.IVF(nlist=8, min_rows=1000)
        if kind == "ivf"
        else vecstore.IVFPQ(nlist=8, m=4, nbits=4, min_rows=1000)
    )
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=dim, metric=metric)
        c.add([f"r{i}" for i in range(n)], vectors=x, metadata=[{"i": i % 10} for i in range(n)])
        c.create_index(spec)
        assert c.index_info()["trained"]
        for j in range(10):
            res = c.query(x[j], k=10, nprobe=8)
            s = oracle(x, x[j], metric)
            assert len(res) == 10 and np.isfinite(res.scores).all()
            for i, score in zip(res.ids, res.scores):  # candidates are re-scored exactly
                assert abs(s[int(i[1:])] - score) <= 1e-5 * max(1.0, abs(s).max())
            assert len(c.query(x[j], k=10, where={"i": 3}, nprobe=8)) == 10
            if kind == "ivf":  # every list probed: the exact answer
                assert_exact(res, x, x[j], metric, list(range(n)), 10)


# ---------------------------------------------------------------------------------------------
# 3. $contains never loses a match to normalisation across its ends
# ---------------------------------------------------------------------------------------------

NFD = lambda s: unicodedata.normalize("NFD", s)  # noqa: E731
MERGING = [  # (document, substring): NFKC joins a character across the substring's end
    ("ｶｶﾞ", "ｶｶ"),  # half-width katakana and its voiced mark
    (NFD("かが"), "かか"),  # a combining voiced mark after the substring
    (NFD("한국"), NFD("한국")[:-1]),  # Hangul jamo joining into a syllable
]


@pytest.mark.parametrize("doc, sub", MERGING, ids=[repr(s) for _, s in MERGING])
def test_contains_finds_substrings_that_normalisation_merges_at_their_ends(tmp_path, doc, sub):
    assert sub in doc
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2)
        others = ["カカ", "かか", "한구", "数据", "noise"]  # the merged forms, without the match
        c.add(
            ["hit", *[f"o{i}" for i in range(len(others))]],
            vectors=np.ones((1 + len(others), 2)),
            documents=[doc, *others],
        )
        want = ["hit", *[f"o{i}" for i, o in enumerate(others) if sub in o]]
        assert c.get(where_document={"$contains": sub}).ids == want
        assert sorted(c.query([1, 1], k=10, where_document={"$contains": sub}).ids) == sorted(want)
        assert c.count() == 6


TRICKY = list("かがｶﾞ\u3099\u309a\u1100\u1161\u11a8가각ae\u0301\u0316<\u0338数据 ﬁ\u212bǅ\uffa1") + [
    NFD("한국어"),
    " the ",
    "ｶﾞ",
]


@settings(derandomize=True, database=None, deadline=None, max_examples=400)
@given(st.lists(st.sampled_from(TRICKY), min_size=1, max_size=14), st.data())
def test_contains_terms_are_in_every_document_holding_the_substring(parts, data):
    doc = "".join(parts)
    i = data.draw(st.integers(0, len(doc)))
    j = data.draw(st.integers(i, len(doc)))
    sub = doc[i:j]
    assert set(text.contains_terms(sub)) <= set(text.terms(doc)), (doc, sub)


def test_the_composition_tables_cover_ascii_as_contains_terms_assumes():
    first, second = text.composing()
    ascii_first = {ch for ch in first if ch.isascii()}
    assert ascii_first <= {ch for ch in map(chr, range(128)) if ch.isalpha() or ch in "<=>"}
    assert not any(ch.isascii() for ch in second)
    assert {"か", "ｶ"} & first == {"か"} and "\u3099" in second  # ｶ decomposes to カ, in first


# ---------------------------------------------------------------------------------------------
# 11. metadata numbers; ints of any size in get
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, -math.inf, [1.0, math.inf]], ids=repr)
def test_non_finite_metadata_is_refused_by_every_write_path(tmp_path, value):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2)
        c.add(["a"], vectors=[[1, 0]], metadata=[{"x": 1.5}])
        before = rows_of(c)
        for call in (
            lambda: c.add(["b"], vectors=[[1, 0]], metadata=[{"x": value}]),
            lambda: c.upsert(["a"], vectors=[[1, 0]], metadata=[{"x": value}]),
            lambda: c.update(["a"], metadata=[{"x": value}]),
            lambda: c.add_batches([{"id": "b", "vector": [1, 0], "metadata": {"x": value}}]),
        ):
            with pytest.raises(vecstore.InvalidInput, match="finite"):
                call()
        assert rows_of(c) == before
        # An import file carrying one (Python's JSON reads Infinity) is refused too ...
        src = tmp_path / "in.jsonl"
        head = {"format": "vecstore-export", "version": 1, "collection": "c", "dim": 2}
        row = {"id": "b", "vector": [1, 0], "metadata": {"x": value}}
        src.write_text(json.dumps(head | {"metric": "cosine"}) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(vecstore.InvalidInput, match="finite"):
            db.import_collection(src, name="imported")
        assert db.list_collections() == ["c"]  # an import is all or nothing
        # ... and ingest stores it as JSON text, as it does every value metadata cannot hold
        e = embedding_collection(db)
        (tmp_path / "r.jsonl").write_text(json.dumps({"text": "t", "x": value}) + "\n")
        e.ingest(tmp_path / "r.jsonl")
        assert e.get().metadata[0]["x"] == json.dumps(value)
    # and what is stored exports and prints as JSON
    assert cli.main(["export", str(tmp_path / "s"), "c", str(tmp_path / "out.jsonl"), "-q"]) == 0


def test_get_takes_limit_and_offset_of_any_size(tmp_path, capsys):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2)
        c.add(["a", "b"], vectors=np.ones((2, 2)))
        for big in (2**63 - 1, 2**63, 2**70, 10**30):
            assert c.get(limit=big).ids == ["a", "b"]
            assert c.get(offset=big).ids == []
            assert c.get(limit=big, offset=1).ids == ["b"]
            assert c.get(["a", "b"], limit=big, offset=big).ids == []
            assert c.get(where={}, limit=big).ids == ["a", "b"]
            assert c.peek(big).ids == ["a", "b"]
    capsys.readouterr()
    s = str(tmp_path / "s")
    assert cli.main(["get", s, "c", "--limit", str(10**30), "--offset", "1", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["b"]


def test_add_batches_refuses_a_batch_size_past_the_per_call_limit(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2)
        rows = [{"id": "a", "vector": [1, 0]}]
        for big in (MAX_BATCH + 1, 2**63, 2**70):  # 2**70 raised a raw ValueError (islice)
            with pytest.raises(vecstore.InvalidInput, match="batch_size must be an int"):
                c.add_batches(rows, batch_size=big)
        assert c.count() == 0
        assert c.add_batches(rows, batch_size=MAX_BATCH) == 1


# ---------------------------------------------------------------------------------------------
# 12. the CLI on hostile input
# ---------------------------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJ = '{"a":' * 100_000 + "1" + "}" * 100_000


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_failure(code: int, err: str) -> None:
    assert code in (1, 2), (code, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err[:500]


@pytest.mark.parametrize(
    "where", ["--where", "--where-document", "query", "index", "import", "ingest", "metadata"]
)
def test_deeply_nested_json_gives_one_line_and_an_exit_code(tmp_path, capsys, where):
    s = tmp_path / "s"
    assert run(capsys, "collections", "create", s, "c", "--dim", 2, "-q")[0] == 0
    if where in ("--where", "--where-document"):
        code, _, err = run(capsys, "get", s, "c", where, DEEP)
    elif where == "query":
        code, _, err = run(capsys, "query", s, "c", DEEP)
    elif where == "index":
        code, _, err = run(capsys, "collections", "create", s, "d", "--dim", 2, "--index", DEEP_OBJ)
    elif where == "import":
        (tmp_path / "x.jsonl").write_text(DEEP + "\n")
        code, _, err = run(capsys, "import", s, tmp_path / "x.jsonl")
    else:
        head = {"format": "vecstore-export", "version": 1, "collection": "z", "dim": 2}
        row = '{"id": "a", "vector": [1, 0], "metadata": {"m": ' + DEEP + "}}"
        (tmp_path / "x.jsonl").write_text(json.dumps(head | {"metric": "l2"}) + "\n" + row + "\n")
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "r.jsonl").write_text('{"text": "t", "m": ' + DEEP + "}\n")
        if where == "ingest":
            code, _, err = run(
                capsys, "ingest", s, "e", tmp_path / "in", "--encoder", ENCODER, "-q"
            )
        else:
            code, _, err = run(capsys, "import", s, tmp_path / "x.jsonl")
    one_line_failure(code, err)
    assert "deep" in err
    with vecstore.open(s, read_only=True) as db:  # nothing imported or ingested
        assert all(db.get_collection(n).count() == 0 for n in db.list_collections())


def test_export_refuses_a_target_inside_a_store(tmp_path, capsys):
    s, other = tmp_path / "s", tmp_path / "other"
    with vecstore.open(s) as db:
        db.create_collection("c", dim=2).add(["a"], vectors=[[1, 0]])
    vecstore.open(other).close()
    for target in (
        s / "catalog.db",
        s / "LOCK",
        s / "collections" / "x.jsonl",
        s / "new" / "dir" / "x.parquet",
        other / "catalog.db",
        s,
    ):
        code, _, err = run(capsys, "export", s, "c", target)
        one_line_failure(code, err)
        assert "inside the store" in err
        with vecstore.open(s) as db:
            with pytest.raises(vecstore.InvalidInput, match="inside the store"):
                db.get_collection("c").export(target)
    with vecstore.open(s, read_only=True) as db, vecstore.open(other, read_only=True):
        assert db.get_collection("c").get().ids == ["a"] and db.verify().ok
    assert run(capsys, "export", s, "c", tmp_path / "fine.jsonl")[0] == 0


def test_an_emptied_catalog_is_described_alike_by_read_only_and_read_write_opens(tmp_path):
    s = tmp_path / "s"
    with vecstore.open(s) as db:
        db.create_collection("c", dim=2).add(
            [str(i) for i in range(5000)], vectors=np.ones((5000, 2))
        )
    (s / "catalog.db").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (s / f"catalog.db{suffix}").unlink(missing_ok=True)
    messages = []
    for read_only in (True, False):
        with pytest.raises(vecstore.CorruptStoreError) as info:
            vecstore.open(s, read_only=read_only)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "restore the catalog from a backup" in messages[0]
    assert "migrate" not in messages[0]
    # An empty catalog of a store never written to: read-write creates it, as read-only says.
    t = tmp_path / "t"
    t.mkdir()
    (t / "catalog.db").write_bytes(b"")
    with pytest.raises(vecstore.CorruptStoreError, match="open the store read-write once"):
        vecstore.open(t, read_only=True)
    vecstore.open(t).close()
    vecstore.open(t, read_only=True).close()
    # A SQLite file that is not a catalog: both say so.
    u = tmp_path / "u"
    u.mkdir()
    conn = sqlite3.connect(u / "catalog.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    for read_only in (True, False):
        with pytest.raises(vecstore.CorruptStoreError, match="not a vecstore catalog"):
            vecstore.open(u, read_only=read_only)


# ---------------------------------------------------------------------------------------------
# 13. terminal safety
# ---------------------------------------------------------------------------------------------

HOSTILE = {
    "title": "doc \x1b]0;pwned\x07 end",
    "colour": "\x1b[2J\x1b[31mfake output\x1b[0m",
    "c1": "csi \x9b31m and nel \x85 here",
    "bidi": "invoice \u202egnp.exe",
    "bell": "\x07\x08\x08\x7f",
    "zero width": "a\u200bb \ufeff",
}


def test_tables_show_control_characters_escaped_and_json_stays_exact(tmp_path, capsys):
    s = tmp_path / "s"
    ids = [f"{k}\x1b[1m" for k in HOSTILE]
    with vecstore.open(s) as db:
        c = db.create_collection("c", dim=2)
        c.add(
            ids,
            vectors=np.ones((len(ids), 2)),
            documents=list(HOSTILE.values()),
            metadata=[{"m": v, "l": [v]} for v in HOSTILE.values()],
        )
    tables = [
        run(capsys, "get", s, "c", "--show", "m,l"),
        run(capsys, "query", s, "c", "[1, 1]", "--show", "m,l"),
        run(capsys, "get", s, "c", "--where", json.dumps({"m": HOSTILE["title"]})),
    ]
    for code, out, err in tables:
        assert code == 0, err
        for line in out.splitlines():
            assert all(ch.isprintable() or ch == " " for ch in line), repr(line)
    out = tables[0][1]
    assert "\\x1b]0;pwned\\x07" in out and "\\u202egnp.exe" in out and "\\x9b31m" in out
    assert tables[2][1].count("\n") == 2  # the header and the one matching row
    for args in (["get", s, "c"], ["query", s, "c", "[1, 1]"]):
        code, out, _ = run(capsys, *args, "--json")
        assert code == 0 and all(ch.isprintable() or ch in " \n" for ch in out), repr(out)
        got = json.loads(out)
        assert sorted(r["id"] for r in got) == sorted(ids)
        assert sorted(r["document"] for r in got) == sorted(HOSTILE.values())
        assert all(r["metadata"]["l"] == [r["metadata"]["m"]] for r in got)
    # an error message quoting stored or typed text is escaped too
    code, _, err = run(capsys, "get", s, "c", "--where", '{"$bad\\u001b[2J": 1}')
    one_line_failure(code, err)
    assert "\x1b" not in err


SAFE_SETTINGS = settings(
    derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SAFE_SETTINGS
@given(st.text(max_size=30))
def test_printable_escapes_exactly_what_may_not_reach_a_terminal(s):
    from vecstore.commands import printable

    out = printable(s)
    assert all(
        ch.isprintable() or ch in " \u200c\u200d" or unicodedata.category(ch) == "Zs" for ch in out
    )
    if s.isprintable():
        assert out == s
