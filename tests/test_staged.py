"""Staged ingest without Dask: partitions written elsewhere, adopted in one transaction."""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest

import vecstore
from vecstore.encoders import named
from vecstore.errors import CorruptStoreError, DuplicateIdError, VecstoreError
from vecstore.staged import describe_partition, stage_partition
from vecstore.storage import staging


@named("staged_hashing_encoder", version="1")
def hashing_encoder(texts: list[str], dim: int = 16) -> np.ndarray:
    """Deterministic: each word adds a fixed random direction."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            rng = np.random.default_rng(zlib.crc32(word.encode()))
            out[i] += rng.standard_normal(dim).astype(np.float32)
    return out


DOCS = [f"passage {i} about topic {i % 7} and colour {i % 3}" for i in range(120)]
IDS = [f"p{i}" for i in range(120)]
METAS = [{"topic": i % 7} for i in range(120)]
PARTS = [(IDS[i : i + 40], DOCS[i : i + 40], METAS[i : i + 40]) for i in range(0, 120, 40)]


def stage_all(run, parts, *, twice=False):
    desc = [describe_partition(run.target, *p) for p in parts]
    starts = run.reserve(dict(desc))
    for (token, _), p in zip(desc, parts):
        for _ in range(2 if twice else 1):  # a retried task writes the same files again
            stage_partition(run.target, starts[token], *p, encoder=hashing_encoder)
    return [t for t, _ in desc]


def test_adopted_rows_equal_a_local_add(tmp_path):
    with vecstore.open(tmp_path / "local") as db:
        local = db.create_collection("c", encoder=hashing_encoder)
        local.add(IDS, documents=DOCS, metadata=METAS)
        want = local.query_many(["topic 3 colour 1", "passage 7"], k=5, where={"topic": 3})
        want_text = local.query("colour", mode="text", k=5)
        want_vecs = local.get(IDS, include_vectors=True).vectors
    with vecstore.open(tmp_path / "staged") as db:
        coll = db.create_collection("c", encoder=hashing_encoder)
        with coll.stage() as run:
            tokens = stage_all(run, PARTS, twice=True)
            assert run.adopt(tokens) == 120
            assert run.adopt(tokens) == 0  # adopted once, whatever retries
        got = coll.query_many(["topic 3 colour 1", "passage 7"], k=5, where={"topic": 3})
        assert [r.ids for r in got] == [r.ids for r in want]
        np.testing.assert_allclose(got[0].scores, want[0].scores, rtol=1e-6)
        assert coll.query("colour", mode="text", k=5).ids == want_text.ids  # keyword index
        np.testing.assert_array_equal(coll.get(IDS, include_vectors=True).vectors, want_vecs)
        assert coll.get(["p5"]).metadata == [{"topic": 5}]
        assert db.verify().ok
        assert not any((tmp_path / "staged" / staging.STAGING).iterdir())  # run removed


@pytest.mark.parametrize("vectors", ["int8", "binary"])
def test_adopted_segments_get_their_codes_in_a_compressed_collection(tmp_path, vectors):
    with vecstore.open(tmp_path / "local") as db:
        local = db.create_collection("c", encoder=hashing_encoder, vectors=vectors)
        local.add(IDS, documents=DOCS, metadata=METAS)
        want = local.query("topic 3 colour 1", k=5, refine=50)
    with vecstore.open(tmp_path / "staged") as db:
        coll = db.create_collection("c", encoder=hashing_encoder, vectors=vectors)
        with coll.stage() as run:
            assert run.adopt(stage_all(run, PARTS)) == 120
        got = coll.query("topic 3 colour 1", k=5, refine=50)
        assert got.ids == want.ids
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
        assert db.verify().ok


def test_a_second_run_skips_adopted_partitions_and_refuses_duplicates(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        coll = db.create_collection("c", encoder=hashing_encoder)
        with coll.stage() as run:
            run.adopt(stage_all(run, PARTS[:2]))
        with coll.stage() as run:
            tokens = [describe_partition(run.target, *p)[0] for p in PARTS]
            assert run.adopted(tokens) == set(tokens[:2])
            run.adopt(stage_all(run, PARTS[2:]))
        assert coll.count() == 120
        with coll.stage() as run:  # the same ids in a new partition: refused whole
            clash = (["p0", "new"], ["x", "y"], None)
            with pytest.raises(DuplicateIdError):
                run.adopt(stage_all(run, [clash]))
        assert coll.count() == 120 and db.verify().ok


def test_half_written_and_tampered_partitions_are_never_adopted(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        coll = db.create_collection("c", encoder=hashing_encoder)
        with coll.stage() as run:
            tokens = stage_all(run, PARTS)
            folder = type(tmp_path)(run.target.run)
            os.unlink(folder / f"{tokens[0]}{staging.MANIFEST_SUFFIX}")  # killed before it
            with pytest.raises(VecstoreError, match="not staged"):
                run.adopt(tokens)
            seg = folder / f"{tokens[1]}.vseg"
            data = bytearray(seg.read_bytes())
            data[200] ^= 1
            seg.write_bytes(bytes(data))
            with pytest.raises(CorruptStoreError):
                run.adopt(tokens[1:])
            manifest = folder / f"{tokens[2]}{staging.MANIFEST_SUFFIX}"
            body = json.loads(manifest.read_text())
            body["staged"]["segment"]["file"] = "../../catalog.db"
            manifest.write_text(json.dumps(body))
            with pytest.raises(CorruptStoreError):
                run.adopt(tokens[2:])
        assert coll.count() == 0 and db.verify().ok


CLIENT = """
import os, sys, numpy as np, vecstore
from vecstore.storage.staging import write_partition
db = vecstore.open(sys.argv[1])
run = db.get_collection("c").stage()
x = np.ones((1, 16), np.float32)
folder = __import__("pathlib").Path(run.target.run)
write_partition(folder, "0" * 32, 10**6, x, x[:, 0], ["a"], ["t"], [None])
print(run.target.run, flush=True)
os._exit(0)  # dies without closing the run: its lock goes with the process
"""


def test_an_abandoned_run_is_swept_at_open(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "s"
    with vecstore.open(path) as db:
        db.create_collection("c", dim=16)
        coll = db.get_collection("c")
        held = coll.stage()  # a live run is left alone
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, str(path)], capture_output=True, text=True, check=True
        )
        dead = Path(out.stdout.strip())
        assert dead.is_dir()
    with vecstore.open(path) as db:
        assert not dead.exists()
        assert Path(held.target.run).is_dir()
        assert db.get_collection("c").count() == 0
    held.close()
    assert not Path(held.target.run).exists()


def test_adopted_segments_get_their_graphs_in_an_hnsw_collection(tmp_path):
    index = vecstore.HNSW(M=8, ef_construction=32, min_rows=50)
    with vecstore.open(tmp_path / "s") as db:
        coll = db.create_collection("c", encoder=hashing_encoder, index=index)
        coll.add(IDS[:60], documents=DOCS[:60], metadata=METAS[:60])  # builds the graphs
        assert coll.index_info()["trained"]
        with coll.stage() as run:
            assert run.adopt(stage_all(run, [(IDS[60:], DOCS[60:], METAS[60:])])) == 60
        plan = coll.explain("passage 99", k=5)
        assert plan.plan == "HNSW"
        assert len(plan.facts["graph_segments"]) == len(plan.facts["segments"])  # all graphed
        exact = coll.query("passage 99", k=5, exact=True)
        assert coll.query("passage 99", k=5, ef=200).ids == exact.ids
        assert db.verify().ok
