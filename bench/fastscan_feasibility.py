"""Feasibility of a 4-bit "fast-scan" PQ scan in Numba (issue 4, batch target), measured.

    python bench/fastscan_feasibility.py [--rows 100000] [--repeats 7]

Not used by vecstore yet. faiss's fast-scan IVF-PQ stores 4-bit codes in blocks of 32 rows
and scores a block with SIMD byte shuffles (pshufb), each looking up 32 rows' entries of a
16-entry uint8 table at once. Numba has no such operation, but an ``@intrinsic`` can emit
LLVM's ``llvm.x86.avx2.pshuf.b`` directly. This script does that and times, over the same
random codes and the same bytes per row (48):

  scalar8   vecstore's current scan kernel (``kernels.ivf._scan_codes``): 48 8-bit codes a
            row, float32 table (48 x 256), four rows at a time, heap of 100 candidates
  fastscan4 96 4-bit codes a row (two to a byte), blocks of 32 rows, uint8 tables (96 x 16)
            added into 16-bit sums in registers, then the same heap of 100 candidates

It checks that the fast-scan sums (and its top 100) equal a plain loop's over the same
tables, and prints ns per row and the ratio (median of --repeats). Needs an x86-64 CPU with AVX2.
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
from llvmlite import binding, ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from vecstore.kernels import ivf  # noqa: E402

BLOCK = 32  # rows per block: one 256-bit register of codes, one byte per row
HEAP = 100  # candidates kept, as k=10 x refine 10

_I8x32 = ir.VectorType(ir.IntType(8), 32)
_I16x32 = ir.VectorType(ir.IntType(16), 32)
_I32x32 = ir.VectorType(ir.IntType(32), 32)


@intrinsic
def _block_sums(typingctx, blocks_t, start_t, luts_t, npairs_t, out_t):
    """out[0:32] (uint16) = for each of a block's 32 rows, the sum over its code pairs p of
    luts[2p][low nibble] + luts[2p + 1][high nibble]; the block is the 32 * npairs bytes of
    ``blocks`` (flat uint8) from ``start``, pair-major (32 bytes, one per row, per pair), and
    ``luts`` is (2 npairs, 16) uint8, flat."""
    sig = types.void(blocks_t, start_t, luts_t, npairs_t, out_t)

    def codegen(context, builder, signature, args):
        blocks, start, luts, npairs, out = args
        codes = context.make_array(blocks_t)(context, builder, blocks).data
        tables = context.make_array(luts_t)(context, builder, luts).data
        dest = context.make_array(out_t)(context, builder, out).data
        pshufb = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I8x32, [_I8x32, _I8x32]), "llvm.x86.avx2.pshuf.b"
        )
        low4 = ir.Constant(_I8x32, [15] * 32)
        four = ir.Constant(_I8x32, [4] * 32)
        # pshufb looks up within each 128-bit lane: a 16-entry table goes in both lanes
        first = ir.Constant(_I32x32, list(range(16)) * 2)
        second = ir.Constant(_I32x32, list(range(16, 32)) * 2)
        stride = ir.Constant(npairs.type, 32)
        base = builder.gep(codes, [start])
        acc = cgutils.alloca_once_value(builder, ir.Constant(_I16x32, None))
        with cgutils.for_range(builder, npairs) as loop:
            at = builder.mul(loop.index, stride)
            c = builder.load(builder.bitcast(builder.gep(base, [at]), _I8x32.as_pointer()), align=1)
            t = builder.load(
                builder.bitcast(builder.gep(tables, [at]), _I8x32.as_pointer()), align=1
            )
            lo = builder.call(pshufb, [builder.shuffle_vector(t, t, first), builder.and_(c, low4)])
            hi = builder.call(
                pshufb,
                [builder.shuffle_vector(t, t, second), builder.and_(builder.lshr(c, four), low4)],
            )
            s = builder.add(builder.load(acc), builder.zext(lo, _I16x32))
            builder.store(builder.add(s, builder.zext(hi, _I16x32)), acc)
        builder.store(builder.load(acc), builder.bitcast(dest, _I16x32.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True)
def _scan_fast(blocks, nrows, luts, npairs, bias, inv_scale, D, I):
    """Score every row from its block sums (estimate = bias + sum / scale) into heap D/I;
    a block's rows are looked at only when its largest sum beats the heap's worst."""
    tmp = np.empty(BLOCK, dtype=np.uint16)
    size = BLOCK * npairs
    for b in range((nrows + BLOCK - 1) // BLOCK):
        _block_sums(blocks, b * size, luts, npairs, tmp)
        floor = (D[0] - bias) / inv_scale  # a sum must exceed this to enter the heap
        if tmp.max() <= floor:
            continue
        for r in range(min(BLOCK, nrows - b * BLOCK)):
            if tmp[r] > floor:
                ivf._push(D, I, bias + tmp[r] * inv_scale, b * BLOCK + r)


@njit(nogil=True)
def _sums_fast(blocks, nrows, luts, npairs, out):
    tmp = np.empty(BLOCK, dtype=np.uint16)
    for b in range((nrows + BLOCK - 1) // BLOCK):
        _block_sums(blocks, b * BLOCK * npairs, luts, npairs, tmp)
        for r in range(min(BLOCK, nrows - b * BLOCK)):
            out[b * BLOCK + r] = tmp[r]


@njit(nogil=True)
def _sums_plain(codes, luts2d, out):
    for i in range(codes.shape[0]):
        a = 0
        for j in range(codes.shape[1]):
            a += luts2d[j, codes[i, j]]
        out[i] = a


def to_blocks(codes: np.ndarray) -> np.ndarray:
    """4-bit codes (n, m), m even, as fast-scan blocks: flat uint8, block after block, each
    pair-major with one byte per row holding codes 2p (low nibble) and 2p + 1 (high)."""
    n, m = codes.shape
    nb = (n + BLOCK - 1) // BLOCK
    c = np.zeros((nb * BLOCK, m), np.uint8)
    c[:n] = codes
    c = c.reshape(nb, BLOCK, m // 2, 2)
    packed = (c[..., 0] | (c[..., 1] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed.transpose(0, 2, 1)).reshape(-1)


def quantized(T: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A float table (m, 16) as uint8 entries: T ~ bias_j + q / scale, one scale for all."""
    lo = T.min(axis=1)
    scale = 255.0 / max(float((T.max(axis=1) - lo).max()), 1e-30)
    q = np.round((T - lo[:, None]) * scale).astype(np.uint8)
    return q, float(lo.sum()), 1.0 / scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if "avx2" not in binding.get_host_cpu_features() or not binding.get_host_cpu_features()["avx2"]:
        sys.exit("this CPU has no AVX2")
    rng = np.random.default_rng(0)
    n = args.rows

    codes8 = rng.integers(0, 256, (n, 48), dtype=np.uint8)
    T8 = rng.standard_normal((48, 256)).astype(np.float32)
    offsets = np.array([0, n], dtype=np.int64)
    order, qc, norms = np.zeros(1, np.int64), np.zeros(1, np.float32), np.ones(n, np.float32)

    codes4 = rng.integers(0, 16, (n, 96), dtype=np.uint8)
    T4 = rng.standard_normal((96, 16)).astype(np.float32)
    luts, bias, inv_scale = quantized(T4)
    blocks = to_blocks(codes4)
    flat_luts = np.ascontiguousarray(luts).reshape(-1)
    sums, plain = np.empty(n, np.uint16), np.empty(n, np.int64)

    def scalar8():
        D, I = np.full(HEAP, -np.inf, np.float32), np.full(HEAP, -1, np.int64)
        ivf._scan_codes(0, qc, order, 0, 1, offsets, codes8, T8, norms, 0, D, I)

    def fastscan4():
        D, I = np.full(HEAP, -np.inf, np.float32), np.full(HEAP, -1, np.int64)
        _scan_fast(blocks, n, flat_luts, 48, np.float32(bias), np.float32(inv_scale), D, I)
        return D, I

    D, I = fastscan4()
    _sums_fast(blocks, n, flat_luts, 48, sums)
    _sums_plain(codes4, luts.astype(np.int64), plain)
    est = bias + plain * inv_scale
    kth = np.sort(est)[-HEAP]  # ties at the boundary may pick either row
    if len(set(I.tolist())) != HEAP or not (est[I] >= kth - 1e-4 * abs(kth)).all():
        sys.exit("fast-scan's heap is not the top estimates")
    if not np.array_equal(sums.astype(np.int64), plain):
        sys.exit("fast-scan sums differ from the plain loop")
    times = {"scalar8": [], "fastscan4": []}
    scalar8()
    for _ in range(args.repeats):
        for name, fn in (("scalar8", scalar8), ("fastscan4", fastscan4)):
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) / n * 1e9)
    s8, f4 = statistics.median(times["scalar8"]), statistics.median(times["fastscan4"])
    print(f"{n} rows, 48 bytes each; fast-scan sums and top {HEAP} equal a plain loop's")
    print(f"scalar8   (vecstore's scan, 48 x 8-bit): {s8:6.2f} ns/row")
    print(f"fastscan4 (pshufb, 96 x 4-bit):          {f4:6.2f} ns/row  ({s8 / f4:.1f}x faster)")


if __name__ == "__main__":
    main()
