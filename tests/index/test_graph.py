"""HNSW indexes managed by the store, through the public API: recall against ``exact=True``,
filters that always return ``min(k, matches)``, the ``ef`` override, writes, merges,
deletes and compaction after the graphs exist, reopening, and damaged graph files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import vecstore
from tests.index.test_ivf_store import collection_dir, embeddings, ids, recall
from vecstore import HNSW, IVF, CorruptStoreError, Flat, InvalidInput
from vecstore.index import graph as graphs

METRICS = ("cosine", "dot", "l2")
DIM = 32
N = 3_000
NQ = 60


def graph_files(directory: Path) -> list[Path]:
    """The collection's index files other than its model (the largest-named set)."""
    return sorted(p for p in directory.glob("*.vidx") if p.stat().st_size > 4096 + 64)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Per metric, an HNSW collection of N rows (several segments, merged and sealed as they
    come) and held-out queries."""
    path = tmp_path_factory.mktemp("hnsw") / "store"
    x = embeddings(N + NQ, dim=DIM, seed=1)
    data, queries = x[:N], x[N:]
    meta = [{"u": i % 1000} for i in range(N)]
    built = {}
    with vecstore.open(path, seal_rows=500, progress=False) as db:

        def get(metric: str):
            if metric not in built:
                spec = HNSW(M=12, ef_construction=80, min_rows=600)
                c = db.create_collection(metric, dim=DIM, metric=metric, index=spec)
                for lo in range(0, N, 700):
                    hi = min(N, lo + 700)
                    c.add(ids(lo, hi), vectors=data[lo:hi], metadata=meta[lo:hi])
                built[metric] = c
            return built[metric]

        get.queries = queries
        yield get


@pytest.mark.parametrize("metric", METRICS)
def test_recall_against_exact(shared, metric):
    c = shared(metric)
    info = c.index_info()
    assert info["kind"] == "hnsw" and info["trained"]
    assert info["indexed_rows"] >= N - 500  # at most a seal's worth is pending
    q = shared.queries
    assert recall(c.query_many(q, k=10), c.query_many(q, k=10, exact=True)) >= 0.95
    # one query at a time gives the batch's answer
    many = c.query_many(q[:10], k=10)
    assert [c.query(v, k=10).ids for v in q[:10]] == [r.ids for r in many]


def test_ef_override(shared):
    c = shared("cosine")
    q = shared.queries
    truth = c.query_many(q, k=10, exact=True)
    low = recall(c.query_many(q, k=10, ef=10), truth)
    high = recall(c.query_many(q, k=10, ef=200), truth)
    assert high >= low and high >= 0.99
    for bad in (0, -1, 1.5, "8", 70_000):
        with pytest.raises(InvalidInput):
            c.query(q[0], k=10, ef=bad)
    with pytest.raises(InvalidInput, match="nprobe"):
        c.query(q[0], k=10, nprobe=4)
    with pytest.raises(InvalidInput, match="ef"):
        c.query("some words", k=10, mode="text", ef=4)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("keep", [1, 5, 30, 150, 600])
def test_filters_return_min_k_matches(shared, metric, keep):
    """u = row % 1000: u < keep keeps keep/1000 of the rows, from 3 rows up to 60%."""
    c = shared(metric)
    q = shared.queries
    where = {"u": {"$lt": keep}}
    matches = c.count(where=where)
    got = c.query_many(q, k=10, where=where)
    assert all(len(r) == min(10, matches) for r in got)
    assert all(m["u"] < keep for r in got for m in r.metadata)
    assert recall(got, c.query_many(q, k=10, where=where, exact=True)) >= 0.95


def test_ef_on_other_indexes_raises(tmp_path):
    with vecstore.open(tmp_path / "s", progress=False) as db:
        for spec in (Flat(), IVF()):
            c = db.create_collection(spec.kind, dim=4, index=spec)
            c.add(["a"], vectors=[[1, 0, 0, 0]])
            with pytest.raises(InvalidInput, match="ef applies to HNSW"):
                c.query([1, 0, 0, 0], ef=10)


@pytest.mark.parametrize("bad", [dict(M=1), dict(M=0), dict(ef_construction=0),
                                 dict(ef_search=0), dict(M=None), dict(min_rows=0)])  # fmt: skip
def test_invalid_specs_raise(bad):
    with pytest.raises(InvalidInput):
        HNSW(**bad)


def test_spec_round_trips_through_json():
    spec = HNSW(M=8, ef_construction=64, ef_search=20)
    assert vecstore.index_spec(spec.to_json()) == spec
    with pytest.raises(InvalidInput):
        vecstore.index_spec({"kind": "hnsw", "nprobe": 3})


def test_writes_merges_deletes_and_compaction(tmp_path):
    x = embeddings(2600, dim=DIM, seed=4)
    q = embeddings(30, dim=DIM, seed=5)
    with vecstore.open(tmp_path / "s", seal_rows=200, progress=False) as db:
        c = db.create_collection("c", dim=DIM, index=HNSW(M=8, ef_construction=60, min_rows=500))
        c.add(ids(0, 300), vectors=x[:300])
        assert not c.index_info()["trained"]  # below min_rows: exact
        for lo in range(300, 2500, 100):  # pending rows sealed into segments, then merged
            c.add(ids(lo, lo + 100), vectors=x[lo : lo + 100])
        c.add(ids(2500, 2530), vectors=x[2500:2530])  # stays pending
        info = c.index_info()
        assert info["trained"] and info["indexed_rows"] >= 2000
        assert recall(c.query_many(q, k=10), c.query_many(q, k=10, exact=True)) >= 0.95
        # the pending rows are found
        r = c.query_many(x[2500:2530], k=1)
        assert [h.ids[0] for h in r] == ids(2500, 2530)
        gone = ids(0, 2530)[::3]
        c.delete(gone)
        c.upsert(ids(1, 50), vectors=x[2550:2599])  # some of them deleted just before
        after = c.query_many(q, k=10)
        assert not (set(gone) - set(ids(1, 50))) & {i for r in after for i in r.ids}
        assert all(len(r) == 10 for r in after)
        assert recall(after, c.query_many(q, k=10, exact=True)) >= 0.95
        c.compact()
        info = c.index_info()
        assert info["indexed_rows"] == c.count()
        assert recall(c.query_many(q, k=10), c.query_many(q, k=10, exact=True)) >= 0.95


def test_create_index_builds_graphs_for_existing_rows(tmp_path):
    x = embeddings(1500, dim=DIM, seed=6)
    with vecstore.open(tmp_path / "s", seal_rows=400, progress=False) as db:
        c = db.create_collection("c", dim=DIM)
        c.add(ids(0, 1500), vectors=x)
        c.create_index(HNSW(M=8, ef_construction=40, min_rows=100))
        info = c.index_info()
        assert info["trained"] and info["indexed_rows"] == 1500
        assert recall(c.query_many(x[:40], k=5), c.query_many(x[:40], k=5, exact=True)) >= 0.95
        c.create_index(Flat())
        assert not c.index_info()["trained"]
        assert len(list(collection_dir(db).glob("*.vidx"))) == 0


def test_first_segment_gets_its_graph_in_the_adds_own_write(tmp_path, caplog):
    """An add that makes an HNSW collection's first segment and reaches min_rows publishes
    the model and the segment's graph with its rows (the graph built while the rows are
    inserted): the same graph upkeep builds when the index comes after the rows, so the same
    hits with the same scores, and the segment is indexed from the first commit."""
    x = embeddings(1300, dim=DIM, seed=11)
    q = embeddings(25, dim=DIM, seed=12)
    spec = HNSW(M=8, ef_construction=40, min_rows=500)
    with vecstore.open(tmp_path / "s", seal_rows=400, progress=False) as db:
        a = db.create_collection("a", dim=DIM, index=spec)
        with caplog.at_level("INFO", logger="vecstore.writes"):
            a.add(ids(0, 1300), vectors=x, metadata=[{"g": i % 3} for i in range(1300)])
        # no second transaction: upkeep found the model and graph already published
        assert not [r for r in caplog.records if "built the HNSW graphs" in r.getMessage()]
        info = a.index_info()
        assert info["trained"] and info["indexed_rows"] == 1300
        b = db.create_collection("b", dim=DIM)
        b.add(ids(0, 1300), vectors=x, metadata=[{"g": i % 3} for i in range(1300)])
        b.create_index(spec)  # upkeep builds the graph over the same segment
        assert b.index_info()["indexed_rows"] == 1300
        for where in (None, {"g": 1}):
            got, want = a.query_many(q, k=10, where=where), b.query_many(q, k=10, where=where)
            assert [r.ids for r in got] == [r.ids for r in want]
            assert np.array_equal(
                np.array([r.scores for r in got]), np.array([r.scores for r in want])
            )
        # rows waiting in the pending table: the add's segment gets its graph, and the
        # pending rows stay pending (found by the exact scan), as upkeep would leave them
        c = db.create_collection("c", dim=DIM, index=spec)
        c.add(ids(0, 300), vectors=x[:300])
        c.add(ids(300, 1300), vectors=x[300:])
        assert c.count() == 1300 and c.index_info()["trained"]
        r = c.query_many(x[:5], k=1)
        assert [h.ids[0] for h in r] == ids(0, 5)


def test_a_duplicate_id_fails_the_first_graph_add_before_any_build(tmp_path, monkeypatch):
    # rows waiting in the pending table hold an id the add repeats: the add fails before it
    # starts the graph build it would otherwise wait for, and leaves nothing behind
    x = embeddings(900, dim=DIM, seed=13)
    with vecstore.open(tmp_path / "s", seal_rows=400, progress=False) as db:
        c = db.create_collection("c", dim=DIM, index=HNSW(M=8, min_rows=500))
        c.add(ids(0, 300), vectors=x[:300])
        built = []
        monkeypatch.setattr(graphs, "model_file", lambda *a: built.append(1))
        with pytest.raises(vecstore.DuplicateIdError, match="1 ids already exist"):
            c.add(ids(299, 900), vectors=x[299:])
        assert not built
        monkeypatch.undo()
        assert c.count() == 300 and not c.index_info()["trained"]
        c.add(ids(300, 900), vectors=x[300:])
        assert c.count() == 900 and c.index_info()["indexed_rows"] == 600


def test_index_survives_reopen(tmp_path):
    x = embeddings(1300, dim=DIM, seed=7)
    q = x[:25]
    with vecstore.open(tmp_path / "s", seal_rows=400, progress=False) as db:
        c = db.create_collection("c", dim=DIM, metric="l2", index=HNSW(M=8, min_rows=500))
        c.add(ids(0, 1300), vectors=x, metadata=[{"g": i % 3} for i in range(1300)])
        c.delete(ids(0, 1300)[::10])
        before = c.query_many(q, k=10)
        filtered = c.query_many(q, k=10, where={"g": {"$ne": 1}})
        info = c.index_info()
    for read_only in (False, True):
        with vecstore.open(tmp_path / "s", read_only=read_only, progress=False) as db:
            c = db.get_collection("c")
            assert c.index == HNSW(M=8, min_rows=500)
            assert c.index_info() == info
            assert [r.ids for r in c.query_many(q, k=10)] == [r.ids for r in before]
            got = c.query_many(q, k=10, where={"g": {"$ne": 1}})
            assert [r.ids for r in got] == [r.ids for r in filtered]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine-hnsw") / "s"
    with vecstore.open(path, progress=False) as db:
        c = db.create_collection("c", dim=DIM, index=HNSW(M=8, ef_construction=40, min_rows=1000))
        c.add(ids(0, 1100), vectors=embeddings(1100, dim=DIM, seed=9))
        assert c.index_info()["trained"]
    return path


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) - 8])
        return
    pos = {"header": 9, "payload": (4096 + len(data)) // 2, "last": len(data) - 1}[how]
    data[pos] ^= 0x40
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["header", "payload", "last", "truncate"])
def test_damaged_graph_file_raises_corrupt_store_error(pristine, tmp_path, how):
    path = tmp_path / "s"
    shutil.copytree(pristine, path)
    files = sorted(collection_dir(path).glob("*.vidx"), key=lambda p: p.stat().st_size)
    damage(files[-1], how)  # the graph (the model file is the small one)
    q = embeddings(3, dim=DIM, seed=9)
    with vecstore.open(path, progress=False) as db:
        c = db.get_collection("c")
        with pytest.raises(CorruptStoreError):
            c.query(q[0], k=5)
        with pytest.raises(CorruptStoreError):
            c.query_many(q, k=5, where={"$not": {"u": 1}})


def _model():
    return graphs.GraphModel("m.vidx", "hnsw", "cosine", 4, 10, 10, 100)


def _arrays(n=50, seed=0):
    from vecstore.kernels import exact
    from vecstore.kernels import graph as kg

    x = embeddings(n, dim=8, seed=seed)
    norms = exact.row_norms(x)
    g = kg.build(x, norms, "cosine", 4, 10)
    return x, norms, {"levels": g["levels"], "L0": g["L0"], "UP": g["UP"]}, {
        "entry": g["entry"], "top": g["top"]}  # fmt: skip


def test_open_graph_accepts_what_the_build_writes():
    x, norms, arrays, meta = _arrays()
    g = graphs.open_graph("g.vidx", _model(), arrays, meta, x, norms)
    assert g.L0 is arrays["L0"]


@pytest.mark.parametrize(
    "attack",
    ["id_too_large", "id_below_minus_one", "upper_to_lower_level", "entry_out_of_range",
     "entry_not_top", "wrong_width", "wrong_rows", "wrong_dtype", "missing", "levels_too_high",
     "bad_meta"],
)  # fmt: skip
def test_open_graph_rejects_hostile_arrays(attack):
    """A graph file whose checksums match but whose contents would send a kernel out of
    bounds (a hostile store) is refused before any kernel reads it."""
    x, norms, arrays, meta = _arrays(seed=1)
    a = {k: v.copy() for k, v in arrays.items()}
    m = dict(meta)
    if attack == "id_too_large":
        a["L0"][3, 0] = len(x)
    elif attack == "id_below_minus_one":
        a["L0"][3, 0] = -7
    elif attack == "upper_to_lower_level":
        low = int(np.flatnonzero(a["levels"] == 0)[0])
        a["UP"][0, 0] = low
    elif attack == "entry_out_of_range":
        m["entry"] = len(x) + 5
    elif attack == "entry_not_top":
        m["entry"] = int(np.flatnonzero(a["levels"] == 0)[0])
    elif attack == "wrong_width":
        a["L0"] = np.ascontiguousarray(a["L0"][:, :4])
    elif attack == "wrong_rows":
        a["L0"] = np.ascontiguousarray(a["L0"][:-1])
    elif attack == "wrong_dtype":
        a["L0"] = a["L0"].astype(np.int64)
    elif attack == "missing":
        del a["UP"]
    elif attack == "levels_too_high":
        a["levels"][0] = 200
    elif attack == "bad_meta":
        m = {"entry": "x"}
    with pytest.raises(CorruptStoreError):
        graphs.open_graph("g.vidx", _model(), a, m, x, norms)


def test_verify_checks_graph_files(pristine, tmp_path):
    path = tmp_path / "s"
    shutil.copytree(pristine, path)
    with vecstore.open(path, progress=False) as db:
        report = db.verify()
        assert report.ok and not report.warnings, report.problems
    files = sorted(collection_dir(path).glob("*.vidx"), key=lambda p: p.stat().st_size)
    damage(files[-1], "payload")
    with vecstore.open(path, progress=False) as db:
        report = db.verify()
        assert not report.ok and any(files[-1].name in p for p in report.problems)
