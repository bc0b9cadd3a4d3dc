"""Compressed vectors: the per-segment code files of a collection created with
``vectors="float16" | "int8" | "binary"``, and the exact search that scans them.

Each segment gets one code file, written right after the segment (``encode_segment``) and
published with it: float16 copies of the rows, SQ8 codes with the segment's own per-dimension
range (as Lucene trains its quantiles per segment), or sign bits of the rows less the
segment's mean. A query scans the codes of every segment for ``k x oversample`` candidates
each, then re-ranks those from the float32 originals (read with ``pread``, not mapped in) in
one exact scan with the pending rows: the result is exact over the candidates, its scores
exact float32 scores. Uses kernels (lazily) and storage; no SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorruptStoreError
from ..storage.annfiles import CODES_SUFFIX, IndexFileRecord
from ..storage.arrays import ArrayFile, write_arrays
from ..storage.segments import SegmentInfo, open_segment
from . import cold
from .pages import release_compiler_pages

#: Default candidates re-ranked per segment: k x this (measured on 115k x 384 MiniLM
#: vectors: recall@10 after re-ranking 1.00 for int8 at x2; binary: see BINARY_POOL) ...
OVERSAMPLE = {"float16": 2, "int8": 2, "binary": 5}
#: ... and at least this many, so a small k still sees enough candidates.
MIN_CANDIDATES = {"float16": 20, "int8": 20, "binary": 50}
#: Binary codes: the Hamming scan keeps this many times the candidates, and the query's float
#: values against their sign bits (``binary_rescore``) pick the candidates among them, so
#: fewer rows are read back in float32. Measured on 115k x 384 MiniLM vectors (300 held-out
#: queries, k=10): recall@10 0.915 re-ranking the Hamming top 100; 0.950 re-ranking 50 of a
#: Hamming top 400 (0.934 with 40, 0.963 with 60; a larger pool adds nothing).
BINARY_POOL = 8
#: Rows of a segment encoded at a time when its code file is written.
ENCODE_ROWS = 16_384


@dataclass(frozen=True, eq=False)
class Codes:
    """One segment's codes: ``kind`` "float16" (``codes`` their bits, uint16 (n, d)), "int8"
    (uint8 (n, d), with ``lo``/``scale`` float32 (d,)) or "binary" (uint64 (ceil(d/64), n),
    word-major, with ``mean`` float32 (d,))."""

    kind: str
    codes: np.ndarray
    lo: np.ndarray | None = None
    scale: np.ndarray | None = None
    mean: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes


def code_file_name(segment_name: str) -> str:
    """The code file's name for the segment file stem ``segment_name``."""
    return f"{segment_name}{CODES_SUFFIX}"


def encode_segment(directory: Path, name: str, segment: SegmentInfo, kind: str) -> IndexFileRecord:
    """Write the code file ``name`` of the just-written ``segment`` durably; return its
    catalog record. The segment is mapped and read a block at a time, and its pages
    released afterwards, so the writer holds no more than a block of it."""
    from ..kernels import compressed as kc

    seg = open_segment(directory / segment.file, segment, verify=False)
    try:
        x = seg.vectors
        n, d = x.shape
        arrays: dict[str, np.ndarray] = {}
        if kind == "float16":
            codes = np.empty((n, d), dtype=np.float16)
            for a in range(0, n, ENCODE_ROWS):
                codes[a : a + ENCODE_ROWS] = x[a : a + ENCODE_ROWS]
            arrays["codes"] = codes.view(np.uint8).reshape(n, 2 * d)
        elif kind == "int8":
            lo, scale = kc.sq8_train(x)
            arrays.update(codes=kc.sq8_encode(x, lo, scale), lo=lo, scale=scale)
        elif kind == "binary":
            mean = np.zeros(d, dtype=np.float64)
            for a in range(0, n, ENCODE_ROWS):
                mean += x[a : a + ENCODE_ROWS].sum(axis=0, dtype=np.float64)
            mean = (mean / max(n, 1)).astype(np.float32)
            # word-major (w, n): the Hamming scan runs along contiguous words of many rows
            codes = np.ascontiguousarray(kc.binary_encode(x, mean).T)
            arrays.update(codes=codes.view(np.uint8).reshape(len(codes), 8 * n), mean=mean)
        else:
            raise ValueError(f"unknown vector encoding {kind!r}")
    finally:
        seg.release_pages()
    meta = {"kind": "codes", "vectors": kind, "segment": segment.file}
    info = write_arrays(directory, name, arrays, meta)
    return IndexFileRecord(info, n, 0.0)


