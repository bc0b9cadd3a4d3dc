"""Fast-scan ADC for 4-bit PQ codes: 32 rows scored at a time with SIMD byte shuffles.

With 16 centroids per sub-quantizer (``nbits=4``) a look-up table row is 16 bytes once its
entries are quantized to uint8, which is exactly what one ``pshufb`` looks up: 32 rows' codes
in one 256-bit register give 32 table entries in one instruction. The codes of each inverted
list are re-laid in blocks of 32 rows, pair-major: for each pair of sub-quantizers, 32 bytes,
one per row, holding code ``2p`` in the low nibble and ``2p + 1`` in the high one. A block's
sums accumulate in 16-bit lanes (at most 255 x m, so m <= 256), and a row's estimate is
``bias + sum * step`` (see ``quantize``): the candidates it selects are then re-ranked
exactly, as with 8-bit codes.

Numba has no shuffle operation, so ``_block_sums`` is an ``@intrinsic`` emitting LLVM's
``llvm.x86.avx2.pshuf.b``: usable only on x86-64 CPUs with AVX2 (``available()``); other
machines keep the scalar scan of ``adc.py``. Measured with ``bench/fastscan_feasibility.py``:
3-4x faster per row than that scan at the same bytes per row.

numpy + numba (+ llvmlite, which numba brings) only; compiled lazily on first use, cached.
"""

from __future__ import annotations

import functools
import platform

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .adc import L2, lut, offer

# The kernels modules whose jitted helpers this one calls, and their hashes: see exact.py.
JIT_SOURCES = {"adc": "80d8347d0b4c", "exact": "f41f649f7e2b", "heap": "e0cd3a2ed0e7"}

BLOCK = 32  # rows per block: one 256-bit register of codes, a byte per row
KSUB = 16  # centroids per sub-quantizer (4-bit codes)

_I8x16 = ir.VectorType(ir.IntType(8), 16)
_I8x32 = ir.VectorType(ir.IntType(8), 32)
_I16x32 = ir.VectorType(ir.IntType(16), 32)
_I32x32 = ir.VectorType(ir.IntType(32), 32)


