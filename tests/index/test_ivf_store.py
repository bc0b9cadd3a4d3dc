"""IVF and IVF-PQ indexes managed by the store, through the public API: recall floors against
``exact=True`` on seeded clustered data, the exact-to-ANN transition, writes after training,
filters, overrides, reopening, other processes, corruption, and index changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecstore
from tests.conftest import clustered
from vecstore import IVF, IVFPQ, CorruptStoreError, Flat, InvalidInput

METRICS = ("cosine", "dot", "l2")
DIM = 32
N = 12_000  # rows of the shared ANN collections: default nlist 512, about 23 rows a list
NQ = 100

KINDS = ["ivf", "ivfpq"]


def embeddings(n: int, *, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Clustered vectors of low intrinsic dimension, as text embeddings are: 8-d clustered
    points mapped linearly into ``dim`` dimensions, plus a little isotropic noise. (Clusters
    that are isotropic in all ``dim`` dimensions leave PQ no structure to keep.) Rows of one
    ``seed`` share centres and map whatever ``n``, so extra rows serve as held-out queries."""
    r = np.random.default_rng([seed, dim])
    a = r.standard_normal((8, dim)).astype(np.float32) / np.sqrt(8)
    z = clustered(n, 8, clusters=32, seed=seed)
    return (z @ a + 0.05 * r.standard_normal((n, dim))).astype(np.float32)


def recall(approx: list, truth: list) -> float:
    """Mean fraction of each true result list found in the approximate one."""
    hits = [len(set(a.ids) & set(t.ids)) / max(len(t), 1) for a, t in zip(approx, truth)]
    return float(np.mean(hits))


def same_results(a: list, b: list) -> None:
    """The same rows in the same order, with the same scores up to float32 rounding: the
    plans sum a row's products in different orders (eight rows at a time when re-ranking).
    (An l2 score is 2 q.x - |x|^2 - |q|^2, terms some 10x larger than the test data's scores:
    the tolerance is absolute.)"""
    assert [r.ids for r in a] == [r.ids for r in b]
    for ra, rb in zip(a, b):
        np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-5, atol=1e-4)


