"""The first queries of a process: the BLAS path (index/cold.py) ranks exactly as the Numba
kernels do, and a fresh process answers an exact query without loading Numba."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vecstore.index import cold, flat
from vecstore.kernels import exact


def _part(x: np.ndarray, first_rid: int, alive=None) -> flat.Part:
    rids = np.arange(first_rid, first_rid + len(x), dtype=np.int64)
    return flat.Part(None, x, exact.row_norms(x), rids, alive)


def _parts(rng, dim: int, sizes, dead: float = 0.0) -> list[flat.Part]:
    parts, rid = [], 1
    for n in sizes:
        x = rng.standard_normal((n, dim), dtype=np.float32)
        if n > 3:
            x[2] = 0.0  # a zero vector
            x[3] = x[1]  # a duplicate
        alive = None
        if dead:
            alive = rng.random(n) >= dead
        parts.append(_part(x, rid, alive))
        rid += n + 5
    return parts


def _fresh(script: str, store, mode: str = "1", env: dict | None = None) -> str:
    """What ``script`` prints, run in a fresh Python with ``store`` as ``sys.argv[1]`` and
    ``VECSTORE_COLD_START=mode`` (conftest turns the NumPy path off for the suite), or ``env``;
    the script must succeed."""
    if env is None:
        env = dict(os.environ, VECSTORE_COLD_START=mode)
    out = subprocess.run(
        [sys.executable, "-c", script, str(store)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _same(a, b) -> None:
    (Da, Ra, Ca), (Db, Rb, Cb) = a, b
    np.testing.assert_array_equal(Ca, Cb)
    np.testing.assert_allclose(Da, Db, rtol=1e-5, atol=1e-4)
    for i in range(len(Ca)):
        # rows tied in score may come in either order; the sets and scores must agree
        top = Ca[i]
        assert sorted(Ra[i, :top]) == sorted(Rb[i, :top]) or np.allclose(
            np.sort(Da[i, :top]), np.sort(Db[i, :top]), atol=1e-4
        )
        assert (Ra[i, top:] == -1).all() and (Rb[i, top:] == -1).all()


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("sizes,k", [([100], 10), ([50, 300, 7], 10), ([5], 10), ([0, 40], 3)])
def test_blas_path_matches_the_kernels(rng, metric, sizes, k):
    parts = _parts(rng, 24, sizes, dead=0.2)
    xq = rng.standard_normal((3, 24), dtype=np.float32)
    xq[1] = 0.0
    _same(cold.search(parts, xq, metric, k), flat.search(parts, xq, metric, k))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_blas_path_matches_the_kernels_with_a_filter(rng, metric):
    parts = _parts(rng, 16, [200, 120])
    allowed = [np.sort(rng.choice(200, 30, replace=False)).astype(np.int64), np.zeros(0, np.int64)]
    xq = rng.standard_normal((2, 16), dtype=np.float32)
    got = cold.search(parts, xq, metric, 10, allowed)
    _same(got, flat.search(parts, xq, metric, 10, allowed))
    assert set(got[1][0].tolist()) <= set(parts[0].rids[allowed[0]].tolist())


def test_a_fresh_process_answers_without_numba_then_loads_it(tmp_path):
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np, vecstore
        from vecstore.index import cold
        rng = np.random.default_rng(0)
        x = rng.standard_normal((500, 32), dtype=np.float32)
        with vecstore.open(sys.argv[1]) as db:
            c = db.create_collection("c", dim=32)
            c.add([str(i) for i in range(500)], vectors=x)
            first = c.query(x[7], k=5)
            numba_then = "numba" in sys.modules
            loaded = cold.wait(120)
            again = c.query(x[7], k=5)
            print(json.dumps({"numba_at_first": numba_then, "loaded": loaded,
                              "first": first.ids, "again": again.ids,
                              "scores": [first.scores.tolist(), again.scores.tolist()]}))
        """
    )
    out = _fresh(script, tmp_path / "s")
    got = json.loads(out)
    assert not got["numba_at_first"]
    assert got["loaded"]
    assert got["first"] == got["again"] and got["first"][0] == "7"
    np.testing.assert_allclose(*got["scores"], rtol=1e-5)


