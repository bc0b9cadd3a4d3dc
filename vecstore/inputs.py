"""Normalise and validate user input once, at the API boundary.

Inner layers trust what leaves this module: ids are a list of distinct, non-empty str;
vectors are C-contiguous finite float32 ``(n, dim)``; metadata dicts hold only storable
values. Every check raises a typed ``VecstoreError`` that says what was expected and what
arrived. Imports numpy and the storage layer's value kinds.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .errors import DimensionMismatch, DuplicateIdError, InvalidInput
from .storage.filters import kind_of

MAX_DIM = 65_536
MAX_K = 100_000
MAX_ID_BYTES = 2_048
MAX_KEY_CHARS = 256
MAX_DOCUMENT_BYTES = 64 << 20
# Per call, far above normal use: a bound on what one call makes the store hold in memory
# and send to SQLite at once. More rows or queries go in several calls (add_batches does).
MAX_BATCH = 1_000_000  # ids per add, upsert, update, delete or get
MAX_QUERIES = 100_000  # queries per query_many
MAX_RESULTS = 10_000_000  # queries x k per query_many: its (nq, k) heaps take 12 bytes a hit
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# Vector components, stored and queried. Scores are float32: over MAX_DIM dimensions a
# squared L2 distance of components up to 1e16 is at most 4 * 65,536 * 1e32 = 2.6e37, under
# float32's 3.4e38, and so is every dot product and squared norm on the way. A vector that
# is not all zeros needs one component of at least 1e-15: its squared norm, >= 1e-30, is
# then a normal float32, so cosine (which divides by the norms) never sees one underflow to 0.
MAX_COMPONENT = 1e16
MIN_COMPONENT = 1e-15
# SQLite takes its busy timeout in int32 milliseconds: a larger value would wrap to zero.
MAX_LOCK_TIMEOUT = 1_000_000.0


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8 (lone surrogates do not, and SQLite would store
    bytes it cannot read back)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def integer(
    name: str, value: Any, *, minimum: int = 0, maximum: int | None = None, optional: bool = False
) -> int | None:
    """An int argument (a bool is not one) within ``[minimum, maximum]``; None passes when
    ``optional``."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        none = " or None" if optional else ""
        raise InvalidInput(f"{name} must be an int {bound}{none}; got {value!r}")
    return int(value)


def number(name: str, value: Any, *, minimum: float, maximum: float | None = None) -> float:
    """A real-number argument (int or float, not bool, not NaN) within the bounds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not value >= minimum
        or (maximum is not None and not value <= maximum)
    ):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidInput(f"{name} must be a number {bound}; got {value!r}")
    return float(value)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False; got {value!r}")
    return value


def collection_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidInput(
            "collection names are 1-128 characters of letters, digits, '_', '.' and '-', "
            f"starting with a letter, digit or '_' and without '..'; got {name!r}"
        )
    return name


def dimension(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= MAX_DIM:
        raise InvalidInput(f"dim must be an int from 1 to {MAX_DIM}; got {dim!r}")
    return int(dim)


def lock_timeout(value: Any) -> float:
    """Seconds to wait for the writer lock: a finite number from 0 to ``MAX_LOCK_TIMEOUT``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not 0 <= value <= MAX_LOCK_TIMEOUT:  # NaN fails both comparisons
        raise InvalidInput(
            f"lock_timeout must be a number of seconds from 0 to {MAX_LOCK_TIMEOUT:,.0f} "
            f"(how long a writer waits for another process's write); got {value!r}: pass "
            "e.g. lock_timeout=10.0, or 0 to fail at once"
        )
    return float(value)


def top_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be an int from 1 to {MAX_K}; got {k!r}")
    return int(k)