@functools.cache
def available() -> bool:
    """Whether this CPU runs the shuffle kernel (x86-64 with AVX2)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    from numba.core import config

    if (config.CPU_NAME or "host") != "host":  # compiling for another CPU (NUMBA_CPU_NAME)
        return False
    from llvmlite import binding

    try:
        return bool(binding.get_host_cpu_features().get("avx2", False))
    except RuntimeError:  # features unknown: keep the scalar scan
        return False


def usable(m: int, ksub: int) -> bool:
    """Whether codes of ``m`` sub-quantizers with ``ksub`` centroids can be fast-scanned."""
    return ksub == KSUB and m > 0 and m % 2 == 0 and m <= 256 and available()


@intrinsic
def _block_sums(typingctx, blocks_t, start_t, luts_t, npairs_t, out_t):
    """out[0:32] (uint16) = per row of the block at ``blocks[start:]`` (flat uint8, 32 bytes
    per sub-quantizer pair), the sum over pairs p of ``luts[32p + low nibble]`` and
    ``luts[32p + 16 + high nibble]`` (luts: the (m, 16) uint8 tables, flat); returns the
    largest of the 32 sums."""
    sig = types.uint16(blocks_t, start_t, luts_t, npairs_t, out_t)

    def codegen(context, builder, signature, args):
        blocks, start, luts, npairs, out = args
        codes = context.make_array(blocks_t)(context, builder, blocks).data
        tables = context.make_array(luts_t)(context, builder, luts).data
        dest = context.make_array(out_t)(context, builder, out).data
        pshufb = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I8x32, [_I8x32, _I8x32]), "llvm.x86.avx2.pshuf.b"
        )
        umax = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.IntType(16), [_I16x32]),
            "llvm.vector.reduce.umax.v32i16",
        )
        low4 = ir.Constant(_I8x32, [15] * 32)
        four = ir.Constant(_I8x32, [4] * 32)
        # pshufb looks up within each 128-bit lane: a 16-entry table goes in both lanes
        both = ir.Constant(_I32x32, list(range(16)) * 2)
        stride = ir.Constant(npairs.type, 32)
        sixteen = ir.Constant(npairs.type, 16)
        base = builder.gep(codes, [start])
        acc = cgutils.alloca_once_value(builder, ir.Constant(_I16x32, None))

        def table(at):
            t = builder.load(
                builder.bitcast(builder.gep(tables, [at]), _I8x16.as_pointer()), align=1
            )
            return builder.shuffle_vector(t, t, both)

        with cgutils.for_range(builder, npairs) as loop:
            at = builder.mul(loop.index, stride)
            c = builder.load(builder.bitcast(builder.gep(base, [at]), _I8x32.as_pointer()), align=1)
            lo = builder.and_(c, low4)
            hi = builder.and_(builder.lshr(c, four), low4)
            a = builder.call(pshufb, [table(at), lo])
            b = builder.call(pshufb, [table(builder.add(at, sixteen)), hi])
            s = builder.add(builder.load(acc), builder.zext(a, _I16x32))
            builder.store(builder.add(s, builder.zext(b, _I16x32)), acc)
        total = builder.load(acc)
        builder.store(total, builder.bitcast(dest, _I16x32.as_pointer()), align=1)
        return builder.call(umax, [total])

    return sig, codegen


@njit(cache=True, nogil=True)
def _layout(offsets, codes, bstart, blocks):
    npairs = codes.shape[1] // 2
    size = BLOCK * npairs
    for L in range(offsets.shape[0] - 1):
        for i in range(offsets[L], offsets[L + 1]):
            r = i - offsets[L]
            at = (bstart[L] + r // BLOCK) * size + r % BLOCK
            for p in range(npairs):
                lo = codes[i, 2 * p] & 15
                hi = codes[i, 2 * p + 1] & 15
                blocks[at + p * BLOCK] = lo | (hi << 4)


def layout(offsets: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fast-scan blocks of one segment's lists: ``(bstart, blocks)``, list ``L`` being
    blocks ``bstart[L]:bstart[L+1]`` (its rows in order, the last block zero-padded) of
    ``blocks`` (flat uint8, 16 x m bytes a block). Codes above 15 keep their low 4 bits."""
    nrows = np.diff(offsets)
    bstart = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum((nrows + BLOCK - 1) // BLOCK, out=bstart[1:])
    blocks = np.zeros(int(bstart[-1]) * BLOCK * (codes.shape[1] // 2), dtype=np.uint8)
    if len(codes):
        _layout(offsets, codes, bstart, blocks)
    return bstart, blocks


@njit(cache=True, nogil=True)
def _quantize(T, luts):
    """uint8 tables (flat, m x 16) with T[j, s] ~ low_j + luts[16j + s] * step, one step
    for all j so sums compare; returns (sum of low_j, step)."""
    m, ksub = T.shape
    span = np.float32(0.0)
    bias = np.float32(0.0)
    for j in range(m):
        lo = T[j, 0]
        hi = T[j, 0]
        for s in range(1, ksub):
            lo = min(lo, T[j, s])
            hi = max(hi, T[j, s])
        span = max(span, hi - lo)
        bias += lo
    scale = np.float32(255.0) / span if span > 0 else np.float32(1.0)
    for j in range(m):
        lo = T[j, 0]
        for s in range(1, ksub):
            lo = min(lo, T[j, s])
        for s in range(ksub):
            luts[j * ksub + s] = np.uint8(min(255.0, np.floor((T[j, s] - lo) * scale + 0.5)))
    return bias, np.float32(1.0) / scale


def quantize(T: np.ndarray) -> tuple[np.ndarray, np.float32, np.float32]:
    """A float look-up table (m, 16) as ``(luts, bias, step)`` (see ``_quantize``)."""
    luts = np.empty(T.size, dtype=np.uint8)
    bias, step = _quantize(np.ascontiguousarray(T, dtype=np.float32), luts)
    return luts, bias, step


@njit(cache=True, nogil=True)
def _scan(qc, metric, order, lo, hi, offsets, bstart, blocks, luts, bias, step, norms, mask,
          has_mask, base, D, I):  # fmt: skip
    """Scan lists order[lo:hi] into heap D/I from their blocks; returns the rows seen that
    pass the mask. For inner-product scores a block is skipped when its largest sum cannot
    beat the heap's worst."""
    npairs = luts.shape[0] // (2 * KSUB)
    size = BLOCK * npairs
    sums = np.empty(BLOCK, dtype=np.uint16)
    seen = 0
    for o in range(lo, hi):
        L = order[o]
        first, end = offsets[L], offsets[L + 1]
        b0 = bias + qc[L]
        for b in range(bstart[L], bstart[L + 1]):
            top = _block_sums(blocks, b * size, luts, npairs, sums)
            row = first + (b - bstart[L]) * BLOCK
            n = min(BLOCK, end - row)
            if not has_mask:
                seen += n
            if metric != L2 and b0 + np.float32(top) * step <= D[0]:
                if has_mask:
                    for r in range(n):
                        seen += mask[row + r]
                continue
            for r in range(n):
                i = row + r
                if has_mask:
                    if not mask[i]:
                        continue
                    seen += 1
                offer(metric, b0 + np.float32(sums[r]) * step, norms, i, base, D, I)
    return seen


def scan(qc, metric, order, lo, hi, offsets, fast, tables, norms, mask, base, D, I) -> int:
    """``adc.scan_lists`` for one query over fast-scan blocks ``fast`` (``layout``) with the
    quantized tables ``tables`` (``quantize``); returns the rows seen that pass ``mask``."""
    bstart, blocks = fast
    luts, bias, step = tables
    has_mask = mask is not None
    m = mask if has_mask else np.zeros(0, dtype=np.bool_)
    return _scan(qc, metric, order, lo, hi, offsets, bstart, blocks, luts, bias, step, norms, m,
                 has_mask, base, D, I)  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def _scan_batch(xq, QC, metric, orders, lo, hi, offsets, bstart, blocks, cbt, norms, mask,
                has_mask, base, D, I, seen):  # fmt: skip
    """``_scan`` for every query, in parallel, each building its own tables."""
    m, ksub = cbt.shape[0], cbt.shape[2]
    for qi in prange(xq.shape[0]):
        T = np.empty((m, ksub), dtype=np.float32)
        lut(xq[qi], cbt, T)
        luts = np.empty(m * ksub, dtype=np.uint8)
        bias, step = _quantize(T, luts)
        seen[qi] += _scan(QC[qi], metric, orders[qi], lo, hi, offsets, bstart, blocks, luts,
                          bias, step, norms, mask, has_mask, base, D[qi], I[qi])  # fmt: skip


def scan_batch(xq, QC, metric, orders, lo, hi, offsets, fast, cbt, norms, mask, base, D, I, seen):
    """``scan`` for a batch of queries (unit-normalised for cosine), in parallel: their
    centroid products QC (nq, nlist), lists ``orders`` (nq, >= hi), heaps D/I (nq, kc)."""
    bstart, blocks = fast
    has_mask = mask is not None
    m = mask if has_mask else np.zeros(0, dtype=np.bool_)
    _scan_batch(xq, QC, metric, orders, lo, hi, offsets, bstart, blocks, cbt, norms, m,
                has_mask, base, D, I, seen)  # fmt: skip