def load(file: ArrayFile, segment: SegmentInfo) -> Codes:
    """The codes a mapped code file holds, checked against its segment; ``CorruptStoreError``
    if they do not fit."""
    n, d = segment.count, segment.dim
    arrays, meta = file.arrays, file.meta
    kind = meta.get("vectors")
    problem = None
    if kind not in OVERSAMPLE or meta.get("segment") != segment.file:
        problem = f"it holds {meta.get('vectors')!r} codes of {meta.get('segment')!r}"
    codes = arrays.get("codes")
    out = None
    if problem is None and codes is not None and codes.dtype == np.uint8 and codes.ndim == 2:
        if kind == "float16" and codes.shape == (n, 2 * d):
            out = Codes(kind, codes.view("<u2"))
        elif kind == "int8" and codes.shape == (n, d) and _vectors(arrays, d, "lo", "scale"):
            out = Codes(kind, codes, lo=arrays["lo"], scale=arrays["scale"])
        elif (
            kind == "binary"
            and codes.shape == ((d + 63) // 64, 8 * n)
            and _vectors(arrays, d, "mean")
        ):
            out = Codes(kind, codes.view("<u8"), mean=arrays["mean"])
    if out is None:
        raise CorruptStoreError(
            f"code file {file.info.file} does not fit segment {segment.file} "
            f"({problem or 'wrong arrays or shapes'}); run `vecstore verify`"
        )
    return out


def _vectors(arrays: dict, d: int, *names: str) -> bool:
    """Whether ``arrays`` holds float32 (d,) arrays under every one of ``names``."""
    return all(
        (a := arrays.get(nm)) is not None and a.dtype == np.float32 and a.shape == (d,)
        for nm in names
    )


def candidates(
    codes: Codes,
    q: np.ndarray,
    norms: np.ndarray,
    metric: str,
    kc: int,
    rows: np.ndarray | None,
    mask: np.ndarray | None,
    *,
    engine: str = "numba",
) -> np.ndarray:
    """Sorted positions of at most ``kc`` rows of one segment that score best on its codes
    for the query ``q`` (float32 (d,)), among ``rows``/``mask`` (as ``exact.search_into``).
    ``engine="numpy"`` picks the same rows with ``kernels/blas_codes.py``, for the queries
    that run while the Numba kernels load (``index/cold.py``)."""
    if engine == "numpy":
        from ..kernels import blas_codes as kernels
    else:
        from ..kernels import compressed as kernels

    if codes.kind == "int8":
        pos, _ = kernels.sq8_candidates(
            q, codes.lo, codes.scale, codes.codes, norms, metric, kc, rows=rows, mask=mask
        )
    elif codes.kind == "binary":
        return kernels.binary_candidates(
            q, codes.mean, codes.codes, kc, BINARY_POOL * kc, rows=rows, mask=mask
        )
    else:
        pos, _ = kernels.f16_candidates(q, codes.codes, norms, metric, kc, rows=rows, mask=mask)
    return np.sort(pos)


def oversampled(kind: str, k: int, oversample: int | None) -> int:
    """Candidates per segment for top-``k``: ``k x oversample`` (default ``OVERSAMPLE``),
    at least ``MIN_CANDIDATES`` unless an oversample is given."""
    if oversample is not None:
        return k * oversample
    return max(k * OVERSAMPLE[kind], MIN_CANDIDATES[kind])


def search(
    parts: Sequence,
    codes: Sequence[Codes | None],
    xq: np.ndarray,
    metric: str,
    k: int,
    allowed: Sequence[np.ndarray] | None = None,
    *,
    oversample: int | None = None,
    engine: str = "numba",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k over ``parts`` (``flat.Part``) as ``flat.search`` returns it, reading the
    segments that have ``codes`` through them (candidates, then float32 re-ranking) and
    scanning the others (the pending rows) exactly. Candidates are read from their segment
    files with ``pread`` (``Part.read_rows``), so the float32 originals stay on disk and
    only the codes stay resident.

    Per query, the candidates of every segment and the rows of the others are gathered into
    one small block and scanned exactly once: a few hundred rows, below the size at which
    the exact kernel wakes its thread pool.

    ``engine="numpy"`` picks the candidates and re-ranks them with NumPy and BLAS alone
    (``kernels/blas_codes.py``, ``kernels/blas.py``): the same plan, without loading Numba."""
    from .flat import labels_to_rids

    numpy = engine == "numpy"
    if numpy:
        from ..kernels import blas
    else:
        from ..kernels import exact

    nq = xq.shape[0]
    OD = np.empty((nq, k), dtype=np.float32)
    OI = np.empty((nq, k), dtype=np.int64)
    counts = np.zeros(nq, dtype=np.int64)
    # per part: its first label, and the rows to consider (None: all) when it has no codes
    bases, plain = [], []
    base = 0
    for i, part in enumerate(parts):
        bases.append(base)
        base += part.vectors.shape[0]
        rows = None if allowed is None else allowed[i]
        if rows is None and part.alive is not None:
            rows = np.flatnonzero(part.alive)
        plain.append(rows)
    for qi in range(nq):
        q = xq[qi]
        blocks, norms, labels = [], [], []
        for i, part in enumerate(parts):
            n = part.vectors.shape[0]
            rows = None if allowed is None else allowed[i]
            if n == 0 or (rows is not None and rows.size == 0):
                continue
            c = codes[i]
            if c is None:
                pick = plain[i]
            else:
                mask = part.alive if rows is None else None
                kc = oversampled(c.kind, k, oversample)
                pick = candidates(c, q, part.norms, metric, kc, rows, mask, engine=engine)
            if pick is None:
                blocks.append(part.vectors)
                norms.append(part.norms)
                labels.append(np.arange(bases[i], bases[i] + n, dtype=np.int64))
            elif part.read_rows is not None and c is not None:
                blocks.append(part.read_rows(pick))
                norms.append(part.norms[pick])
                labels.append(bases[i] + pick)
            else:
                blocks.append(part.vectors[pick])
                norms.append(part.norms[pick])
                labels.append(bases[i] + pick)
        one = xq[qi : qi + 1]
        if numpy:
            D, I = np.zeros((1, 0), dtype=np.float32), np.zeros((1, 0), dtype=np.int64)
            if blocks:
                x, xn = np.concatenate(blocks), np.concatenate(norms)
                S = blas.scores(one, x, xn, metric, blas.query_terms(one, metric))
                D, I = blas.topk(S, np.concatenate(labels), k)
            D, I, got = blas.finish(D, I, one, metric, k)
            OD[qi], OI[qi], counts[qi] = D[0], I[0], got[0]
            continue
        D, I = exact.new_heaps(1, k)
        if blocks:
            x = np.concatenate(blocks) if len(blocks) > 1 else np.ascontiguousarray(blocks[0])
            xn = np.concatenate(norms) if len(norms) > 1 else np.ascontiguousarray(norms[0])
            exact.search_into(one, x, xn, metric, D, I)
        D, I, got = exact.finish(D, I, one, metric)
        if blocks:
            lab = np.concatenate(labels) if len(labels) > 1 else labels[0]
            I = np.where(I >= 0, lab[np.maximum(I, 0)], -1)
        OD[qi], OI[qi], counts[qi] = D[0], I[0], got[0]
    return OD, labels_to_rids(OI, [p.rids for p in parts]), counts


class Quick:
    """The single-query plan (``index.quick``) of a snapshot that is one segment with codes:
    its candidates in one compiled call (``candidates``), their float32 rows read back
    (``Part.read_rows``), and the exact re-ranking, scores and rids in another
    (``single.exact_one``), the same rows and scores ``search`` gives, without its per-query
    bookkeeping for several parts, filters and batches."""

    def __init__(self, part, metric: str):
        from ..kernels import single

        self.kernels = single  # imported once, not per query
        self.part = part
        self.metric = metric
        self.code = ("cosine", "dot", "l2").index(metric)
        self.none = np.zeros(1, dtype=np.uint8)  # the re-ranked rows are all live

    def search(self, xq: np.ndarray, k: int, ef: int | None, lo: float, hi: float,
               nprobe: int | None = None):  # fmt: skip
        """``(scores, rids)`` of one query ``xq`` float32 (1, d), as ``quick.Quick.search``;
        ``False`` when ``xq`` has a component outside [lo, hi] (or NaN, inf)."""
        if not cold.ready():
            return None  # plan.search answers with NumPy while the kernels load
        release_compiler_pages()  # LLVM pages a kernel load may have left mapped
        part = self.part
        c = part.packed
        pick = candidates(c, xq[0], part.norms, self.metric, oversampled(c.kind, k, None),
                          None, part.alive)  # fmt: skip
        x = part.read_rows(pick)
        R = np.empty(k, dtype=np.int64)
        R[0] = 0  # not a status, whatever the kernel leaves
        scores = self.kernels.exact_one(xq, x, part.norms[pick], self.code, self.none, False,
                                        part.rids[pick], R, lo, hi)  # fmt: skip
        if not len(scores) and k and R[0] == self.kernels.BAD_QUERY:
            return False
        return scores, R[: len(scores)].tolist()


def quick_plan(part, metric: str) -> Quick | None:
    """The single-query plan of a snapshot whose one part is ``part``, or None: a segment
    with codes whose rows can be read back by ``pread``."""
    if part.packed is None or part.read_rows is None or not len(part.vectors):
        return None
    return Quick(part, metric)
