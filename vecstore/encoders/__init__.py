"""Encoders turn texts into vectors for collections that embed automatically.

Standalone: these modules import nothing from vecstore but ``errors``, and import heavy
libraries (torch, sentence-transformers, transformers) only when an encoder is first used.
"""

from .base import Encoder, EncoderSpec
from .callable import CallableEncoder, identity_of, named
from .clip import CLIPEncoder
from .cohere import CohereEncoder
from .factory import encoder_from_spec, resolve_encoder
from .http import HTTPEncoder
from .sentence_transformers import SentenceTransformerEncoder
from .transformers import TransformersEncoder
from .word_vectors import WordVectorEncoder

__all__ = [
    "Encoder",
    "EncoderSpec",
    "CallableEncoder",
    "CLIPEncoder",
    "CohereEncoder",
    "HTTPEncoder",
    "SentenceTransformerEncoder",
    "TransformersEncoder",
    "WordVectorEncoder",
    "encoder_from_spec",
    "identity_of",
    "named",
    "resolve_encoder",
]
