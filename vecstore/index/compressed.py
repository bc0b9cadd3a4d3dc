"""Compressed vectors: the per-segment code files of a collection created with
``vectors="float16" | "int8" | "binary"``, and the exact search that scans them.

Each segment gets one code file, written right after the segment (``encode_segment``) and
published with it: float16 copies of the rows, SQ8 codes with the segment's own per-dimension
range (as Lucene trains its quantiles per segment), or sign bits of the rows less the
segment's mean. A query scans the codes of every segment for ``k x oversample`` candidates
each, then re-ranks those from the float32 originals (mapped, so only their pages are read),
into the same heaps as the exactly scanned pending rows: the result is exact over the
candidates, its scores exact float32 scores. Uses kernels (lazily) and storage; no SQL.
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

#: Default candidates re-ranked per segment: k x this (measured on 115k x 384 MiniLM
#: vectors: recall@10 after re-ranking 1.00 for int8 at x3, 0.985 for binary at x20) ...
OVERSAMPLE = {"float16": 2, "int8": 3, "binary": 20}
#: ... and at least this many, so a small k still sees enough candidates.
MIN_CANDIDATES = {"float16": 16, "int8": 32, "binary": 200}
#: Rows decoded at a time by the float16 scan.
F16_BLOCK = 8192
#: Rows of a segment encoded at a time when its code file is written.
ENCODE_ROWS = 16_384
#: Re-ranking reads a few random float32 rows per query; once this many bytes may have been
#: faulted in since the last release, the segments' pages are released, so the originals
#: stay on disk (in the page cache) and only the codes stay resident.
RESCORE_RESIDENT_BYTES = 32 << 20


@dataclass(frozen=True, eq=False)
class Codes:
    """One segment's codes: ``kind`` "float16" (``codes`` float16 (n, d)), "int8"
    (uint8 (n, d), with ``lo``/``scale`` float32 (d,)) or "binary" (uint64 (n, ceil(d/64)),
    with ``mean`` float32 (d,))."""

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
            codes = kc.binary_encode(x, mean)
            arrays.update(codes=codes.view(np.uint8).reshape(n, 8 * codes.shape[1]), mean=mean)
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
            out = Codes(kind, codes.view("<f2"))
        elif kind == "int8" and codes.shape == (n, d) and _vectors(arrays, d, "lo", "scale"):
            out = Codes(kind, codes, lo=arrays["lo"], scale=arrays["scale"])
        elif (
            kind == "binary"
            and codes.shape == (n, 8 * ((d + 63) // 64))
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
) -> np.ndarray:
    """Sorted positions of at most ``kc`` rows of one segment that score best on its codes
    for the query ``q`` (float32 (d,)), among ``rows``/``mask`` (as ``exact.search_into``)."""
    from ..kernels import compressed as kc_

    if codes.kind == "int8":
        pos, _ = kc_.sq8_candidates(
            q, codes.lo, codes.scale, codes.codes, norms, metric, kc, rows=rows, mask=mask
        )
    elif codes.kind == "binary":
        qc = kc_.binary_encode(q[None, :], codes.mean)[0]
        pos, _ = kc_.hamming_candidates(qc, codes.codes, kc, rows=rows, mask=mask)
    else:
        pos = _f16_candidates(codes.codes, q, norms, metric, kc, rows, mask)
    return np.sort(pos)


def _f16_candidates(x16, q, norms, metric, kc, rows, mask):
    """float16 rows decoded a block at a time and scored with NumPy (no float16 in numba)."""
    n = x16.shape[0]
    sel = np.arange(n) if rows is None else rows
    if mask is not None:
        sel = sel[mask[sel]]
    scores = np.empty(len(sel), dtype=np.float32)
    for a in range(0, len(sel), F16_BLOCK):
        s = sel[a : a + F16_BLOCK]
        block = x16[s[0] : s[-1] + 1] if rows is None and mask is None else x16[s]
        dot = block.astype(np.float32) @ q
        nr = norms[s]
        if metric == "cosine":
            with np.errstate(divide="ignore", invalid="ignore"):
                dot = np.where(nr > 0, dot / nr, 0)
        elif metric == "l2":
            dot = 2 * dot - nr * nr
        scores[a : a + F16_BLOCK] = dot
    if len(sel) > kc:
        top = np.argpartition(-scores, kc - 1)[:kc]
        return sel[top]
    return sel


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
    pages=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k over ``parts`` (``flat.Part``) as ``flat.search`` returns it, reading the
    segments that have ``codes`` through them (candidates, then float32 re-ranking) and
    scanning the others (the pending rows) exactly. ``pages`` (a ``plan.ResidentPages``)
    is charged for the rows re-ranked."""
    from ..kernels import exact
    from .flat import labels_to_rids

    D, I = exact.new_heaps(xq.shape[0], k)
    base = 0
    rescored = 0
    for i, part in enumerate(parts):
        n = part.vectors.shape[0]
        rows = None if allowed is None else allowed[i]
        if n == 0 or (rows is not None and rows.size == 0):
            base += n
            continue
        mask = part.alive if rows is None else None
        c = codes[i]
        if c is None:
            exact.search_into(
                xq, part.vectors, part.norms, metric, D, I, rows=rows, mask=mask, base=base
            )
        else:
            want = oversampled(c.kind, k, oversample)
            for qi in range(xq.shape[0]):
                cand = candidates(c, xq[qi], part.norms, metric, want, rows, mask)
                rescored += len(cand)
                exact.search_into(
                    xq[qi : qi + 1],
                    part.vectors,
                    part.norms,
                    metric,
                    D[qi : qi + 1],
                    I[qi : qi + 1],
                    rows=cand,
                    base=base,
                )
        base += n
    if pages is not None and rescored:
        pages.charge_rescored(parts, rescored)
    D, I, counts = exact.finish(D, I, xq, metric)
    return D, labels_to_rids(I, [p.rids for p in parts]), counts
