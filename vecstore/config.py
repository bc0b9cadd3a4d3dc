"""A collection's configuration: dim, metric, index spec, encoder spec and keyword analyzer,
parsed once.

The catalog keeps it as a JSON object in ``collections.config``; this module is the only
place that reads or writes that JSON. A configuration that does not parse is damage
(``CorruptStoreError``), not user error. Imports the index specs, the encoder spec and the
analyzer only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from .encoders.base import EncoderSpec
from .errors import CorruptStoreError, InvalidInput
from .index import specs
from .storage.catalog import CollectionRecord
from .text import Analyzer

# The spelled-out choices, for type checkers (py.typed): a typo is caught before it runs.
Metric = Literal["cosine", "dot", "l2"]
METRICS: tuple[Metric, ...] = ("cosine", "dot", "l2")
Vectors = Literal["float32", "float16", "int8", "binary"]
VECTORS: tuple[Vectors, ...] = ("float32", "float16", "int8", "binary")


def check_vectors(vectors: object) -> str:
    """``vectors`` if it names a vector encoding; else ``InvalidInput``."""
    if not isinstance(vectors, str) or vectors not in VECTORS:
        raise InvalidInput(
            f"vectors must be one of {VECTORS}; got {vectors!r} (float32 keeps only the "
            "originals; the others add compressed codes that queries scan before re-ranking "
            "with the originals)"
        )
    return vectors


@dataclass(frozen=True)
class CollectionConfig:
    """What a collection is: ``dim``-dimensional vectors compared by ``metric``, searched
    through ``index``, embedded by the encoder ``encoder`` describes (None: the user
    gives vectors), its documents keyword-indexed by ``text``. A configuration stored
    without ``"text"`` predates per-collection analyzers: version 1, English. ``vectors``
    is how exact queries read the vectors ("float32": the originals; "float16", "int8" or
    "binary": compressed codes, then the originals for re-ranking); stored only when not
    float32, so older configurations read as float32."""

    dim: int
    metric: str
    index: specs.Spec
    encoder: EncoderSpec | None = None
    text: Analyzer = Analyzer()
    vectors: str = "float32"

    def to_json(self) -> str:
        data: dict[str, Any] = {"dim": self.dim, "metric": self.metric}
        data["index"] = self.index.to_json()
        if self.encoder is not None:
            data["encoder"] = self.encoder.to_json()
        data["text"] = self.text.to_json()
        if self.vectors != "float32":
            data["vectors"] = self.vectors
        return json.dumps(data)

    def with_index(self, index: specs.Spec) -> CollectionConfig:
        return dataclasses.replace(self, index=index)

    @classmethod
    def of(cls, record: CollectionRecord) -> CollectionConfig:
        """The configuration a catalog record stores."""
        return cls.parse(record.config, record.name, record.dim, record.metric)

    @classmethod
    def parse(
        cls, text: str, name: str, dim: int | None = None, metric: str | None = None
    ) -> CollectionConfig:
        """The configuration stored as ``text`` for the collection ``name`` (``dim`` and
        ``metric`` as its record holds them, else as the text does)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError):  # not text, or not JSON: a damaged or doctored catalog
            data = None
        if not isinstance(data, dict):
            raise CorruptStoreError(
                f"collection {name!r}: its stored configuration is not a JSON object"
            )
        try:
            index = specs.from_json(data.get("index"))
            encoder = data.get("encoder")
            encoder = EncoderSpec.from_json(encoder) if encoder else None
            text = Analyzer.from_json(data.get("text"))
            vectors = check_vectors(data.get("vectors", "float32"))
        except (InvalidInput, TypeError, AttributeError) as exc:
            raise CorruptStoreError(
                f"collection {name!r}: its stored configuration is invalid ({exc})"
            ) from None
        dim = data.get("dim") if dim is None else dim
        metric = data.get("metric") if metric is None else metric
        return cls(dim, metric, index, encoder, text, vectors)


def cache_key(config: str) -> str | None:
    """The key the embedding cache files a collection's embeddings under, from its stored
    configuration text (None: not cached, or no encoder)."""
    spec = CollectionConfig.parse(config, "?").encoder
    return None if spec is None else spec.cache_key()
