"""An encoder that calls an OpenAI-compatible ``/embeddings`` endpoint over HTTP.

Standard library only (``urllib.request``, ``json``): no requests or httpx. The API key is
read from an environment variable at call time and never stored in the spec or catalog.
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EndpointError, InvalidInput
from .base import EncoderSpec, Kind, as_matrix

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
BATCH_SIZE = 64
TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 256 << 20  # a response larger than this is refused, not buffered
# spec.model is "<model>@<base_url>": the split is at the last "@" that starts the URL.
_SPEC_MODEL = re.compile(r"^(?P<model>.+)@(?P<url>https?://.+)$", re.DOTALL)


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
    """Embed with an OpenAI-compatible embeddings API (OpenAI, vLLM, TEI, Ollama, llama.cpp...).

    Each batch is one ``POST {base_url}/embeddings`` with JSON
    ``{"model": model, "input": [texts]}``; the answer's ``data[i].embedding`` are put back in
    input order by ``data[i].index``.

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
        Output dimension; probed with one request on ``["dimension probe"]`` when not given.
    query_prefix, document_prefix : str
        Prepended client side: the server sees the prefixed text.
    batch_size : int
        Texts per request.
    timeout : float
        Seconds to wait for each request.
    normalize : bool
        L2-normalise the returned vectors client side (most APIs already return unit vectors).

    Raises
    ------
    EndpointError
        (a ``ConnectionError``) The endpoint could not be reached, timed out, or answered
        with an HTTP error status; the message names the URL (and status).
    InvalidInput
        The answer is not the expected JSON, or has the wrong number or size of embeddings.

    Notes
    -----
    ``config()`` records ``model`` as ``"<model>@<base_url>"`` (``EncoderSpec`` has no URL
    field); ``from_spec`` splits it at the last ``@`` that is followed by ``http://`` or
    ``https://``, so model names containing ``@`` (``"@cf/baai/bge-base-en-v1.5"``) survive.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = DEFAULT_KEY_ENV,
        dim: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = BATCH_SIZE,
        timeout: float = TIMEOUT,
        normalize: bool = False,
    ):
        self.base_url = check_base_url(base_url)
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"model must be a non-empty str; got {model!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise InvalidInput(f"api_key_env must be a variable name or None; got {api_key_env!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidInput(f"batch_size must be a positive int; got {batch_size!r}")
        if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
            raise InvalidInput(f"timeout must be a positive number of seconds; got {timeout!r}")
        for field, value in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if not isinstance(value, str):
                raise InvalidInput(f"{field} must be a str; got {type(value).__name__}")
        self.model = model
        self.name = f"{model}@{self.base_url}"
        self.url = self.base_url + "/embeddings"
        self.api_key_env = api_key_env
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        self.timeout = float(timeout)
        self.normalize = bool(normalize)
        self.dim: int | None = None
        if dim is None:
            dim = self._post(["dimension probe"]).shape[1]
        elif not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise InvalidInput(f"dim must be a positive int; got {dim!r}")
        self.dim = int(dim)

    @classmethod
    def from_spec(cls, spec: EncoderSpec, **kwargs: Any) -> HTTPEncoder:
        """Rebuild from a stored spec, without a request (``dim`` comes from the spec).

        ``kwargs`` (``api_key_env``, ``batch_size``, ``timeout``) are not stored and may be
        given again.
        """
        m = _SPEC_MODEL.match(spec.model)
        if spec.kind != "http" or m is None:
            raise InvalidInput(
                f"not an http encoder spec (kind {spec.kind!r}, model {spec.model!r}); "
                "expected kind 'http' and model '<model>@<base_url>'"
            )
        return cls(
            m.group("url"),
            m.group("model"),
            dim=spec.dim,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            normalize=spec.normalize,
            **kwargs,
        )

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "vecstore",
        }
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, texts: list[str]) -> bytes:
        import urllib.error  # on first use: urllib.request costs ~35 ms to import
        import urllib.request
        from http.client import HTTPException

        body = json.dumps({"model": self.model, "input": texts}).encode("utf-8")
        req = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        where = f"embedding endpoint {self.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            hint = ""
            if exc.code in (401, 403):
                hint = (
                    f" (is the key in ${self.api_key_env} set and valid?)"
                    if self.api_key_env
                    else " (no api_key_env was given, so no key was sent)"
                )
            raise EndpointError(
                f"{where} answered HTTP {exc.code} {exc.reason}{hint}{detail}"
            ) from None
        except urllib.error.URLError as exc:
            raise EndpointError(f"{where} could not be reached: {exc.reason}") from None
        except TimeoutError:
            raise EndpointError(f"{where} timed out after {self.timeout:g} s") from None
        except (OSError, HTTPException) as exc:
            raise EndpointError(f"{where} failed: {type(exc).__name__}: {exc}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise InvalidInput(f"{where} sent more than {MAX_RESPONSE_BYTES} bytes")
        return raw

    def _post(self, texts: list[str]) -> np.ndarray:
        """One request: the embeddings of ``texts``, in order, checked."""
        where = f"embedding endpoint {self.url}"
        raw = self._request(texts)
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{where} did not answer JSON ({exc}): {raw[:120]!r}") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise InvalidInput(
                f"{where} answered without a 'data' list of objects: {str(payload)[:120]}"
            )
        if len(data) != len(texts):
            raise InvalidInput(f"{where} returned {len(data)} embeddings for {len(texts)} texts")
        indices = [d.get("index") for d in data]
        if all(i is None for i in indices):
            ordered = data  # some servers omit "index"; then the list order is the input order
        elif sorted(i for i in indices if isinstance(i, int)) == list(range(len(texts))):
            ordered = sorted(data, key=lambda d: d["index"])
        else:
            raise InvalidInput(f"{where} returned indices {indices[:10]} for {len(texts)} texts")
        vectors = [d.get("embedding") for d in ordered]
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

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        """float32 ``(len(texts), dim)``, one request per ``batch_size`` texts."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a sequence of str")
        if kind not in ("document", "query"):
            raise InvalidInput(f"kind must be 'document' or 'query'; got {kind!r}")
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        texts = [prefix + t for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            out[start : start + len(batch)] = self._post(batch)
        if self.normalize and len(out):
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out

    def config(self) -> EncoderSpec:
        return EncoderSpec(
            kind="http",
            model=self.name,
            dim=self.dim,
            normalize=self.normalize,
            max_tokens=None,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            revision=None,
        )

    def __repr__(self) -> str:
        return f"HTTPEncoder({self.base_url!r}, {self.model!r}, dim={self.dim})"


def _error_detail(exc: Any) -> str:
    """The start of an error response's body (servers put the reason there), or ``""``."""
    try:
        body = exc.read(500).decode("utf-8", "replace").strip()
    except Exception:  # the body is a courtesy; the status is the error
        return ""
    finally:
        exc.close()
    return f": {' '.join(body.split())[:300]}" if body else ""
