"""The compressed-vector kernels against NumPy oracles: SQ8 and float16 scores, sign-bit
packing and Hamming distances, and the rows/mask restrictions."""

import numpy as np
import pytest

from vecstore.kernels import compressed as kc
from vecstore.kernels.blas_codes import SQ8_DIM_BLOCK, sq8_query


def _data(rng, n=3_000, d=48):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, np.linalg.norm(x, axis=1).astype(np.float32), x[0] + 0.1


def _oracle_scores(dot, norms, metric):
    if metric == "cosine":
        return dot / norms
    if metric == "l2":
        return 2 * dot - norms * norms
    return dot


def test_sq8_roundtrip_error_is_within_half_a_step(rng):
    x, _, _ = _data(rng)
    lo, scale = kc.sq8_train(x)
    codes = kc.sq8_encode(x, lo, scale)
    err = np.abs(kc.sq8_decode(codes, lo, scale) - x)
    assert (err <= scale / 2 + 1e-5).all()


def test_sq8_constant_dimension_and_out_of_range_rows(rng):
    x, _, _ = _data(rng, n=100, d=8)
    x[:, 3] = 2.5
    lo, scale = kc.sq8_train(x)
    assert scale[3] == 1 and lo[3] == 2.5
    codes = kc.sq8_encode(np.full((1, 8), 1e6, dtype=np.float32), lo, scale)
    assert (codes == 255).all()  # clipped, never wrapped


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("n", [50, 40_000])  # serial, and parallel chunks
def test_sq8_candidates_match_the_decoded_oracle(rng, metric, n, monkeypatch):
    if n > 50:
        monkeypatch.setattr(kc, "_PARALLEL_MIN_BYTES", 0)
    x, norms, q = _data(rng, n=n, d=40)
    lo, scale = kc.sq8_train(x)
    codes = kc.sq8_encode(x, lo, scale)
    pos, s = kc.sq8_candidates(q, lo, scale, codes, norms, metric, 25)
    qi, fac, bias = sq8_query(q, lo, scale)
    exact = bias + fac * (codes.astype(np.int64) @ qi.astype(np.int64))  # integers: exact
    want = _oracle_scores(exact.astype(np.float32), norms, metric)
    assert len(pos) == 25 and (np.diff(s) <= 0).all()
    np.testing.assert_allclose(s, want[pos], rtol=1e-5, atol=1e-4)
    assert s[-1] >= np.sort(want)[-25] - 1e-4  # nothing better was left out


@pytest.mark.parametrize("d", [1, 40, 384, 5_000])
def test_sq8_query_rounding_moves_a_score_by_at_most_half_a_step_a_code(rng, d):
    x = rng.standard_normal((200, d)).astype(np.float32)
    lo, scale = kc.sq8_train(x)
    codes = kc.sq8_encode(x, lo, scale)
    q = (3 * rng.standard_normal(d)).astype(np.float32)
    qi, fac, bias = sq8_query(q, lo, scale)
    assert qi.dtype == np.int16 and np.abs(qi).max() <= 32767
    assert 255 * min(d, SQ8_DIM_BLOCK) * int(np.abs(qi).max()) < 2**31  # no int32 overflow
    rounded = bias + float(fac) * (codes.astype(np.int64) @ qi.astype(np.int64))
    decoded = kc.sq8_decode(codes, lo, scale).astype(np.float64) @ q
    room = float(fac) / 2 * codes.sum(axis=1, dtype=np.int64) * (1 + 1e-5) + 1e-3
    assert (np.abs(rounded - decoded) <= room).all()
    assert sq8_query(np.zeros(d, np.float32), lo, scale)[1] == 0  # a zero query: no weights


