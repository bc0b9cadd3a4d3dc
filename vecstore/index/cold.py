"""The first queries of a process: answered with NumPy and BLAS (``kernels/blas.py``) while
a background thread loads the Numba kernels.

Loading the kernels from Numba's disk cache costs about 0.3 s in a fresh process (importing
numba, then linking each cached kernel through LLVM), and compiling them after a fresh install
about 10 s; one exact query over 100k x 384 rows costs some 10-20 ms with BLAS. So the first
query of a process is answered by BLAS, and then starts a daemon thread that runs the same
query through the kernels (which loads exactly the specialisations queries use); queries take
the kernels once it has finished. ANN queries take NumPy walks of the same index meanwhile:
IVF and IVF-PQ probe the same lists and re-rank the same candidates (``kernels/blas_ivf.py``),
HNSW walks the same graph (``kernels/blas_graph.py``). Both paths give the same rows (apart
from float32 rounding). ``VECSTORE_COLD_START=0`` turns this off (every query waits for the
kernels); ``VECSTORE_COLD_START=numpy`` keeps every query on the NumPy path and never loads
the kernels (for tests and debugging). Imports numba only in that thread, never itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..kernels import blas, blas_graph, blas_ivf

#: Seconds the loading thread waits before it starts: importing numba holds the GIL, and the
#: query that started it should return first.
LOAD_DELAY = 0.05
#: Scores held at once (nq x rows per BLAS call): 16 MiB, whatever the batch.
BLOCK_SCORES = 1 << 22
#: A segment's first scan checksums then scores its rows a block at a time, in two threads,
#: each block still in the CPU cache when it is scored. Blocks are kept under this many
#: products (queries x rows x dim): below it OpenBLAS runs a product on the calling thread;
#: above it wakes its own threads for each call, and two Python threads doing that at once
#: were 10-20x slower here (0.4-0.8 s instead of 30 ms for 115k x 384 on a loaded machine).
SERIAL_BLAS_PRODUCTS = 250_000
#: ... so blocks shrink as batches grow: batches of more queries verify first, then scan.
FUSED_QUERIES = 8

_lock = threading.Lock()
_MODE = os.environ.get("VECSTORE_COLD_START", "1")
_state: dict = {"ready": _MODE == "0", "thread": None}


def ready() -> bool:
    """Whether the kernels have loaded (every query then takes them)."""
    return _state["ready"]


def warming() -> bool:
    """Whether the background thread is loading the kernels now."""
    thread = _state["thread"]
    return thread is not None and thread.is_alive()


def wait(timeout: float | None = None) -> bool:
    """Wait for the background load (if one was started); return ``ready()``."""
    thread = _state["thread"]
    if thread is not None:
        thread.join(timeout)
    return ready()


def warm(run: Callable[[], object]) -> None:
    """Start, once per process, the daemon thread that calls ``run`` (a query through the
    kernels) and then marks the kernels ready, whether ``run`` succeeded or not (a query
    that fails through the kernels fails the same way on the caller's thread)."""
    with _lock:
        if _state["ready"] or _state["thread"] is not None or _MODE == "numpy":
            return

        def load() -> None:
            try:
                time.sleep(LOAD_DELAY)
                run()
            except Exception:  # noqa: BLE001 - reported by the next query, on its own thread
                pass
            finally:
                _state["ready"] = True

        thread = threading.Thread(target=load, name="vecstore-kernels", daemon=True)
        _state["thread"] = thread
        thread.start()


def verifying(snap) -> Callable[[], None]:
    """Start ``snap.verify()`` (the checksums of segments mapped unverified) on a thread, so
    an ANN query that reads a few rows of them runs meanwhile; return the function that
    waits for it and raises what it raised (``CorruptStoreError``). Call it before using
    anything the query computed."""
    if all(p.check is None or p.check.done for p in snap.parts):
        return lambda: None
    failed: list[BaseException] = []

    def run() -> None:
        try:
            snap.verify()
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="vecstore-verify", daemon=True)
    thread.start()

    def join() -> None:
        thread.join()
        if failed:
            raise failed[0]

    return join