def test_the_queries_while_the_kernels_load_do_not_import_numba_either(tmp_path):
    # The second query of a process would take the lean single-query path, whose plan
    # imports the kernels (numba, 0.3 s) on the caller's thread: it waits for the load.
    import vecstore

    x = np.random.default_rng(1).standard_normal((3000, 32), dtype=np.float32)
    with vecstore.open(tmp_path / "s") as db:
        db.create_collection("c", dim=32).add([str(i) for i in range(3000)], vectors=x)
        db.get_collection("c").compact()  # one segment: the lean path's case
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np, vecstore
        from vecstore.index import cold
        cold.LOAD_DELAY = 60  # the loading thread waits: only the queries could import numba
        x = np.random.default_rng(1).standard_normal((3000, 32), dtype=np.float32)
        with vecstore.open(sys.argv[1], read_only=True) as db:
            c = db.get_collection("c")
            ids = [c.query(x[i], k=3).ids[0] for i in range(4)]
            print(json.dumps({"ids": ids, "numba": "numba" in sys.modules}))
        """
    )
    out = _fresh(script, tmp_path / "s")
    got = json.loads(out)
    assert got == {"ids": ["0", "1", "2", "3"], "numba": False}


def test_after_a_fresh_install_the_first_query_does_not_wait_for_the_compiler(tmp_path):
    # An empty Numba cache (as after pip install): the kernels compile in the background
    # for seconds; the first queries are answered meanwhile, and the process exits cleanly.
    script = textwrap.dedent(
        """
        import json, sys, time
        import numpy as np, vecstore
        from vecstore.index import cold
        x = np.random.default_rng(0).standard_normal((300, 16), dtype=np.float32)
        with vecstore.open(sys.argv[1]) as db:
            c = db.create_collection("c", dim=16)
            c.add([str(i) for i in range(300)], vectors=x)
            ids = [c.query(x[i], k=3).ids[0] for i in range(5)]
            print(json.dumps({"ids": ids, "ready": cold.ready()}))
        """
    )
    env = dict(
        os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-numba-cache"), VECSTORE_COLD_START="1"
    )
    out = _fresh(script, tmp_path / "s", env=env)
    got = json.loads(out)
    assert got["ids"] == ["0", "1", "2", "3", "4"]
    assert not got["ready"]  # still compiling: every one of them took BLAS


def test_blas_path_blocks_a_large_batch(rng, monkeypatch):
    monkeypatch.setattr(cold, "BLOCK_SCORES", 64)  # 1,024 rows per block at most
    parts = _parts(rng, 8, [2500, 700])
    xq = rng.standard_normal((5, 8), dtype=np.float32)
    _same(cold.search(parts, xq, "dot", 10), flat.search(parts, xq, "dot", 10))


# -- ANN queries: the NumPy walks of IVF, IVF-PQ and HNSW pick what the kernels pick --------


def _clustered(rng, n: int, dim: int) -> np.ndarray:
    centers = rng.standard_normal((20, dim), dtype=np.float32) * 3
    x = centers[rng.integers(0, 20, n)] + rng.standard_normal((n, dim), dtype=np.float32)
    return x.astype(np.float32)


def _ivf_index(rng, metric: str, spec, n: int = 3000, dim: int = 32):
    """An IVF model over a segment of ``n`` rows in list order, a pending block beside it."""
    from vecstore.index import ivf

    x = _clustered(rng, n + 40, dim)
    xb, pending = x[:n], x[n:]
    arrays, meta = ivf.train(xb[:2000], metric, spec, n)
    model = ivf.Model.from_file("m", meta, arrays)
    lists, codes, _ = ivf.encode(model, xb, exact.row_norms(xb))
    order, offsets = ivf.list_order(lists, model.nlist)
    xs = np.ascontiguousarray(xb[order])
    part = (xs, exact.row_norms(xs), offsets, np.ascontiguousarray(codes[order]))
    return model, part, (pending, exact.row_norms(pending))


def _same_ann(got, want, min_overlap: float = 1.0) -> None:
    (Dg, Ig, Cg), (Dw, Iw, Cw) = got, want
    np.testing.assert_array_equal(Cg, Cw)
    overlap = np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                       for a, b in zip(Ig, Iw)])  # fmt: skip
    assert overlap >= min_overlap
    if min_overlap == 1.0:
        np.testing.assert_allclose(Dg, Dw, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("pq", [True, False])
@pytest.mark.parametrize("nq", [1, 4])
def test_ivf_numpy_path_matches_the_kernels(rng, metric, pq, nq):
    from vecstore.index import ivf, specs

    spec = specs.IVFPQ(nlist=32, nprobe=4, m=8) if pq else specs.IVF(nlist=32, nprobe=4)
    model, part, (pend, pnorms) = _ivf_index(rng, metric, spec)
    xq = _clustered(rng, nq, 32)
    n = len(part[0])
    alive = rng.random(n) >= 0.1  # deletes
    kept = np.zeros(n, dtype=bool)
    kept[rng.choice(n, 300, replace=False)] = True  # a filter
    for masks, exact_parts in (
        (None, ()),
        ([alive], [(pend, pnorms, None, None)]),
        ([alive & kept], [(pend, pnorms, np.arange(0, 40, 3, dtype=np.int64), None)]),
    ):
        want = ivf.search([part], model, xq, metric, 10, masks=masks, exact_parts=exact_parts)
        got = cold.search_ivf([part], model, xq, metric, 10, masks=masks, exact_parts=exact_parts)
        _same_ann(got, want)


def _graph_part(rng, metric: str, n: int = 2500, dim: int = 24, alive=None):
    from vecstore.index import graph as graphs

    x = _clustered(rng, n, dim)
    norms = exact.row_norms(x)
    model = graphs.GraphModel("g", "hnsw", metric, 8, 60, 32, n)
    arrays, meta = graphs.build(model, x, norms)
    g = graphs.open_graph("g", model, arrays, meta, x, norms)
    rids = np.arange(1, n + 1, dtype=np.int64)
    return flat.Part(1, x, norms, rids, alive, graph=g)


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_hnsw_numpy_walk_matches_the_kernel(rng, metric):
    from vecstore.index import graph as graphs

    n = 2500
    alive = rng.random(n) >= 0.1
    parts = [_graph_part(rng, metric, n, alive=alive), _part(_clustered(rng, 30, 24), 9000)]
    xq = _clustered(rng, 3, 24)
    wide = np.sort(rng.choice(n, 2200, replace=False)).astype(np.int64)  # walked under a mask
    narrow = np.sort(rng.choice(n, 50, replace=False)).astype(np.int64)  # scanned exactly
    for allowed in (None, [wide[alive[wide]], np.arange(10)], [narrow, np.zeros(0, np.int64)]):
        want = graphs.search(parts, xq, metric, 10, 40, allowed)
        got = cold.search_graph(parts, xq, metric, 10, 40, allowed)
        _same_ann(got, want)


@pytest.mark.parametrize("spec", ["IVFPQ(nlist=16, m=4)", "IVF(nlist=16)", "HNSW(M=8)"])
def test_a_fresh_process_answers_an_ann_query_without_numba(tmp_path, spec):
    # The store is built here (kernels loaded); the child opens it with the cold path on and
    # answers before numba is imported, then again through the kernels: the same rows.
    import vecstore

    rng = np.random.default_rng(1)
    x = _clustered(rng, 5200, 16)
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=16)
        c.add([str(i) for i in range(len(x))], vectors=x)
        c.create_index(eval("vecstore." + spec))  # noqa: S307 - a literal of this test
        c.delete(["3", "4"])
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np, vecstore
        from vecstore.index import cold
        q = np.random.default_rng(2).standard_normal((1, 16), dtype=np.float32)
        with vecstore.open(sys.argv[1], read_only=True) as db:
            c = db.get_collection("c")
            first = c.query(q[0], k=10)
            plan = c.explain(q[0], k=10)
            numba_then = "numba" in sys.modules
            loaded = cold.wait(120)
            again = c.query(q[0], k=10)
            print(json.dumps({"numba_at_first": numba_then, "loaded": loaded,
                              "first": first.ids, "again": again.ids, "plan": str(plan),
                              "scores": [first.scores.tolist(), again.scores.tolist()]}))
        """
    )
    out = _fresh(script, tmp_path / "s")
    got = json.loads(out)
    assert not got["numba_at_first"]
    assert got["loaded"]
    assert got["first"] == got["again"]
    np.testing.assert_allclose(*got["scores"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["1", "0"])  # the NumPy path, the kernels
@pytest.mark.parametrize("where", ["vectors", "tail"])
def test_a_damaged_segment_never_answers_a_first_query(tmp_path, mode, where):
    # A fresh process maps the segment without reading it; its first query checks it as it
    # scans (cold path) or first (kernels): a flipped bit in the vectors or in the norms and
    # rids behind them gives CorruptStoreError, never a result.
    import vecstore

    x = np.random.default_rng(4).standard_normal((3000, 16), dtype=np.float32)
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=16)
        c.add([str(i) for i in range(len(x))], vectors=x)
        c.compact()
    (seg,) = (tmp_path / "s").rglob("*.vseg")
    raw = bytearray(seg.read_bytes())
    at = 128 + 1000 * 64 + 5 if where == "vectors" else len(raw) - 3
    raw[at] ^= 0x10
    seg.write_bytes(bytes(raw))
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, vecstore
        from vecstore.errors import CorruptStoreError
        with vecstore.open(sys.argv[1], read_only=True) as db:
            c = db.get_collection("c")
            for _ in range(2):
                try:
                    c.query(np.ones(16, np.float32), k=5)
                except CorruptStoreError:
                    print("corrupt")
                else:
                    print("answered")
        """
    )
    out = _fresh(script, tmp_path / "s", mode=mode)
    assert out.split() == ["corrupt", "corrupt"]


@pytest.mark.parametrize("spec", ["IVFPQ(nlist=16, m=4)", "HNSW(M=8)"])
def test_a_damaged_segment_never_answers_a_first_ann_query(tmp_path, spec):
    # An ANN query's segments are verified on another thread while it runs; it returns
    # only once they have passed.
    import vecstore

    x = _clustered(np.random.default_rng(5), 5200, 16)
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=16)
        c.add([str(i) for i in range(len(x))], vectors=x)
        c.create_index(eval("vecstore." + spec))  # noqa: S307 - a literal of this test
    (seg,) = (tmp_path / "s").rglob("*.vseg")
    raw = bytearray(seg.read_bytes())
    raw[128 + 4000 * 64 + 1] ^= 0x04
    seg.write_bytes(bytes(raw))
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, vecstore
        from vecstore.errors import CorruptStoreError
        with vecstore.open(sys.argv[1], read_only=True) as db:
            c = db.get_collection("c")
            try:
                c.query(np.ones(16, np.float32), k=5)
            except CorruptStoreError:
                print("corrupt")
            else:
                print("answered")
        """
    )
    out = _fresh(script, tmp_path / "s")
    assert out.split() == ["corrupt"]