def test_sq8_scores_of_many_dimensions_do_not_overflow(rng):
    # every code 255 and every weight the largest: one int32 sum over 5,000 dimensions
    # would wrap; the kernel sums SQ8_DIM_BLOCK at a time
    d = 5_000
    x = np.zeros((3, d), dtype=np.float32)
    x[1:] = 1.0
    lo, scale = kc.sq8_train(x)
    codes = kc.sq8_encode(x, lo, scale)
    q = np.ones(d, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1).astype(np.float32)
    pos, s = kc.sq8_candidates(q, lo, scale, codes, norms, "dot", 3)
    np.testing.assert_allclose(s, [d, d, 0], rtol=1e-5)
    assert pos[-1] == 0


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_f16_candidates_match_the_oracle(rng, metric):
    x, norms, q = _data(rng, n=2_000, d=33)
    bits = x.astype(np.float16).view(np.uint16)
    pos, s = kc.f16_candidates(q, bits, norms, metric, 10)
    want = _oracle_scores(x.astype(np.float16).astype(np.float32) @ q, norms, metric)
    np.testing.assert_allclose(s, want[pos], rtol=1e-4, atol=1e-3)
    assert s[-1] >= np.sort(want)[-10] - 1e-3


@pytest.mark.parametrize("d", [1, 63, 64, 65, 384])
def test_binary_encode_matches_packbits(rng, d):
    x = rng.standard_normal((20, d)).astype(np.float32)
    mean = x.mean(axis=0)
    codes = kc.binary_encode(x, mean)
    assert codes.shape == (20, kc.binary_words(d))
    bits = np.packbits(x > mean, axis=1, bitorder="little")
    padded = np.zeros((20, 8 * kc.binary_words(d)), dtype=np.uint8)
    padded[:, : bits.shape[1]] = bits
    np.testing.assert_array_equal(codes.view(np.uint8), padded)


@pytest.mark.parametrize("d", [1, 7, 63, 64, 65, 384])
def test_binary_rescore_is_the_query_against_the_sign_bits(rng, d):
    x = rng.standard_normal((300, d)).astype(np.float32)
    mean = x.mean(axis=0)
    codes = np.ascontiguousarray(kc.binary_encode(x, mean).T)
    q = rng.standard_normal(d).astype(np.float32)
    pos = np.array([299, 0, 5, 5, 17], dtype=np.int64)
    got = kc.binary_rescore(q, codes, pos)
    signs = np.where(x[pos] > mean, 1.0, -1.0)
    np.testing.assert_allclose(2 * got - q.sum(), signs @ q, rtol=1e-4, atol=1e-3)
    assert kc.binary_rescore(q, codes, pos[:0]).shape == (0,)


@pytest.mark.parametrize("n", [100, 200_000])
def test_hamming_candidates_are_the_nearest(rng, n):
    words = rng.integers(0, 2**63, size=(n, 3), dtype=np.int64).astype(np.uint64)
    q = words[7].copy()
    q[0] ^= np.uint64(0b1011)  # 3 bits from row 7
    pos, s = kc.hamming_candidates(q, np.ascontiguousarray(words.T), 12)
    dist = np.unpackbits((words ^ q).view(np.uint8), axis=1).sum(axis=1)
    assert pos[0] == 7 and s[0] == -3
    np.testing.assert_array_equal(-s, dist[pos])
    assert -s[-1] <= np.sort(dist)[11]


@pytest.mark.parametrize("kc", [1, 10, 64, 5000])
def test_hamming_candidates_with_ties_rows_and_mask(rng, kc):
    # Few distinct words, so many rows tie at the cut-off distance: the candidates are kc
    # distinct allowed rows whose distances are the kc smallest, nearest first.
    n = 3000
    pool = rng.integers(0, 2**63, size=(6, 2), dtype=np.int64).astype(np.uint64)
    words = pool[rng.integers(0, 6, n)]
    q = pool[0].copy()
    dist = np.unpackbits((words ^ q).view(np.uint8), axis=1).sum(axis=1)
    rows = np.sort(rng.choice(n, 2000, replace=False)).astype(np.int64)
    mask = rng.random(n) < 0.7
    codes = np.ascontiguousarray(words.T)
    for r, m in ((None, None), (rows, None), (None, mask), (rows, mask)):
        keep = np.ones(n, dtype=bool) if r is None else np.isin(np.arange(n), r)
        if m is not None:
            keep &= m
        pos, s = kc_candidates(codes, q, kc, r, m)
        want = np.sort(dist[keep])[:kc]
        assert len(pos) == len(want) == len(set(pos.tolist()))
        assert keep[pos].all()
        np.testing.assert_array_equal(-s, dist[pos])
        np.testing.assert_array_equal(np.sort(-s), want)
        assert (np.diff(-s) >= 0).all()


