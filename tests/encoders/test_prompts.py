"""Prompts a sentence-transformers model declares in its own config are honoured, on a tiny
random BERT built offline (a WordPiece vocabulary written here, no downloads)."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore

pytest.importorskip("sentence_transformers")

PROMPTS = {"query": "query: ", "passage": "passage: ", "s2p": "Represent this: "}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("tiny-st")
    words = "query passage represent this cats dogs run the a : fish".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", *words]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    bert_dir = d / "bert"
    BertModel(config).save_pretrained(bert_dir)
    BertTokenizer(vocab_file=str(d / "vocab.txt")).save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir), max_seq_length=32)
    st = SentenceTransformer(
        modules=[word, models.Pooling(16, "mean")], prompts=PROMPTS, device="cpu"
    )
    st.save(str(d / "model"))
    return d / "model"


def _own(model_dir, texts, prompt_name):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    return st.encode(texts, prompt_name=prompt_name, normalize_embeddings=True)


def test_declared_prompts_are_used_and_stored(tmp_path, model_dir):
    from vecstore.encoders.sentence_transformers import SentenceTransformerEncoder

    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", encoder=str(model_dir))
        spec = c.encoder_spec
        assert (spec.query_prefix, spec.document_prefix) == ("query: ", "passage: ")
        c.add(["a", "b"], documents=["cats run", "dogs run"])
        got = c.get(include_vectors=True).vectors
        assert np.allclose(got, _own(model_dir, ["cats run", "dogs run"], "passage"), atol=1e-5)
        q = c.encoder.encode(["the fish"], "query")
        assert np.allclose(q, _own(model_dir, ["the fish"], "query"), atol=1e-5)
    with vecstore.open(tmp_path / "s") as db:  # rebuilt from the stored spec
        c = db.get_collection("c")
        assert np.allclose(c.encoder.encode(["the fish"], "query"), q, atol=1e-6)
    named = SentenceTransformerEncoder(str(model_dir), query_prompt_name="s2p")
    assert named.config().query_prefix == "Represent this: "
    explicit = SentenceTransformerEncoder(str(model_dir), query_prefix="")
    assert explicit.config().query_prefix == ""
    with pytest.raises(vecstore.InvalidInput, match="declares no prompt 'nope'"):
        SentenceTransformerEncoder(str(model_dir), query_prompt_name="nope").config()
    with pytest.raises(vecstore.InvalidInput, match="not both"):
        SentenceTransformerEncoder(str(model_dir), query_prefix="q", query_prompt_name="s2p")