def query_batch(nq: int, k: int) -> None:
    """Refuse a query_many call of more than ``MAX_QUERIES`` queries or ``MAX_RESULTS``
    results (``nq * k``)."""
    if nq > MAX_QUERIES:
        raise InvalidInput(
            f"query_many takes at most {MAX_QUERIES} queries per call; got {nq}: split them "
            "into several calls"
        )
    if nq * k > MAX_RESULTS:
        raise InvalidInput(
            f"query_many asks for {nq} queries x k={k} = {nq * k} results; the limit is "
            f"{MAX_RESULTS} per call: split the queries into several calls, or lower k"
        )


def ids(values: Any, *, what: str = "ids") -> list[str]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, Sequence) and not isinstance(values, np.ndarray):
        raise InvalidInput(f"{what} must be a list of strings; got {type(values).__name__}")
    out = list(values)
    if len(out) > MAX_BATCH:
        raise InvalidInput(
            f"one call takes at most {MAX_BATCH} {what}; got {len(out)}: split them into "
            "several calls (Collection.add_batches writes any number of rows in batches)"
        )
    # Fast path for the common case; the loop below pins down the first bad id.
    fine = (
        all(type(v) is str for v in out)
        and (not out or (min(map(len, out)) > 0 and max(map(len, out)) <= MAX_ID_BYTES // 4))
        and "\x00" not in "".join(out)
        and _utf8("".join(out))
    )
    for v in () if fine else out:
        if not isinstance(v, str) or not v:
            raise InvalidInput(f"every id must be a non-empty str; got {v!r}")
        if not _utf8(v):
            raise InvalidInput(f"ids must be valid Unicode (no lone surrogates); got {v!r}")
        if "\x00" in v or len(v.encode("utf-8")) > MAX_ID_BYTES:
            raise InvalidInput(
                f"ids may not contain NUL and are at most {MAX_ID_BYTES} bytes; got {v[:40]!r}"
            )
    if len(set(out)) != len(out):
        seen, dups = set(), []
        for v in out:
            if v in seen and v not in dups:
                dups.append(v)
            seen.add(v)
        raise DuplicateIdError(f"{what} contain duplicates: {dups[:5]}")
    return out


def matrix(values: Any, dim: int, *, n: int | None = None, what: str = "vectors") -> np.ndarray:
    """A C-contiguous finite float32 ``(n, dim)`` array, from anything array-like.

    A 1-D vector is accepted when exactly one row is expected (``n == 1``).
    """
    try:
        x = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{what} must be a 2-D array of numbers: {exc}") from None
    kind = x.dtype.kind  # bool, int, unsigned, float (dtype.kind: cheaper than issubdtype)
    if kind == "c":
        raise InvalidInput(f"{what} must be real numbers; got dtype {x.dtype}")
    if kind not in "biuf":
        raise InvalidInput(f"{what} must be numeric; got dtype {x.dtype}")
    if x.ndim == 1 and n == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise DimensionMismatch(f"{what} must be 2-D (n, {dim}); got shape {x.shape}")
    if x.shape[1] != dim:
        raise DimensionMismatch(f"collection has dim {dim}; got {what} of shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise InvalidInput(f"got {n} ids but {x.shape[0]} {what}")
    given = x
    if x.dtype == np.float32:
        x = np.ascontiguousarray(x)
    else:
        with np.errstate(over="ignore", under="ignore"):  # out-of-range values: see below
            x = np.ascontiguousarray(x, dtype=np.float32)
    _check_magnitudes(x, given, what)
    return x


# The limits as float32 (what is compared: a float 1e16 given is stored as float32(1e16)).
_MAX32, _MIN32 = float(np.float32(MAX_COMPONENT)), float(np.float32(MIN_COMPONENT))
_ABS_BUFFER = 1 << 20  # bytes of |x| per step of _largest: small enough to stay in cache


def _largest(x: np.ndarray) -> np.ndarray:
    """The largest magnitude in each row of ``x`` (NaN for a row holding one), float32 (n,).
    |x| goes through a small buffer, so ``x`` is read from memory once."""
    n, d = x.shape
    out = np.empty(n, dtype=np.float32)
    step = max(1, min(n, _ABS_BUFFER // (4 * d)))
    buf = np.empty((step, d), dtype=np.float32)
    for start in range(0, n, step):
        part = buf[: min(step, n - start)]
        np.abs(x[start : start + step], out=part)
        part.max(axis=1, out=out[start : start + len(part)])
    return out


def _check_magnitudes(x: np.ndarray, given: np.ndarray, what: str) -> None:
    """Refuse NaN, inf, components beyond ``MAX_COMPONENT`` and non-zero rows without a
    component of ``MIN_COMPONENT`` in ``x``, the float32 form of ``given``, in one pass
    over ``x``."""
    if not x.size:
        return
    if x.shape[0] == 1:  # a query: as cheap as np.isfinite(x).all()
        size = float(np.abs(x).max())  # NaN if the row holds one
        if _MIN32 <= size <= _MAX32:
            return
        big = np.array([size], dtype=np.float32)
    else:
        big = _largest(x)
    ok = (big <= _MAX32) & ((big >= _MIN32) | (big == 0))  # False for NaN
    if ok.all():
        if given.dtype.kind != "f" or given.dtype == np.float32 or (big > 0).all():
            return
        # A row of wider floats that all rounded to 0 in float32 was tiny, not zero.
        zero = np.flatnonzero(big == 0)
        rows = given[zero]
        if not rows.any():
            return
        bad, size = int(zero[np.flatnonzero(rows.any(axis=1))[0]]), 0.0
    else:
        bad = int(np.flatnonzero(~ok)[0])
        size = float(big[bad])
    if not np.isfinite(size):
        raise InvalidInput(
            f"{what} must be finite: row {bad} holds NaN or inf (or overflows float32)"
        )
    if size > MAX_COMPONENT:
        raise InvalidInput(
            f"{what}: row {bad} has a component of magnitude {size:.3g}; components may be at "
            f"most {MAX_COMPONENT:g} in magnitude, so that no score over {MAX_DIM} dimensions "
            "overflows float32: scale the vectors down (a common scale changes no cosine "
            "score and no ranking)"
        )
    raise InvalidInput(
        f"{what}: row {bad} is not all zeros, but its largest component has magnitude "
        f"{size:.3g}; a non-zero vector needs a component of at least {MIN_COMPONENT:g} in "
        "magnitude, or float32 squares of it underflow and its scores are wrong: scale the "
        "vectors up (a common scale changes no cosine score and no ranking), or pass zeros"
    )


def query_vector(q: Any, dim: int) -> np.ndarray:
    x = np.asarray(q) if not isinstance(q, str) else None
    if x is None or x.ndim != 1:
        shape = "a string" if x is None else f"shape {x.shape}"
        raise InvalidInput(
            f"query takes one 1-D vector of length {dim}; got {shape} (use query_many for a batch)"
        )
    return matrix(x, dim, n=1, what="query")


def documents(values: Any, n: int) -> list[str | None]:
    if values is None:
        return [None] * n
    if isinstance(values, str):
        values = [values]
    values = list(values)
    if len(values) != n:
        raise InvalidInput(f"got {n} ids but {len(values)} documents")
    for d in values:
        if d is not None and not isinstance(d, str):
            raise InvalidInput(f"documents must be str or None; got {type(d).__name__}")
        if d is not None and not _utf8(d):
            raise InvalidInput("documents must be valid Unicode (no lone surrogates)")
        if (
            d is not None
            and len(d) > MAX_DOCUMENT_BYTES // 4
            and len(d.encode()) > MAX_DOCUMENT_BYTES
        ):
            raise InvalidInput(f"a document is larger than {MAX_DOCUMENT_BYTES >> 20} MiB")
    return values


def storable(value: Any) -> bool:
    """Whether ``value`` is a scalar metadata can hold: str, int of 64 bits, finite float,
    bool or None."""
    return kind_of(value) is not None and not (isinstance(value, float) and math.isinf(value))


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, str) and not _utf8(value):
        raise InvalidInput(f"metadata {key!r}: strings must be valid Unicode (no lone surrogates)")
    if not storable(value):
        if isinstance(value, int):
            raise InvalidInput(f"metadata {key!r}: ints must fit in 64 bits; got {value}")
        if isinstance(value, float):
            # JSON (exports, `vecstore get --json`) has no NaN or infinity.
            raise InvalidInput(
                f"metadata {key!r}: floats must be finite; got {value}: store a string "
                "(such as 'inf') or None instead"
            )
        raise InvalidInput(
            f"metadata {key!r}: values must be str, int, float, bool, None or a list of those; "
            f"got {type(value).__name__}"
        )


def metadata(values: Any, n: int) -> list[dict]:
    """Validated metadata dicts (``{}`` where none was given); tuples become lists."""
    if values is None:
        return [{} for _ in range(n)]
    if isinstance(values, dict):
        values = [values]
    values = list(values)
    if len(values) != n:
        raise InvalidInput(f"got {n} ids but {len(values)} metadata entries")
    out = []
    for m in values:
        if m is None:
            out.append({})
            continue
        if not isinstance(m, dict):
            raise InvalidInput(f"metadata must be dicts or None; got {type(m).__name__}")
        clean = {}
        for key, value in m.items():
            if (
                not isinstance(key, str)
                or not key
                or key.startswith("$")
                or len(key) > MAX_KEY_CHARS
                or not _utf8(key)
            ):
                raise InvalidInput(
                    f"metadata keys must be non-empty str (valid Unicode) of at most "
                    f"{MAX_KEY_CHARS} characters, not starting with '$'; got {key!r}"
                )
            if isinstance(value, (list, tuple)):
                for v in value:
                    _check_value(key, v)
                value = list(value)
            else:
                _check_value(key, value)
            clean[key] = value
        out.append(clean)
    return out


# Chroma's names for vecstore's parameters. Refused with the right name rather than accepted:
# one spelling per concept, and a call that half imitates Chroma (its names, vecstore's
# result shapes) misleads; vecstore.compat.chroma imitates it whole.
CHROMA_NAMES = {
    "n_results": "k=",
    "query_embeddings": "q= (query) or queries= (query_many): a vector or an (nq, dim) array",
    "query_texts": "q= (query) or queries= (query_many): a text or a list of texts",
    "embeddings": "vectors=",
    "metadatas": "metadata=",
    "include": "nothing: results always carry ids, scores, documents and metadata; "
    "get(include_vectors=True) adds vectors",
    "limit": "n= (peek)",
    "embedding_function": "encoder= (a model name, encoder or callable)",
    "metadata": "metric= ('cosine', 'dot' or 'l2' for Chroma's hnsw:space cosine, ip, l2)",
}
F = TypeVar("F", bound=Callable[..., Any])


def chroma_names(method: F) -> F:
    """Turn the TypeError of a Chroma keyword a method does not take into ``InvalidInput``
    naming vecstore's parameter. Costs nothing until a call fails to bind."""
    accepted = set(inspect.signature(method).parameters)

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except TypeError:
            wrong = [k for k in kwargs if k in CHROMA_NAMES and k not in accepted]
            if not wrong:
                raise
            raise InvalidInput(
                f"{method.__name__}() takes no {wrong[0]}= (a Chroma name): use "
                f"{CHROMA_NAMES[wrong[0]]} (vecstore.compat.chroma takes Chroma's names)"
            ) from None

    return checked  # type: ignore[return-value]


def analogy_questions(values: Any) -> list[tuple[str, str, str, str, str]]:
    """Analogy questions ``(section, a, b, c, expected)``, each five strings."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInput(
            f"questions must be a list of (section, a, b, c, expected); got {values!r:.80}"
        )
    out = []
    for q in values:
        if (
            isinstance(q, (str, bytes))
            or not isinstance(q, Sequence)
            or len(q) != 5
            or not all(isinstance(w, str) for w in q)
        ):
            raise InvalidInput(
                f"each question must be 5 strings (section, a, b, c, expected); got {q!r:.80}"
            )
        out.append(tuple(q))
    return out