def kc_candidates(codes, q, k, rows, mask):
    return kc.hamming_candidates(q, codes, k, rows=rows, mask=mask)


def test_rows_and_mask_restrict_the_candidates(rng):
    x, norms, q = _data(rng, n=500, d=16)
    lo, scale = kc.sq8_train(x)
    codes = kc.sq8_encode(x, lo, scale)
    rows = np.arange(1, 500, 2, dtype=np.int64)
    pos, _ = kc.sq8_candidates(q, lo, scale, codes, norms, "dot", 600, rows=rows)
    assert sorted(pos.tolist()) == rows.tolist()  # k beyond the rows: every allowed row
    mask = np.zeros(500, dtype=bool)
    mask[[3, 9, 27]] = True
    words = kc.binary_encode(x, x.mean(axis=0))
    pos, _ = kc.hamming_candidates(words[0], np.ascontiguousarray(words.T), 10, mask=mask)
    assert sorted(pos.tolist()) == [3, 9, 27]
    rows = np.array([3, 9, 27, 100], dtype=np.int64)
    pos, _ = kc.hamming_candidates(words[0], np.ascontiguousarray(words.T), 10, rows=rows)
    assert sorted(pos.tolist()) == [3, 9, 27, 100]
    pos, _ = kc.hamming_candidates(
        words[0], np.ascontiguousarray(words.T), 10, rows=rows, mask=mask
    )
    assert sorted(pos.tolist()) == [3, 9, 27]
    pos, _ = kc.f16_candidates(
        q, x.astype(np.float16).view(np.uint16), norms, "l2", 5, rows=np.zeros(0, np.int64)
    )
    assert len(pos) == 0


def test_wrappers_refuse_wrong_arrays(rng):
    x, norms, q = _data(rng, n=10, d=8)
    lo, scale = kc.sq8_train(x)
    with pytest.raises(ValueError):
        kc.sq8_candidates(q, lo, scale, x, norms, "dot", 3)  # float codes
    with pytest.raises(ValueError):
        kc.sq8_candidates(q[:4], lo, scale, kc.sq8_encode(x, lo, scale), norms, "dot", 3)
    with pytest.raises(ValueError):
        kc.hamming_candidates(np.zeros(2, np.uint64), np.zeros((3, 1), np.uint64), 1)


def _binary_oracle(q, mean, x, kc_, pool, keep):
    """binary_candidates by NumPy: the ``pool`` nearest allowed rows by Hamming distance of
    the sign bits (ties to the lower row), then the ``kc_`` best of those by q against
    their sign vectors (ties to the nearer in the pool)."""
    bits, qb = x > mean, q > mean
    dist = (bits != qb).sum(axis=1)
    allowed = np.flatnonzero(keep)
    near_ = allowed[np.argsort(dist[allowed], kind="stable")[:pool]]
    s = np.where(bits[near_], 1.0, -1.0) @ q.astype(np.float64)
    return np.sort(near_[np.argsort(-s, kind="stable")[:kc_]])


