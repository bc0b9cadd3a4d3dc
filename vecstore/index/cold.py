"""The first queries of a process: answered with NumPy and BLAS (``kernels/blas.py``) while
a background thread loads the Numba kernels.

Loading the kernels from Numba's disk cache costs about 0.3 s in a fresh process (importing
numba, then linking each cached kernel through LLVM), and compiling them after a fresh install
about 10 s; one exact query over 100k x 384 rows costs some 10-20 ms with BLAS. So the first
query of a process is answered by BLAS, and then starts a daemon thread that runs the same
query through the kernels (which loads exactly the specialisations queries use); queries take
the kernels once it has finished. Exact search gives the same rows on both paths (apart from
float32 rounding). ANN queries always take the kernels (BLAS would answer them exactly, with
other rows than the index gives). ``VECSTORE_COLD_START=0`` turns this off
(every query waits for the kernels). Imports numba only in that thread, never itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..kernels import blas

#: Seconds the loading thread waits before it starts: importing numba holds the GIL, and the
#: query that started it should return first.
LOAD_DELAY = 0.05
#: Scores held at once (nq x rows per BLAS call): 16 MiB, whatever the batch.
BLOCK_SCORES = 1 << 22

_lock = threading.Lock()
_state: dict = {"ready": os.environ.get("VECSTORE_COLD_START", "1") == "0", "thread": None}


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
        if _state["ready"] or _state["thread"] is not None:
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
