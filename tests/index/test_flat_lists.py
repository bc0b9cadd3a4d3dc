"""The small-dimension default: ``IVFPQ()`` without ``m`` at d <= 64 stores flat float32 lists
(IVF-Flat), which round-trip, persist, survive reopening and verify, and whose damaged list
files are refused as any other list file is."""

from __future__ import annotations

import shutil

import pytest

import vecstore
from tests.index.test_ivf_store import (
    collection_dir,
    damage,
    embeddings,
    ids,
    index_files,
    recall,
    same_results,
)
from vecstore import IVFPQ, CorruptStoreError
from vecstore.index import specs


def test_the_layout_follows_the_dimension():
    assert specs.flat_lists(IVFPQ(), 50)
    assert specs.flat_lists(IVFPQ(), specs.FLAT_LISTS_MAX_DIM)
    assert not specs.flat_lists(IVFPQ(), specs.FLAT_LISTS_MAX_DIM + 1)
    assert not specs.flat_lists(IVFPQ(m=10), 50)  # an explicit m is honoured
    assert specs.flat_lists(vecstore.IVF(), 384)
    assert not specs.flat_lists(vecstore.Flat(), 16)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A closed store: a 32-d collection indexed with IVFPQ() defaults (flat lists), some
    rows deleted and some pending; the queries and answers before closing."""
    path = tmp_path_factory.mktemp("flat-lists") / "s"
    x = embeddings(2600, seed=12)
    q = x[2500:]
    with vecstore.open(path, seal_rows=256, progress=False) as db:
        c = db.create_collection("c", dim=32, metric="cosine", index=IVFPQ(min_rows=2000))
        c.add(ids(0, 2400), vectors=x[:2400], metadata=[{"g": i % 3} for i in range(2400)])
        c.add(ids(2400, 2450), vectors=x[2400:2450])  # pending at close
        c.delete(ids(0, 2400)[::17])
        info = c.index_info()
        answers = {
            "plain": c.query_many(q, k=10),
            "filtered": c.query_many(q, k=10, where={"g": {"$ne": 1}}),
            "exact": c.query_many(q, k=10, exact=True),
        }
    return path, q, info, answers


def test_ivfpq_defaults_at_small_dim_store_flat_lists(pristine):
    _, _, info, answers = pristine
    assert info["trained"] and info["kind"] == "ivfpq"
    assert info["lists"] == "flat" and info["m"] == 0 and info["refine"] == 1
    assert recall(answers["plain"], answers["exact"]) >= 0.95


def test_an_explicit_m_still_gives_pq_codes(tmp_path):
    with vecstore.open(tmp_path / "s", progress=False) as db:
        c = db.create_collection("c", dim=32, index=IVFPQ(m=8, nbits=4, nlist=8, min_rows=300))
        c.add(ids(0, 400), vectors=embeddings(400, seed=2))
        info = c.index_info()
        assert info["lists"] == "pq" and info["m"] == 8


def test_flat_lists_survive_reopen_and_verify(pristine, tmp_path):
    src, q, info, answers = pristine
    path = tmp_path / "s"
    shutil.copytree(src, path)
    for read_only in (False, True):
        with vecstore.open(path, read_only=read_only, progress=False) as db:
            c = db.get_collection("c")
            assert c.index == IVFPQ(min_rows=2000)
            assert c.index_info() == info
            same_results(c.query_many(q, k=10), answers["plain"])
            same_results(c.query_many(q, k=10, where={"g": {"$ne": 1}}), answers["filtered"])
            report = db.verify()
            assert report.ok, report.problems
    with vecstore.open(path, seal_rows=256, progress=False) as db:  # writes after reopening
        c = db.get_collection("c")
        more = embeddings(300, seed=13)
        c.add(ids(5000, 5300), vectors=more)
        assert c.index_info()["lists"] == "flat"
        got = c.query_many(more[:20], k=1, nprobe=64)
        assert [r.ids[0] for r in got] == ids(5000, 5020)


@pytest.mark.parametrize("how", ["header", "payload", "last", "truncate"])
@pytest.mark.parametrize("target", ["model", "lists"])
def test_damaged_flat_list_files_are_refused(pristine, tmp_path, target, how):
    path = tmp_path / "s"
    shutil.copytree(pristine[0], path)
    models, lists = index_files(collection_dir(path))
    victims = models if target == "model" else lists
    damage(victims[0], how)
    q = pristine[1]
    with vecstore.open(path, progress=False) as db:
        c = db.get_collection("c")
        with pytest.raises(CorruptStoreError):
            c.query(q[0], k=5)
        assert not db.verify().ok
