"""Chroma's habits: vecstore's API names its own parameter when given a Chroma keyword; a
Chroma-style app runs unchanged on vecstore.compat.chroma; a directory written by real
chromadb migrates through ``vecstore import --from-chroma``."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder
from vecstore import cli
from vecstore.compat import chroma


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda c: c.query([1, 0], n_results=3), "use k="),
        (lambda c: c.query_many(None, query_embeddings=[[1, 0]]), "queries="),
        (lambda c: c.add(["a"], embeddings=[[1, 0]]), "vectors="),
        (lambda c: c.upsert(["a"], vectors=[[1, 0]], metadatas=[{}]), "metadata="),
        (lambda c: c.get(include=["embeddings"]), "include_vectors=True"),
        (lambda c: c.peek(limit=3), "n="),
    ],
)
def test_chroma_keywords_name_vecstores_parameter(db, call, hint):
    coll = db.create_collection("c", dim=2)
    with pytest.raises(vecstore.InvalidInput, match=hint):
        call(coll)
    with pytest.raises(vecstore.InvalidInput, match="encoder="):
        db.create_collection("d", dim=2, embedding_function=hashing_encoder)
    with pytest.raises(TypeError, match="nonsense"):  # other names: Python's own error
        coll.query([1, 0], nonsense=1)


class MyEmbeddingFunction:
    """An embedding function the way Chroma's docs write one: __call__(input) -> vectors."""

    def __call__(self, input):
        return hashing_encoder(list(input)).tolist()


def chroma_style_app(chromadb, path):
    """A small app written as Chroma's getting-started guide shows; only the import differs."""
    client = chromadb.PersistentClient(path=str(path))
    collection = client.get_or_create_collection(
        name="my_collection", embedding_function=MyEmbeddingFunction(),
        metadata={"hnsw:space": "cosine"},
    )  # fmt: skip
    collection.add(
        documents=["This is a document about pineapple", "This is a document about oranges"],
        metadatas=[{"source": "notion"}, {"source": "google-docs"}],
        ids=["id1", "id2"],
    )
    collection.upsert(ids=["id3"], documents=["a note about apples"], metadatas=[{"n": 3}])
    collection.update(ids=["id3"], metadatas=[{"m": 4}])
    results = collection.query(query_texts=["This is a query document about oranges",
                                            "apples"], n_results=2)  # fmt: skip
    filtered = collection.query(query_texts=["pineapple"], n_results=5,
                                where={"source": "notion"}, include=["documents"])  # fmt: skip
    got = collection.get(ids=["id3", "id1"], include=["metadatas", "embeddings"])
    peek = collection.peek(limit=2)
    count = collection.count()
    collection.delete(ids=["id2"])
    names = [c.name for c in client.list_collections()]
    return results, filtered, got, peek, count, collection.count(), names


def test_a_chroma_style_app_runs_on_the_shim(tmp_path):
    results, filtered, got, peek, count, after, names = chroma_style_app(chroma, tmp_path / "s")
    assert results["ids"][0][0] == "id2" and results["ids"][1][0] == "id3"
    assert len(results["distances"]) == 2 and len(results["distances"][0]) == 2
    assert results["distances"][0][0] == pytest.approx(0.0, abs=0.3)
    assert results["metadatas"][0][0] == {"source": "google-docs"}
    assert results["embeddings"] is None and results["included"] == [
        "metadatas", "documents", "distances"]  # fmt: skip
    assert filtered["ids"] == [["id1"]] and filtered["metadatas"] is None
    assert got["ids"] == ["id3", "id1"] and got["metadatas"][0] == {"n": 3, "m": 4}
    assert got["embeddings"].shape == (2, 16) and got["documents"] is None
    assert peek["ids"] == ["id1", "id2"] and count == 3 and after == 2
    assert names == ["my_collection"]
    # reopened by a new client with the same embedding function
    client = chroma.PersistentClient(path=str(tmp_path / "s"))
    again = client.get_collection("my_collection", embedding_function=MyEmbeddingFunction())
    assert again.metadata == {"hnsw:space": "cosine"} and again.count() == 2
    assert again.query(query_embeddings=[hashing_encoder(["apples"])[0].tolist()],
                       n_results=1)["ids"] == [["id3"]]  # fmt: skip
    client.delete_collection("my_collection")
    assert client.list_collections() == []
    with pytest.raises(vecstore.CollectionNotFound):
        client.get_collection("my_collection")


def test_shim_with_explicit_embeddings_defaults_to_l2(tmp_path):
    client = chroma.PersistentClient(str(tmp_path / "s"))
    coll = client.create_collection("v")
    assert coll.count() == 0 and coll.query(query_embeddings=[[1.0, 0.0]])["ids"] == [[]]
    coll.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 2.0]])
    out = coll.query(query_embeddings=[1.0, 0.0], n_results=2, include=["distances"])
    assert out["ids"] == [["a", "b"]] and out["distances"] == [[0.0, 5.0]]
    with pytest.raises(vecstore.InvalidInput, match="include="):
        coll.get(include=["uris"])
    with pytest.raises(vecstore.CollectionExists):
        client.create_collection("v")


def test_migrate_a_real_chroma_directory(tmp_path, capsys):
    chromadb = pytest.importorskip("chromadb")
    from chromadb.config import Settings

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    source = chromadb.PersistentClient(str(tmp_path / "chroma"),
                                       Settings(anonymized_telemetry=False))  # fmt: skip
    notes = source.create_collection("notes", metadata={"hnsw:space": "cosine"},
                                     embedding_function=None)  # fmt: skip
    ids = [f"n{i}" for i in range(300)]
    metas = [{"i": i, "even": i % 2 == 0, "tag": f"t{i % 3}", "x": i / 7} for i in range(300)]
    notes.add(ids=ids, embeddings=vectors, documents=[f"note {i} ✓" for i in range(300)],
              metadatas=metas)  # fmt: skip
    # what Chroma gives back (its cosine space stores a few ulps off the input)
    held = np.asarray(notes.get(ids=ids, include=["embeddings"])["embeddings"], np.float32)
    np.testing.assert_allclose(held, vectors, rtol=1e-5)
    plain = source.create_collection("plain", embedding_function=None)
    plain.add(ids=["p"], embeddings=[[1.0, 2.0]])
    del source, notes, plain

    assert cli.main(["import", str(tmp_path / "store"), "--from-chroma",
                     str(tmp_path / "chroma")]) == 0  # fmt: skip
    assert "notes" in capsys.readouterr().out
    with vecstore.open(tmp_path / "store") as db:
        moved = db.get_collection("notes")
        assert moved.metric == "cosine" and moved.count() == 300
        got = moved.get(ids, include_vectors=True)
        assert got.ids == ids and got.metadata == metas
        assert got.documents[5] == "note 5 ✓"
        assert np.array_equal(got.vectors, held)
        assert db.get_collection("plain").metric == "l2"
        assert moved.query(vectors[42], k=1).ids == ["n42"]
