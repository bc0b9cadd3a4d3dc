"""Encoders that call a hosted embedding API over HTTP: ``HTTPEncoder`` speaks the OpenAI
``/embeddings`` format (OpenAI, vLLM, TEI, Ollama, llama.cpp...); ``CohereEncoder`` (in
``cohere.py``) extends it with Cohere's ``/embed``.

Requests go through ``transport.Transport`` (connection reuse, retries with backoff, a
bounded total time); texts are batched by count and by a character budget. The API key is
read from an environment variable at every request and never stored in the spec or catalog.
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .base import EncoderSpec, Kind, as_matrix

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
BATCH_SIZE = 64
# Characters per request: about 25k tokens of English, under the request limits of the
# hosted APIs (OpenAI: 300k tokens; most servers far less), so a batch of long documents is
# split instead of refused. A single longer text is sent alone (the server truncates it).
BATCH_CHARS = 100_000
TIMEOUT = 30.0
RETRIES = 6
BACKOFF = 0.5
MAX_TIME = 120.0
# spec.model is "<model>[#dimensions=<n>]@<base_url>": the split is at the last "@" that
# starts the URL; "dimensions" is recorded because it changes what the model returns.
_SPEC_MODEL = re.compile(r"^(?P<model>.+)@(?P<url>https?://.+)$", re.DOTALL)
_SPEC_DIMENSIONS = re.compile(r"^(?P<model>.+)#dimensions=(?P<dims>\d+)$", re.DOTALL)


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing ``/``, or ``InvalidInput``.

    It must be ``http(s)://host[:port][/path]`` with no credentials (they would be stored in
    the catalog: use ``api_key_env``), query or fragment (``/embeddings`` is appended).
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise InvalidInput(f"base_url must be a non-empty str; got {base_url!r}")
    url = base_url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"base_url must be an http:// or https:// URL; got {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "base_url must not contain credentials (they would be stored in the catalog); "
            "put the key in an environment variable named by api_key_env"
        )
    if parts.query or parts.fragment:
        raise InvalidInput(f"base_url must not have a query or fragment; got {base_url!r}")
    return url


class HTTPEncoder:
    """Embed with an OpenAI-compatible embeddings API.

    Each batch is one ``POST {base_url}/embeddings`` with JSON
    ``{"model": model, "input": [texts]}`` (plus ``"dimensions"`` when given); the answer's
    ``data[i].embedding`` are put back in input order by ``data[i].index``.

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``"https://api.openai.com/v1"`` or ``"http://localhost:8000/v1"``.
    model : str
        The model name the server expects.
    api_key_env : str or None
        Name of the environment variable holding the key, read at every request and sent as
        ``Authorization: Bearer <key>`` when set and non-empty. Neither the key nor this
        name is stored: pass it again when reopening if it is not the default.
    dim : int, optional
        Output dimension; probed with one request on ``["dimension probe"]`` when not given
        (``dimensions`` when that is given).
    dimensions : int, optional
        Ask the API for shorter vectors (OpenAI's ``text-embedding-3-*`` take
        ``dimensions``); stored in the spec, since it changes the vectors.
    query_prefix, document_prefix : str
        Prepended client side: the server sees the prefixed text.
    batch_size : int
        At most this many texts per request.
    batch_chars : int
        At most this many characters per request (a longer single text goes alone).
    timeout : float
        Seconds to wait for each attempt.
    retries : int
        Attempts after the first for answers 429, 408 and 5xx, timeouts and dropped
        connections, with exponential backoff from ``backoff`` seconds, jittered, and at
        least the wait a ``Retry-After`` header asks for.
    backoff : float
        The first wait between attempts, in seconds.
    max_time : float
        Seconds one request may take in all, retries and waits included.
    normalize : bool
        L2-normalise the returned vectors client side (most APIs already return unit vectors).

    Raises
    ------
    EndpointError
        (a ``ConnectionError``) The endpoint could not be reached, timed out, or answered
        with an HTTP error status, after any retries; the message names the URL (and status).
    InvalidInput
        The answer is not the expected JSON, or has the wrong number or size of embeddings.

    Notes
    -----
    ``config()`` records ``model`` as ``"<model>@<base_url>"`` (``EncoderSpec`` has no URL
    field), with ``#dimensions=<n>`` after the model when given; ``from_spec`` splits it at
    the last ``@`` that is followed by ``http://`` or ``https://``, so model names
    containing ``@`` (``"@cf/baai/bge-base-en-v1.5"``) survive.
    """

    KIND = "http"
    PATH = "/embeddings"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = DEFAULT_KEY_ENV,
        dim: int | None = None,
        dimensions: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = BATCH_SIZE,
        batch_chars: int = BATCH_CHARS,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        max_time: float = MAX_TIME,
        normalize: bool = False,
    ):
        self.base_url = check_base_url(base_url)
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"model must be a non-empty str; got {model!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise InvalidInput(f"api_key_env must be a variable name or None; got {api_key_env!r}")
        for field, value, low in (
            ("batch_size", batch_size, 1),
            ("batch_chars", batch_chars, 1),
            ("retries", retries, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInput(f"{field} must be an int >= {low}; got {value!r}")
        for field, value in (("timeout", timeout), ("max_time", max_time), ("backoff", backoff)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"{field} must be a number of seconds >= 0; got {value!r}")
        if timeout <= 0 or max_time <= 0:
            raise InvalidInput("timeout and max_time must be positive")
        for field, value in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if not isinstance(value, str):
                raise InvalidInput(f"{field} must be a str; got {type(value).__name__}")
        if dimensions is not None and (
            not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
        ):
            raise InvalidInput(f"dimensions must be a positive int or None; got {dimensions!r}")
        self.model = model
        self.dimensions = dimensions
        tag = f"#dimensions={dimensions}" if dimensions is not None else ""
        self.name = f"{model}{tag}@{self.base_url}"
        self.url = self.base_url + self.PATH
        self.api_key_env = api_key_env
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        self.batch_chars = batch_chars
        self.timeout = float(timeout)
        self.normalize = bool(normalize)
        from .transport import Transport  # on first use: http.client and urllib cost ~35 ms

        self.transport = Transport(
            self.url, timeout=self.timeout, retries=retries, backoff=backoff, max_time=max_time
        )
        self.dim: int | None = None
        if dim is None and dimensions is not None:
            dim = dimensions
        if dim is None:
            dim = self._post(["dimension probe"], "document").shape[1]
        elif not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise InvalidInput(f"dim must be a positive int; got {dim!r}")
        self.dim = int(dim)

    @classmethod
    def from_spec(cls, spec: EncoderSpec, **kwargs: Any) -> HTTPEncoder:
        """Rebuild from a stored spec, without a request (``dim`` comes from the spec).

        ``kwargs`` (``api_key_env``, ``batch_size``, ``timeout``, ``retries``...) are not
        stored and may be given again.
        """
        m = _SPEC_MODEL.match(spec.model)
        if spec.kind != cls.KIND or m is None:
            raise InvalidInput(
                f"not an {cls.KIND} encoder spec (kind {spec.kind!r}, model {spec.model!r}); "
                f"expected kind {cls.KIND!r} and model '<model>@<base_url>'"
            )
        model, dims = m.group("model"), None
        tagged = _SPEC_DIMENSIONS.match(model)
        if tagged is not None:
            model, dims = tagged.group("model"), int(tagged.group("dims"))
        return cls(
            m.group("url"),
            model,
            dim=spec.dim,
            dimensions=dims,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            normalize=spec.normalize,
            **kwargs,
        )

    # -- the API's format (CohereEncoder overrides these) ---------------------------------

    def _auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def _body(self, texts: list[str], kind: Kind) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        return body

    def _vectors(self, payload: Any, n: int) -> list[Any]:
        """The embeddings of an answer, in input order."""
        where = f"embedding endpoint {self.url}"
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise InvalidInput(
                f"{where} answered without a 'data' list of objects: {str(payload)[:120]}"
            )
        if len(data) != n:
            raise InvalidInput(f"{where} returned {len(data)} embeddings for {n} texts")
        indices = [d.get("index") for d in data]
        if all(i is None for i in indices):
            ordered = data  # some servers omit "index"; then the list order is the input order
        elif sorted(i for i in indices if isinstance(i, int)) == list(range(n)):
            ordered = sorted(data, key=lambda d: d["index"])
        else:
            raise InvalidInput(f"{where} returned indices {indices[:10]} for {n} texts")
        return [d.get("embedding") for d in ordered]

    # -- requests ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "vecstore",
        }
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if key:
            headers.update(self._auth(key))
        return headers

    def _post(self, texts: list[str], kind: Kind) -> np.ndarray:
        """One request (retried as the transport does): the embeddings of ``texts``, in
        order, checked."""
        where = f"embedding endpoint {self.url}"
        body = json.dumps(self._body(texts, kind)).encode("utf-8")
        hint = (
            f" (is the key in ${self.api_key_env} set and valid?)"
            if self.api_key_env
            else " (no api_key_env was given, so no key was sent)"
        )
        raw = self.transport.post(body, self._headers(), {401: hint, 403: hint})
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{where} did not answer JSON ({exc}): {raw[:120]!r}") from None
        vectors = self._vectors(payload, len(texts))
        if not all(isinstance(v, list) and v for v in vectors):
            raise InvalidInput(
                f"{where} returned an embedding that is not a non-empty list of floats "
                "(a base64 'encoding_format' is not supported)"
            )
        sizes = sorted({len(v) for v in vectors})
        if len(sizes) != 1:
            raise InvalidInput(f"{where} returned embeddings of different sizes {sizes}")
        try:
            arr = np.array(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where} returned non-numeric embeddings ({exc})") from None
        return as_matrix(arr, len(texts), self.dim, repr(self.name))

    def batches(self, texts: Sequence[str]) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each request's texts: at most ``batch_size`` texts and
        ``batch_chars`` characters (a longer single text alone)."""
        start, chars = 0, 0
        for i, text in enumerate(texts):
            if i > start and (i - start >= self.batch_size or chars + len(text) > self.batch_chars):
                yield start, i
                start, chars = i, 0
            chars += len(text)
        if start < len(texts):
            yield start, len(texts)

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        """float32 ``(len(texts), dim)``, one request per batch (see ``batches``)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a sequence of str")
        if kind not in ("document", "query"):
            raise InvalidInput(f"kind must be 'document' or 'query'; got {kind!r}")
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        texts = [prefix + t for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start, end in self.batches(texts):
            out[start:end] = self._post(texts[start:end], kind)
        if self.normalize and len(out):
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out

    def config(self) -> EncoderSpec:
        return EncoderSpec(
            kind=self.KIND,
            model=self.name,
            dim=self.dim,
            normalize=self.normalize,
            max_tokens=None,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            revision=None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, {self.model!r}, dim={self.dim})"