@pytest.mark.parametrize("d", [1, 63, 64, 65, 384])
@pytest.mark.parametrize("n", [7, 1_000, 20_000])
def test_binary_candidates_match_the_numpy_oracle(rng, d, n):
    x = rng.standard_normal((n, d)).astype(np.float32)
    mean = x.mean(axis=0)
    codes = np.ascontiguousarray(kc.binary_encode(x, mean).T)
    rows = np.sort(rng.choice(n, max(1, n // 2), replace=False)).astype(np.int64)
    mask = rng.random(n) < 0.8
    for qi in range(3):
        q = (x[qi] + 0.5 * rng.standard_normal(d)).astype(np.float32)
        for r, m in ((None, None), (rows, None), (None, mask), (rows, mask)):
            keep = np.ones(n, dtype=bool) if r is None else np.isin(np.arange(n), r)
            if m is not None:
                keep &= m
            got = kc.binary_candidates(q, mean, codes, 10, 80, rows=r, mask=m)
            want = _binary_oracle(q, mean, x, 10, 80, keep)
            if d >= 64:  # tied float scores are rare: the same rows
                np.testing.assert_array_equal(got, want)
            else:  # few bits: many rows share a sign vector, and any of the tied may come
                assert len(got) == len(want) and keep[got].all()
            assert (np.diff(got) > 0).all()


def test_binary_candidates_edge_cases(rng):
    x = rng.standard_normal((50, 70)).astype(np.float32)
    mean = x.mean(axis=0)
    codes = np.ascontiguousarray(kc.binary_encode(x, mean).T)
    q = x[3].copy()
    every = kc.binary_candidates(q, mean, codes, 100, 400)  # more asked than rows
    np.testing.assert_array_equal(every, np.arange(50))
    assert kc.binary_candidates(q, mean, codes, 0, 10).shape == (0,)
    none = np.zeros(50, dtype=bool)
    assert kc.binary_candidates(q, mean, codes, 5, 10, mask=none).shape == (0,)
    assert 3 in kc.binary_candidates(q, mean, codes, 1, 10)  # the row itself
    same = np.repeat(x[:1], 300, axis=0)  # every row ties: the first ones, in row order
    sc = np.ascontiguousarray(kc.binary_encode(same, mean).T)
    np.testing.assert_array_equal(kc.binary_candidates(q, mean, sc, 4, 9), np.arange(4))
    with pytest.raises(ValueError):
        kc.binary_candidates(q[:10], mean, codes, 5, 10)


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_numpy_candidates_match_the_kernels(rng, metric):
    # kernels/blas_codes.py, what a process runs while the kernels load: the same rows
    from vecstore.kernels import blas_codes as bc

    x, norms, q = _data(rng, n=3_000, d=70)
    rows = np.sort(rng.choice(3_000, 1_000, replace=False)).astype(np.int64)
    mask = rng.random(3_000) < 0.8
    lo, scale = kc.sq8_train(x)
    codes = kc.sq8_encode(x, lo, scale)
    bits = x.astype(np.float16).view(np.uint16)
    mean = x.mean(axis=0)
    words = np.ascontiguousarray(kc.binary_encode(x, mean).T)
    for r, m in ((None, None), (rows, None), (None, mask)):
        got, _ = bc.sq8_candidates(q, lo, scale, codes, norms, metric, 20, rows=r, mask=m)
        want, _ = kc.sq8_candidates(q, lo, scale, codes, norms, metric, 20, rows=r, mask=m)
        assert set(got.tolist()) == set(want.tolist())
        got, _ = bc.f16_candidates(q, bits, norms, metric, 20, rows=r, mask=m)
        want, _ = kc.f16_candidates(q, bits, norms, metric, 20, rows=r, mask=m)
        assert set(got.tolist()) == set(want.tolist())
        got = bc.binary_candidates(q, mean, words, 20, 160, rows=r, mask=m)
        want = kc.binary_candidates(q, mean, words, 20, 160, rows=r, mask=m)
        np.testing.assert_array_equal(got, want)


def test_binary_candidates_over_threads_match_one_thread(rng, monkeypatch):
    # codes too large for one thread go through the chunked Hamming scan: the same rows
    x = rng.standard_normal((20_000, 128)).astype(np.float32)
    mean = x.mean(axis=0)
    codes = np.ascontiguousarray(kc.binary_encode(x, mean).T)
    mask = rng.random(20_000) < 0.9
    q = (x[11] + 0.5 * rng.standard_normal(128)).astype(np.float32)
    want = kc.binary_candidates(q, mean, codes, 10, 80, mask=mask)
    monkeypatch.setattr(kc, "_PARALLEL_MIN_BYTES_BINARY", 0)
    np.testing.assert_array_equal(kc.binary_candidates(q, mean, codes, 10, 80, mask=mask), want)
