"""The kernels behind clustering, duplicates and recommendation, against NumPy oracles."""

from __future__ import annotations

import numpy as np
import pytest

from vecstore.kernels import cluster, recommend, selfjoin

METRICS = ["cosine", "dot", "l2"]


def scores64(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """The search kernels' scores of every row of a against every row of b, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "cosine":
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        na[na == 0] = np.inf
        nb[nb == 0] = np.inf
        return (a / na[:, None]) @ (b / nb[:, None]).T
    if metric == "dot":
        return a @ b.T
    return -((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def data(n: int, d: int, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d)).astype(np.float32)
    x[n // 3] = x[n // 5] * 1.0001  # a near-copy
    x[n // 2] = 0  # a zero vector
    x[n // 4] = x[n // 5]  # an exact copy
    return x


def join(x: np.ndarray, metric: str, threshold: float, block: int):
    terms = selfjoin.row_terms(np.linalg.norm(x, axis=1).astype(np.float32), metric)
    pairs, n = selfjoin.new_pairs(4), 0  # tiny, so the arrays must grow
    for a in range(0, len(x), block):
        for b in range(a, len(x), block):
            ta = (terms[0][a : a + block], terms[1][a : a + block])
            tb = (terms[0][b : b + block], terms[1][b : b + block])
            pairs, n = selfjoin.join_blocks(
                x[a : a + block], ta, x[b : b + block], tb, metric, threshold, pairs, n,
                same=a == b, base_a=a, base_b=b,
            )  # fmt: skip
    return pairs[0][:n], pairs[1][:n], pairs[2][:n]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n,d,block", [(1, 8, 4), (300, 16, 64), (257, 7, 300)])
def test_self_join_finds_every_pair_above_the_threshold(metric, n, d, block):
    x = data(n, d)
    s = scores64(x, x, metric)
    upper = s[np.triu_indices(n, 1)]
    # a threshold between two distinct scores, so float32 rounding cannot flip a pair
    levels = np.unique(np.round(upper, 3)) if len(upper) else np.array([0.0])
    threshold = float(levels[int(len(levels) * 0.97)]) + 5e-4 if len(upper) else 0.0
    threshold = min(threshold, 0.0) if metric == "l2" else threshold
    a, b, got = join(x, metric, threshold, block)
    i, j = np.nonzero(np.triu(s >= threshold, 1))
    assert set(zip(a.tolist(), b.tolist())) == set(zip(i.tolist(), j.tolist()))
    assert (a < b).all()
    np.testing.assert_allclose(got, s[a, b], rtol=1e-4, atol=1e-4)
    if metric == "cosine" and len(got):
        assert got.max() <= 1.0


def test_self_join_l2_rejects_a_positive_threshold():
    x = data(10, 4)
    with pytest.raises(ValueError, match="l2 scores"):
        join(x, "l2", 0.5, 8)


def best_score_oracle(x, examples, npos, metric, k):
    s = scores64(x, examples, metric)
    bp = s[:, :npos].max(axis=1) if npos else np.full(len(x), -np.inf)
    bn = s[:, npos:].max(axis=1) if npos < len(examples) else np.full(len(x), -np.inf)

    def squash(v):
        with np.errstate(invalid="ignore"):  # -inf where a side has no examples: not taken
            return 0.5 * (1 + v / (1 + np.abs(v)))

    score = np.where(bp > bn, squash(bp), -squash(bn))
    order = np.argsort(-score, kind="stable")[:k]
    return score, order


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("npos,nneg", [(1, 0), (2, 1), (0, 2), (3, 3)])
def test_best_score_topk_matches_numpy(metric, npos, nneg):
    x = data(5000, 12, seed=3)  # more than a tile of rows
    examples = np.ascontiguousarray(data(npos + nneg, 12, seed=4)[: npos + nneg])
    if npos + nneg == 0:
        return
    D, I = recommend.new_heap(20)
    recommend.best_score_into(
        x, np.linalg.norm(x, axis=1).astype(np.float32), np.arange(len(x)) + 100, examples,
        npos, metric, D, I,
    )  # fmt: skip
    scores, labels = recommend.finish(D, I)
    want, order = best_score_oracle(x, examples, npos, metric, 20)
    np.testing.assert_allclose(scores, want[order], rtol=1e-5, atol=1e-6)
    # every hit is a true top-20 row (ties aside)
    assert (want[labels - 100] >= want[order[-1]] - 1e-6).all()
    assert np.all(np.diff(scores) <= 0)


def test_best_score_heap_with_fewer_rows_than_k():
    x = data(3, 4)
    D, I = recommend.new_heap(10)
    recommend.best_score_into(
        x, np.linalg.norm(x, axis=1).astype(np.float32), np.arange(3), x[:1].copy(), 1,
        "cosine", D, I,
    )  # fmt: skip
    scores, labels = recommend.finish(D, I)
    assert sorted(labels.tolist()) == [0, 1, 2] and len(scores) == 3


def test_kmeans_plus_plus_picks_distinct_spread_rows():
    r = np.random.default_rng(0)
    centres = r.standard_normal((8, 16)).astype(np.float32) * 20
    x = (centres[r.integers(0, 8, 2000)] + r.standard_normal((2000, 16))).astype(np.float32)
    idx = cluster.kmeans_plus_plus(x, 8, seed=1)
    assert len(set(idx.tolist())) == 8
    # one seed per true centre: the seeds are far apart
    nearest = np.argmin(((x[idx][:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert sorted(nearest.tolist()) == list(range(8))
    assert (cluster.kmeans_plus_plus(x, 8, seed=1) == idx).all()  # deterministic


def test_kmeans_plus_plus_with_fewer_distinct_rows_than_k():
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)
    idx = cluster.kmeans_plus_plus(x, 5, seed=0)
    assert len(idx) == 5 and len({tuple(x[i]) for i in idx}) == 3
    with pytest.raises(ValueError):
        cluster.kmeans_plus_plus(x, 13)


@pytest.mark.parametrize("spherical", [True, False])
@pytest.mark.parametrize("k", [1, 7, 64])
def test_lloyd_blocks_match_numpy_and_bounded_passes_match_full_ones(spherical, k):
    r = np.random.default_rng(2)
    x = r.standard_normal((3000, 10)).astype(np.float32)
    x[5] = 0
    c = r.standard_normal((k, 10)).astype(np.float32)
    if spherical:
        c /= np.linalg.norm(c, axis=1, keepdims=True)
    n = len(x)
    norms = np.linalg.norm(x, axis=1).astype(np.float32)
    labels = np.full(n, -1, dtype=np.int64)
    upper = np.zeros(n, dtype=np.float32)
    lower = np.zeros(n, dtype=np.float32)
    sums = np.zeros((k, 10))
    counts = np.zeros(k, dtype=np.int64)
    state = (labels, upper, lower, sums, counts)

    def run(centroids, gap=None):
        changed = 0
        for lo in range(0, n, 700):
            xb, nb = x[lo : lo + 700], norms[lo : lo + 700]
            prev = cluster.assign_block(xb, nb, centroids, spherical, *state[:3], lo, half_gap=gap)
            changed += cluster.move_sums(xb, nb, spherical, prev, labels, sums, counts, lo)
        return changed

    assert run(c) == n
    point = x / np.where(norms > 0, norms, 1)[:, None] if spherical else x
    d2 = ((point[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    want = np.argmin(d2, axis=1)
    assert (labels == want).mean() > 0.999  # float32 near-ties aside
    np.testing.assert_allclose(upper, np.sqrt(d2.min(1)), atol=2e-3)
    for j in range(k):
        np.testing.assert_allclose(sums[j], point[labels == j].sum(0), rtol=1e-5, atol=1e-4)
    assert counts.tolist() == np.bincount(labels, minlength=k).tolist()
    # a few Lloyd iterations with Hamerly's bounds give the labels of full passes
    for _ in range(4):
        new = cluster.centroids_from(sums, counts, c, spherical)
        cluster.move_bounds(labels, upper, lower, c, new)
        c = new
        run(c, cluster.half_gaps(c))
        bounded = labels.copy()
        run(c)  # a full pass from the same centroids changes nothing
        assert (labels == bounded).mean() > 0.999
        np.testing.assert_allclose(sums, [point[labels == j].sum(0) for j in range(k)], atol=1e-3)
