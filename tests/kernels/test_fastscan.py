"""Fast-scan ADC for 4-bit codes (kernels/fastscan.py) against plain NumPy oracles.

The index-level behaviour (recall, filters, widening, both scan paths) is covered by
tests/kernels/test_adc.py, whose 4-bit specs run through fast-scan and, on its "scalar-"
paths, through the scalar scan.
"""

from __future__ import annotations

import numpy as np
import pytest

from vecstore.kernels import adc, exact, fastscan

pytestmark = pytest.mark.skipif(not fastscan.available(), reason="needs x86-64 with AVX2")

DOT, L2 = adc.DOT, adc.L2


def lists(rng, nlist=9, m=6, most=70):
    """Random list sizes (some empty, some not a multiple of 32) and 4-bit codes."""
    sizes = rng.integers(0, most, nlist)
    sizes[0] = 0
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    codes = rng.integers(0, 16, (int(offsets[-1]), m), dtype=np.uint8)
    return offsets, codes


def estimates(T, codes, offsets, qc, metric, norms):
    """The heap score each row gets from the quantized tables (float64)."""
    luts, bias, step = fastscan.quantize(T)
    q = luts.reshape(T.shape).astype(np.int64)
    sums = q[np.arange(T.shape[0])[None, :], codes].sum(1)
    ip = qc[np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))] + bias + sums * step
    return 2 * ip - norms.astype(np.float64) ** 2 if metric == L2 else ip


def test_layout_holds_every_code_in_its_block_and_lane():
    rng = np.random.default_rng(0)
    offsets, codes = lists(rng)
    codes[5, 0] = 0xF3  # a damaged code keeps its low 4 bits
    bstart, blocks = fastscan.layout(offsets, codes)
    m = codes.shape[1]
    size = fastscan.BLOCK * m // 2
    assert len(blocks) == bstart[-1] * size
    for L in range(len(offsets) - 1):
        n = offsets[L + 1] - offsets[L]
        assert bstart[L + 1] - bstart[L] == -(-n // fastscan.BLOCK)
        for r in range(n):
            at = (bstart[L] + r // 32) * size + r % 32
            got = blocks[at : at + size : 32]
            want = codes[offsets[L] + r]
            np.testing.assert_array_equal(got & 15, want[0::2] & 15)
            np.testing.assert_array_equal(got >> 4, want[1::2] & 15)


def test_quantized_tables_are_within_half_a_step():
    T = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32) * 3
    luts, bias, step = fastscan.quantize(T)
    lo = T.min(1)
    err = np.abs(T - (lo[:, None] + luts.reshape(8, 16) * np.float64(step)))
    assert err.max() <= step / 2 + 1e-5
    assert bias == pytest.approx(float(lo.sum()), rel=1e-5)
    flat, _, _ = fastscan.quantize(np.zeros((4, 16), np.float32))  # no span: all zero
    assert not flat.any()


@pytest.mark.parametrize("metric", [DOT, L2])
@pytest.mark.parametrize("masked", [False, True])
def test_scan_scores_every_row_by_its_quantized_sum(metric, masked):
    rng = np.random.default_rng(2)
    offsets, codes = lists(rng)
    n, m = codes.shape
    T = rng.standard_normal((m, 16)).astype(np.float32)
    qc = rng.standard_normal(len(offsets) - 1).astype(np.float32)
    norms = rng.random(n).astype(np.float32) + 0.5
    mask = rng.random(n) < 0.6 if masked else None
    order = rng.permutation(len(offsets) - 1).astype(np.int64)
    D, I = exact.new_heaps(1, n + 5)
    seen = fastscan.scan(
        qc, metric, order, 0, len(order), offsets, fastscan.layout(offsets, codes),
        fastscan.quantize(T), norms, mask, 100, D[0], I[0],
    )  # fmt: skip
    keep = np.ones(n, bool) if mask is None else mask
    assert seen == keep.sum()
    got = {int(i) - 100: float(s) for s, i in zip(D[0], I[0]) if i >= 0}
    assert sorted(got) == np.flatnonzero(keep).tolist()
    want = estimates(T, codes, offsets, qc, metric, norms)
    np.testing.assert_allclose([got[i] for i in sorted(got)], want[keep], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("metric", [DOT, L2])
def test_a_small_heap_keeps_the_best_estimates_and_batches_agree(metric):
    # Blocks whose best sum cannot enter the heap are skipped: the heap must still end with
    # the k best estimates, and the parallel batch kernel must match one query at a time.
    rng = np.random.default_rng(3)
    offsets, codes = lists(rng, nlist=12, m=8, most=150)
    n, m = codes.shape
    d = 2 * m
    cbt = rng.standard_normal((m, d // m, 16)).astype(np.float32)
    xq = rng.standard_normal((6, d)).astype(np.float32)
    QC = rng.standard_normal((6, len(offsets) - 1)).astype(np.float32)
    norms = rng.random(n).astype(np.float32) + 0.5
    orders = np.tile(np.arange(len(offsets) - 1, dtype=np.int64), (6, 1))
    fast = fastscan.layout(offsets, codes)
    k = 7
    D, I = exact.new_heaps(6, k)
    seen = np.zeros(6, np.int64)
    fastscan.scan_batch(
        xq, QC, metric, orders, 0, 12, offsets, fast, cbt, norms, None, 0, D, I, seen
    )
    assert (seen == n).all()
    for qi in range(6):
        T = np.empty((m, 16), np.float32)
        adc.lut(xq[qi], cbt, T)
        want = estimates(T, codes, offsets, QC[qi], metric, norms)
        kth = np.sort(want)[-k]
        assert len(set(I[qi].tolist())) == k
        assert (want[I[qi]] >= kth - 1e-4 * (1 + abs(kth))).all()
        d1, i1 = exact.new_heaps(1, k)
        fastscan.scan(
            QC[qi], metric, orders[qi], 0, 12, offsets, fast, fastscan.quantize(T), norms,
            None, 0, d1[0], i1[0],
        )  # fmt: skip
        np.testing.assert_allclose(np.sort(d1[0]), np.sort(D[qi]), rtol=1e-5, atol=1e-5)


def test_only_4bit_codes_of_an_even_count_are_fast_scanned(monkeypatch):
    assert fastscan.usable(96, 16) and fastscan.usable(2, 16)
    assert not fastscan.usable(95, 16)  # codes go in pairs
    assert not fastscan.usable(48, 256)  # 8-bit codes: the scalar scan
    assert not fastscan.usable(258, 16)  # 16-bit sums hold at most 256 x 255
    monkeypatch.setattr(fastscan, "available", lambda: False)
    assert not fastscan.usable(96, 16)


def test_numba_compiling_for_another_cpu_keeps_the_scalar_scan(monkeypatch):
    # With NUMBA_CPU_NAME set (say "generic", for portable caches) LLVM may not have AVX2,
    # and an AVX2 intrinsic it cannot select would abort the process.
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "generic")
    assert not fastscan.available.__wrapped__()
    monkeypatch.setattr(config, "CPU_NAME", "host")
    assert fastscan.available.__wrapped__()