def search(
    parts: Sequence,
    xq: np.ndarray,
    metric: str,
    k: int,
    allowed: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``flat.search`` with BLAS: exact top-k over ``parts`` (each with ``vectors``,
    ``norms``, ``rids``, ``alive``), returning ``(scores, rids, counts)`` alike."""
    qa = blas.query_terms(xq, metric)
    step = max(1024, BLOCK_SCORES // max(1, len(xq)))
    Ds, Is = [], []
    for i, part in enumerate(parts):
        if part.check is not None:
            # a larger batch (or a filter) verifies first, then scans
            if allowed is None and len(xq) <= FUSED_QUERIES:
                _checked_scan(part, xq, metric, qa, k, Ds, Is)
                continue
            part.check.run()
        rows = None if allowed is None else allowed[i]
        if rows is not None:
            if not len(rows):
                continue
            for lo in range(0, len(rows), step):
                at = rows[lo : lo + step]
                S = blas.scores(xq, part.vectors[at], part.norms[at], metric, qa)
                D, I = blas.topk(S, part.rids[at], k)
                Ds.append(D)
                Is.append(I)
            continue
        n = len(part.vectors)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            S = blas.scores(xq, part.vectors[lo:hi], part.norms[lo:hi], metric, qa)
            if part.alive is not None:
                S[:, ~part.alive[lo:hi]] = -np.inf
            D, I = blas.topk(S, part.rids[lo:hi], k)
            Ds.append(D)
            Is.append(I)
    if not Ds:
        D = np.zeros((len(xq), 0), dtype=np.float32)
        I = np.zeros((len(xq), 0), dtype=np.int64)
    else:
        D, I = blas.best(np.concatenate(Ds, axis=1), np.concatenate(Is, axis=1), k)
    return blas.finish(D, I, xq, metric, k)


def _checked_scan(part, xq, metric, qa, k, Ds, Is) -> None:
    """Scan a segment whose checksum is still to verify (``part.check``) while verifying it,
    each block of rows checksummed then scored while it is in the CPU cache, in two threads
    (CRC-32 and BLAS release the GIL): the rows are read from memory once, not twice. Raises
    ``CorruptStoreError`` (before any score is used) when the segment is damaged."""
    S = np.empty((len(xq), len(part.vectors)), dtype=np.float32)

    def block(lo: int, hi: int) -> None:
        S[:, lo:hi] = blas.scores(xq, part.vectors[lo:hi], part.norms[lo:hi], metric, qa)

    nq, d = xq.shape
    part.check.scan(block, max(64, SERIAL_BLAS_PRODUCTS // max(1, nq * d)))
    if part.alive is not None:
        S[:, ~part.alive] = -np.inf
    D, I = blas.topk(S, part.rids, k)
    Ds.append(D)
    Is.append(I)


def _scan(xq, metric, qa, vectors, norms, rows, mask, base, k, Ds, Is) -> int:
    """Exact top-k candidate lists (heap scores, labels ``base + row``) of the rows ``rows``
    of one block (or all its rows but those ``mask`` drops, when ``rows`` is None), appended
    to ``Ds``/``Is``; returns the rows scored."""
    step = max(1024, BLOCK_SCORES // max(1, len(xq)))
    if rows is not None:
        for lo in range(0, len(rows), step):
            at = rows[lo : lo + step]
            S = blas.scores(xq, vectors[at], norms[at], metric, qa)
            D, I = blas.topk(S, at + base, k)
            Ds.append(D)
            Is.append(I)
        return len(rows)
    n = len(vectors)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        S = blas.scores(xq, vectors[lo:hi], norms[lo:hi], metric, qa)
        if mask is not None:
            S[:, ~mask[lo:hi]] = -np.inf
        D, I = blas.topk(S, np.arange(lo + base, hi + base, dtype=np.int64), k)
        Ds.append(D)
        Is.append(I)
    return n if mask is None else int(np.count_nonzero(mask))


def _merge(Ds, Is, xq, metric, k):
    if not Ds:
        D = np.zeros((len(xq), 0), dtype=np.float32)
        I = np.zeros((len(xq), 0), dtype=np.int64)
    else:
        D, I = blas.best(np.concatenate(Ds, axis=1), np.concatenate(Is, axis=1), k)
    return blas.finish(D, I, xq, metric, k)


def search_ivf(
    parts: Sequence[tuple],
    model,
    xq: np.ndarray,
    metric: str,
    k: int,
    *,
    nprobe: int | None = None,
    refine: int | None = None,
    masks: Sequence[np.ndarray | None] | None = None,
    exact_parts: Sequence[tuple] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ivf.search`` with NumPy: the same arguments (``model`` an ``ivf.Model``), labels and
    ``(D, I, counts)``. A single query probes with the int8 centroids, a batch with the
    float32 ones, as the kernels do; lists are probed ``nprobe`` at a time, then more (twice
    as many each round) while fewer than ``k * refine`` searchable rows were seen; PQ
    candidates (the ``k * refine`` best ADC estimates over all indexed parts) are re-ranked
    with exact scores."""
    nq = len(xq)
    nlist = model.nlist
    width = max(1, min(nlist, nprobe or model.nprobe))
    refine = refine or model.refine
    pq = model.codebooks.size > 0
    kc = k * refine if pq else k
    masks = list(masks) if masks is not None else [None] * len(parts)
    bases, acc = [], 0
    for p in [*parts, *exact_parts]:
        bases.append(acc)
        acc += len(p[0])
    qa = blas.query_terms(xq, metric)
    Ds, Is = [], []
    seen0 = 0
    for (xb, norms, rows, mask), base in zip(exact_parts, bases[len(parts) :]):
        if len(xb) and (rows is None or len(rows)):
            seen0 += _scan(xq, metric, qa, xb, norms, rows, mask, base, k, Ds, Is)
    qn = blas_ivf.normalize(xq, metric)
    if nq == 1:
        qc = blas_ivf.centroid_products(
            qn, model.centroids, model.centroids_i8, model.centroid_scales
        )
    else:
        qc = blas_ivf.centroid_products(qn, model.centroids)
    orders = blas_ivf.list_order(blas_ivf.list_rank(qc, metric, model.centroid_norms2))
    one = np.ones(1, dtype=np.float32) if metric != "l2" else np.full(1, 2.0, np.float32)
    QD = np.full((nq, k), -np.inf, dtype=np.float32)
    QI = np.full((nq, k), -1, dtype=np.int64)
    for qi in range(nq if parts else 0):
        q = qn[qi]
        T = blas_ivf.table(q, model.codebooks) if pq else None
        scores, labels, rows_of = [], [], []
        seen, lo, hi = seen0, 0, width
        while True:
            lists = orders[qi, lo:hi]
            for (xb, norms, offsets, codes), mask, base in zip(parts, masks, bases):
                rows, row_lists = blas_ivf.list_rows(offsets, lists)
                if mask is not None:
                    keep = mask[rows]
                    rows, row_lists = rows[keep], row_lists[keep]
                seen += len(rows)
                if not len(rows):
                    continue
                if pq:
                    s = blas_ivf.adc_scores(T, codes, rows, row_lists, qc[qi], metric, norms)
                else:
                    s = blas.scores(q[None], xb[rows], norms[rows], metric, one)[0]
                scores.append(s)
                labels.append(rows + base)
                rows_of.append(np.full(len(rows), base, dtype=np.int64))
            if hi >= nlist or seen >= kc:
                break
            lo, hi = hi, min(nlist, 2 * hi)
        if not scores:
            continue
        s = np.concatenate(scores)
        lab = np.concatenate(labels)
        D, I = blas.topk(s[None], lab, kc)
        if pq:  # exact scores of the candidates, from the segment each falls in
            I = I[0][I[0] >= 0]
            cs, cl = [], []
            for (xb, norms, _, _), base in zip(parts, bases):
                inside = I[(I >= base) & (I < base + len(xb))]
                if len(inside):
                    r = np.sort(inside - base)
                    cs.append(blas.scores(q[None], xb[r], norms[r], metric, one)[0])
                    cl.append(r + base)
            D, I = blas.topk(np.concatenate(cs)[None], np.concatenate(cl), k)
        c = D.shape[1]
        QD[qi, :c], QI[qi, :c] = D[0], I[0]
    Ds.append(QD)
    Is.append(QI)
    return _merge(Ds, Is, xq, metric, k)


def search_graph(
    parts: Sequence,
    xq: np.ndarray,
    metric: str,
    k: int,
    ef: int,
    allowed: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``graph.search`` with NumPy: the same arguments, labels and ``(D, I, counts)``. A part
    with a graph is walked (``blas_graph.search``) unless scanning a filter's kept rows is
    cheaper (``graph.exact_is_cheaper``); a walk that finds fewer than ``min(k, kept rows)``
    is redone exactly on that part."""
    from .graph import exact_is_cheaper

    ef = max(ef, k)
    qa = blas.query_terms(xq, metric)
    Ds, Is = [], []
    base = 0
    for i, part in enumerate(parts):
        n = part.vectors.shape[0]
        rows = None if allowed is None else allowed[i]
        g = part.graph
        if n == 0 or (rows is not None and rows.size == 0):
            base += n
            continue
        if g is None or (rows is not None and exact_is_cheaper(rows.size, n, ef)):
            mask = part.alive if rows is None else None
            _scan(xq, metric, qa, part.vectors, part.norms, rows, mask, base, k, Ds, Is)
            base += n
            continue
        if rows is None:
            mask = part.alive
            matches = n if mask is None else int(np.count_nonzero(mask))
        else:
            mask = np.zeros(n, dtype=np.bool_)
            mask[rows] = True
            matches = rows.size
        QD = np.full((len(xq), k), -np.inf, dtype=np.float32)
        QI = np.full((len(xq), k), -1, dtype=np.int64)
        for qi in range(len(xq)):
            D, I = blas_graph.search(xq[qi], metric, part.vectors, g.w, g.c, (g.slot, g.H),
                                     g.L0, g.UP, g.entry, g.top, ef, mask)  # fmt: skip
            if len(D) < min(k, matches):
                sub_D, sub_I = [], []
                _scan(xq[qi : qi + 1], metric, qa[qi : qi + 1], part.vectors, part.norms,
                      rows, mask if rows is None else None, base, k, sub_D, sub_I)  # fmt: skip
                D, I = blas.best(np.concatenate(sub_D, axis=1), np.concatenate(sub_I, axis=1), k)
                D, I = D[0], I[0]
            else:
                D, I = D[:k], I[:k] + base
            QD[qi, : len(D)], QI[qi, : len(I)] = D, I
        Ds.append(QD)
        Is.append(QI)
        base += n
    return _merge(Ds, Is, xq, metric, k)
