"""Exact top-k kernels against a float64 NumPy brute-force oracle, through the public wrappers."""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecstore.kernels import exact

METRICS = exact.METRICS


# ---------------------------------------------------------------------------------------------
# oracle and checker
# ---------------------------------------------------------------------------------------------


def oracle_scores(xq, xb, metric):
    """(nq, nb) float64 scores, higher is better."""
    q = xq.astype(np.float64)
    x = xb.astype(np.float64)
    if metric == "dot":
        return q @ x.T
    if metric == "cosine":
        qn = np.linalg.norm(q, axis=1)
        xn = np.linalg.norm(x, axis=1)
        den = np.outer(qn, xn)
        return np.where(den > 0, (q @ x.T) / np.where(den > 0, den, 1.0), 0.0)
    return -((q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * (q @ x.T)).clip(min=0.0)


def tolerance(xq, xb, metric):
    """Per-query absolute tolerance: 1e-4 relative to the magnitude the float32 sums work at."""
    qn = np.linalg.norm(xq.astype(np.float64), axis=1)
    xmax = np.linalg.norm(xb.astype(np.float64), axis=1).max() if len(xb) else 0.0
    if metric == "cosine":
        scale = np.ones_like(qn)
    elif metric == "dot":
        scale = qn * xmax
    else:
        scale = (qn + xmax) ** 2
    return 1e-4 * scale + 1e-6


def check_topk(xq, xb, metric, k, D, I, counts, allowed=None, base=0):
    nq, nb = xq.shape[0], xb.shape[0]
    if allowed is None:
        allowed = np.ones(nb, dtype=bool)
    assert D.dtype == np.float32 and I.dtype == np.int64 and counts.dtype == np.int64
    assert D.shape == (nq, k) and I.shape == (nq, k) and counts.shape == (nq,)
    c = int(min(k, allowed.sum()))
    np.testing.assert_array_equal(counts, c)
    assert (I[:, c:] == -1).all()
    assert np.isneginf(D[:, c:]).all()
    if c == 0:
        return
    lab = I[:, :c] - base
    assert ((lab >= 0) & (lab < nb)).all(), "label out of range"
    assert allowed[lab].all(), "returned a row that is not allowed"
    for row in lab:
        assert len(np.unique(row)) == c, "duplicate label"
    got = D[:, :c].astype(np.float64)
    assert np.isfinite(got).all()
    assert (np.diff(got, axis=1) <= 0).all(), "not sorted best-first"
    if metric == "l2":
        assert (got <= 0).all()
    S = oracle_scores(xq, xb, metric)
    tol = tolerance(xq, xb, metric)[:, None]
    # Each returned label really has the returned score ...
    err = np.abs(np.take_along_axis(S, lab, axis=1) - got)
    assert (err <= tol).all(), f"score mismatch, max err {err.max()}"
    # ... and the returned scores are the c best allowed ones (ties may pick any rows).
    best = -np.sort(-np.where(allowed, S, -np.inf), axis=1)[:, :c]
    err = np.abs(best - got)
    assert (err <= tol).all(), f"a better row is missing, max err {err.max()}"


def make(rng, n, d, nq):
    xb = rng.standard_normal((n, d), dtype=np.float32)
    xq = rng.standard_normal((nq, d), dtype=np.float32)
    return xq, xb


@pytest.fixture(params=["scan-serial", "scan-parallel", "tiles"])
def path(request, monkeypatch):
    """Force every search through one code path, whatever nq and the sizes are."""
    if request.param == "tiles":
        monkeypatch.setattr(exact, "SMALL_BATCH_MAX", 0)
    else:
        monkeypatch.setattr(exact, "SMALL_BATCH_MAX", 10**9)
        serial = request.param == "scan-serial"
        monkeypatch.setattr(exact, "_PARALLEL_MIN_WORK", 2**62 if serial else 0)
        monkeypatch.setattr(exact, "_PARALLEL_MIN_ROWS_WORK", 2**62 if serial else 0)
    return request.param


# ---------------------------------------------------------------------------------------------
# correctness over shapes
# ---------------------------------------------------------------------------------------------

SHAPES = [(1, 1000), (3, 5), (17, 0), (17, 1), (17, 1000), (384, 1000), (384, 10_000)]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d,n", SHAPES)
@pytest.mark.parametrize("nq", [1, 2, 7, 100])
@pytest.mark.parametrize("k", [1, 10, "n+3"])
def test_search_matches_oracle(metric, d, n, nq, k):
    k = n + 3 if k == "n+3" else k
    rng = np.random.default_rng([d, n, nq, k])
    xq, xb = make(rng, n, d, nq)
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, k)
    check_topk(xq, xb, metric, k, D, I, counts)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 3, 4, 5, 9])
