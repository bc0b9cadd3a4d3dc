"""The lean single-query path of IVF and IVF-PQ collections (index/quick_ivf.py,
kernels/single_ivf.py): one unfiltered vector query answered in one compiled call gives the
rows, scores, documents and metadata of the full path (``explain`` always takes that one:
a read transaction and plan.search), for each metric, with tombstones, pending rows, rows
older than the model and per-query nprobe; bad input still raises, and a write by another
process is seen by the next query."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecstore
from tests.conftest import clustered
from vecstore import IVF, IVFPQ, InvalidInput
from vecstore.index import ivf, plan

METRICS = ("cosine", "dot", "l2")


@pytest.fixture
def full_path_calls(monkeypatch):
    """How many queries took the full path (``plan.search``) since the test began."""
    calls = [0]
    search = plan.search

    def counted(*args, **kwargs):
        calls[0] += 1
        return search(*args, **kwargs)

    monkeypatch.setattr(plan, "search", counted)
    return calls


def _build(db, name, metric, spec, dim, rng, *, n=1200, pending=0, tombstones=True):
    c = db.create_collection(name, dim=dim, metric=metric)
    x = clustered(n + pending, dim, clusters=24, seed=dim)
    ids = [str(i) for i in range(n + pending)]
    meta = [{"i": i} for i in range(n + pending)]
    docs = [f"doc {i}" for i in range(n + pending)]
    c.add(ids[:n], vectors=x[:n], documents=docs[:n], metadata=meta[:n])
    c.create_index(spec)
    if pending:
        c.add(ids[n:], vectors=x[n:], documents=docs[n:], metadata=meta[n:])
    if tombstones:
        c.delete([str(i) for i in range(0, n + pending, 7)])
    return c, x


def _agree(c, qs, *, k, nprobes, calls):
    """Each query, asked twice (the first keeps the snapshot), equals the full path's."""
    for q in qs:
        for nprobe in nprobes:
            c.query(q, k=k, nprobe=nprobe)
            before = calls[0]
            got = c.query(q, k=k, nprobe=nprobe)
            lean = calls[0] == before
            want = c.explain(q, k=k, nprobe=nprobe).result
            assert got.ids == want.ids
            assert got.documents == want.documents and got.metadata == want.metadata
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6, atol=1e-6)
            yield lean


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_the_lean_path_agrees_with_the_full_one(tmp_path, rng, metric, kind, full_path_calls):
    # d = 32 stores flat lists (IVFPQ() at d <= 64); m = 8 stores 8-bit codes, re-ranked
    spec = IVF(nlist=16, min_rows=1) if kind == "ivf" else IVFPQ(nlist=16, m=8, min_rows=1)
    with vecstore.open(tmp_path / "s", seal_rows=100_000) as db:
        c, x = _build(db, "c", metric, spec, 32, rng, pending=150)
        qs = np.concatenate([x[:3], rng.standard_normal((4, 32), dtype=np.float32)])
        lean = list(_agree(c, qs, k=10, nprobes=(None, 1, 3, 16), calls=full_path_calls))
        assert sum(lean) >= len(lean) // 2  # the common shapes did take the lean path
        # k larger than the probed lists hold: handed to the full path, which probes more
        assert list(_agree(c, qs[:2], k=500, nprobes=(1,), calls=full_path_calls)) == [False] * 2


def test_flat_lists_of_the_default_spec_without_pending_rows(tmp_path, rng, full_path_calls):
    with vecstore.open(tmp_path / "s") as db:
        c, x = _build(db, "c", "cosine", IVFPQ(nlist=32, min_rows=1), 16, rng, n=3000,
                      tombstones=False)  # fmt: skip
        assert c.index_info()["lists"] == "flat"
        lean = list(_agree(c, x[:5], k=10, nprobes=(None, 2, 8), calls=full_path_calls))
        assert all(lean)


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_several_indexed_segments_and_pending_rows(tmp_path, rng, kind, full_path_calls):
    # a small seal size: the rows added after training land in an indexed segment of their
    # own (too few to retrain) and a pending block
    spec = IVF(nlist=16, min_rows=1) if kind == "ivf" else IVFPQ(nlist=16, m=4, min_rows=1)
    with vecstore.open(tmp_path / "s", seal_rows=256) as db:
        c, x = _build(db, "c", "l2", spec, 16, rng, n=1500, pending=300)
        assert len(c.explain(x[0], k=10).facts["indexed_segments"]) > 1
        qs = x[990:994]
        assert all(_agree(c, qs, k=10, nprobes=(4, 16), calls=full_path_calls))
        list(_agree(c, qs, k=10, nprobes=(None, 1), calls=full_path_calls))  # may widen


def test_a_scan_split_over_threads(tmp_path, rng, monkeypatch, full_path_calls):
    monkeypatch.setattr(ivf, "SERIAL_SCAN_ROWS", 100)
    with vecstore.open(tmp_path / "s", seal_rows=100_000) as db:
        c, x = _build(db, "c", "cosine", IVF(nlist=16, min_rows=1), 16, rng, n=3000)
        assert all(_agree(c, x[:4], k=10, nprobes=(None, 8, 16), calls=full_path_calls))


def test_bad_input_still_raises(tmp_path, rng):
    with vecstore.open(tmp_path / "s") as db:
        c, x = _build(db, "c", "cosine", IVF(nlist=16, min_rows=1), 16, rng)
        c.query(x[0], k=5)
        for bad in (np.nan, np.inf, 1e30):
            q = x[0].copy()
            q[3] = bad
            with pytest.raises(InvalidInput):
                c.query(q, k=5)
        for nprobe in (0, -1, 2.5, True):
            with pytest.raises(InvalidInput):
                c.query(x[0], k=5, nprobe=nprobe)
        with pytest.raises(InvalidInput):
            c.query(x[0], k=5, ef=10)  # an IVF collection has no beam width
        with pytest.raises(InvalidInput):
            c.query(x[0], k=0)
        f = db.create_collection("flat", dim=16)
        f.add(["a", "b"], vectors=x[:2])
        f.query(x[0], k=1)
        with pytest.raises(InvalidInput):
            f.query(x[0], k=1, nprobe=4)  # a Flat collection has no lists


WRITE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import vecstore

    with vecstore.open(sys.argv[1]) as db:
        c = db.get_collection("c")
        c.add(["near"], vectors=np.full((1, 16), 0.5, dtype=np.float32))
        c.delete(["0"])
    """
)


def test_a_write_by_another_process_is_seen(tmp_path, rng):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        _, x = _build(db, "c", "l2", IVF(nlist=16, min_rows=1), 16, rng, tombstones=False)
    q = np.full(16, 0.5, dtype=np.float32)
    with vecstore.open(path, read_only=True) as db:
        c = db.get_collection("c")
        for _ in range(3):
            first = c.query(q, k=3, nprobe=16)
            assert "near" not in first.ids
            assert c.query(x[0], k=1, nprobe=4).ids == ["0"]
        proc = subprocess.run(
            [sys.executable, "-c", WRITE, str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert c.query(q, k=3, nprobe=16).ids[0] == "near"
        assert c.query(x[0], k=1, nprobe=4).ids != ["0"]
