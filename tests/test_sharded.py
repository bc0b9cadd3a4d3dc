"""Sharded collections in one process (no Dask): routing, exact merging, one IVF-PQ model
shared by every shard. The same API on a LocalCluster is tested in tests/cluster."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore.errors import InvalidInput
from vecstore.sharded import merge, open_sharded, shard_of


def test_routing_is_stable_and_spread():
    assert [shard_of(f"id{i}", 4) for i in range(8)] == [shard_of(f"id{i}", 4) for i in range(8)]
    counts = np.bincount([shard_of(f"id{i}", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900
    assert shard_of("é", 7) == shard_of("é", 7)


def test_writes_route_and_reads_merge(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    ids = [f"r{i}" for i in range(300)]
    with vecstore.open(tmp_path / "one") as db:
        one = db.create_collection("c", dim=8, metric="l2")
        one.add(ids, vectors=x, documents=[f"d{i}" for i in range(300)])
        want = one.query(x[0], k=7)
    paths = [tmp_path / f"s{i}" for i in range(4)]
    with open_sharded(paths, "c", dim=8, metric="l2") as sc:
        sc.add(ids, vectors=x, documents=[f"d{i}" for i in range(300)])
        got = sc.query(x[0], k=7)
        assert got.ids == want.ids and got.documents == want.documents
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
        sc.upsert(["r0"], vectors=x[1:2])
        assert sc.count() == 300
        assert sc.get(["r0"], include_vectors=True).vectors[0].tolist() == x[1].tolist()
        assert len(sc.get(limit=10)) == 10
        with pytest.raises(InvalidInput):
            sc.create_index("not a spec")
        assert "shards=4" in repr(sc)
    with pytest.raises(InvalidInput):
        open_sharded([tmp_path / "a", tmp_path / "a"], "c", dim=8)


def test_merge_keeps_the_best_k():
    from vecstore.results import QueryResult

    a = QueryResult(["a", "b"], np.array([0.9, 0.1], np.float32), [None] * 2, [{}] * 2, "cosine")
    b = QueryResult(["c", "d"], np.array([0.5, 0.4], np.float32), [None] * 2, [{}] * 2, "cosine")
    assert merge([a, b], 3).ids == ["a", "c", "d"]


def test_shards_share_one_ivfpq_model(tmp_path):
    from vecstore import IVFPQ
    from vecstore.index.ivf import TrainedModel

    rng = np.random.default_rng(1)
    centers = rng.standard_normal((20, 32)).astype(np.float32)
    x = (centers[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 32))).astype(
        np.float32
    )
    ids = [f"r{i}" for i in range(3000)]
    xq = x[rng.choice(3000, 20, replace=False)] + 0.05
    spec = IVFPQ(nlist=16, m=8, nbits=4, nprobe=3, refine=2)
    paths = [tmp_path / f"s{i}" for i in range(2)]
    with open_sharded(paths, "c", dim=32) as sc:
        sc.add(ids, vectors=x)
        infos = sc.create_index(spec)
        assert all(i["trained"] and i["shared"] and i["indexed_rows"] > 0 for i in infos)
        sc.add([f"n{i}" for i in range(3000)], vectors=x + 0.01)  # 3x growth: no retrain
        got = sc.query_many(xq, k=10)
        exact = sc.query_many(xq, k=10, exact=True)
    for p in paths:
        with vecstore.open(p) as db:
            info = db.get_collection("c").index_info()
            assert info["shared"] and info["train_rows"] == 3000 and db.verify().ok
    # One store holding every row under the same kind of model: the shards' merged
    # candidates include its candidates, so no merged score is below its score.
    model = TrainedModel.train(x, "cosine", spec, 3000)
    with vecstore.open(tmp_path / "one") as db:
        one = db.create_collection("c", dim=32)
        one.add(ids, vectors=x)
        one.add([f"n{i}" for i in range(3000)], vectors=x + 0.01)
        one.install_index(spec, model)
        single = one.query_many(xq, k=10)
    recall = np.mean([len(set(g.ids) & set(e.ids)) / 10 for g, e in zip(got, exact)])
    base = np.mean([len(set(g.ids) & set(e.ids)) / 10 for g, e in zip(single, exact)])
    assert recall >= 0.8 and recall >= base - 0.05
