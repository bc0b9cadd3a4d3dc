"""The fast-scan kernel alone: 4-bit codes scored 32 rows at a time, vs the scalar 8-bit scan.

    python bench/fastscan_feasibility.py [--rows 100000] [--repeats 7]

Over random codes of the same bytes per row (48), one list holding every row, a heap of 100
candidates (k=10 x refine 10), it times:

  scalar8   ``kernels.adc.scan_lists``: 48 8-bit codes a row, float32 table (48 x 256)
  fastscan4 ``kernels.fastscan``: 96 4-bit codes a row in blocks of 32 rows, uint8 tables
            (96 x 16) looked up with pshufb and summed in 16 bits

It first checks that the fast-scan heap holds the 100 best estimates of a plain NumPy sum over
the same quantized tables, then prints ns per row and the ratio (median of --repeats). Needs
an x86-64 CPU with AVX2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from vecstore.kernels import adc, exact, fastscan  # noqa: E402

HEAP = 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if not fastscan.available():
        sys.exit("this CPU has no AVX2")
    rng = np.random.default_rng(0)
    n = args.rows
    offsets = np.array([0, n], dtype=np.int64)
    order, qc, norms = np.zeros(1, np.int64), np.zeros(1, np.float32), np.ones(n, np.float32)

    codes8 = rng.integers(0, 256, (n, 48), dtype=np.uint8)
    T8 = rng.standard_normal((48, 256)).astype(np.float32)
    codes4 = rng.integers(0, 16, (n, 96), dtype=np.uint8)
    T4 = rng.standard_normal((96, 16)).astype(np.float32)
    blocks = fastscan.layout(offsets, codes4)
    tables = fastscan.quantize(T4)
    dot = adc.DOT
    q, xb = np.zeros(48, np.float32), np.zeros((0, 48), np.float32)  # unread with PQ codes

    def scalar8():
        D, I = exact.new_heaps(1, HEAP)
        adc.scan_lists(q, qc, dot, order, 0, 1, offsets, codes8, T8, xb, norms, None, 0, D[0], I[0])

    def fastscan4():
        D, I = exact.new_heaps(1, HEAP)
        fastscan.scan(qc, dot, order, 0, 1, offsets, blocks, tables, norms, None, 0, D[0], I[0])
        return I[0]

    luts, bias, step = tables
    sums = luts.reshape(96, 16).astype(np.int64)[np.arange(96)[None, :], codes4].sum(1)
    est = bias + sums * np.float64(step)
    kth = np.sort(est)[-HEAP]  # ties at the boundary may pick either row
    top = fastscan4()
    if len(set(top.tolist())) != HEAP or not (est[top] >= kth - 1e-4 * abs(kth)).all():
        sys.exit("fast-scan's heap is not the top estimates")
    times = {"scalar8": [], "fastscan4": []}
    scalar8()
    for _ in range(args.repeats):
        for name, fn in (("scalar8", scalar8), ("fastscan4", fastscan4)):
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) / n * 1e9)
    s8, f4 = statistics.median(times["scalar8"]), statistics.median(times["fastscan4"])
    print(f"{n} rows, 48 bytes each; fast-scan's top {HEAP} equal a plain sum's")
    print(f"scalar8   (48 x 8-bit codes, float tables): {s8:6.2f} ns/row")
    print(f"fastscan4 (96 x 4-bit codes, pshufb):       {f4:6.2f} ns/row  ({s8 / f4:.1f}x faster)")


if __name__ == "__main__":
    main()
