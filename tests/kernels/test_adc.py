"""ADC search kernels against NumPy oracles, through ``vecstore.index.ivf.search``: probing,
list scans (IVF exact scores, IVF-PQ ADC estimates) and re-ranking."""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

from __future__ import annotations

import functools

import numpy as np
import pytest

from tests.conftest import clustered
from tests.kernels.test_exact import check_topk, oracle_scores
from tests.kernels.test_quantize import sq_dists
from vecstore import IVF, IVFPQ
from vecstore.index import ivf as index_ivf
from vecstore.kernels import adc, exact, fastscan

METRICS = ("cosine", "dot", "l2")
DIMS = (8, 64, 384)
SPECS = {
    "ivf": lambda d: IVF(nlist=8, nprobe=2),
    "ivfpq": lambda d: IVFPQ(nlist=8, m={8: 2, 64: 8, 384: 24}.get(d, 1), nbits=4, nprobe=2),
}


# ---------------------------------------------------------------------------------------------
# oracles
# ---------------------------------------------------------------------------------------------


def build(x: np.ndarray, metric: str, spec, *, seed: int = 0):
    """Train a model on ``x`` and index ``x`` under it: ``(model, part, order)``, where the part
    holds the rows in list order and ``order[label]`` is a label's row in ``x``."""
    arrays, meta = index_ivf.train(x, metric, spec, len(x), seed=seed)
    model = index_ivf.Model.from_file("model.vidx", meta, arrays)
    norms = exact.row_norms(x)
    lists, codes, _ = index_ivf.encode(model, x, norms)
    order, offsets = index_ivf.list_order(lists, model.nlist)
    part = (
        np.ascontiguousarray(x[order]),
        norms[order],
        offsets,
        np.ascontiguousarray(codes[order]),
    )
    return model, part, order


@functools.cache
def cached_build(kind: str, metric: str, d: int, n: int, seed: int, zeros: int = 0):
    """``build`` over ``data(n, d, seed=seed, zeros=zeros)`` with the spec ``SPECS[kind]``,
    shared by the tests that only read it."""
    x, _ = data(n, d, seed=seed, zeros=zeros)
    return build(x, metric, SPECS[kind](d))


