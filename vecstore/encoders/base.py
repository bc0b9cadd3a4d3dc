"""The Encoder protocol and the persisted encoder spec.

A collection that embeds stores its encoder's ``EncoderSpec`` in the catalog (as JSON), so
reopening it rebuilds the same encoder, and a different encoder is refused rather than
silently mixing vectors from two models. Imports no concrete encoder (they import this
module; factory.py picks among them).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInput

Kind = Literal["document", "query"]


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds texts: ``name``, ``dim``, ``encode`` and ``config``."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        """float32 ``(len(texts), dim)``; ``kind`` selects the document or query prefix."""
        ...

    def config(self) -> EncoderSpec:
        """The spec that rebuilds this encoder (or identifies it, for callables)."""
        ...


@dataclass(frozen=True)
class EncoderSpec:
    """What the catalog records about a collection's encoder.

    Parameters
    ----------
    kind : str
        ``"sentence-transformers"`` or ``"callable"`` (a Python function, which cannot be
        stored: pass it again when reopening).
    model : str
        Model name or local path, as the user gave it (or the callable's name).
    dim : int
        Output dimension.
    normalize : bool
        Whether embeddings are L2-normalised.
    max_tokens : int or None
        The model's maximum sequence length; longer texts are truncated by the model.
    query_prefix, document_prefix : str
        Prepended to queries and documents (e5's ``"query: "``/``"passage: "``, BGE
        instructions).
    revision : str or None
        What identifies the exact model, when known: the SHA-256 of a local weights file,
        the Hugging Face hub commit a cached model was loaded from, the SHA-256 of a word
        vector table, or a callable's version. A changed revision is detected on reopen.
    backend : str or None
        How a sentence-transformers model runs when not through torch: ``"onnx"`` (ONNX
        Runtime, fp32) or ``"onnx-int8"`` (int8 weights). Their vectors differ slightly from
        torch's, so the backend is part of the identity: the embedding cache never mixes
        them and reopening with another backend raises ``EncoderMismatch``.
    """

    kind: str
    model: str
    dim: int
    normalize: bool = True
    max_tokens: int | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    revision: str | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or self.dim < 1:
            raise InvalidInput(f"encoder dim must be a positive int; got {self.dim!r}")
        for field in ("query_prefix", "document_prefix"):
            if not isinstance(getattr(self, field), str):
                raise InvalidInput(f"{field} must be a str")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # absent when torch: specs (and embedding-cache keys) stored before backends existed
        # stay what they were
        if data["backend"] is None:
            del data["backend"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncoderSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def cache_key(self) -> str | None:
        """The key the store's embedding cache files this encoder's embeddings under; None
        for a callable, whose spec (its name) does not identify what it computes."""
        if self.kind == "callable":
            return None
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    def differences(self, other: EncoderSpec) -> list[str]:
        """Fields that differ, ignoring ``revision`` when either side does not know it."""
        out = []
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "revision" and (a is None or b is None):
                continue
            if a != b:
                out.append(f"{f.name}: {a!r} != {b!r}")
        return out


# Whether loading a model may print progress bars: the store sets it from ``progress=``
# (and the command line's ``-q``) around every call that may load one. A context variable,
# so one store's setting never leaks into another thread's.
_SHOW_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "vecstore_show_progress", default=True
)


@contextlib.contextmanager
def progress(enabled: bool) -> Iterator[None]:
    """Within this block, models load with (``True``) or without progress output."""
    token = _SHOW_PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Wrap a model load: with progress off, silence transformers' and the hub's progress
    bars and info logging for its duration, then restore them. They are process-wide
    switches, so this is only done around the load itself, never for longer."""
    if _SHOW_PROGRESS.get() or "transformers" not in sys.modules:
        yield
        return
    from transformers.utils import logging as tf_logging

    bars, level = tf_logging.is_progress_bar_enabled(), tf_logging.get_verbosity()
    tf_logging.disable_progress_bar()
    tf_logging.set_verbosity_error()
    try:
        yield
    finally:
        tf_logging.set_verbosity(level)
        if bars:
            tf_logging.enable_progress_bar()


def as_matrix(x: Any, n: int, dim: int | None, who: str) -> np.ndarray:
    """An encoder's output as C-contiguous finite float32 ``(n, dim)``, or a clear error."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] != n or (dim is not None and arr.shape[1] != dim):
        want = f"({n}, {dim if dim is not None else 'dim'})"
        raise InvalidInput(f"encoder {who} returned shape {arr.shape}; expected {want}")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"encoder {who} returned NaN or inf")
    return arr
