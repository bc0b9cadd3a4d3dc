"""pytest-benchmark timings of keyword and hybrid queries over WordNet's 117k passages.

Not collected by the test suite; run explicitly (needs ``apt-get install wordnet-base``):

    python -m pytest bench/test_bench_hybrid.py --benchmark-only

Documents are the WordNet passages (VECSTORE_BENCH_N of them, default 100,000) with seeded
synthetic 384-d unit vectors (exact search costs the same whatever the vectors hold); queries
are WordNet example sentences. bench/compare_hybrid.py measures quality and the hybrid
overhead per query; this gives pytest-benchmark's view of the same calls.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from conftest import BENCH_N

import vecstore
from vecstore.corpora import wordnet_passages

pytest.importorskip("pytest_benchmark")

DIM = 384


@pytest.fixture(scope="module")
def wordnet(bench_tmp):
    try:
        passages = wordnet_passages(BENCH_N)
    except vecstore.MissingDependency as exc:
        pytest.skip(str(exc))
    quoted = re.compile(r'"([^"]*)"')
    queries = [q for p in passages for q in quoted.findall(p.text) if len(q.split()) >= 3]
    texts = [quoted.sub("", p.text) for p in passages]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(texts), DIM), dtype=np.float32)
    xq = rng.standard_normal((1000, DIM), dtype=np.float32)
    with vecstore.open(bench_tmp / "wordnet", durability="normal") as db:
        c = db.create_collection("wordnet", dim=DIM)
        for s in range(0, len(texts), 20_000):
            c.add(
                [p.id for p in passages[s : s + 20_000]],
                vectors=x[s : s + 20_000],
                documents=texts[s : s + 20_000],
            )
        c.compact()
        yield c, rng.permutation(queries)[:1000].tolist(), xq


def _run(benchmark, call, items):
    cycle = itertools.cycle(items)
    for item in items[:20]:
        call(item)  # warm: kernels, maps, postings cache
    result = benchmark.pedantic(lambda: call(next(cycle)), rounds=500, warmup_rounds=5)
    benchmark.extra_info["qps"] = 1 / benchmark.stats.stats.median
    return result


def test_query_text(benchmark, wordnet):
    c, queries, _ = wordnet
    _run(benchmark, lambda q: c.query(q, mode="text"), queries)


def test_query_vector(benchmark, wordnet):
    c, _, xq = wordnet
    _run(benchmark, lambda v: c.query(v), list(xq))


def test_query_hybrid(benchmark, wordnet):
    c, queries, xq = wordnet
    _run(benchmark, lambda qv: c.query(qv[1], text=qv[0], mode="hybrid"), list(zip(queries, xq)))