def to_rows(I: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Labels (positions in list order) as rows of the original array; -1 stays -1."""
    return np.where(I >= 0, order[np.maximum(I, 0)], -1)


def space(x: np.ndarray, metric: str) -> np.ndarray:
    """float64 rows in the index's space: unit-normalised for cosine (zero rows stay zero)."""
    x = x.astype(np.float64)
    if metric != "cosine":
        return x
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def reconstruct(model, x: np.ndarray) -> np.ndarray:
    """float64 PQ reconstructions ``c[list] + decoded residual`` of x, in the index's space."""
    norms = exact.row_norms(x)
    lists, codes, _ = index_ivf.encode(model, x, norms)
    cb = model.codebooks.astype(np.float64)
    decoded = np.concatenate([cb[j][codes[:, j]] for j in range(cb.shape[0])], axis=1)
    return model.centroids.astype(np.float64)[lists] + decoded


def adc_oracle(model, xq: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """(nq, n) float64 ADC estimates of the heap score: q.xhat (cosine in the unit space, dot),
    2 q.xhat - |x|^2 (l2, with the exact |x|^2)."""
    q = space(xq, metric)
    est = q @ reconstruct(model, x).T
    if metric == "l2":
        est = 2 * est - (x.astype(np.float64) ** 2).sum(1)[None, :]
    return est


def data(
    n: int, d: int, *, seed: int, zeros: int = 0, nq: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered rows (the last ``zeros`` of them zero vectors) and ``nq`` queries, the first
    of them zero when ``zeros``."""
    x = clustered(n + nq, d, clusters=12, seed=seed)
    x, xq = x[:n].copy(), x[n:].copy()
    if zeros:
        x[n - zeros :] = 0.0
        xq[0] = 0.0
    return x, xq


# ---------------------------------------------------------------------------------------------
# search: list scans, ADC and re-ranking, through vecstore.index.ivf.search
# ---------------------------------------------------------------------------------------------


def use_path(path: str, monkeypatch) -> str:
    """Scan queries all at once (parallel over queries: "batch"), or one per call, on one
    thread ("serial") or with each query's lists split across threads ("threads"); the
    "scalar-" paths turn fast-scan off, so 4-bit codes take the scalar scan too."""
    if path.startswith("scalar-"):
        monkeypatch.setattr(fastscan, "available", lambda: False)
        path = path[len("scalar-") :]
    if path == "threads":
        monkeypatch.setattr(index_ivf, "SERIAL_SCAN_ROWS", 0)
    return path


@pytest.fixture(params=["batch", "serial", "threads", "scalar-batch", "scalar-serial"])
def scan_path(request, monkeypatch):
    return use_path(request.param, monkeypatch)


def run(parts, model, xq, metric, k, path="batch", **kw):
    """``index_ivf.search`` for all queries at once, or one query per call."""
    if path == "batch":
        return index_ivf.search(parts, model, xq, metric, k, **kw)
    out = [index_ivf.search(parts, model, xq[i : i + 1], metric, k, **kw) for i in range(len(xq))]
    return tuple(np.concatenate([o[j] for o in out]) for j in range(3))


# k=10 on the other paths runs in test_adc_candidates_are_the_best_pq_estimates too.
K_PATHS = [(1, "batch"), (10, "serial"), (10, "threads"), ("n+3", "batch")]


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("k,path", K_PATHS)
def test_all_lists_and_full_refine_is_exact(kind, metric, d, k, path, monkeypatch):
    # nprobe = nlist scans every row; with refine >= n every PQ candidate is re-ranked exactly.
    n = 400
    x, xq = data(n, d, seed=d, zeros=3)
    model, part, order = cached_build(kind, metric, d, n, d, 3)
    k = n + 3 if k == "n+3" else k
    use_path(path, monkeypatch)
    D, I, counts = run([part], model, xq, metric, k, path, nprobe=model.nlist, refine=n // k + 1)
    check_topk(xq, x, metric, k, D, to_rows(I, order), counts)


def adc_tolerance(model, xq: np.ndarray, metric: str) -> np.ndarray:
    """(nq, 1) bound on how far a selected candidate's ADC estimate may fall below the k-th
    best: float32 tables, m steps of span / 65535 (span: the widest sub-quantizer's range of
    table entries); the uint8 tables of fast-scan (4-bit codes on AVX2), m steps of span / 255
    (each entry within half a step, on both sides of the comparison). Twice that for l2."""
    q = space(xq, metric)
    cb = model.codebooks.astype(np.float64)
    m, ksub, dsub = cb.shape
    T = np.einsum("qjd,jsd->qjs", q.reshape(len(q), m, dsub), cb)
    span = (T.max(2) - T.min(2)).max(1, keepdims=True)
    levels = 255 if fastscan.usable(m, ksub) else 65535
    return (2 if metric == "l2" else 1) * m * span / levels + 1e-5 * (1 + np.abs(T).sum((1, 2)))[
        :, None
    ]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", DIMS)
def test_adc_candidates_are_the_best_pq_estimates(metric, d, scan_path):
    # With refine=1 the k candidates are the k best ADC estimates, which are then re-scored
    # exactly: the returned rows must be the oracle's k best estimates (ties aside).
    n, k = 400, 10
    x, xq = data(n, d, seed=d, zeros=3)
    model, part, order = cached_build("ivfpq", metric, d, n, d, 3)
    D, I, counts = run([part], model, xq, metric, k, scan_path, nprobe=model.nlist, refine=1)
    np.testing.assert_array_equal(counts, k)
    rows = to_rows(I, order)
    est = adc_oracle(model, xq, x, metric)
    kth = -np.sort(-est, axis=1)[:, k - 1 : k]
    assert (np.take_along_axis(est, rows, 1) >= kth - adc_tolerance(model, xq, metric)).all()
    # ... and the scores returned are their exact scores, best first.
    exact_scores = np.take_along_axis(oracle_scores(xq, x, metric), rows, 1)
    np.testing.assert_allclose(D, exact_scores, rtol=1e-4, atol=1e-4)
    assert (np.diff(D, axis=1) <= 0).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nprobe", [1, 3])
def test_ivf_scans_nprobe_lists_exactly(metric, nprobe, scan_path):
    # IVF (exact scores) with widen=False returns the exact top-k of the rows of nprobe lists:
    # for l2 and cosine, the lists with the nearest centroids (in L2, of the unit vectors for
    # cosine), the rule rows are assigned by. (For dot the order is a convention: inner
    # product, here checked only to give the best rows of the lists it probed.)
    d, n, k = 16, 800, 10
    x, xq = data(n, d, seed=9, nq=20)  # more than 16 queries: BLAS centroid scores too
    model, part, order = build(x, metric, IVF(nlist=8, nprobe=1))
    lists = np.searchsorted(part[2], np.arange(n), side="right") - 1  # list of each position
    row_list = np.empty(n, np.int64)
    row_list[order] = lists
    nearest = np.argsort(sq_dists(space(xq, metric), model.centroids), axis=1)[:, :nprobe]
    D, I, counts = run([part], model, xq, metric, k, scan_path, nprobe=nprobe, widen=False)
    rows = to_rows(I, order)
    for i in range(len(xq)):
        hit = np.unique(row_list[rows[i, : counts[i]]])
        assert len(hit) <= nprobe
        # For dot the probed lists include those the results came from: the results must be
        # the best rows of those lists.
        allowed = np.isin(row_list, hit if metric == "dot" else nearest[i])
        check_topk(
            xq[i : i + 1], x, metric, k, D[i : i + 1], rows[i : i + 1], counts[i : i + 1], allowed
        )


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_first_probed_list_is_the_one_a_row_is_assigned_to(metric):
    # A stored row queried with itself at nprobe=1 (IVF: exact scores) must come back first:
    # the probing order must agree with the assignment. (Not so for dot: a row need not be
    # its own best inner product.) Rows of varied norms, as embeddings often have.
    x = clustered(4000, 32, clusters=16, seed=3)
    x *= np.random.default_rng(1).uniform(0.5, 2.0, (4000, 1)).astype(np.float32)
    model, part, order = build(x, metric, IVF(nlist=64, nprobe=1))
    D, I, counts = index_ivf.search([part], model, x[:500], metric, 1, nprobe=1, widen=False)
    found = to_rows(I, order)[:, 0]
    assert np.mean(found == np.arange(500)) == 1.0


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
@pytest.mark.parametrize("metric", METRICS)
def test_parts_masks_and_exact_parts_compose(kind, metric, rng, scan_path):
    # Two indexed parts with tombstone masks and one exact part (pending rows) filtered by a
    # row list: the result is the exact top-k over the union of the allowed rows.
    d, k = 32, 15
    x, xq = data(900, d, seed=12, zeros=2)
    model, _, _ = build(x[:600], metric, SPECS[kind](d))
    parts, orders, masks = [], [], []
    for lo, hi in ((0, 300), (300, 600)):
        xs = x[lo:hi]
        norms = exact.row_norms(xs)
        lists, codes, _ = index_ivf.encode(model, xs, norms)
        order, offsets = index_ivf.list_order(lists, model.nlist)
        parts.append((np.ascontiguousarray(xs[order]), norms[order], offsets, codes[order].copy()))
        orders.append(order + lo)
        masks.append(rng.random(300) < 0.7)
    tail = np.ascontiguousarray(x[600:])
    rows = np.flatnonzero(rng.random(300) < 0.5).astype(np.int64)
    exact_parts = [(tail, exact.row_norms(tail), rows, None)]
    labels_to_x = np.concatenate(orders + [np.arange(600, 900)])
    allowed = np.zeros(900, bool)
    for order, mask in zip(orders, masks):
        allowed[order[mask]] = True
    allowed[600 + rows] = True
    D, I, counts = run(
        parts,
        model,
        xq,
        metric,
        k,
        scan_path,
        nprobe=model.nlist,
        refine=1000,
        masks=masks,
        exact_parts=exact_parts,
    )
    check_topk(xq, x, metric, k, D, to_rows(I, labels_to_x), counts, allowed)


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
@pytest.mark.parametrize("keep", [0, 3, 40])
def test_widening_finds_sparse_masked_rows(kind, keep, rng, scan_path):
    # A mask keeping few rows, probed from nprobe=1: lists are added until k (IVF) or
    # k * refine (IVF-PQ) allowed rows were seen, so exactly min(k, allowed) results come back.
    d, k, n = 16, 10, 800
    x, xq = data(n, d, seed=13)
    model, part, order = cached_build(kind, "l2", d, n, 13)
    mask = np.zeros(n, bool)
    mask[rng.choice(n, keep, replace=False)] = True
    allowed = np.zeros(n, bool)
    allowed[order[mask]] = True
    D, I, counts = run([part], model, xq, "l2", k, scan_path, nprobe=1, masks=[mask])
    np.testing.assert_array_equal(counts, min(k, keep))
    assert allowed[to_rows(I, order)[I >= 0]].all()
    if keep <= k or kind == "ivfpq":
        # Every allowed row was seen (and, for PQ, re-ranked: k * refine >= 40): exact top-k.
        check_topk(xq, x, "l2", k, D, to_rows(I, order), counts, allowed)
    # Without widening, the one probed list may hold fewer than k allowed rows.
    D, I, counts = run([part], model, xq, "l2", k, scan_path, nprobe=1, masks=[mask], widen=False)
    assert (counts <= min(k, keep)).all()
    assert allowed[to_rows(I, order)[I >= 0]].all()


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_widening_with_tied_centroids_probes_each_list_once(kind, rng, scan_path):
    # Every centroid twice: each query ranks lists in tied pairs, so the lists first probed
    # and the full order widening continues from may break the ties differently. A list
    # probed twice would put its rows in the heaps twice (duplicate results).
    d, k, n = 16, 10, 800
    x, xq = data(n, d, seed=17)
    model, part, order = cached_build(kind, "l2", d, n, 17)
    twice = np.repeat(model.centroids, 2, axis=0)
    tied = index_ivf.Model(
        "t", model.kind, model.metric, twice, model.codebooks, 3, model.refine, 0, 0.0
    )
    xb, norms, offsets, codes = part
    # List 2L + 1 holds list L's rows; every list 2L is empty.
    split = np.zeros(2 * model.nlist + 1, dtype=np.int64)
    split[1::2] = offsets[:-1]
    split[2::2] = offsets[1:]
    mask = np.zeros(n, bool)
    mask[rng.choice(n, 30, replace=False)] = True
    allowed = np.zeros(n, bool)
    allowed[order[mask]] = True
    parts = [(xb, norms, split, codes)]
    D, I, counts = run(parts, tied, xq, "l2", k, scan_path, nprobe=3, masks=[mask])
    np.testing.assert_array_equal(counts, k)
    for row in I:
        assert len(set(row.tolist())) == k
    assert allowed[to_rows(I, order)[I >= 0]].all()


def test_full_orders_continue_from_the_lists_probed():
    # Ties broken the other way by the first selection: the full order still starts with
    # exactly the lists probed, then every other list once, best rank first.
    rank = np.array([[1.0, 1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    first = np.array([[4, 1], [3, 2]])
    full = index_ivf._full_orders(rank, first)
    np.testing.assert_array_equal(full, [[4, 1, 0, 2, 3], [3, 2, 0, 1, 4]])


def test_k_larger_than_everything_pads(scan_path):
    x, xq = data(60, 8, seed=14)
    for spec in (IVF(nlist=4, nprobe=1), IVFPQ(nlist=4, m=2, nbits=4, nprobe=1)):
        model, part, order = build(x, "dot", spec)
        D, I, counts = run([part], model, xq, "dot", 100, scan_path)
        np.testing.assert_array_equal(counts, 60)
        assert (I[:, 60:] == -1).all() and np.isneginf(D[:, 60:]).all()
        check_topk(xq, x, "dot", 100, D, to_rows(I, order), counts)


@pytest.mark.parametrize("metric", METRICS)
def test_zero_vectors_everywhere(metric):
    # An all-zero database and a zero query: scores are those of exact search (0 for cosine
    # and dot, -|q|^2 for l2), never NaN.
    x = np.zeros((300, 8), np.float32)
    xq = np.zeros((2, 8), np.float32)
    xq[1, 0] = 1.0
    for spec in (IVF(nlist=4, nprobe=4), IVFPQ(nlist=4, m=2, nbits=4, nprobe=4)):
        model, part, order = build(x, metric, spec)
        D, I, counts = index_ivf.search([part], model, xq, metric, 5, refine=2)
        assert not np.isnan(D).any()
        check_topk(xq, x, metric, 5, D, to_rows(I, order), counts)


# ---------------------------------------------------------------------------------------------
# re-ranking
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_scores_candidates_exactly(metric, rng):
    xb = rng.standard_normal((50, 16), dtype=np.float32)
    xb[3] = 0.0
    xq = rng.standard_normal((3, 16), dtype=np.float32)
    code = adc.METRICS[metric]
    # The search layer passes queries in the index space (unit length for cosine) and qa = 1.
    q = space(xq, metric).astype(np.float32)
    cand = np.full((3, 12), -1, np.int64)
    for i in range(3):
        cand[i, :10] = rng.choice(np.arange(4, 50), 10, replace=False)
    cand[0, 0] = 3  # the zero row
    D, I = exact.new_heaps(3, 4)
    adc.rerank(q, np.ones(3, np.float32), code, xb, exact.row_norms(xb), cand, D, I, 100)
    D, I, counts = exact.finish(D, I, q, metric)
    S = oracle_scores(q, xb, metric)
    for i in range(3):
        c = cand[i, cand[i] >= 0]
        want = c[np.argsort(-S[i, c], kind="stable")][:4]
        np.testing.assert_allclose(D[i], S[i, want], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(S[i, I[i] - 100], S[i, want], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("keep", [0.0, 0.02, 0.1, 0.7])
def test_kept_rows_scan_as_the_mask_does(kind, metric, keep, rng):
    # A single query may scan a filter's kept rows list by list (``kept``: sorted positions
    # and each list's share of them) instead of testing a mask row by row: the same answer,
    # at any nprobe (widening included).
    d, k, n = 16, 10, 800
    x, xq = data(n, d, seed=19)
    model, part, order = cached_build(kind, metric, d, n, 19)
    mask = rng.random(n) < keep
    rows = np.flatnonzero(mask).astype(np.int64)
    koff = np.searchsorted(rows, part[2]).astype(np.int64)
    for nprobe in (1, 3, model.nlist):
        for i in range(8):
            want = index_ivf.search([part], model, xq[i : i + 1], metric, k, nprobe=nprobe,
                                    masks=[mask])  # fmt: skip
            got = index_ivf.search([part], model, xq[i : i + 1], metric, k, nprobe=nprobe,
                                   masks=[mask], kept=[(rows, koff)])  # fmt: skip
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[2], want[2])
            np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
