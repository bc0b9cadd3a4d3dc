"""pytest-benchmark timings of vecstore's public API over 100k x 384 synthetic vectors.

Not collected by the test suite (testpaths = tests); run explicitly:

    python -m pytest bench/test_bench_store.py --benchmark-only

Searches are warm (the first search, which compiles or loads the Numba kernels, runs before
timing); every write round starts from a fresh store made outside the timing. The machine is
shared and noisy, so nothing here asserts a timing: compare medians, or run
bench/compare_store.py for ratios against faiss and other references in the same run.
extra_info holds the throughput of the median round (qps, vectors_per_s, rows_per_s, ...).
"""

from __future__ import annotations

import itertools
import shutil

import pytest
from conftest import BENCH_DIM, BENCH_N, CATEGORIES

import vecstore

pytest.importorskip("pytest_benchmark")

K = 10
FILTER = {"category": "cat07"}  # 1% of the rows


def median(benchmark) -> float:
    return benchmark.stats.stats.median


@pytest.fixture(scope="module")
def plain(bench_tmp, store_vectors, store_ids):
    """A cosine collection of BENCH_N vectors without metadata, in a store kept open."""
    with vecstore.open(bench_tmp / "plain") as db:
        coll = db.create_collection("bench", dim=BENCH_DIM, metric="cosine")
        coll.add(store_ids, vectors=store_vectors)
        yield coll


@pytest.fixture(scope="module")
def with_meta(bench_tmp, store_vectors, store_ids, store_metadata):
    """The same vectors with three metadata fields and a document per row."""
    metas, docs = store_metadata
    with vecstore.open(bench_tmp / "meta") as db:
        coll = db.create_collection("bench", dim=BENCH_DIM, metric="cosine")
        coll.add(store_ids, vectors=store_vectors, documents=docs, metadata=metas)
        yield coll


def test_query_single(benchmark, plain, store_queries):
    queries = itertools.cycle(store_queries)
    plain.query(store_queries[0], k=K)  # compile / load kernels, map the segment
    result = benchmark.pedantic(
        lambda: plain.query(next(queries), k=K), rounds=100, warmup_rounds=3
    )
    assert len(result) == K
    benchmark.extra_info["qps"] = 1 / median(benchmark)


@pytest.mark.parametrize("nq", [32, 1000], ids=["batch32", "batch1000"])
def test_query_many(benchmark, plain, store_queries, nq):
    xq = store_queries[:nq]
    plain.query_many(xq, k=K)  # warm
    results = benchmark.pedantic(
        lambda: plain.query_many(xq, k=K), rounds=20 if nq == 32 else 5, warmup_rounds=1
    )
    assert len(results) == nq and all(len(r) == K for r in results)
    benchmark.extra_info["nq"] = nq
    benchmark.extra_info["qps"] = nq / median(benchmark)


def test_query_filtered(benchmark, with_meta, store_queries):
    """Single queries restricted by metadata to 1% of the rows."""
    queries = itertools.cycle(store_queries)
    with_meta.query(store_queries[0], k=K, where=FILTER)  # warm
    result = benchmark.pedantic(
        lambda: with_meta.query(next(queries), k=K, where=FILTER), rounds=100, warmup_rounds=3
    )
    assert len(result) == K
    assert {m["category"] for m in result.metadata} == {FILTER["category"]}
    benchmark.extra_info["matching_rows"] = len(range(7, BENCH_N, CATEGORIES))
    benchmark.extra_info["qps"] = 1 / median(benchmark)


class _FreshStores:
    """setup/teardown for write rounds: each round gets an empty collection in a new store,
    made (and afterwards removed) outside the timing."""

    def __init__(self, root):
        self.root = root
        self.counter = itertools.count()
        self.open: list = []

    def setup(self):
        path = self.root / f"w{next(self.counter)}"
        db = vecstore.open(path)
        self.open.append((db, path))
        return (db.create_collection("bench", dim=BENCH_DIM, metric="cosine"),), {}

    def teardown(self, *args, **kwargs):
        db, path = self.open.pop()
        db.close()
        shutil.rmtree(path, ignore_errors=True)


def test_add_bulk(benchmark, bench_tmp, store_vectors, store_ids):
    """add() of BENCH_N vectors with ids only, into an empty collection."""
    fresh = _FreshStores(bench_tmp)
    benchmark.pedantic(
        lambda coll: coll.add(store_ids, vectors=store_vectors),
        setup=fresh.setup,
        teardown=fresh.teardown,
        rounds=5,
        warmup_rounds=1,
    )
    benchmark.extra_info["rows"] = BENCH_N
    benchmark.extra_info["vectors_per_s"] = BENCH_N / median(benchmark)


def test_add_bulk_metadata(benchmark, bench_tmp, store_vectors, store_ids, store_metadata):
    """add() of BENCH_N rows, each with 3 metadata fields and a document."""
    metas, docs = store_metadata
    fresh = _FreshStores(bench_tmp)
    benchmark.pedantic(
        lambda coll: coll.add(store_ids, vectors=store_vectors, documents=docs, metadata=metas),
        setup=fresh.setup,
        teardown=fresh.teardown,
        rounds=3,
        warmup_rounds=1,
    )
    benchmark.extra_info["rows"] = BENCH_N
    benchmark.extra_info["rows_per_s"] = BENCH_N / median(benchmark)


def test_add_single_row(benchmark, bench_tmp, store_vectors):
    """One durable add() of one row (durability="full": fsynced before it returns); each
    round adds the next row to the same collection, so pending rows accumulate (and are
    sealed into a segment every seal_rows adds, as in real use)."""
    rows = iter(range(10**9))
    with vecstore.open(bench_tmp / "single") as db:
        coll = db.create_collection("bench", dim=BENCH_DIM, metric="cosine")
        n = len(store_vectors)

        def next_row():
            i = next(rows)
            return (f"s{i}", store_vectors[i % n : i % n + 1]), {}

        benchmark.pedantic(
            lambda id_, x: coll.add([id_], vectors=x), setup=next_row, rounds=1000, warmup_rounds=5
        )
        assert coll.count() == 1005
    shutil.rmtree(bench_tmp / "single", ignore_errors=True)
    benchmark.extra_info["adds_per_s"] = 1 / median(benchmark)


@pytest.fixture(scope="module")
def closed_store(bench_tmp, store_vectors, store_ids):
    """The path of a closed store holding BENCH_N vectors."""
    path = bench_tmp / "to-open"
    with vecstore.open(path) as db:
        db.create_collection("bench", dim=BENCH_DIM).add(store_ids, vectors=store_vectors)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("read_only", [False, True], ids=["read_write", "read_only"])
def test_open_store(benchmark, closed_store, read_only):
    """vecstore.open() + get_collection() + count() of a closed BENCH_N-row store, in this
    process (bench/compare_store.py measures it in a fresh subprocess, and at 1M rows)."""
    opened = []

    def open_it():
        db = vecstore.open(closed_store, read_only=read_only)
        opened.append(db)
        return db.get_collection("bench").count()

    def close_it():
        opened.pop().close()

    count = benchmark.pedantic(open_it, teardown=close_it, rounds=30, warmup_rounds=2)
    assert count == BENCH_N
