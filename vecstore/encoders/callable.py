"""An encoder wrapping any Python callable ``texts -> vectors``, under an explicit identity.

The callable cannot be stored (stored data never executes code), so a collection made with
one records the name and version it was given, and must be given the callable again when
reopened. A function's own name says nothing about what it computes (every lambda is
``<lambda>``), so both are required: a changed function gets a new version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from ..errors import InvalidInput
from .base import EncoderSpec, Kind, as_matrix

F = TypeVar("F", bound=Callable[..., Any])
# The attribute ``named`` sets on a function: its (name, version).
IDENTITY = "__vecstore_encoder__"
HOW_TO_NAME = (
    "wrap it as vecstore.encoders.CallableEncoder(fn, name='my-encoder', version='1'), or "
    "decorate the function with @vecstore.encoders.named('my-encoder', version='1'); give "
    "a new version whenever what it computes changes"
)


def named(name: str, *, version: str) -> Callable[[F], F]:
    """Decorate a function ``texts -> vectors`` with the name and version vecstore stores, so
    it can be passed as ``encoder=fn`` (or ``--encoder module:fn``) and called as before.

    >>> @named("hashing", version="1")
    ... def embed(texts): ...
    """
    name, version = _identity(name, version)

    def mark(fn: F) -> F:
        if not callable(fn):
            raise InvalidInput(f"named() decorates a callable; got {type(fn).__name__}")
        try:
            setattr(fn, IDENTITY, (name, version))
        except AttributeError:  # a bound method or a builtin takes no attributes
            raise InvalidInput(f"cannot name {fn!r}: {HOW_TO_NAME.split(', or ')[0]}") from None
        return fn

    return mark


def identity_of(fn: Any) -> tuple[str, str] | None:
    """The ``(name, version)`` ``named`` gave ``fn``, or None."""
    value = getattr(fn, IDENTITY, None)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return value
    return None


def _identity(name: Any, version: Any) -> tuple[str, str]:
    for field, value in (("name", name), ("version", version)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(
                f"a callable encoder's {field} must be a non-empty str; got {value!r}"
            )
    if name.strip() == "<lambda>":
        raise InvalidInput(f"'<lambda>' names no encoder: {HOW_TO_NAME}")
    return name.strip(), version.strip()


class CallableEncoder:
    """Wrap ``fn(texts: list[str]) -> array (n, dim)`` (or ``fn(texts, kind)``).

    Parameters
    ----------
    fn : callable
    name, version : str
        The encoder's identity, stored in the catalog (``version`` as the spec's
        ``revision``): reopening with another name or version raises ``EncoderMismatch``.
        Required, unless ``fn`` was decorated with ``named``, whose values are the defaults.
    dim : int, optional
        Probed with one call on ``["dimension probe"]`` when not given.
    query_prefix, document_prefix : str
    pass_kind : bool
        Call ``fn(texts, kind)`` instead of ``fn(texts)``.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        version: str | None = None,
        dim: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        pass_kind: bool = False,
    ):
        if not callable(fn):
            raise InvalidInput(f"CallableEncoder needs a callable; got {type(fn).__name__}")
        declared = identity_of(fn) or (None, None)
        name = declared[0] if name is None else name
        version = declared[1] if version is None else version
        if name is None or version is None:
            what = "a lambda" if getattr(fn, "__name__", "") == "<lambda>" else repr(fn)
            given = (("name", name), ("version", version))
            missing = " and ".join(field for field, v in given if v is None)
            raise InvalidInput(f"{what} was given no {missing}: {HOW_TO_NAME}")
        self._fn = fn
        self._pass_kind = pass_kind
        self.name, self.version = _identity(name, version)
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
            revision=self.version,
        )

    def __repr__(self) -> str:
        return f"CallableEncoder({self.name!r}, version={self.version!r}, dim={self.dim})"
