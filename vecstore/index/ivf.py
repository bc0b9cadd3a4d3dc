"""IVF and IVF-PQ: training a model, encoding rows into lists, and searching a snapshot.

A trained ``Model`` (centroids, PQ codebooks, resolved parameters) lives in one index file;
each vector segment written under it stores its rows in list order, with a companion index
file of list offsets and PQ codes. Parts without one (pending rows, or segments from before
training) are searched exactly, so every row is always searchable. Uses kernels (lazily)
and storage; never touches SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import specs

#: Queries held out of the training sample to choose the default nprobe.
TUNE_QUERIES = 256
#: A single query scanning fewer rows than this runs on one thread (waking the pool costs more).
SERIAL_SCAN_ROWS = 50_000
_NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass(frozen=True, eq=False)
class Model:
    """A trained coarse quantizer (and product quantizer for IVF-PQ), read from its file."""

    file: str
    kind: str  # "ivf" or "ivfpq"
    metric: str
    centroids: np.ndarray  # float32 (nlist, d)
    codebooks: np.ndarray  # float32 (m, ksub, dsub); (0, 0, 0) for IVF
    nprobe: int
    refine: int
    train_rows: int
    train_err: float
    # trained once for the shards of a sharded collection (vecstore/sharded.py) and
    # installed in each: a shard never retrains it alone, or their probes would disagree
    shared: bool = False
    centroid_norms2: np.ndarray = None  # float32 (nlist,): |c|^2, set by __post_init__
    codebooks_t: np.ndarray = None  # float32 (m, dsub, ksub), the look-up tables' layout
    # int8 (nlist, d) and float32 (nlist,): the centroids as single queries read them
    centroids_i8: np.ndarray = None
    centroid_scales: np.ndarray = None

    def __post_init__(self) -> None:
        c = self.centroids
        object.__setattr__(self, "centroid_norms2", np.einsum("ij,ij->i", c, c))
        cbt = np.ascontiguousarray(self.codebooks.transpose(0, 2, 1), dtype=np.float32)
        object.__setattr__(self, "codebooks_t", cbt)
        rows, scales = _quantize_rows(c)
        object.__setattr__(self, "centroids_i8", rows)
        object.__setattr__(self, "centroid_scales", scales)

    @property
    def nlist(self) -> int:
        return self.centroids.shape[0]

    @classmethod
    def from_file(cls, file: str, meta: dict, arrays: dict[str, np.ndarray]) -> Model:
        m, ksub, dsub = meta["m"], meta["ksub"], meta["dsub"]
        cb = arrays["codebooks"].reshape(m, ksub, dsub) if m else np.zeros((0, 0, 0), np.float32)
        return cls(
            file,
            meta["kind"],
            meta["metric"],
            arrays["centroids"],
            cb,
            int(meta["nprobe"]),
            int(meta["refine"]),
            int(meta["train_rows"]),
            float(meta["train_err"]),
            bool(meta.get("shared", False)),
        )


def _quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and a float32 scale per row (``x[i] ~ scale[i] * rows[i]``, each value
    within half a step of ``max |x[i]| / 127``)."""
    peak = np.abs(x).max(axis=1) if x.size else np.zeros(len(x), dtype=np.float32)
    scale = (peak / np.float32(127.0)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1.0))
    rows = np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(rows), scale


def fast_layout(model: Model, offsets: np.ndarray, codes: np.ndarray):
    """A segment's codes re-laid for fast-scan (``kernels.fastscan.layout``) when the model's
    codes are 4-bit and this CPU can shuffle them, else None. The blocks take half the codes'
    bytes, plus padding to 32 rows a list; callers keep them with the segment (see
    ``flat.Snapshot.fast_layout``) and pass them to ``search``."""
    from ..kernels import fastscan

    m, ksub = model.codebooks.shape[:2]
    if codes is None or not fastscan.usable(m, ksub):
        return None
    return fastscan.layout(offsets, codes)