def ids(start: int, stop: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{i}" for i in range(start, stop)]


def collection_dir(root) -> Path:
    """The directory holding the files of the one collection of the store at ``root`` (a path
    or an open store)."""
    root = Path(getattr(root, "path", root))
    (path,) = [p for p in (root / "collections").iterdir() if p.is_dir()]
    return path


def index_files(directory: Path) -> tuple[list[Path], list[Path]]:
    """(model files, list files): a list file shares its name with its segment."""
    segs = {p.stem for p in directory.glob("*.vseg")}
    vidx = sorted(directory.glob("*.vidx"))
    return [p for p in vidx if p.stem not in segs], [p for p in vidx if p.stem in segs]


def every_list(kind: str, *, nlist: int = 16) -> dict:
    """Query overrides that scan every list and, for IVF-PQ, re-rank many candidates: the
    answer is then exact up to ties."""
    return {"nprobe": nlist} if kind == "ivf" else {"nprobe": nlist, "refine": 100}


def small_spec(kind: str, **kw):
    """A cheap index for tests of the store's upkeep: explicit nlist and nprobe (no tuning)
    and, for IVF-PQ, 4 sub-quantizers of 64 centroids."""
    kw.setdefault("nlist", 16)
    kw.setdefault("nprobe", 4)
    if kind == "ivf":
        return IVF(**kw)
    kw.setdefault("m", 4)
    kw.setdefault("nbits", 6)
    return IVFPQ(**kw)


@pytest.fixture
def store(tmp_path):
    with vecstore.open(tmp_path / "store", seal_rows=256, progress=False) as db:
        yield db


# ---------------------------------------------------------------------------------------------
# shared collections at default parameters (trained once per module)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A store holding, on demand, one collection per (kind, metric) with N rows at default
    index parameters (only min_rows lowered), and the held-out queries."""
    path = tmp_path_factory.mktemp("ann") / "store"
    x = embeddings(N + NQ, seed=1)
    data, queries = x[:N], x[N:]
    meta = [{"u": i % 1000} for i in range(N)]
    built: dict = {}
    with vecstore.open(path, progress=False) as db:

        def get(kind: str, metric: str):
            name = f"{kind}-{metric}"
            if name not in built:
                # m=16, the PQ default below 64-d before flat lists: PQ codes stay covered
                spec = IVF(min_rows=N // 2) if kind == "ivf" else IVFPQ(m=16, min_rows=N // 2)
                c = db.create_collection(name, dim=DIM, metric=metric, index=spec)
                try:
                    c.add(ids(0, N), vectors=data, metadata=meta)
                    built[name] = c
                except Exception as exc:  # every test of this collection fails the same way
                    built[name] = exc
            if isinstance(built[name], Exception):
                raise built[name].with_traceback(None)  # (re-raising appends frames)
            return built[name]

        get.path = path
        get.queries = queries
        yield get


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_recall_floor_at_default_parameters(shared, kind, metric):
    c = shared(kind, metric)
    info = c.index_info()
    assert info["trained"] and info["kind"] == kind
    assert info["nlist"] == 512  # 4 sqrt(N) as a power of two
    assert info["train_rows"] == N and info["indexed_rows"] == N
    assert 1 <= info["nprobe"] <= info["nlist"]
    if kind == "ivfpq":
        assert DIM % info["m"] == 0 and (info["nbits"], info["refine"]) == (8, 10)
    q = shared.queries
    truth = c.query_many(q, k=10, exact=True)
    assert recall(c.query_many(q, k=10), truth) >= 0.9
    # One query at a time takes other code paths (serial or threaded list scans).
    assert recall([c.query(v, k=10) for v in q[:20]], truth[:20]) >= 0.85


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", KINDS)
def test_recall_rises_with_nprobe(shared, kind, metric):
    c = shared(kind, metric)
    nlist = c.index_info()["nlist"]
    q = shared.queries
    truth = c.query_many(q, k=10, exact=True)
    curve = [recall(c.query_many(q, k=10, nprobe=p), truth) for p in (1, 2, 4, 8, 32, nlist)]
    # The override applies: one list and every list do not give the same results.
    assert curve[0] < curve[-1], curve
    if kind == "ivf":
        # Exact scores over a superset of lists: recall never falls, and all lists is exact.
        assert all(b >= a for a, b in zip(curve, curve[1:])), curve
        assert curve[-1] == 1.0
    else:
        # PQ estimates pick the candidates; re-ranking enough of them recovers exactness.
        assert recall(c.query_many(q, k=10, nprobe=nlist, refine=100), truth) >= 0.99
        low = recall(c.query_many(q, k=10, nprobe=nlist, refine=1), truth)
        assert low < curve[-1]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("kind", KINDS)
def test_stored_vectors_find_themselves(shared, kind, metric):
    c = shared(kind, metric)
    got = c.get(ids(0, 50), include_vectors=True)
    found = [r.ids[0] for r in c.query_many(got.vectors, k=10)]
    assert np.mean([f == i for f, i in zip(found, got.ids)]) >= 0.95


def test_second_process_reads_the_same_results(shared, tmp_path):
    # (IVF files differ only by their empty codes: test_index_survives_reopen reads those.)
    kind = "ivfpq"
    c = shared(kind, "l2")
    q = shared.queries[:20]
    np.save(tmp_path / "q.npy", q)
    mine = c.query_many(q, k=10)
    script = textwrap.dedent(
        """
        import json, sys, numpy as np, vecstore
        with vecstore.open(sys.argv[1], read_only=True) as db:
            c = db.get_collection(sys.argv[2])
            res = c.query_many(np.load(sys.argv[3]), k=10)
            print(json.dumps({"info": c.index_info(),
                              "ids": [r.ids for r in res],
                              "scores": [r.scores.tolist() for r in res]}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(shared.path), f"{kind}-l2", str(tmp_path / "q.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)
    assert theirs["info"] == c.index_info()
    assert theirs["ids"] == [r.ids for r in mine]
    np.testing.assert_array_equal(np.array(theirs["scores"], np.float32), [r.scores for r in mine])


# -- filters ----------------------------------------------------------------------------------

FRACTIONS = {"0.5%": 5, "5%": 50, "30%": 300, "90%": 900}  # filter u < limit, u = i % 1000
# Filters keeping a few rows are scanned exactly, whatever the metric; broad ones are masks
# on the probed lists, scored per metric.
FILTER_CASES = [
    (kind, metric, fraction)
    for kind in ("ivf", "ivfpq")
    for fraction in FRACTIONS
    for metric in (METRICS if fraction in ("30%", "90%") else ["cosine"])
]


@pytest.mark.parametrize("kind,metric,fraction", FILTER_CASES)
def test_filtered_queries(shared, kind, metric, fraction):
    # Whatever plan the store picks (an exact scan of the kept rows, or masked list probing),
    # a filtered query returns exactly min(k, matches) rows, all matching, close to exact.
    c = shared(kind, metric)
    limit = FRACTIONS[fraction]
    where = {"u": {"$lt": limit}}
    matches = c.count(where)
    assert matches == N * limit // 1000
    q = shared.queries[:50]
    for k in (10, 100):
        got = c.query_many(q, k=k, where=where)
        assert all(len(r) == min(k, matches) for r in got)
        assert all(m["u"] < limit for r in got for m in r.metadata)
        assert all(len(set(r.ids)) == len(r) for r in got)
    assert [len(c.query(v, k=10, where=where)) for v in q[:5]] == [min(10, matches)] * 5
    truth = c.query_many(q, k=10, where=where, exact=True)
    assert recall(c.query_many(q, k=10, where=where), truth) >= 0.9
    assert all(len(r) == 0 for r in c.query_many(q, k=10, where={"u": {"$lt": 0}}))


# -- query-time overrides and spec validation -----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_refine_override_applies(shared, kind):
    c = shared(kind, "dot")
    q = shared.queries[:30]
    if kind == "ivf":
        with pytest.raises(InvalidInput):
            c.query(q[0], k=5, refine=4)
        with pytest.raises(InvalidInput):
            c.query_many(q, k=5, refine=4)
        return
    a = c.query_many(q, k=10, refine=1)
    b = c.query_many(q, k=10, refine=50)
    assert [r.ids for r in a] != [r.ids for r in b]


def test_overrides_that_do_not_apply_raise(store):
    x = embeddings(50)
    flat = store.create_collection("flat", dim=DIM)
    ivf = store.create_collection("ivf", dim=DIM, index=IVF(min_rows=10_000))
    pq = store.create_collection("pq", dim=DIM, index=IVFPQ(min_rows=10_000))
    for c in (flat, ivf, pq):
        c.add(ids(0, 50), vectors=x)
    with pytest.raises(InvalidInput):
        flat.query(x[0], nprobe=4)
    with pytest.raises(InvalidInput):
        flat.query_many(x[:3], nprobe=4)
    with pytest.raises(InvalidInput):
        flat.query(x[0], refine=4)
    with pytest.raises(InvalidInput):
        ivf.query(x[0], refine=4)
    for bad in (0, -1, 1.5, True, "4"):
        with pytest.raises(InvalidInput):
            ivf.query(x[0], nprobe=bad)
        with pytest.raises(InvalidInput):
            pq.query(x[0], refine=bad)
    # Overrides that apply are accepted before training (the search is exact until then).
    same_results(ivf.query_many(x[:5], k=7, nprobe=1), ivf.query_many(x[:5], k=7, exact=True))
    same_results(pq.query_many(x[:5], k=7, nprobe=1, refine=1), pq.query_many(x[:5], k=7))


@pytest.mark.parametrize(
    "make",
    [
        lambda: IVFPQ(nbits=9),
        lambda: IVFPQ(nbits=0),
        lambda: IVFPQ(m=5),  # does not divide 32
        lambda: IVFPQ(m=64),  # larger than the dimension
        lambda: IVF(nlist=0),
        lambda: IVFPQ(nlist=0),
        lambda: IVF(nlist=16.0),
        lambda: IVF(nlist="16"),
        lambda: IVF(nlist=True),
        lambda: IVF(nprobe=0),
        lambda: IVFPQ(refine=0),
        lambda: IVF(min_rows=0),
        lambda: IVFPQ(nbits=None),  # once accepted: every write then raised TypeError
        lambda: "ivf",
        lambda: IVF,
    ],
)
def test_invalid_specs_raise_at_create(store, make):
    with pytest.raises(InvalidInput):
        store.create_collection("c", dim=DIM, index=make())
    assert store.list_collections() == []
    c = store.create_collection("ok", dim=DIM)
    with pytest.raises(InvalidInput):
        c.create_index(make())
    assert c.index == Flat()


def test_specs_are_frozen_values():
    spec = IVFPQ(nlist=64, m=8, nprobe=4)
    same = IVFPQ(nprobe=4, m=8, nlist=64, nbits=8)
    assert spec == same and hash(spec) == hash(same) and spec != IVFPQ(nlist=64, m=8)
    assert IVF(nlist=64) != IVFPQ(nlist=64) and Flat() == Flat()
    with pytest.raises(AttributeError):
        spec.nprobe = 8


# ---------------------------------------------------------------------------------------------
# the managed index: transition, writes after training, deletes, upkeep
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_managed_transition_and_writes_after_training(store, kind):
    x = embeddings(2330, seed=2)
    q = x[2300:]  # held out
    c = store.create_collection("c", dim=DIM, metric="l2", index=small_spec(kind, min_rows=1500))
    assert c.index == small_spec(kind, min_rows=1500)
    c.add(ids(0, 1400), vectors=x[:1400])
    # Below min_rows: no index, and every search is exact, whatever the overrides say.
    info = c.index_info()
    assert info == {"kind": kind, "spec": c.index.to_json(), "trained": False}
    assert not index_files(collection_dir(store))[0]
    exact = c.query_many(q, k=10, exact=True)
    same_results(c.query_many(q, k=10), exact)
    same_results(c.query_many(q, k=10, nprobe=1), exact)
    # Crossing min_rows trains the index in the write that crosses it.
    c.add(ids(1400, 1600), vectors=x[1400:1600])
    info = c.index_info()
    assert info["trained"] and info["nlist"] == 16 and info["nprobe"] == 4
    assert info["train_rows"] == 1600 and info["indexed_rows"] == c.count() == 1600
    assert len(index_files(collection_dir(store))[0]) == 1
    names = [p.name for p in collection_dir(store).iterdir()]
    assert all(n.endswith((".vseg", ".vidx")) for n in names), names  # no temp files left
    # A row written afterwards is found at once: pending (fewer rows than a seal) ...
    c.add(["p0"], vectors=x[1600])
    assert c.query(x[1600], k=10).ids[0] == "p0"
    assert c.index_info()["indexed_rows"] == 1600 and c.count() == 1601
    # ... or in a new segment, assigned to lists as it is written.
    c.add(ids(1601, 2300), vectors=x[1601:2300])
    assert c.index_info()["indexed_rows"] == 2299 and c.count() == 2300  # p0 still pending
    for i in (1601, 1900, 2299):
        assert c.query(x[i], k=10).ids[0] == str(i)
    hits = [r.ids[0] for r in c.query_many(x[1601:2300:7], k=10)]
    assert hits == [str(i) for i in range(1601, 2300, 7)]
    truth = c.query_many(q, k=10, exact=True)
    assert recall(c.query_many(q, k=10, **every_list(kind)), truth) >= 0.99


@pytest.mark.parametrize("kind", KINDS)
def test_deletes_and_upserts_after_training(store, kind):
    x = embeddings(2000, seed=3)
    c = store.create_collection(
        "c", dim=DIM, metric="cosine", index=small_spec(kind, min_rows=1000)
    )
    meta = [{"g": i % 4} for i in range(2000)]
    c.add(ids(0, 1200), vectors=x[:1200], metadata=meta[:1200])  # trained here
    c.add(ids(1200, 1900), vectors=x[1200:1900], metadata=meta[1200:1900])  # a new segment
    c.add(ids(1900, 1950), vectors=x[1900:1950], metadata=meta[1900:1950])  # pending
    assert c.index_info()["trained"]
    gone = {str(i) for i in range(0, 1950, 3)}
    assert c.delete(sorted(gone)) == len(gone)
    live = 1950 - len(gone)
    probes = x[0:1950:5]
    for where, groups in ((None, {0, 1, 2, 3}), ({"g": {"$in": [0, 1]}}, {0, 1}), ({"g": 2}, {2})):
        for r in c.query_many(probes, k=10, where=where):
            assert len(r) == 10 and not gone & set(r.ids)
            assert {m["g"] for m in r.metadata} <= groups
    # k beyond the live rows returns every one of them, and only them.
    everything = c.query(x[1], k=5000)
    assert len(everything) == live == c.count() and not gone & set(everything.ids)
    assert len(c.query(x[1], k=5000, where={"g": 2})) == c.count({"g": 2})
    # Upsert replaces the vector: the old one no longer matches, the new one does.
    far = -x[1]
    c.upsert(["1"], vectors=far[None, :], metadata=[{"g": 9}])
    assert "1" not in c.query(x[1], k=20).ids
    assert c.query(far, k=1).ids == ["1"]
    assert c.query(far, k=1, where={"g": 9}).ids == ["1"]
    # Deleting every row leaves nothing to find, with or without a filter.
    c.delete(where={})
    assert len(c.query(x[1], k=10)) == 0 and len(c.query(x[1], k=10, where={"g": 2})) == 0


def test_rows_sealed_after_training_stay_usable(store):
    # Small writes after training wait as pending rows, then are sealed into a segment under
    # the model; a large upsert re-places rows too: every operation must work on such rows as
    # on any other. (Their positions once reached SQLite as NumPy ints, stored as BLOBs.)
    x = embeddings(1700, seed=4)
    spec = small_spec("ivfpq", min_rows=1000)
    c = store.create_collection("c", dim=DIM, metric="l2", index=spec)
    meta = [{"g": i % 5} for i in range(1700)]
    c.add(ids(0, 1100), vectors=x[:1100], metadata=meta[:1100])
    for lo in range(1100, 1400, 20):  # 300 rows in small writes: one seal of 256
        c.add(ids(lo, lo + 20), vectors=x[lo : lo + 20], metadata=meta[lo : lo + 20])
    assert c.index_info()["indexed_rows"] >= 1356
    r = c.query(x[1110], k=5, where={"g": 0})
    assert r.ids[0] == "1110" and all(m["g"] == 0 for m in r.metadata)
    np.testing.assert_array_equal(c.get(["1110"], include_vectors=True).vectors[0], x[1110])
    assert c.delete(["1110"]) == 1
    assert "1110" not in c.query(x[1110], k=5).ids
    c.upsert(ids(1100, 1400), vectors=x[1400:1700], metadata=meta[1100:1400])  # new segment
    assert c.query(x[1400], k=10).ids[0] == "1100"
    assert c.query(x[1401], k=10, where={"g": 1}).ids[0] == "1101"
    c.compact()
    assert c.index_info()["trained"] and c.count() == 1400
    assert c.query(x[1402], k=10).ids[0] == "1102"


@pytest.mark.parametrize("kind", KINDS)
def test_retrain_after_growth(store, kind):
    x = embeddings(4600, seed=5)
    c = store.create_collection("c", dim=DIM, metric="dot", index=small_spec(kind, min_rows=1000))
    c.add(ids(0, 1100), vectors=x[:1100])
    assert c.index_info()["train_rows"] == 1100
    c.add(ids(1100, 2750), vectors=x[1100:2750])
    assert c.index_info()["train_rows"] == 1100  # 2.5x: not yet
    c.add(ids(2750, 4400), vectors=x[2750:4400])  # 4x the rows trained on
    info = c.index_info()
    assert info["trained"] and info["train_rows"] == 4400
    assert info["indexed_rows"] == c.count() == 4400
    q = x[4400:]
    truth = c.query_many(q, k=10, exact=True)
    assert recall(c.query_many(q, k=10, **every_list(kind)), truth) >= 0.99
    assert recall(c.query_many(q, k=10), truth) >= 0.8
    models, lists = index_files(collection_dir(store))
    assert len(models) == 1 and len(lists) >= 1  # the old model's files are gone


@pytest.fixture
def searched(monkeypatch) -> list:
    """The snapshots queries are planned over, in order (seen where the planner gets them)."""
    from vecstore.index import plan

    seen = []
    search = plan.search
    monkeypatch.setattr(
        plan, "search", lambda snap, *a, **kw: seen.append(snap) or search(snap, *a, **kw)
    )
    return seen


def test_snapshots_share_the_model_until_it_is_retrained(store, searched):
    # A model derives arrays of its own when read (int8 centroids, transposed codebooks):
    # a new snapshot after a write reuses it, and only a new model file makes a new one.
    x = embeddings(4600, seed=7)
    spec = small_spec("ivfpq", min_rows=1000)
    c = store.create_collection("c", dim=DIM, metric="dot", index=spec)
    c.add(ids(0, 1100), vectors=x[:1100])

    def model():
        c.query(x[0], k=3)
        snap = searched[-1]
        return snap.version, snap.model

    version, first = model()
    assert first is not None
    c.add(ids(1100, 1200), vectors=x[1100:1200])
    later, same = model()
    assert later != version and same is first
    c.add(ids(1200, 4400), vectors=x[1200:4400])  # 4x the rows trained on: retrains
    assert c.index_info()["train_rows"] == 4400
    assert model()[1] is not first


def test_snapshots_carry_over_what_they_derive_from_list_files(store, monkeypatch, searched):
    # Per segment, a snapshot checks its list file against the model (a pass over its codes)
    # and lays 4-bit codes out for fast-scan: a new snapshot after a write reuses both for
    # the segments it shares with the previous one, and does that work only for new files.
    from vecstore.index import flat
    from vecstore.kernels import fastscan

    checked = []
    fit = flat.lists_fit
    monkeypatch.setattr(flat, "lists_fit", lambda *a: checked.append(a[2]) or fit(*a))
    x = embeddings(1500, seed=8)
    spec = small_spec("ivfpq", min_rows=1000, m=8, nbits=4)
    c = store.create_collection("c", dim=DIM, metric="l2", index=spec)
    c.add(ids(0, 1100), vectors=x[:1100])

    def layouts():
        c.query(x[0], k=3)
        snap = searched[-1]
        indexed = [p for p in snap.parts if p.codes is not None]
        return {p.seg: snap.fast_layout(p) for p in indexed}, len(checked)

    first, n_checked = layouts()
    assert first and n_checked == len(first)
    assert all((b is not None) == fastscan.available() for b in first.values())
    c.add(ids(1100, 1150), vectors=x[1100:1150])  # pending rows only: same segments
    again, n_again = layouts()
    assert n_again == n_checked
    assert all(again[seg] is first[seg] for seg in first)
    c.add(ids(1150, 1500), vectors=x[1150:1500])  # seals a new segment under the model
    later, n_later = layouts()
    assert n_later == len(later) > len(first)  # each file checked once
    assert all(later[seg] is first[seg] for seg in first)
    assert "1400" in c.query(x[1400], k=5, nprobe=16, refine=20).ids


@pytest.mark.parametrize("kind", KINDS)
def test_retrain_after_drift(store, kind):
    # Rows far from every centroid (not 4x growth) make the next write retrain.
    x = embeddings(1100, seed=11)
    far = embeddings(800, seed=12) * 3 + 5
    c = store.create_collection("c", dim=DIM, metric="l2", index=small_spec(kind, min_rows=1000))
    c.add(ids(0, 1100), vectors=x)
    assert c.index_info()["train_rows"] == 1100
    c.add(ids(1100, 1900), vectors=far)
    info = c.index_info()
    assert info["train_rows"] == 1900 and info["indexed_rows"] == 1900
    for i in (0, 1500):
        v = x[i] if i < 1100 else far[i - 1100]
        assert c.query(v, k=10).ids[0] == str(i)


@pytest.mark.parametrize("kind", KINDS)
def test_create_index_flat_and_back(store, kind):
    x = embeddings(1700, seed=6)
    q = x[1500:]
    c = store.create_collection(
        "c", dim=DIM, metric="cosine", index=small_spec(kind, min_rows=1000)
    )
    c.add(ids(0, 1500), vectors=x[:1500])
    assert c.index_info()["trained"]
    directory = collection_dir(store)
    c.create_index(Flat())
    assert c.index == Flat()
    assert c.index_info() == {"kind": "flat", "spec": {"kind": "flat"}, "trained": False}
    assert list(directory.glob("*.vidx")) == []
    same_results(c.query_many(q, k=10), c.query_many(q, k=10, exact=True))
    # Back to an ANN index on a populated collection: trained by the call itself.
    c.create_index(small_spec(kind, min_rows=1000, nprobe=16))
    info = c.index_info()
    assert info["trained"] and info["train_rows"] == info["indexed_rows"] == 1500
    assert len(index_files(directory)[0]) == 1
    overrides = {"refine": 50} if kind == "ivfpq" else {}
    truth = c.query_many(q, k=10, exact=True)
    assert recall(c.query_many(q, k=10, **overrides), truth) >= 0.99
    # A Flat collection can be given an index later too.
    f = store.create_collection("f", dim=DIM, metric="cosine")
    f.add(ids(0, 1500), vectors=x[:1500])
    f.create_index(small_spec(kind, min_rows=1000))
    assert f.index_info()["trained"]


@pytest.mark.parametrize("kind", KINDS)
def test_compact_keeps_the_index(store, kind):
    x = embeddings(1800, seed=7)
    c = store.create_collection("c", dim=DIM, metric="l2", index=small_spec(kind, min_rows=1000))
    c.add(ids(0, 1200), vectors=x[:1200])
    c.add(ids(1200, 1600), vectors=x[1200:1600])
    c.delete(ids(0, 1600)[::4])
    c.compact()
    directory = collection_dir(store)
    assert len(list(directory.glob("*.vseg"))) == 1
    info = c.index_info()
    assert info["trained"] and info["indexed_rows"] == c.count() == 1200
    models, lists = index_files(directory)
    assert len(models) == 1 and len(lists) == 1
    q = x[1600:]
    truth = c.query_many(q, k=10, exact=True)
    got = c.query_many(q, k=10, **every_list(kind))
    assert recall(got, truth) >= 0.99
    assert not {str(i) for i in range(0, 1600, 4)} & {i for r in got for i in r.ids}


# ---------------------------------------------------------------------------------------------
# persistence and damage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_index_survives_reopen(tmp_path, kind):
    x = embeddings(1700, seed=8)
    q = x[1500:]
    spec = small_spec(kind, min_rows=1000)
    with vecstore.open(tmp_path / "s", seal_rows=256, progress=False) as db:
        c = db.create_collection("c", dim=DIM, metric="dot", index=spec)
        meta = [{"g": i % 3} for i in range(1450)]
        c.add(ids(0, 1400), vectors=x[:1400], metadata=meta[:1400])
        c.add(ids(1400, 1450), vectors=x[1400:1450], metadata=meta[1400:])  # pending at close
        c.delete(ids(0, 1450)[::10])
        info = c.index_info()
        assert info["trained"]
        before = c.query_many(q, k=10)
        filtered = c.query_many(q, k=10, where={"g": {"$ne": 1}})
    for read_only in (False, True):
        with vecstore.open(tmp_path / "s", read_only=read_only, progress=False) as db:
            c = db.get_collection("c")
            assert c.index == spec
            assert c.index_info() == info
            same_results(c.query_many(q, k=10), before)
            same_results(c.query_many(q, k=10, where={"g": {"$ne": 1}}), filtered)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Per kind, a closed store with a trained index, to copy and damage."""
    made = {}

    def get(kind: str) -> Path:
        if kind not in made:
            path = tmp_path_factory.mktemp(f"pristine-{kind}") / "s"
            with vecstore.open(path, progress=False) as db:
                c = db.create_collection(
                    "c", dim=DIM, metric="l2", index=small_spec(kind, min_rows=1000)
                )
                c.add(ids(0, 1100), vectors=embeddings(1100, seed=9))
                assert c.index_info()["trained"]
            made[kind] = path
        return made[kind]

    return get


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(data[: len(data) - 8])
        return
    pos = {"header": 9, "payload": 4096, "last": len(data) - 1}[how]
    data[pos] ^= 0x40
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["header", "payload", "last", "truncate"])
@pytest.mark.parametrize("target", ["model", "lists"])
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_index_file_raises_corrupt_store_error(pristine, tmp_path, kind, target, how):
    path = tmp_path / "s"
    shutil.copytree(pristine(kind), path)
    models, lists = index_files(collection_dir(path))
    (victim,) = models if target == "model" else lists
    damage(victim, how)
    q = embeddings(3, seed=9)
    with vecstore.open(path, progress=False) as db:
        c = db.get_collection("c")
        with pytest.raises(CorruptStoreError):
            c.query(q[0], k=5)
        with pytest.raises(CorruptStoreError):
            c.query_many(q, k=5, where={"$not": {"u": 1}})


@pytest.mark.parametrize(
    "target,call",
    [
        ("model", "query"),
        ("model", "index_info"),  # once a bare FileNotFoundError
        ("model", "add"),
        ("lists", "query"),
    ],
)
def test_missing_index_file_raises_corrupt_store_error(pristine, tmp_path, target, call):
    path = tmp_path / "s"
    shutil.copytree(pristine("ivfpq"), path)
    models, lists = index_files(collection_dir(path))
    (models if target == "model" else lists)[0].unlink()
    with vecstore.open(path, seal_rows=256, progress=False) as db:
        c = db.get_collection("c")
        with pytest.raises(CorruptStoreError):
            if call == "query":
                c.query(embeddings(1, seed=9)[0], k=5)
            elif call == "index_info":
                c.index_info()
            else:  # a write large enough for a segment is encoded under the model
                c.add(ids(5000, 5300), vectors=embeddings(300, seed=3))


def test_orphan_index_files_are_removed_on_open(pristine, tmp_path):
    path = tmp_path / "s"
    shutil.copytree(pristine("ivfpq"), path)
    directory = collection_dir(path)
    before = sorted(p.name for p in directory.iterdir())
    strays = ["0" * 32 + ".vidx", "1" * 32 + ".vidx.3b3291a5a4e6.tmp", "2" * 32 + ".vseg"]
    for name in strays:
        (directory / name).write_bytes(b"\0" * 5000)
    with vecstore.open(path, read_only=True) as db:  # a reader never deletes
        assert all((directory / name).exists() for name in strays)
    with vecstore.open(path, progress=False) as db:
        assert sorted(p.name for p in directory.iterdir()) == before
        c = db.get_collection("c")
        assert c.index_info()["trained"]
        q = embeddings(3, seed=9)
        same_results(c.query_many(q, k=5, **every_list("ivfpq")), c.query_many(q, k=5, exact=True))


# ---------------------------------------------------------------------------------------------
# regressions of bugs found while writing these tests
# ---------------------------------------------------------------------------------------------


def test_ivf_trains(store):
    # (Regression: the zero-size arrays of an IVF model once failed to write.)
    c = store.create_collection("c", dim=8, metric="l2", index=IVF(nlist=4, min_rows=100))
    c.add(ids(0, 200), vectors=embeddings(200, dim=8))
    assert c.index_info()["trained"]


def test_ivfpq_with_min_rows_below_ksub(store):
    # Either the spec is refused, or the collection waits for enough rows to train on:
    # a committed write must never raise.
    x = embeddings(300, dim=8)
    try:
        c = store.create_collection("c", dim=8, index=IVFPQ(min_rows=100))
    except InvalidInput:
        return
    c.add(ids(0, 150), vectors=x[:150])
    c.add(ids(150, 300), vectors=x[150:])
    assert c.count() == 300 and c.query(x[0], k=1).ids == ["0"]