@pytest.mark.parametrize("n", [0, 1, 5, 3000])
def test_every_path_matches_oracle(metric, nq, n, path):
    rng = np.random.default_rng([nq, n])
    xq, xb = make(rng, n, 33, nq)
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, 25)
    check_topk(xq, xb, metric, 25, D, I, counts)


@pytest.mark.parametrize("metric", METRICS)
def test_many_small_tiles(metric, monkeypatch):
    # Tiles of a few rows with a ragged last one, with and without gathering.
    monkeypatch.setattr(exact, "SMALL_BATCH_MAX", 0)
    monkeypatch.setattr(exact, "_TILE_SCORE_BYTES", 64)
    monkeypatch.setattr(exact, "_TILE_MIN_ROWS", 7)
    rng = np.random.default_rng(11)
    xq, xb = make(rng, 500, 9, 6)
    norms = exact.row_norms(xb)
    D, I, counts = exact.search(xq, xb, norms, metric, 13)
    check_topk(xq, xb, metric, 13, D, I, counts)
    rows = np.flatnonzero(rng.random(500) < 0.3)
    D, I, counts = exact.search(xq, xb, norms, metric, 13, rows=rows)
    allowed = np.zeros(500, bool)
    allowed[rows] = True
    check_topk(xq, xb, metric, 13, D, I, counts, allowed)


def test_k_larger_than_n_pads_with_invalid():
    rng = np.random.default_rng(0)
    xq, xb = make(rng, 3, 4, 2)
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), "dot", 8)
    np.testing.assert_array_equal(counts, [3, 3])
    assert (I[:, 3:] == -1).all() and np.isneginf(D[:, 3:]).all()
    assert sorted(I[0, :3]) == [0, 1, 2]


@pytest.mark.parametrize("nq", [3, 100])
def test_l2_self_match_is_near_zero_and_clamped(nq):
    # Scores come from |q|^2 + |x|^2 - 2 x.q in float32, so a self-match is 0 only up to
    # rounding at the scale of |x|^2; it must never come out positive.
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((200, 64), dtype=np.float32) * 100
    xq = xb[np.arange(nq) % 200].copy()
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), "l2", 3)
    np.testing.assert_array_equal(I[:, 0], np.arange(nq) % 200)
    scale = (xq.astype(np.float64) ** 2).sum(1)
    assert (D[:, 0] <= 0).all() and (-D[:, 0] <= 1e-5 * scale).all()
    assert (D <= 0).all()


# ---------------------------------------------------------------------------------------------
# degenerate data: zero vectors, duplicates, ties
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 2, 7, 100])
def test_zero_vectors(metric, nq):
    rng = np.random.default_rng(nq)
    xq, xb = make(rng, 300, 16, nq)
    xb[::7] = 0.0
    xq[0] = 0.0
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, 20)
    check_topk(xq, xb, metric, 20, D, I, counts)
    if metric == "cosine":
        np.testing.assert_array_equal(D[0], 0.0)  # a zero query scores 0.0 against everything
    assert np.isfinite(D).all()


@pytest.mark.parametrize("metric", METRICS)
def test_all_zero_database(metric):
    xb = np.zeros((50, 8), dtype=np.float32)
    xq = np.ones((3, 8), dtype=np.float32)
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, 10)
    check_topk(xq, xb, metric, 10, D, I, counts)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 2, 7, 100])
