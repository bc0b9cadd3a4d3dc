"""HNSW kernels against the exact kernels: recall floors per metric, masks, batch = single,
degenerate sizes, and the structural invariants ``index.graph.open_graph`` relies on."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import clustered
from vecstore.kernels import exact
from vecstore.kernels import graph as kg

METRICS = ("cosine", "dot", "l2")


def embeddings(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng([seed, dim])
    a = r.standard_normal((8, dim)).astype(np.float32) / np.sqrt(8)
    z = clustered(n, 8, clusters=32, seed=seed)
    return (z @ a + 0.05 * r.standard_normal((n, dim))).astype(np.float32)


def graph_search(g, xb, norms, metric, xq, k, ef, mask=None):
    w, c = kg.row_terms(norms, metric)
    D, I = exact.new_heaps(len(xq), k)
    found = kg.search_into(xq, metric, xb, w, c, kg.upper_slots(g["levels"]), g["L0"], g["UP"],
                           g["entry"], g["top"], ef, D, I, mask=mask)  # fmt: skip
    D, I, counts = exact.finish(D, I, xq, metric)
    return D, I, counts, found


def recall(I, T) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                          for a, b in zip(I, T)]))  # fmt: skip


@pytest.fixture(scope="module")
def data():
    x = embeddings(3_100, seed=3)
    return x[:3000], x[3000:]


@pytest.fixture(scope="module")
def graphs(data):
    xb, _ = data
    norms = exact.row_norms(xb)
    return {m: kg.build(xb, norms, m, 12, 100, seed=1) for m in METRICS}


@pytest.mark.parametrize("metric", METRICS)
def test_recall_against_exact(data, graphs, metric):
    xb, xq = data
    norms = exact.row_norms(xb)
    truth = exact.search(xq, xb, norms, metric, 10)[1]
    D, I, counts, _ = graph_search(graphs[metric], xb, norms, metric, xq, 10, 64)
    assert (counts == 10).all()
    assert recall(I, truth) >= 0.95
    # scores are the exact kernel's for the rows returned
    Dx, Ix, _ = exact.search(xq, xb, norms, metric, 10)
    hit = I[:, 0] == Ix[:, 0]
    np.testing.assert_allclose(D[hit, 0], Dx[hit, 0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_single_queries_match_the_batch(data, graphs, metric):
    xb, xq = data
    norms = exact.row_norms(xb)
    _, Ib, _, _ = graph_search(graphs[metric], xb, norms, metric, xq[:20], 10, 32)
    for i in range(20):
        _, Ii, _, _ = graph_search(graphs[metric], xb, norms, metric, xq[i : i + 1], 10, 32)
        assert (Ii[0] == Ib[i]).all()


@pytest.mark.parametrize("fraction", [0.002, 0.05, 0.3])
def test_masked_search_returns_only_masked_rows(data, graphs, fraction):
    xb, xq = data
    norms = exact.row_norms(xb)
    rng = np.random.default_rng(5)
    mask = rng.random(len(xb)) < fraction
    rows = np.flatnonzero(mask)
    truth = exact.search(xq, xb, norms, "cosine", 10, rows=rows)[1]
    _, I, counts, found = graph_search(graphs["cosine"], xb, norms, "cosine", xq, 10, 64, mask)
    assert mask[I[I >= 0]].all()
    assert (counts == min(10, len(rows))).all()
    assert recall(I, truth) >= 0.95


def test_structure_invariants(data, graphs):
    xb, _ = data
    for g in graphs.values():
        levels, L0, UP = g["levels"], g["L0"], g["UP"]
        n = len(xb)
        assert L0.shape == (n, 24) and L0.min() >= -1 and L0.max() < n
        assert levels[g["entry"]] == g["top"] == levels.max()
        # no self-links, and no row of layer 0 without a link (the graph reaches every row
        # it was built over)
        assert not (L0 == np.arange(n)[:, None]).any()
        assert (L0[:, 0] >= 0).all()
        nu = int((levels > 0).sum())
        H = int(levels.max())
        assert UP.shape == (max(nu * H, 1), 12)
        U = UP.reshape(nu, H, 12) if nu else UP[:0].reshape(0, max(H, 1), 12)
        for layer in range(1, H + 1):
            links = U[:, layer - 1][U[:, layer - 1] >= 0]
            assert (levels[links] >= layer).all()


def test_build_is_deterministic_for_a_thread_count(data):
    xb, _ = data
    x = xb[:600]
    norms = exact.row_norms(x)
    a = kg.build(x, norms, "cosine", 8, 40, seed=2, threads=1)
    b = kg.build(x, norms, "cosine", 8, 40, seed=2, threads=1)
    assert all(np.array_equal(a[k], b[k]) for k in ("levels", "L0", "UP"))


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_tiny_graphs(n):
    x = embeddings(max(n, 1) + 1, seed=4)
    xb, xq = np.ascontiguousarray(x[:n]), x[-1:]
    norms = exact.row_norms(xb)
    g = kg.build(xb, norms, "l2", 4, 10)
    assert g["L0"].shape == (n, 8)
    if n:
        _, I, counts, _ = graph_search(g, xb, norms, "l2", xq, 3, 10)
        assert counts[0] == min(3, n)
        want = exact.search(xq, xb, norms, "l2", 3)[1][0][: counts[0]]
        assert sorted(I[0, : counts[0]]) == sorted(want)


def test_zero_and_duplicate_vectors(data):
    xb, xq = data
    x = np.vstack([xb[:300], np.zeros((5, xb.shape[1]), np.float32), np.repeat(xb[:1], 40, 0)])
    x = np.ascontiguousarray(x)
    norms = exact.row_norms(x)
    g = kg.build(x, norms, "cosine", 8, 50)
    _, I, counts, _ = graph_search(g, x, norms, "cosine", np.vstack([xq[:5], x[:1] * 0]), 10, 40)
    assert (counts == 10).all()
    assert (I[I >= 0] < len(x)).all()


@pytest.mark.parametrize("metric", METRICS)
def test_walk_block_holds_the_links_and_their_score_terms(data, graphs, metric):
    xb, _ = data
    g = graphs[metric]
    w, c = kg.row_terms(exact.row_norms(xb), metric)
    G = kg.walk_block(g["L0"], w, c, metric)
    W = g["L0"].shape[1]
    assert G.shape == (len(xb), 2 * W) and G.dtype == np.int32 and G.flags.c_contiguous
    np.testing.assert_array_equal(G[:, :W], g["L0"])
    linked = g["L0"] >= 0
    term = w if metric == "cosine" else c
    np.testing.assert_array_equal(G.view(np.float32)[:, W:][linked], term[g["L0"][linked]])


@pytest.mark.parametrize("metric", METRICS)
def test_a_kept_walk_block_gives_the_same_results(data, graphs, metric):
    xb, xq = data
    g = graphs[metric]
    norms = exact.row_norms(xb)
    w, c = kg.row_terms(norms, metric)
    G = kg.walk_block(g["L0"], w, c, metric)
    sh = kg.upper_slots(g["levels"])
    scratch = kg.Scratch(len(xb), 64, g["L0"].shape[1])
    for nq in (1, len(xq)):
        q = xq[:nq]
        want = graph_search(g, xb, norms, metric, q, 10, 40)
        D, I = exact.new_heaps(nq, 10)
        kg.search_into(q, metric, xb, w, c, sh, g["L0"], g["UP"], g["entry"], g["top"], 40,
                       D, I, scratch=scratch if nq == 1 else None, walk=G)  # fmt: skip
        D, I, counts = exact.finish(D, I, q, metric)
        np.testing.assert_array_equal(I, want[1])
        np.testing.assert_array_equal(D, want[0])
    with pytest.raises(ValueError):
        D, I = exact.new_heaps(1, 10)
        kg.search_into(xq[:1], metric, xb, w, c, sh, g["L0"], g["UP"], g["entry"], g["top"], 40,
                       D, I, walk=G[:-1])  # fmt: skip
