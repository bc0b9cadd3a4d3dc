"""Quantizer training kernels against NumPy oracles: list assignment, k-means, PQ codebooks
and PQ encoding."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import clustered
from vecstore.kernels import quantize

DIMS = (8, 64, 384)


# ---------------------------------------------------------------------------------------------
# oracles
# ---------------------------------------------------------------------------------------------


def sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(n, k) float64 squared L2 distances."""
    x = x.astype(np.float64)
    c = c.astype(np.float64)
    return np.maximum((x * x).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * x @ c.T, 0.0)


def inertia(x: np.ndarray, c: np.ndarray) -> float:
    return float(sq_dists(x, c).min(1).sum())


def assert_nearest(x: np.ndarray, c: np.ndarray, labels: np.ndarray) -> None:
    """``labels`` picks a nearest centroid of every row: the oracle's argmin, or (ties aside,
    which float32 rounding may break either way) one at the same distance."""
    D = sq_dists(x, c)
    best = D.min(1)
    got = D[np.arange(len(x)), labels]
    scale = 1e-5 * (
        1.0 + (x.astype(np.float64) ** 2).sum(1) + (c.astype(np.float64) ** 2).sum(1).max()
    )
    assert (got - best <= scale).all(), (
        f"not the nearest centroid, worst excess {np.max(got - best)}"
    )
    margin = np.sort(D, 1)[:, 1] - best if c.shape[0] > 1 else np.full(len(x), np.inf)
    clear = margin > scale
    np.testing.assert_array_equal(labels[clear], D.argmin(1)[clear])


# ---------------------------------------------------------------------------------------------
# assign
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n,k", [(1, 1), (50, 7), (5000, 33)])
def test_assign_is_the_nearest_centroid(d, n, k, rng):
    # 5000 rows span more than one of assign's BLAS tiles (4096 rows).
    x = rng.standard_normal((n, d), dtype=np.float32)
    c = rng.standard_normal((k, d), dtype=np.float32)
    labels = quantize.assign(x, c)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    assert ((labels >= 0) & (labels < k)).all()
    assert_nearest(x, c, labels)


def test_assign_zero_rows_and_zero_vectors(rng):
    c = rng.standard_normal((6, 8), dtype=np.float32)
    assert quantize.assign(np.zeros((0, 8), np.float32), c).shape == (0,)
    z = np.zeros((3, 8), np.float32)
    np.testing.assert_array_equal(
        quantize.assign(z, c), np.argmin((c.astype(np.float64) ** 2).sum(1))
    )


def test_assign_rejects_mismatched_dims(rng):
    with pytest.raises(ValueError):
        quantize.assign(rng.standard_normal((4, 8), dtype=np.float32), np.ones((3, 16), np.float32))


# ---------------------------------------------------------------------------------------------
# kmeans
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [8, 64])  # both sides of kmeans' small-dimension kernel (d <= 32)
def test_kmeans_deterministic_for_a_seed(d):
    x = clustered(3000, d, clusters=16, seed=1)
    a = quantize.kmeans(x, 24, niter=5, seed=7)
    b = quantize.kmeans(x, 24, niter=5, seed=7)
    assert a.dtype == np.float32 and a.shape == (24, d)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, quantize.kmeans(x, 24, niter=5, seed=8))


@pytest.mark.parametrize("d", [8, 64])
@pytest.mark.parametrize("k", [16, 64])
def test_kmeans_no_empty_clusters_on_clustered_data(d, k):
    x = clustered(4000, d, clusters=16, seed=2)
    c = quantize.kmeans(x, k, niter=10, seed=0)
    assert np.isfinite(c).all()
    counts = np.bincount(quantize.assign(x, c), minlength=k)
    assert counts.min() > 0, f"empty clusters: {np.flatnonzero(counts == 0)}"


@pytest.mark.parametrize("d", [8, 64])
def test_kmeans_inertia_falls_from_the_initialisation(d):
    x = clustered(3000, d, clusters=16, seed=3)
    # niter=0 returns the sampled initialisation itself.
    curve = [inertia(x, quantize.kmeans(x, 32, niter=it, seed=5)) for it in (0, 1, 2, 5, 10)]
    assert curve[-1] < 0.9 * curve[0], curve
    # Lloyd's iterations never increase the inertia (up to float32 centroid rounding).
    assert all(b <= a * (1 + 1e-5) for a, b in zip(curve, curve[1:])), curve


def test_kmeans_edge_cases(rng):
    x = rng.standard_normal((5, 8), dtype=np.float32)
    # k == n: every row is its own centroid; k == 1: the mean.
    c = quantize.kmeans(x, 5, seed=0)
    np.testing.assert_allclose(sq_dists(x, c).min(1), 0.0, atol=1e-10)
    np.testing.assert_allclose(quantize.kmeans(x, 1, seed=0)[0], x.mean(0), rtol=1e-5, atol=1e-6)
    for k in (0, 6):
        with pytest.raises(ValueError):
            quantize.kmeans(x, k)
    # Duplicates and zero vectors: fewer distinct points than k must not break anything.
    dup = np.repeat(np.eye(3, 8, dtype=np.float32), 50, axis=0)
    c = quantize.kmeans(dup, 8, seed=1)
    assert c.shape == (8, 8) and np.isfinite(c).all()
    assert sq_dists(dup, c).min(1).max() < 1e-6
    z = quantize.kmeans(np.zeros((40, 8), np.float32), 4, seed=0)
    np.testing.assert_array_equal(z, 0.0)


# ---------------------------------------------------------------------------------------------
# product quantisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d,m", [(8, 1), (8, 4), (8, 8), (64, 8), (64, 16), (384, 48)])
@pytest.mark.parametrize("ksub", [16, 256])
def test_pq_encode_is_the_nearest_sub_centroid(d, m, ksub, rng):
    # 1100 rows: more than one of the encoder's parallel chunks (1024 rows).
    r = rng.standard_normal((1100, d), dtype=np.float32)
    cb = rng.standard_normal((m, ksub, d // m), dtype=np.float32)
    codes = quantize.pq_encode(r, cb)
    assert codes.dtype == np.uint8 and codes.shape == (1100, m)
    dsub = d // m
    for j in range(m):
        assert_nearest(r[:, j * dsub : (j + 1) * dsub], cb[j], codes[:, j].astype(np.int64))


def test_pq_encode_shapes(rng):
    cb = rng.standard_normal((2, 16, 4), dtype=np.float32)
    assert quantize.pq_encode(np.zeros((0, 8), np.float32), cb).shape == (0, 2)
    with pytest.raises(ValueError):
        quantize.pq_encode(np.zeros((3, 12), np.float32), cb)


@pytest.mark.parametrize("d,m", [(8, 2), (64, 8)])
def test_train_pq_codebooks(d, m):
    r = clustered(2000, d, clusters=8, seed=6)
    cb = quantize.train_pq(r, m, 16, seed=3)
    assert cb.dtype == np.float32 and cb.shape == (m, 16, d // m)
    np.testing.assert_array_equal(cb, quantize.train_pq(r, m, 16, seed=3))
    # Encoding and decoding loses much less than replacing each row by the mean.
    codes = quantize.pq_encode(r, cb)
    decoded = np.concatenate([cb[j][codes[:, j]] for j in range(m)], axis=1)
    err = ((r - decoded) ** 2).sum()
    assert err < 0.5 * ((r - r.mean(0)) ** 2).sum()
