"""The planner's cost model for filtered queries (vecstore.index.costs): which plan it picks
for which filter, and how far it widens the probe."""

from __future__ import annotations

import math

import pytest

from vecstore.index import costs


def plans(n_kept, n_total=100_000, d=384, *, m=48, nlist=1024, nprobe=48, ef=None):
    """The estimates the planner compares for an IVF (ef None) or HNSW collection."""
    share = costs.selectivity(n_kept, n_total)
    out = [costs.scan_cost(n_kept, d)]
    if ef is None:
        probe = costs.filtered_nprobe(nprobe, nlist, share)
        out.append(
            costs.index_cost(n_kept, n_total, d, nlist=nlist, nprobe=probe, m=m, k=10, refine=10)
        )
    else:
        out.append(costs.graph_cost(n_kept, n_total, d, ef=ef))
    return out


def test_a_filter_keeping_few_rows_is_scanned():
    for kept in (0, 1, 500, costs.EXACT_FILTER_ROWS):
        assert costs.cheapest(plans(kept), kept).plan == "filtered scan"


def test_a_ten_percent_filter_probes_the_pq_index():
    # 10k of 100k rows x 384-d: the scan reads 3.84M floats; probing ~15k rows' 48-byte
    # codes, the mask and 100 re-ranked rows is a fraction of that
    choice = costs.cheapest(plans(10_000), 10_000)
    assert choice.plan == "index"
    assert choice.cost < costs.scan_cost(10_000, 384).cost / 3


def test_flat_lists_probe_costs_more_than_codes():
    pq = plans(10_000, m=48)[1].cost
    flat = plans(10_000, m=0)[1].cost
    assert flat > pq


def test_a_one_percent_filter():
    # 1k of 100k rows: under the exact-scan floor whatever the index
    assert costs.cheapest(plans(1_000), 1_000).plan == "filtered scan"
    # 10k of 1M (nlist 4096): the probe widened tenfold tests 156k rows' mask bytes and
    # scores 1.6k rows' codes, less than the 3.84M floats of the kept rows
    kept = 10_000
    est = plans(kept, 1_000_000, nlist=4096, nprobe=64)
    assert costs.cheapest(est, kept).plan == "index"


def test_the_plan_turns_over_as_the_filter_widens():
    picks = [costs.cheapest(plans(k), k).plan for k in (1_000, 3_000, 10_000, 50_000, 100_000)]
    assert picks[0] == "filtered scan" and picks[-1] == "index"
    first_index = picks.index("index")
    assert all(p == "index" for p in picks[first_index:])  # one turnover, no flapping


def test_graph_against_scan():
    # a graph search under a filter keeping s of the rows visits ~25 ef / s rows
    assert costs.cheapest(plans(3_000, ef=48), 3_000).plan == "filtered scan"
    assert costs.cheapest(plans(60_000, ef=48), 60_000).plan == "graph"


def test_filtered_nprobe_widens_with_selectivity_and_stops_at_nlist():
    assert costs.filtered_nprobe(48, 1024, 1.0) == 48
    assert costs.filtered_nprobe(48, 1024, 0.1) == math.ceil(48 * 10**0.5)
    assert costs.filtered_nprobe(48, 1024, 0.01) == 480
    assert costs.filtered_nprobe(48, 1024, 1e-6) == 1024
    assert costs.filtered_nprobe(48, 1024, 0.0) == 1024
    widths = [costs.filtered_nprobe(16, 4096, s) for s in (1.0, 0.5, 0.1, 0.01, 0.001)]
    assert widths == sorted(widths)


def test_ties_go_to_the_exact_scan():
    a = costs.Estimate("index", 100.0, "")
    b = costs.Estimate("filtered scan", 100.0, "")
    assert costs.cheapest([a, b], 10**6).plan == "filtered scan"


@pytest.mark.parametrize("n_total", [0, 1])
def test_selectivity_of_tiny_collections(n_total):
    assert 0.0 <= costs.selectivity(n_total, n_total) <= 1.0
