"""The LangChain store passes langchain-tests' standard VectorStore suite, unmodified (sync
and async), and its vecstore-specific parts work: a collection that embeds itself, filters in
vecstore's language, MMR, relevance scores, refusals."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
standard = pytest.importorskip("langchain_tests.integration_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

import vecstore  # noqa: E402
from tests.conftest import hashing_encoder  # noqa: E402
from vecstore.integrations.langchain import VecstoreVectorStore  # noqa: E402


class TestStandardSuite(standard.VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = VecstoreVectorStore.open(tmp_path / "store", embedding=self.get_embeddings())
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def fake():
    return DeterministicFakeEmbedding(size=16)


def test_from_texts_filters_and_scores(tmp_path, fake):
    texts = ["apples are red", "bananas are yellow", "cherries are red", "the sky is blue"]
    meta = [{"colour": "red", "n": 1}, {"colour": "yellow", "n": 2},
            {"colour": "red", "n": 3}, {"colour": "blue", "n": 4}]  # fmt: skip
    with VecstoreVectorStore.from_texts(
        texts, fake, meta, ids=["a", "b", "c", "d"], path=tmp_path / "s"
    ) as store:
        hits = store.similarity_search("cherries are red", k=4, filter={"colour": "red"})
        assert [d.id for d in hits] == ["c", "a"]
        doc, dist = store.similarity_search_with_score("cherries are red", k=1)[0]
        assert doc == Document(page_content="cherries are red", metadata=meta[2], id="c")
        assert dist == pytest.approx(0.0, abs=1e-5)
        rel = store.similarity_search_with_relevance_scores("cherries are red", k=1)
        assert rel[0][1] == pytest.approx(1.0, abs=1e-5)
        got = store.similarity_search_by_vector(fake.embed_query("the sky is blue"), k=1,
                                                filter={"n": {"$gte": 2}})  # fmt: skip
        assert got[0].id == "d"
        assert store.delete(filter={"colour": "red"})
        assert sorted(d.id for d in store.get_by_ids(["a", "b", "c", "d"])) == ["b", "d"]
        with pytest.raises(vecstore.InvalidInput, match="filter="):
            store.delete()
        with pytest.raises(vecstore.InvalidInput, match="unexpected keyword"):
            store.similarity_search("x", k=1, n_results=3)
    # the store persists: reopen it
    with VecstoreVectorStore.open(tmp_path / "s", embedding=fake) as store:
        assert store.collection.count() == 2


def test_mmr_prefers_diverse_rows(tmp_path, fake):
    store = VecstoreVectorStore.from_texts(["same", "same", "other"], fake,
                                           ids=["x1", "x2", "y"])  # fmt: skip
    try:
        plain = store.similarity_search("same", k=2)
        assert {d.id for d in plain} == {"x1", "x2"}
        diverse = store.max_marginal_relevance_search("same", k=2, fetch_k=3, lambda_mult=0.1)
        assert {d.id for d in diverse} in ({"x1", "y"}, {"x2", "y"})
        assert store.max_marginal_relevance_search("same", k=2, filter={"n": 1}) == []
    finally:
        store.close()


def test_collection_that_embeds_itself(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        coll = db.create_collection("notes", encoder=hashing_encoder)
        store = VecstoreVectorStore(coll)
        store.add_documents([Document(page_content="red apple", metadata={"k": "fruit"}),
                             Document(page_content="blue sky", metadata={"k": "sky"})],
                            ids=["1", "2"])  # fmt: skip
        assert store.embeddings is None
        assert [d.id for d in store.similarity_search("apple", k=1)] == ["1"]
        assert [d.id for d in store.max_marginal_relevance_search("sky", k=1)] == ["2"]
        with pytest.raises(vecstore.InvalidInput, match="own encoder"):
            VecstoreVectorStore(coll, embedding=DeterministicFakeEmbedding(size=16))
        plain = db.create_collection("plain", dim=4)
        with pytest.raises(vecstore.InvalidInput, match="embedding="):
            VecstoreVectorStore(plain)


def test_nested_metadata_is_refused_by_vecstore_rules(tmp_path, fake):
    with VecstoreVectorStore.open(tmp_path / "s", embedding=fake) as store:
        with pytest.raises(vecstore.InvalidInput, match="metadata"):
            store.add_texts(["x"], [{"nested": {"a": 1}}])
        assert store.collection.count() == 0