def _space(x: np.ndarray, norms: np.ndarray, metric: str) -> np.ndarray:
    """Rows in the space the index is trained in: unit-normalised for cosine."""
    if metric != "cosine":
        return x
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return x * scale[:, None]


def train(
    x: np.ndarray, metric: str, spec: specs.IVF | specs.IVFPQ, n_total: int, *, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict]:
    """Train a model on a sample of the collection's rows.

    ``x`` is float32 ``(ns, d)``, rows sampled uniformly from the ``n_total`` live rows. The
    last ``TUNE_QUERIES`` of them (when the sample is large enough) are held out to choose
    the default nprobe: the smallest whose recall@10 against exact search over the rest
    reaches ``specs.TARGET_RECALL``. Returns the arrays and record of the model's file.
    """
    from ..kernels import exact, quantize

    norms = exact.row_norms(x)
    xs = np.ascontiguousarray(_space(x, norms, metric), dtype=np.float32)
    nq = TUNE_QUERIES if len(xs) > 4 * TUNE_QUERIES else 0
    queries, xs = xs[len(xs) - nq :], xs[: len(xs) - nq]
    nlist = spec.nlist or specs.default_nlist(n_total)
    nlist = max(1, min(nlist, len(xs)))
    rng = np.random.default_rng(seed)
    coarse = xs[
        np.sort(
            rng.choice(len(xs), min(len(xs), nlist * specs.TRAIN_POINTS_PER_LIST), replace=False)
        )
    ]
    centroids = quantize.kmeans(coarse, nlist, niter=10, seed=seed)
    lists = quantize.assign(xs, centroids)
    resid = xs - centroids[lists]
    # Summed in float64: one row's float32 square cannot overflow (inputs.MAX_COMPONENT), but
    # a float32 sum of many can, and an infinite error would make every write retrain.
    err = float(np.einsum("ij,ij->i", resid, resid).mean(dtype=np.float64)) if len(xs) else 0.0
    pq = not specs.flat_lists(spec, x.shape[1])
    if pq:
        d = x.shape[1]
        m = spec.m or specs.default_m(d)
        ksub = 1 << spec.nbits
        sample = resid[: specs.PQ_TRAIN_ROWS] if len(resid) >= ksub else resid
        if len(sample) < ksub:
            raise ValueError(f"IVFPQ with nbits={spec.nbits} needs at least {ksub} rows")
        codebooks = quantize.train_pq(sample, m, ksub, seed=seed)
        codes = quantize.pq_encode(resid, codebooks)
        refine = spec.refine or specs.DEFAULT_REFINE
    else:
        m, ksub = 0, 0
        codebooks = np.zeros((0, 0, 0), np.float32)
        codes = np.zeros((len(xs), 0), np.uint8)
        refine = 1
    meta = {
        "kind": spec.kind,  # an IVFPQ model with m = 0 stores flat lists (specs.flat_lists)
        "metric": metric,
        "nlist": nlist,
        "m": m,
        "ksub": ksub,
        "dsub": x.shape[1] // m if m else 0,
        "refine": refine,
        "train_rows": int(n_total),
        "train_err": err,
        "seed": seed,
    }
    nprobe = spec.nprobe
    if nprobe is None:
        nprobe = _tune_nprobe(
            xs, norms[: len(xs)], lists, codes, centroids, codebooks, queries, metric, refine
        )
    meta["nprobe"] = int(min(nprobe, nlist))
    arrays = {
        "centroids": centroids,
        "codebooks": codebooks.reshape(m * ksub, -1) if m else np.zeros((0, 1), np.float32),
    }
    return arrays, meta


