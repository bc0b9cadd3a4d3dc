"""Picking an encoder: from what a user passed (``resolve_encoder``) or from the spec a
collection stored (``encoder_from_spec``).

The concrete encoders are imported only when one is picked, so importing this module loads
neither them nor their libraries. Imports nothing from vecstore but ``errors`` and encoders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from .base import Encoder, EncoderSpec


def resolve_encoder(encoder: Any) -> Encoder:
    """An Encoder from what a user passed: an Encoder, a model name or path (a folder of a
    transformers CLIP model makes a ``CLIPEncoder``), or a named callable."""
    if isinstance(encoder, str) and is_clip_folder(encoder):
        from .clip import CLIPEncoder

        return CLIPEncoder(encoder)
    if isinstance(encoder, str):
        from .sentence_transformers import SentenceTransformerEncoder

        return SentenceTransformerEncoder(encoder)
    if isinstance(encoder, Encoder):
        return encoder
    if callable(encoder):
        from .callable import CallableEncoder

        return CallableEncoder(encoder)
    raise InvalidInput(
        "encoder must be a model name or path, an Encoder, or a callable texts -> vectors; "
        f"got {type(encoder).__name__}"
    )


def is_clip_folder(name: str) -> bool:
    """Whether ``name`` is a local folder holding a transformers CLIP model (and no
    sentence-transformers layout, which sentence-transformers loads itself)."""
    folder = Path(name).expanduser()
    try:
        if not folder.is_dir() or (folder / "modules.json").exists():
            return False
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "clip"


def encoder_from_spec(spec: EncoderSpec) -> Encoder | None:
    """Rebuild a stored encoder; None for kinds that cannot be rebuilt (callables)."""
    if spec.kind == "sentence-transformers":
        from .sentence_transformers import SentenceTransformerEncoder

        # "onnx" or "onnx-int8" (None: torch); an unknown backend is refused by the encoder
        backend, _, quantize = (spec.backend or "torch").partition("-")
        return SentenceTransformerEncoder(
            spec.model,
            normalize=spec.normalize,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            backend=backend,
            quantize=quantize or None,
            expected=spec,
        )
    if spec.kind == "http":
        from .http import HTTPEncoder

        return HTTPEncoder.from_spec(spec)
    if spec.kind == "clip":
        from .clip import CLIPEncoder

        return CLIPEncoder.from_spec(spec)
    if spec.kind == "word-vectors":
        from .word_vectors import WordVectorEncoder

        return WordVectorEncoder.from_spec(spec)
    if spec.kind == "cohere":
        from .cohere import CohereEncoder

        return CohereEncoder.from_spec(spec)
    if spec.kind == "transformers":
        from .transformers import TransformersEncoder

        return TransformersEncoder.from_spec(spec)
    return None