@pytest.mark.parametrize("k", [1, 10, 45])
def test_duplicates_and_ties(metric, nq, k):
    rng = np.random.default_rng(k)
    uniq = rng.standard_normal((40, 12), dtype=np.float32)
    xb = uniq[rng.integers(0, 40, size=800)]
    xq = np.concatenate([uniq[:1], rng.standard_normal((nq - 1, 12), dtype=np.float32)])
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, k)
    check_topk(xq, xb, metric, k, D, I, counts)


def test_integer_grid_exact_ties():
    # Small integers: every score is exact in float32, so ties are exact too.
    rng = np.random.default_rng(3)
    xb = rng.integers(-2, 3, size=(500, 4)).astype(np.float32)
    xq = rng.integers(-2, 3, size=(9, 4)).astype(np.float32)
    for metric in METRICS:
        D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, 30)
        check_topk(xq, xb, metric, 30, D, I, counts)


@settings(max_examples=80, deadline=None, database=None)
@given(
    n=st.integers(0, 60),
    d=st.integers(1, 6),
    nq=st.integers(1, 40),
    k=st.integers(1, 70),
    metric=st.sampled_from(METRICS),
    kind=st.sampled_from(["none", "rows", "mask", "both"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_small_integer_data(n, d, nq, k, metric, kind, seed):
    # Values in {-2..2}: many exact ties and zero vectors, every score exact in float32.
    rng = np.random.default_rng(seed)
    xb = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    xq = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    keep_a = rng.random(n) < 0.6
    keep_b = rng.random(n) < 0.6
    kw, allowed = {}, np.ones(n, dtype=bool)
    if kind in ("rows", "both"):
        kw["rows"], allowed = np.flatnonzero(keep_a), keep_a
    if kind in ("mask", "both"):
        kw["mask"], allowed = keep_b, allowed & keep_b
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), metric, k, **kw)
    check_topk(xq, xb, metric, k, D, I, counts, allowed)


# ---------------------------------------------------------------------------------------------
# rows and mask filters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 2, 7, 100])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("kind", ["rows", "mask_bool", "mask_uint8", "both"])
def test_filters(metric, nq, density, kind):
    n = 2000
    rng = np.random.default_rng([nq, int(density * 100), len(kind)])
    xq, xb = make(rng, n, 24, nq)
    norms = exact.row_norms(xb)
    keep_a = rng.random(n) < density
    keep_b = rng.random(n) < 0.5
    rows = np.flatnonzero(keep_a).astype(np.int64)
    if kind == "rows":
        kw, allowed = {"rows": rows}, keep_a
    elif kind == "mask_bool":
        kw, allowed = {"mask": keep_a}, keep_a
    elif kind == "mask_uint8":
        kw, allowed = {"mask": keep_a.astype(np.uint8)}, keep_a
    else:
        kw, allowed = {"rows": rows, "mask": keep_b}, keep_a & keep_b
    D, I, counts = exact.search(xq, xb, norms, metric, 10, **kw)
    check_topk(xq, xb, metric, 10, D, I, counts, allowed)


@pytest.mark.parametrize("nq", [1, 100])
def test_empty_filters_give_no_results(nq):
    rng = np.random.default_rng(5)
    xq, xb = make(rng, 100, 8, nq)
    norms = exact.row_norms(xb)
    cases = [
        {"rows": np.empty(0, dtype=np.int64)},
        {"mask": np.zeros(100, dtype=bool)},
        {"mask": np.zeros(100, dtype=np.uint8)},
        {"rows": np.arange(0, 100, 2), "mask": np.arange(100) % 2 == 1},
    ]
    for kw in cases:
        for metric in METRICS:
            D, I, counts = exact.search(xq, xb, norms, metric, 5, **kw)
            np.testing.assert_array_equal(counts, 0)
            assert (I == -1).all() and np.isneginf(D).all()


@pytest.mark.parametrize("nq", [1, 100])
def test_mask_nonzero_uint8_values_count_as_true(nq):
    rng = np.random.default_rng(6)
    xq, xb = make(rng, 300, 8, nq)
    mask = (rng.integers(0, 4, size=300) * 60).astype(np.uint8)  # 0, 60, 120, 180
    D, I, counts = exact.search(xq, xb, exact.row_norms(xb), "dot", 7, mask=mask)
    check_topk(xq, xb, "dot", 7, D, I, counts, mask != 0)


@pytest.mark.parametrize("nq", [1, 5])
def test_filters_on_every_path(nq, path):
    rng = np.random.default_rng(8)
    xq, xb = make(rng, 5000, 20, nq)
    norms = exact.row_norms(xb)
    keep = rng.random(5000) < 0.02
    other = rng.random(5000) < 0.5
    cases = [
        ({"mask": keep}, keep),
        ({"mask": ~keep}, ~keep),
        ({"rows": np.flatnonzero(keep)}, keep),
        ({"rows": np.flatnonzero(~keep)}, ~keep),
        ({"rows": np.flatnonzero(~keep), "mask": other}, ~keep & other),
    ]
    for metric in METRICS:
        for kw, allowed in cases:
            D, I, counts = exact.search(xq, xb, norms, metric, 12, **kw)
            check_topk(xq, xb, metric, 12, D, I, counts, allowed)


# ---------------------------------------------------------------------------------------------
# accumulation over segments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 2, 7, 100])
def test_accumulate_segments_equals_concatenation(metric, nq, path):
    rng = np.random.default_rng(nq + 100)
    xq, xb = make(rng, 1700, 19, nq)
    a, b, c = xb[:600], xb[600:601], xb[601:]
    D, I = exact.new_heaps(nq, 15)
    exact.search_into(xq, a, exact.row_norms(a), metric, D, I, base=0)
    empty = np.empty((0, 19), dtype=np.float32)
    exact.search_into(xq, empty, exact.row_norms(empty), metric, D, I, base=600)
    exact.search_into(xq, b, exact.row_norms(b), metric, D, I, base=600)
    exact.search_into(xq, c, exact.row_norms(c), metric, D, I, base=601)
    D1, I1, counts1 = exact.finish(D, I, xq, metric)
    check_topk(xq, xb, metric, 15, D1, I1, counts1)
    D2, I2, counts2 = exact.search(xq, xb, exact.row_norms(xb), metric, 15)
    np.testing.assert_array_equal(counts1, counts2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5, atol=1e-4)


def test_accumulate_with_filters_and_base():
    rng = np.random.default_rng(9)
    xq, xb = make(rng, 1000, 10, 3)
    seg1, seg2 = xb[:400], xb[400:]
    rows1 = np.arange(0, 400, 3)
    mask2 = rng.random(600) < 0.5
    D, I = exact.new_heaps(3, 20)
    exact.search_into(xq, seg1, exact.row_norms(seg1), "l2", D, I, rows=rows1, base=0)
    exact.search_into(xq, seg2, exact.row_norms(seg2), "l2", D, I, mask=mask2, base=400)
    D, I, counts = exact.finish(D, I, xq, "l2")
    allowed = np.zeros(1000, bool)
    allowed[rows1] = True
    allowed[400:] = mask2
    check_topk(xq, xb, "l2", 20, D, I, counts, allowed)


def test_base_offsets_labels():
    rng = np.random.default_rng(10)
    xq, xb = make(rng, 50, 6, 2)
    D, I = exact.new_heaps(2, 50)
    exact.search_into(xq, xb, exact.row_norms(xb), "dot", D, I, base=10**12)
    D, I, counts = exact.finish(D, I, xq, "dot")
    check_topk(xq, xb, "dot", 50, D, I, counts, base=10**12)


def test_finish_leaves_heaps_alone_and_new_heaps_shape():
    D, I = exact.new_heaps(4, 3)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (4, 3)
    assert np.isneginf(D).all() and (I == -1).all()
    rng = np.random.default_rng(12)
    xq, xb = make(rng, 30, 5, 4)
    exact.search_into(xq, xb, exact.row_norms(xb), "l2", D, I)
    D0, I0 = D.copy(), I.copy()
    exact.finish(D, I, xq, "l2")
    np.testing.assert_array_equal(D, D0)
    np.testing.assert_array_equal(I, I0)
    assert exact.new_heaps(0, 5)[0].shape == (0, 5)


# ---------------------------------------------------------------------------------------------
# read-only inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nq", [1, 100])
@pytest.mark.parametrize("source", ["frombuffer", "memmap"])
def test_read_only_inputs(nq, source, tmp_path):
    rng = np.random.default_rng(13)
    xq, xb = make(rng, 3000, 32, nq)
    norms = exact.row_norms(xb)
    if source == "frombuffer":
        ro_xb = np.frombuffer(xb.tobytes(), dtype=np.float32).reshape(xb.shape)
        ro_norms = np.frombuffer(norms.tobytes(), dtype=np.float32)
    else:
        xb.tofile(tmp_path / "xb.f32")
        norms.tofile(tmp_path / "norms.f32")
        ro_xb = np.memmap(tmp_path / "xb.f32", dtype=np.float32, mode="r", shape=xb.shape)
        ro_norms = np.memmap(tmp_path / "norms.f32", dtype=np.float32, mode="r")
    ro_xq = np.frombuffer(xq.tobytes(), dtype=np.float32).reshape(xq.shape)
    keep = rng.random(3000) < 0.1
    ro_mask = np.frombuffer(keep.tobytes(), dtype=bool)
    ro_rows = np.frombuffer(np.flatnonzero(keep).astype(np.int64).tobytes(), dtype=np.int64)
    assert not (ro_xb.flags.writeable or ro_xq.flags.writeable or ro_norms.flags.writeable)
    np.testing.assert_allclose(exact.row_norms(ro_xb), norms, rtol=1e-6)
    for metric in METRICS:
        D, I, counts = exact.search(ro_xq, ro_xb, ro_norms, metric, 10)
        check_topk(xq, xb, metric, 10, D, I, counts)
        D, I, counts = exact.search(ro_xq, ro_xb, ro_norms, metric, 10, mask=ro_mask)
        check_topk(xq, xb, metric, 10, D, I, counts, keep)
        D, I, counts = exact.search(ro_xq, ro_xb, ro_norms, metric, 10, rows=ro_rows)
        check_topk(xq, xb, metric, 10, D, I, counts, keep)
    np.testing.assert_array_equal(np.asarray(ro_xb), xb)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(14)
    xq, xb = make(rng, 500, 16, 7)
    norms = exact.row_norms(xb)
    rows = np.arange(0, 500, 2)
    mask = rng.random(500) < 0.5
    copies = [a.copy() for a in (xq, xb, norms, rows, mask)]
    for metric in METRICS:
        for nq in (1, 7):
            exact.search(xq[:nq], xb, norms, metric, 5, rows=rows, mask=mask)
    for a, b in zip((xq, xb, norms, rows, mask), copies, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# row_norms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", [(0, 4), (1, 1), (1000, 384)])
def test_row_norms(n, d):
    x = np.random.default_rng(15).standard_normal((n, d), dtype=np.float32)
    out = exact.row_norms(x)
    assert out.dtype == np.float32 and out.shape == (n,)
    np.testing.assert_allclose(out, np.linalg.norm(x.astype(np.float64), axis=1), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# wrapper validation
# ---------------------------------------------------------------------------------------------


def _args(nq=2, n=10, d=4):
    rng = np.random.default_rng(16)
    xq, xb = make(rng, n, d, nq)
    return xq, xb, exact.row_norms(xb)


def test_validation_errors():
    xq, xb, norms = _args()
    with pytest.raises(TypeError, match="xq.*float32.*float64"):
        exact.search(xq.astype(np.float64), xb, norms, "dot", 3)
    with pytest.raises(TypeError, match="xb.*float32"):
        exact.search(xq, xb.astype(np.float16), norms, "dot", 3)
    with pytest.raises(TypeError, match="norms.*float32"):
        exact.search(xq, xb, norms.astype(np.float64), "dot", 3)
    with pytest.raises(TypeError, match="xq.*ndarray"):
        exact.search(xq.tolist(), xb, norms, "dot", 3)
    with pytest.raises(ValueError, match="xb.*C-contiguous"):
        exact.search(xq, np.asfortranarray(xb), norms, "dot", 3)
    with pytest.raises(ValueError, match="xq.*C-contiguous"):
        exact.search(np.asfortranarray(np.tile(xq, (1, 2)))[:, :4], xb, norms, "dot", 3)
    with pytest.raises(ValueError, match="xq.*2-D"):
        exact.search(xq[0], xb, norms, "dot", 3)
    with pytest.raises(ValueError, match=r"xb.*\(nb, 4\)"):
        exact.search(xq, xb[:, :3].copy(), norms, "dot", 3)
    with pytest.raises(ValueError, match="norms.*10"):
        exact.search(xq, xb, norms[:5], "dot", 3)
    with pytest.raises(ValueError, match="metric.*'euclid'"):
        exact.search(xq, xb, norms, "euclid", 3)
    with pytest.raises(ValueError, match="metric"):
        exact.finish(*exact.new_heaps(2, 3), xq, None)
    for k in (0, -1):
        with pytest.raises(ValueError, match="k.*>= 1"):
            exact.search(xq, xb, norms, "dot", k)
        with pytest.raises(ValueError, match="k.*>= 1"):
            exact.new_heaps(2, k)
    with pytest.raises(TypeError):
        exact.search(xq, xb, norms, "dot", 2.5)


def test_filter_validation_errors():
    xq, xb, norms = _args()
    with pytest.raises(TypeError, match="rows.*int64"):
        exact.search(xq, xb, norms, "dot", 3, rows=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="rows.*range"):
        exact.search(xq, xb, norms, "dot", 3, rows=np.array([0, 10]))
    with pytest.raises(ValueError, match="rows.*range"):
        exact.search(xq, xb, norms, "dot", 3, rows=np.array([-1, 2]))
    with pytest.raises(ValueError, match="rows.*sorted"):
        exact.search(xq, xb, norms, "dot", 3, rows=np.array([3, 1]))
    with pytest.raises(ValueError, match="rows.*sorted"):
        exact.search(xq, xb, norms, "dot", 3, rows=np.array([1, 1]))
    with pytest.raises(ValueError, match="rows.*1-D"):
        exact.search(xq, xb, norms, "dot", 3, rows=np.array([[1, 2]]))
    with pytest.raises(TypeError, match="mask.*bool or uint8"):
        exact.search(xq, xb, norms, "dot", 3, mask=np.ones(10, dtype=np.int64))
    with pytest.raises(ValueError, match=r"mask.*\(10,\)"):
        exact.search(xq, xb, norms, "dot", 3, mask=np.ones(9, dtype=bool))
    # Other integer dtypes for rows are accepted (converted, they are small).
    D, I, counts = exact.search(xq, xb, norms, "dot", 3, rows=np.array([1, 4], dtype=np.int32))
    np.testing.assert_array_equal(counts, 2)


def test_heap_validation_errors():
    xq, xb, norms = _args()
    D, I = exact.new_heaps(2, 3)
    with pytest.raises(ValueError, match=r"D.*\(2, k\)"):
        exact.search_into(xq, xb, norms, "dot", D[:1].copy(), I[:1].copy())
    with pytest.raises(ValueError, match="I.*like D"):
        exact.search_into(xq, xb, norms, "dot", D, I[:, :2].copy())
    with pytest.raises(TypeError, match="D.*float32"):
        exact.search_into(xq, xb, norms, "dot", D.astype(np.float64), I)
    with pytest.raises(TypeError, match="I.*int64"):
        exact.search_into(xq, xb, norms, "dot", D, I.astype(np.int32))
    ro = np.frombuffer(D.tobytes(), dtype=np.float32).reshape(D.shape)
    with pytest.raises(ValueError, match="writable"):
        exact.search_into(xq, xb, norms, "dot", ro, I)
    with pytest.raises(ValueError, match="base"):
        exact.search_into(xq, xb, norms, "dot", D, I, base=-1)
    with pytest.raises(ValueError, match="xq.*rows like D"):
        exact.finish(D, I, xq[:1].copy(), "dot")
    assert np.isneginf(D).all() and (I == -1).all()  # nothing was pushed by a failed call