def _tune_nprobe(xs, norms, lists, codes, centroids, codebooks, queries, metric, refine) -> int:
    """Smallest nprobe with recall@10 >= TARGET_RECALL on held-out queries (or within
    PLATEAU of the best any nprobe reaches, when quantization caps recall lower), searching
    an index over the sample itself (the fraction of lists to probe barely depends on N)."""
    from ..kernels import exact

    nlist = len(centroids)
    if len(queries) == 0:
        return max(1, math.ceil(nlist / 8))
    order = np.argsort(lists, kind="stable")
    xb = np.ascontiguousarray(xs[order])
    space_metric = "dot" if metric == "cosine" else metric
    bnorms = exact.row_norms(xb)
    offsets = np.zeros(nlist + 1, dtype=np.int64)
    np.cumsum(np.bincount(lists, minlength=nlist), out=offsets[1:])
    part = (xb, bnorms, offsets, np.ascontiguousarray(codes[order]))
    truth = exact.search(queries, xb, bnorms, space_metric, 10)[1]
    model = Model(
        "",
        "ivfpq" if codebooks.size else "ivf",
        space_metric,
        centroids,
        codebooks,
        1,
        refine,
        0,
        0.0,
    )
    steps = [p for p in _NPROBE_STEPS if p < nlist] + [nlist]
    recalls = []
    for nprobe in steps:
        _, found, _ = search(
            [part], model, queries, space_metric, 10, nprobe=nprobe, refine=refine, widen=False
        )
        hits = sum(len(np.intersect1d(a[a >= 0], b[b >= 0])) for a, b in zip(found, truth))
        recalls.append(hits / max(1, truth[truth >= 0].size))
        if recalls[-1] >= specs.TARGET_RECALL:
            return nprobe
    goal = max(recalls) - specs.PLATEAU
    return next(p for p, r in zip(steps, recalls) if r >= goal)


