"""vecstore.dask on a LocalCluster of two worker processes: distributed ingest compared with
a local one, sharded search compared with one store, and a worker killed during ingest."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vecstore

pytest.importorskip("distributed")
import cluster_helpers as helpers  # noqa: E402
import dask.bag as db_  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402

from vecstore import dask as vdask  # noqa: E402
from vecstore.corpora import wordnet_passages  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with helpers.local_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def passages():
    try:
        return wordnet_passages(400)
    except vecstore.errors.MissingDependency as exc:
        pytest.skip(str(exc))


def records(passages):
    return [{"id": p.id, "text": p.text, **p.metadata} for p in passages]


def test_ingest_matches_a_local_add(tmp_path, client, passages):
    enc = helpers.hashing_encoder
    rows = records(passages)
    with vecstore.open(tmp_path / "local") as db:
        local = db.create_collection("wn", encoder=enc)
        local.add(
            [r["id"] for r in rows],
            documents=[r["text"] for r in rows],
            metadata=[{"pos": r["pos"], "lexfile": r["lexfile"]} for r in rows],
        )
        want = local.query_many(["a small dog", "colour of the sky"], k=10, where={"pos": "noun"})
        want_text = local.query("tree", mode="text", k=10)
        want_vecs = local.get([r["id"] for r in rows], include_vectors=True).vectors
    with vecstore.open(tmp_path / "dist") as db:
        coll = db.create_collection("wn", encoder=enc)
        report = vdask.ingest(
            coll,
            db_.from_sequence(rows, npartitions=4),
            metadata=["pos", "lexfile"],
            encoder=enc,
            client=client,
        )
        assert (report.added, report.partitions, report.skipped) == (400, 4, 0)
        ids = [r["id"] for r in rows]
        assert sorted(coll.get(limit=1000).ids) == sorted(ids)
        np.testing.assert_allclose(
            coll.get(ids, include_vectors=True).vectors, want_vecs, rtol=1e-6
        )
        got = coll.query_many(["a small dog", "colour of the sky"], k=10, where={"pos": "noun"})
        assert [r.ids for r in got] == [r.ids for r in want]
        assert coll.query("tree", mode="text", k=10).ids == want_text.ids
        again = vdask.ingest(
            coll,
            db_.from_sequence(rows, npartitions=4),
            encoder=enc,
            metadata=["pos", "lexfile"],
            client=client,
        )
        assert (again.added, again.skipped) == (0, 4)  # adopted partitions are not redone
        frame = dd.from_pandas(pd.DataFrame(rows[:100]), npartitions=2)
        other = db.create_collection("wn2", encoder=enc)
        got = vdask.ingest(other, frame, metadata=["pos"], encoder=enc, client=client)
        assert got.added == 100 and other.get(["noun-00001740"]).metadata[0] == {"pos": "noun"}
        np.testing.assert_array_equal(
            other.get(ids[:100], include_vectors=True).vectors, want_vecs[:100]
        )
        assert db.verify().ok


def test_sharded_queries_equal_one_store(tmp_path, client):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 24)).astype(np.float32)
    ids = [f"r{i}" for i in range(600)]
    metas = [{"g": i % 5} for i in range(600)]
    xq = rng.standard_normal((7, 24)).astype(np.float32)
    with vecstore.open(tmp_path / "one") as db:
        one = db.create_collection("c", dim=24)
        one.add(ids, vectors=x, metadata=metas)
        want = one.query_many(xq, k=12, where={"g": {"$in": [1, 3]}})
        want_count = one.count({"g": 2})
    for c in (None, client):
        paths = [tmp_path / f"{'d' if c else 'p'}{i}" for i in range(3)]
        with vdask.open_sharded(paths, "c", dim=24, client=c) as sc:
            sc.add(ids, vectors=x, metadata=metas)
            got = sc.query_many(xq, k=12, where={"g": {"$in": [1, 3]}})
            for g, w in zip(got, want):
                assert g.ids == w.ids
                np.testing.assert_allclose(g.scores, w.scores, rtol=1e-5)
            assert sc.query(xq[0], k=12, where={"g": {"$in": [1, 3]}}).ids == want[0].ids
            assert sc.count() == 600 and sc.count({"g": 2}) == want_count
            assert sc.get(["r5", "nope", "r1"]).ids == ["r5", "r1"]
            assert sc.delete(["r1", "r2"]) == 2 and sc.count() == 598
            counts = []
            for p in paths:
                with vecstore.open(p, read_only=True) as shard:
                    counts.append(shard.get_collection("c").count())
            assert sum(counts) == 598 and min(counts) > 100  # the hash spreads rows
        for p in paths:
            with vecstore.open(p, read_only=True) as shard:
                assert shard.verify().ok


def test_a_worker_killed_during_ingest_lands_its_partition_once(tmp_path, client, passages):
    rows = records(passages)[:200]
    marker = str(tmp_path / "victim.pid")
    from vecstore.encoders import CallableEncoder

    slow = helpers.SlowOnce(rows[120]["text"], marker, pause=30.0)
    enc = CallableEncoder(slow, name="dask_hashing_encoder", version="1", dim=16)
    with vecstore.open(tmp_path / "s") as db:
        coll = db.create_collection("wn", encoder=helpers.hashing_encoder)
        pool = ThreadPoolExecutor(1)  # the ingest's client runs here; this thread kills
        future = pool.submit(
            vdask.ingest,
            coll,
            db_.from_sequence(rows, npartitions=5),
            encoder=enc,
            client=client,
        )
        deadline = time.monotonic() + 120
        while not os.path.exists(marker):
            assert time.monotonic() < deadline, "the slow partition never started"
            assert not future.done(), future.result()  # raises what failed
            time.sleep(0.05)
        victim = int(open(marker).read())
        assert victim in client.run(os.getpid).values()  # a real worker process
        os.kill(victim, signal.SIGKILL)
        report = future.result(timeout=180)
        pool.shutdown()
        assert (report.added, report.partitions) == (200, 5)
        assert coll.count() == 200
        assert sorted(coll.get(limit=1000).ids) == sorted(r["id"] for r in rows)
        assert db.verify().ok
    client.wait_for_workers(2, timeout=60)
