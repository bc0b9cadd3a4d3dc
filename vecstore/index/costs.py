"""The planner's cost model for a filtered vector query: the exact scan of the rows the filter
keeps, the index (IVF lists) probed under the filter as a mask, or the HNSW graph searched
under it, each priced as the values a query reads, and the cheapest chosen.

Pure arithmetic over counts: no arrays, no kernels, no SQL. ``plan`` and ``graph`` call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: A filter keeping at most this many rows is always scanned exactly (the plans' own fixed
#: costs, a probe's centroid products or a graph's descent, outweigh a scan that small).
EXACT_FILTER_ROWS = 2_000
#: A filter keeping a fraction s of the rows pushes the k-th match out to about rank k / s of
#: the unfiltered order, which lists further from the query hold: the default nprobe (tuned
#: for recall 0.95 unfiltered) is scaled by s ** -WIDEN_EXPONENT. Measured on 100k MiniLM
#: and GloVe vectors with nlist 1024: recall@10 at s = 0.1 reaches 0.95 near 2.7x the
#: unfiltered nprobe (s ** -0.43); 0.5 leaves a margin.
WIDEN_EXPONENT = 0.5
#: Rows a beam search scores per unit of ef on an unfiltered graph (measured on 115k x 384
#: MiniLM vectors at M=16: about 1,000 at ef=40); a filter keeping a fraction s of the rows
#: makes it score about 1/s times as many, each a random row read.
VISITS_PER_EF = 25
#: A graph visit reads a random row and its neighbour list, priced here as one row of the
#: scan (the graph module's rule before this model; not measured apart).
GRAPH_VISIT_COST = 1.0
#: The values a mask test costs beside a row's score, for a row the filter drops (a probe
#: reads the mask, not the row, for those).
MASK_TEST = 1.0

PLANS = ("filtered scan", "index", "graph")


@dataclass(frozen=True)
class Estimate:
    """A plan's estimated cost, in values read per query, and why."""

    plan: str  # one of PLANS
    cost: float
    detail: str


def selectivity(n_kept: int, n_total: int) -> float:
    """The share of rows a filter keeps (1.0 for an empty collection)."""
    return min(1.0, n_kept / n_total) if n_total > 0 else 1.0


def filtered_nprobe(nprobe: int, nlist: int, share: float) -> int:
    """The lists to probe under a filter keeping ``share`` of the rows, for an index whose
    unfiltered default is ``nprobe`` (see ``WIDEN_EXPONENT``); at most nlist."""
    if share >= 1.0:
        return min(nlist, nprobe)
    share = max(share, 1.0 / max(nlist, 1) ** 2)
    return max(1, min(nlist, math.ceil(nprobe * share**-WIDEN_EXPONENT)))


def scan_cost(n_kept: int, d: int, *, bytes_per_row: float | None = None) -> Estimate:
    """The exact scan of the kept rows: each read once (``bytes_per_row`` / 4 values for a
    compressed collection's codes, else d floats)."""
    per_row = d if bytes_per_row is None else bytes_per_row / 4
    return Estimate("filtered scan", n_kept * per_row, f"{n_kept:,} kept rows x {per_row:g}")


def index_cost(
    n_kept: int,
    n_total: int,
    d: int,
    *,
    nlist: int,
    nprobe: int,
    m: int,
    k: int,
    refine: int,
) -> Estimate:
    """Probing ``nprobe`` of ``nlist`` lists under the filter: every row in them is tested
    against the mask, and a kept one is scored from its m code bytes (m / 4 values) or its d
    floats (flat lists); PQ candidates, k x refine, are re-ranked from d floats each. The
    probe widens until k x refine kept rows are seen, whatever nprobe says."""
    share = selectivity(n_kept, n_total)
    kc = k * refine if m else k
    rows = max(nprobe / max(nlist, 1) * n_total, kc / max(share, 1e-12))
    rows = min(rows, n_total)
    per_kept = m / 4 if m else d
    cost = rows * (share * per_kept + MASK_TEST) + (kc * d if m else 0) + nlist * d
    return Estimate("index", cost, f"{int(rows):,} rows in the probed lists, {share:.3f} kept")


def graph_cost(n_kept: int, n_total: int, d: int, *, ef: int) -> Estimate:
    """The beam search of ef under the filter: about VISITS_PER_EF * ef / selectivity rows
    scored (at most every row), each a random read (GRAPH_VISIT_COST)."""
    share = selectivity(n_kept, n_total)
    visits = min(n_total, VISITS_PER_EF * ef / max(share, 1e-12))
    cost = visits * d * GRAPH_VISIT_COST
    return Estimate("graph", cost, f"about {int(visits):,} rows visited at ef={ef}")


def cheapest(estimates: list[Estimate], n_kept: int) -> Estimate:
    """The plan to run: the exact scan for a filter keeping at most EXACT_FILTER_ROWS rows
    (when it is among the estimates), else the cheapest (the scan on a tie)."""
    scan = [e for e in estimates if e.plan == "filtered scan"]
    if scan and n_kept <= EXACT_FILTER_ROWS:
        return scan[0]
    return min(estimates, key=lambda e: (e.cost, e.plan != "filtered scan"))
