"""Encoders turn texts into vectors for collections that embed automatically.

Standalone: these modules import nothing from vecstore but ``errors``, and import heavy
libraries (torch, sentence-transformers, transformers) only when an encoder is first used.
"""

from .base import Encoder, EncoderSpec, encoder_from_spec, resolve_encoder
from .callable import CallableEncoder
from .sentence_transformers import SentenceTransformerEncoder

__all__ = [
    "Encoder",
    "EncoderSpec",
    "CallableEncoder",
    "SentenceTransformerEncoder",
    "encoder_from_spec",
    "resolve_encoder",
]