def encode(model: Model, x: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Lists, PQ codes and summed squared coarse residual of rows ``x`` under ``model``."""
    from ..kernels import quantize

    xs = np.ascontiguousarray(_space(x, norms, model.metric), dtype=np.float32)
    lists = quantize.assign(xs, model.centroids)
    resid = xs - model.centroids[lists]
    err = float(np.einsum("ij,ij->i", resid, resid).sum(dtype=np.float64))  # see train()
    if model.codebooks.size:
        codes = quantize.pq_encode(resid, model.codebooks)
    else:
        codes = np.zeros((len(x), 0), dtype=np.uint8)
    return lists, codes, err


def list_order(lists: np.ndarray, nlist: int) -> tuple[np.ndarray, np.ndarray]:
    """The stable permutation putting rows in list order, and the lists' CSR offsets."""
    order = np.argsort(lists, kind="stable")
    offsets = np.zeros(nlist + 1, dtype=np.int64)
    np.cumsum(np.bincount(lists, minlength=nlist), out=offsets[1:])
    return order, offsets


def search(
    parts: list[tuple],
    model: Model,
    xq: np.ndarray,
    metric: str,
    k: int,
    *,
    nprobe: int | None = None,
    refine: int | None = None,
    masks: list[np.ndarray | None] | None = None,
    exact_parts: list[tuple] = (),
    widen: bool = True,
    layouts: list | None = None,
    kept: list[tuple | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate top-k over indexed parts, plus exact top-k over ``exact_parts``.

    Each indexed part is ``(vectors, norms, offsets, codes)`` with rows in list order; each
    exact part ``(vectors, norms, rows, mask)`` as for ``exact.search_into``. ``masks`` gives
    per indexed part a bool (n,) mask of searchable rows, or None. Labels are positions in
    the concatenation of indexed parts then exact parts. Lists are probed in order of the
    query's closeness to their centroid, ``nprobe`` of them, then more while fewer than
    ``k * refine`` searchable rows have been seen (so a filter that keeps few rows still
    yields ``min(k, matches)`` hits), unless ``widen`` is False. ``layouts`` gives per
    indexed part its ``fast_layout`` (built here, for this call only, when not given).
    ``kept`` gives, per indexed part, None or the ``(rows, koff)`` a filter keeps (sorted
    positions, and each list's share of them: ``adc.scan_kept``), which a single query scans
    instead of testing ``masks`` row by row (8-bit codes and flat lists; 4-bit fast-scan
    blocks keep the mask). Returns ``exact.finish``'s ``(D, I, counts)``.
    """
    from ..kernels import adc, exact, fastscan

    nq = xq.shape[0]
    nlist = model.nlist
    nprobe = min(nlist, nprobe or model.nprobe)
    refine = refine or model.refine
    pq = model.codebooks.size > 0
    kc = k * refine if pq else k
    width = min(nlist, max(nprobe, 1))
    masks = masks or [None] * len(parts)
    bases, acc = [], 0
    for p in [*parts, *exact_parts]:
        bases.append(acc)
        acc += len(p[0])
    D, I = exact.new_heaps(nq, k)
    seen = _search_exact_parts(exact_parts, bases[len(parts) :], xq, metric, D, I)
    if not pq:
        fast = [None] * len(parts)
    else:
        fast = layouts or [fast_layout(model, p[2], p[3]) for p in parts]
    if nq == 1:
        kept = kept or [None] * len(parts)
        _search_one(
            parts, masks, bases, fast, model, xq, metric, D, I, kc, width, seen, widen, kept
        )
        return exact.finish(D, I, xq, metric)
    code = adc.METRICS[metric]
    # Lists are probed in the order rows were assigned to them: nearest centroid in L2 (of the
    # unit vectors, for cosine); for dot, by inner product, the score itself.
    qn, QC, orders = adc.probe_batch(xq, metric, model.centroids, model.centroid_norms2, width)
    qa = np.ones(nq, dtype=np.float32)
    CD, CI = exact.new_heaps(nq, kc) if pq else (D, I)

    def scan(sel, lo, hi, ords):
        for (xb, norms, offsets, codes), mask, base, blocks in zip(parts, masks, bases, fast):
            sD, sI, sseen = CD[sel], CI[sel], np.zeros(len(sel), dtype=np.int64)
            if blocks is not None:
                fastscan.scan_batch(
                    qn[sel], QC[sel], code, ords, lo, hi, offsets, blocks, model.codebooks_t,
                    norms, mask, int(base), sD, sI, sseen,
                )  # fmt: skip
                CD[sel], CI[sel] = sD, sI
                seen[sel] += sseen
                continue
            adc.scan_lists_batch(
                qn[sel], QC[sel], code, ords, lo, hi, offsets, codes, model.codebooks_t, xb,
                norms, mask, int(base), sD, sI, sseen,
            )  # fmt: skip
            CD[sel], CI[sel] = sD, sI
            seen[sel] += sseen

    if parts:
        scan(np.arange(nq), 0, width, orders)
        lo = width
        while widen and lo < nlist:
            short = np.flatnonzero(seen < kc)
            if not len(short):
                break
            hi = min(nlist, 2 * lo)
            rank = QC[short] if metric == "dot" else 2 * QC[short] - model.centroid_norms2
            scan(short, lo, hi, _full_orders(rank, orders[short]))
            lo = hi
    if pq:
        for (xb, norms, _, _), base in zip(parts, bases):
            inside = (CI >= base) & (CI < base + len(xb))
            cand = np.where(inside, CI - base, -1)
            if inside.any():
                adc.rerank(qn, qa, code, xb, norms, cand, D, I, int(base))
    return exact.finish(D, I, xq, metric)


def _full_orders(rank: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Every list per query, best rank first, starting with exactly the lists ``first``
    already probed (whatever the ties), so widening never probes a list twice."""
    rest = np.argsort(-rank, axis=1, kind="stable")
    picked = np.zeros(rank.shape, dtype=bool)
    np.put_along_axis(picked, first, True, axis=1)
    keep = ~np.take_along_axis(picked, rest, axis=1)
    later = rest[keep].reshape(len(rank), rank.shape[1] - first.shape[1])
    return np.ascontiguousarray(np.concatenate([first, later], axis=1), dtype=np.int64)


def _search_exact_parts(exact_parts, bases, xq, metric, D, I) -> np.ndarray:
    """Exact top-k of the parts without lists into D/I; the rows seen per query."""
    from ..kernels import exact

    seen = np.zeros(xq.shape[0], dtype=np.int64)
    for (xb, norms, rows, mask), base in zip(exact_parts, bases):
        if len(xb) and (rows is None or len(rows)):
            exact.search_into(xq, xb, norms, metric, D, I, rows=rows, mask=mask, base=base)
            if rows is not None:
                seen += len(rows)
            else:
                seen += int(mask.sum()) if mask is not None else len(xb)
    return seen


def _search_one(parts, masks, bases, fast, model, xq, metric, D, I, kc, width, seen, widen, kept):
    """``search`` for a single query, into heaps D/I (1, k): one kernel call prepares the
    query (centroid products, the lists to probe, the look-up table), one per part scans,
    one per part re-ranks, so the fixed cost per query stays a few microseconds of Python."""
    from ..kernels import adc, exact, fastscan

    code = adc.METRICS[metric]
    nlist = model.nlist
    qn, qc, order, T = adc.probe_one(
        xq[0],
        metric,
        model.centroids_i8,
        model.centroid_scales,
        model.centroid_norms2,
        model.codebooks_t,
        width,
    )
    pq = model.codebooks.size > 0
    CD, CI = exact.new_heaps(1, kc) if pq else (D, I)
    cd, ci = CD[0], CI[0]
    tables = fastscan.quantize(T) if any(b is not None for b in fast) else None

    def scan(lo, hi, ords) -> int:
        n = 0
        for (xb, norms, offsets, codes), mask, base, blocks, rk in zip(
            parts, masks, bases, fast, kept
        ):
            if rk is not None and blocks is None:
                n += adc.scan_kept(
                    qn, qc, code, ords, lo, hi, rk[1], rk[0], codes, T, xb, norms, base, cd, ci
                )
                continue
            if blocks is not None:
                n += fastscan.scan(
                    qc, code, ords, lo, hi, offsets, blocks, tables, norms, mask, base, cd, ci
                )
                continue
            if (offsets[-1] * (hi - lo)) // nlist < SERIAL_SCAN_ROWS:
                n += adc.scan_lists(
                    qn, qc, code, ords, lo, hi, offsets, codes, T, xb, norms, mask, base, cd, ci
                )
                continue
            n += adc.scan_lists_threaded(
                qn, qc, code, ords, lo, hi, offsets, codes, T, xb, norms, mask, base, cd, ci
            )
        return n

    if not parts:
        return
    total = int(seen[0]) + scan(0, width, order)
    lo = width
    if widen and lo < nlist and total < kc:
        rank = qc if metric == "dot" else 2 * qc - model.centroid_norms2
        full = _full_orders(rank[None, :], order[None, :])[0]
        while lo < nlist and total < kc:
            hi = min(nlist, 2 * lo)
            total += scan(lo, hi, full)
            lo = hi
    if pq:
        for (xb, norms, _, _), base in zip(parts, bases):
            adc.rerank_one(qn, code, xb, norms, ci, base, D[0], I[0])


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A model trained outside a collection, to install in one or several
    (``Collection.install_index``): ``train``'s arrays and record."""

    arrays: dict[str, np.ndarray]
    meta: dict

    @classmethod
    def train(
        cls,
        x: np.ndarray,
        metric: str,
        spec: specs.IVF | specs.IVFPQ,
        n_total: int,
        *,
        shared: bool = True,
        seed: int = 0,
    ) -> TrainedModel:
        """Train on a sample ``x`` of ``n_total`` rows (``train``); ``shared`` marks the
        model so that no collection holding it retrains it alone."""
        arrays, meta = train(x, metric, spec, n_total, seed=seed)
        return cls(arrays, meta | {"shared": shared})