def test_a_filtered_ivf_query_takes_the_kernels_plan_on_the_numpy_path(tmp_path):
    # Under a filter the kernels' plan widens the default nprobe by the selectivity (or scans
    # the kept rows when that is cheaper); the NumPy path must take the same plan, so a
    # filtered query gives the same rows before and after the kernels load.
    import vecstore

    rng = np.random.default_rng(3)
    x = _clustered(rng, 40_000, 16)
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=16)
        c.add([str(i) for i in range(len(x))], vectors=x,
              metadata=[{"g": i % 10, "h": i % 4} for i in range(len(x))])  # fmt: skip
        c.create_index(vecstore.IVFPQ(nlist=64, nprobe=2, m=4))
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np, vecstore
        q = np.random.default_rng(4).standard_normal((5, 16), dtype=np.float32)
        with vecstore.open(sys.argv[1], read_only=True) as db:
            c = db.get_collection("c")
            out = {w: [c.query(v, k=10, where={w: 3}).ids for v in q] for w in ("g", "h")}
            out["plans"] = [str(c.explain(q[0], k=10, where={w: 3})) for w in ("g", "h")]
            print(json.dumps(out))
        """
    )
    got = {}
    for mode in ("numpy", "0"):
        out = _fresh(script, tmp_path / "s", mode=mode)
        got[mode] = json.loads(out)
    assert "numpy" in got["numpy"]["plans"][0] and "numpy" not in got["0"]["plans"][0]
    assert all("IVF-PQ" in plan for plan in got["0"]["plans"])  # the index, with the filter
    assert got["numpy"]["g"] == got["0"]["g"]
    assert got["numpy"]["h"] == got["0"]["h"]
