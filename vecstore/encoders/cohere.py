"""An encoder for Cohere-style embedding APIs: ``POST {base_url}/embed`` with ``texts`` and
an ``input_type`` that tells documents from queries.

Everything but the request and answer format (retries, batching, keys from the environment,
never stored) is ``HTTPEncoder``'s. Imports nothing from vecstore but ``errors``.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from .base import Kind
from .http import BACKOFF, BATCH_CHARS, MAX_TIME, RETRIES, TIMEOUT, HTTPEncoder

DEFAULT_URL = "https://api.cohere.com/v2"
DEFAULT_KEY_ENV = "CO_API_KEY"
BATCH_SIZE = 96  # Cohere's limit of texts per call
INPUT_TYPES = {"document": "search_document", "query": "search_query"}


class CohereEncoder(HTTPEncoder):
    """Embed with Cohere's ``/embed`` API (v2, or v1) or a server that speaks it.

    Each batch is one ``POST {base_url}/embed`` with JSON ``{"model": model, "texts":
    [texts], "input_type": "search_document" | "search_query", "embedding_types":
    ["float"]}`` (plus ``"output_dimension"`` for ``dimensions``); the answer's
    ``embeddings.float`` (v2) or ``embeddings`` (v1) are the vectors, in input order.
    Documents are sent as ``search_document`` and queries as ``search_query``, so
    ``query_prefix`` and ``document_prefix`` are usually left empty.

    Parameters are ``HTTPEncoder``'s, with Cohere's defaults: ``api_key_env`` is
    ``"CO_API_KEY"`` (sent as ``Authorization: Bearer <key>``, never stored) and
    ``batch_size`` is 96. Cohere's own ``base_url`` is ``"https://api.cohere.com/v2"``
    (``DEFAULT_URL``).
    """

    KIND = "cohere"
    PATH = "/embed"

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
        super().__init__(
            base_url,
            model,
            api_key_env=api_key_env,
            dim=dim,
            dimensions=dimensions,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
            batch_size=batch_size,
            batch_chars=batch_chars,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_time=max_time,
            normalize=normalize,
        )

    def _body(self, texts: list[str], kind: Kind) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "texts": texts,
            "input_type": INPUT_TYPES[kind],
            "embedding_types": ["float"],
        }
        if self.dimensions is not None:
            body["output_dimension"] = self.dimensions
        return body

    def _vectors(self, payload: Any, n: int) -> list[Any]:
        where = f"embedding endpoint {self.url}"
        emb = payload.get("embeddings") if isinstance(payload, dict) else None
        if isinstance(emb, dict):  # v2: one list per requested embedding type
            emb = emb.get("float")
        if not isinstance(emb, list):
            raise InvalidInput(
                f"{where} answered without 'embeddings' (a list, or 'float' of an object): "
                f"{str(payload)[:120]}"
            )
        if len(emb) != n:
            raise InvalidInput(f"{where} returned {len(emb)} embeddings for {n} texts")
        return emb
