"""Keeping a collection's ANN index up to date as it is written: when to (re)train, on which
sample, and how rows are put into the inverted lists of a new segment.

The writer decides nothing about the index itself; it asks this module and publishes the
files. Pure functions over snapshots, models and catalog records; no SQL, no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..storage.annfiles import IndexFileRecord
from . import ivf, specs
from .flat import Part

#: Retrain an ANN index when the rows have grown this much since training ...
RETRAIN_GROWTH = 4
#: ... or when new rows sit this much farther from their centroids than the training sample.
RETRAIN_DRIFT = 1.5
#: Rows encoded at a time when a segment without lists is put into the model's lists.
ENCODE_BLOCK = 65_536


@dataclass(frozen=True, eq=False)
class ListedRows:
    """Rows in inverted-list order: ``order`` permutes the input rows into list order,
    ``offsets`` (nlist + 1,) delimits the lists, ``codes`` (n, m) are in input order, and
    ``err`` is the summed coarse residual of the rows (what drift is measured by)."""

    order: np.ndarray
    offsets: np.ndarray
    codes: np.ndarray
    err: float


def training_due(
    spec: specs.Spec,
    nrows: int,
    model: IndexFileRecord | None,
    lists: Mapping[int, IndexFileRecord],
) -> bool:
    """Whether to train now: the collection has reached the spec's ``min_rows`` and has no
    model yet, or its rows have grown ``RETRAIN_GROWTH``-fold since training, or their coarse
    residuals have drifted ``RETRAIN_DRIFT``-fold above the training sample's."""
    threshold = specs.min_rows(spec)
    if threshold is None or nrows < threshold:
        return False
    if model is None:
        return True
    grown = nrows >= RETRAIN_GROWTH * model.nrows
    indexed = sum(r.nrows for r in lists.values())
    mean_err = sum(r.err for r in lists.values()) / max(indexed, 1)
    drifted = indexed >= model.nrows // 2 and mean_err > RETRAIN_DRIFT * model.err
    return grown or drifted


def training_sample(
    spec: specs.Spec, nrows: int, parts: Mapping[int, Part], live: np.ndarray
) -> np.ndarray:
    """A uniform sample of the live rows ``live`` (rid, seg, pos), large enough to train
    ``spec`` on ``nrows`` rows, in random order (``ivf.train`` holds out its last rows)."""
    nlist = spec.nlist or specs.default_nlist(nrows)
    want = nlist * specs.TRAIN_POINTS_PER_LIST + ivf.TUNE_QUERIES
    if isinstance(spec, specs.IVFPQ):
        want = max(want, specs.PQ_TRAIN_ROWS + ivf.TUNE_QUERIES)
    rng = np.random.default_rng(len(live))
    chosen = live[np.sort(rng.permutation(len(live))[: min(want, len(live))])]
    dim = next(iter(parts.values())).vectors.shape[1] if parts else 0
    sample = np.empty((len(chosen), dim), dtype=np.float32)
    for s in np.unique(chosen[:, 1]):
        sel = chosen[:, 1] == s
        sample[sel] = parts[int(s)].vectors[chosen[sel, 2]]
    return sample[rng.permutation(len(sample))]


def list_new_rows(model: ivf.Model, x: np.ndarray, norms: np.ndarray) -> ListedRows:
    """Encode new rows into ``model``'s lists."""
    lists, codes, err = ivf.encode(model, x, norms)
    order, offsets = ivf.list_order(lists, model.nlist)
    return ListedRows(order, offsets, codes, err)


def list_stored_rows(
    model: ivf.Model,
    parts: Mapping[int, Part],
    segs: np.ndarray,
    pos: np.ndarray,
    norms: np.ndarray,
    reuse: Mapping[int, IndexFileRecord] | None,
) -> ListedRows:
    """List the stored rows ``(segs, pos)`` under ``model``: their lists and codes are taken
    from their segments' list files (``reuse``: list-file records by segment) when those were
    written under ``model``, else encoded from the vectors, a block at a time."""
    n = len(segs)
    lists = np.empty(n, dtype=np.int64)
    codes = np.empty((n, model.codebooks.shape[0]), dtype=np.uint8)
    err = 0.0
    for s in np.unique(segs):
        sel = np.flatnonzero(segs == s)
        part = parts[int(s)]
        rec = (reuse or {}).get(int(s))
        if rec is not None and part.offsets is not None:
            p = pos[sel]
            lists[sel] = np.searchsorted(part.offsets, p, side="right") - 1
            codes[sel] = part.codes[p]
            err += rec.err * len(sel) / max(rec.nrows, 1)
            continue
        for i in range(0, len(sel), ENCODE_BLOCK):
            chunk = sel[i : i + ENCODE_BLOCK]
            x = np.ascontiguousarray(part.vectors[pos[chunk]])
            lists[chunk], codes[chunk], e = ivf.encode(model, x, norms[chunk])
            err += e
    order, offsets = ivf.list_order(lists, model.nlist)
    return ListedRows(order, offsets, codes, err)
