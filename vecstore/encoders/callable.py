"""An encoder wrapping any Python callable ``texts -> vectors``.

The callable cannot be stored (stored data never executes code), so a collection made with
one records its name and dim, and must be given the callable again when reopened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .base import EncoderSpec, Kind, as_matrix


class CallableEncoder:
    """Wrap ``fn(texts: list[str]) -> array (n, dim)`` (or ``fn(texts, kind)``).

    Parameters
    ----------
    fn : callable
    dim : int, optional
        Probed with one call on ``["dimension probe"]`` when not given.
    name : str, optional
        Recorded in the catalog; defaults to the function's qualified name.
    query_prefix, document_prefix : str
    pass_kind : bool
        Call ``fn(texts, kind)`` instead of ``fn(texts)``.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        dim: int | None = None,
        name: str | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        pass_kind: bool = False,
    ):
        if not callable(fn):
            raise InvalidInput(f"CallableEncoder needs a callable; got {type(fn).__name__}")
        self._fn = fn
        self._pass_kind = pass_kind
        self.name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        if dim is None:
            dim = self._call(["dimension probe"], "document").shape[1]
        self.dim = int(dim)

    def _call(self, texts: list[str], kind: Kind) -> np.ndarray:
        out = self._fn(texts, kind) if self._pass_kind else self._fn(texts)
        return as_matrix(out, len(texts), getattr(self, "dim", None), repr(self.name))

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        return self._call([prefix + t for t in texts], kind)

    def config(self) -> EncoderSpec:
        return EncoderSpec(
            kind="callable",
            model=self.name,
            dim=self.dim,
            normalize=False,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
        )

    def __repr__(self) -> str:
        return f"CallableEncoder({self.name!r}, dim={self.dim})"
