"""The OpenVINO backend of ``SentenceTransformerEncoder``: converts a loaded model's
transformer to an OpenVINO model once (offline, from the files already loaded), optionally
compresses its weights to int8, caches it on disk and embeds through OpenVINO's CPU plugin,
in fp32, bf16 or int8 weights.

Imports nothing from vecstore but ``errors``, ``tracing`` (the module it converts) and
``onnx_backend`` (the cache root and the model-layout check); torch, openvino and nncf only
when called.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency
from . import onnx_backend, tracing

QUANTIZE = (None, "bf16", "int8")
# Bumped whenever the conversion or weight compression changes: a cached model made by
# another recipe is then never reused (it would give other vectors under the same spec).
RECIPE = "ov1"
# Texts per forward pass are capped by tokens as well as by count: short texts go in large
# batches (little padding once sorted by length, the per-call cost spread over many texts),
# 256-token abstracts in batches of 16, whose activations stay in the L2/L3 caches.
TOKENS_PER_BATCH = 4096


def backend_name(quantize: str | None) -> str:
    """What the spec records: ``"openvino"``, ``"openvino-bf16"`` or ``"openvino-int8"``."""
    return "openvino" if quantize is None else f"openvino-{quantize}"


def cache_folder() -> Path:
    """Where converted models are kept: ``openvino/`` beside the ONNX exports' folder
    (``~/.cache/vecstore/openvino``, moved by ``$VECSTORE_CACHE_DIR`` or ``$XDG_CACHE_HOME``)."""
    return onnx_backend.cache_root().parent / "openvino"


def require(quantize: str | None) -> None:
    """Raise ``MissingDependency`` unless openvino (and nncf for int8) are importable."""
    needed = ("openvino", "nncf") if quantize == "int8" else ("openvino",)
    for module in needed:
        # find_spec, not an import: the real import comes on first use
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(
                f"backend='openvino' needs {module}: pip install -e '.[openvino]'"
            )


def cached_model(model: Any, target: str, identity: str, quantize: str | None) -> Path:
    """The OpenVINO model (``model.xml`` + ``model.bin``) for a loaded model, converted into
    the cache on first use; returns the path of the ``.xml``.

    ``identity`` names the exact weights; the folder name joins it with the recipe and the
    weight format. fp32 and bf16 share the fp32 files (bf16 is a runtime setting); int8 has
    its own."""
    key = hashlib.sha256(f"{identity}|{RECIPE}".encode()).hexdigest()[:24]
    weights = "int8" if quantize == "int8" else "fp32"
    root = cache_folder()
    final = root / f"{key}-{weights}"
    xml = final / "model.xml"
    if xml.is_file() and (final / "model.bin").is_file():
        return xml
    root.mkdir(parents=True, exist_ok=True)
    # convert in a private temporary folder, then rename the folder into place: a reader
    # never sees half-written files, and of two processes converting at once the second
    # rename fails and the first one's folder is used
    with tempfile.TemporaryDirectory(dir=root, prefix=".convert-") as tmp:
        staged = Path(tmp) / "model"
        staged.mkdir()
        convert(model, target, staged / "model.xml", compress=quantize == "int8")
        try:
            os.rename(staged, final)
        except OSError:
            if not xml.is_file():
                raise
    return xml


def convert(model: Any, target: str, out: Path, *, compress: bool) -> None:
    """OpenVINO's PyTorch frontend on the transformer of ``model`` (last hidden state),
    batch and sequence axes dynamic, from the local files ``target`` names (never the
    network); with ``compress``, weights to int8 (asymmetric, one scale and zero point per
    output channel, NNCF's data-free weight compression)."""
    import torch

    ov = load_openvino()
    traced = tracing.last_hidden(model, target)
    names = traced.names
    with (
        warnings.catch_warnings(),
        torch.no_grad(),
        onnx_backend.quiet_logging(),
        no_telemetry(),
    ):
        warnings.simplefilter("ignore")  # tracing warnings about data-dependent branches
        ov_model = ov.convert_model(traced.module, example_input=traced.sample)
        for port, name in zip(ov_model.inputs, names):
            port.get_tensor().set_names({name})
        ov_model.outputs[0].get_tensor().set_names({"last_hidden_state"})
        if compress:
            import nncf

            ov_model = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    ov.save_model(ov_model, str(out), compress_to_fp16=False)


def load_openvino() -> Any:
    """``import openvino``, with its usage reporting declined (see ``no_telemetry``)."""
    with no_telemetry():
        import openvino

    return openvino


@contextlib.contextmanager
def no_telemetry() -> Iterator[None]:
    """Keep OpenVINO and NNCF from reporting usage: an embedded database must not phone home.

    ``import openvino`` (its converter package), each conversion and NNCF's import send
    usage statistics and write a client id under ``~/intel`` unless a consent file says no;
    all of them decline when they believe they run in CI. ``CI=true`` (both) and ``NNCF_CI``
    (NNCF) are set while they import and convert, and restored after."""
    saved = {name: os.environ.get(name) for name in ("CI", "NNCF_CI")}
    os.environ["CI"] = "true"
    os.environ["NNCF_CI"] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def runtime_config(quantize: str | None, threads: int | None, capabilities: Sequence[str]) -> dict:
    """The CPU plugin's settings for a weight format.

    fp32 runs in f32 (OpenVINO would pick bf16 by itself on CPUs with AMX). bf16 and int8
    run their matrix products in bf16 where the CPU has bf16 instructions (AVX512-BF16 or
    AMX), else in f32; int8 weights are dequantised inside the kernels, and the activations
    are quantised dynamically per group of 32 values when the products run in f32."""
    bf16 = quantize in ("bf16", "int8") and "BF16" in capabilities
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }
    if quantize == "int8":
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = 32
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVinoRunner:
    """Embeds through a compiled OpenVINO model: tokenise, run, pool, normalise.

    All texts are tokenised at once, sorted by token count and cut into batches of at most
    ``batch_size`` texts and ``TOKENS_PER_BATCH`` padded tokens, so a batch pads little."""

    def __init__(
        self,
        xml: Path,
        model: Any,
        *,
        quantize: str | None,
        dim: int,
        threads: int | None,
        batch_size: int,
    ):
        ov = load_openvino()
        core = ov.Core()
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        config = runtime_config(quantize, threads, capabilities)
        self.precision = config["INFERENCE_PRECISION_HINT"]
        self.compiled = core.compile_model(str(xml), "CPU", config)
        self.inputs = [port.get_any_name() for port in self.compiled.inputs]
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length) if model.max_seq_length else None
        self.pooling, self.normalizes = onnx_backend.pooling_of(model)
        self.batch_size = batch_size
        self.dim = dim
        self.pad_id = int(getattr(self.tokenizer, "pad_token_id", None) or 0)
        self.left = getattr(self.tokenizer, "padding_side", "right") == "left"

    def encode(self, texts: Sequence[str], normalize: bool) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=False
        )
        ids = enc["input_ids"]
        types = enc.get("token_type_ids")
        lengths = np.fromiter((len(t) for t in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        # one request per call: a compiled model serves concurrent requests, a request
        # serves one call at a time
        request = self.compiled.create_infer_request()
        start = 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)
            count = max(1, min(self.batch_size, TOKENS_PER_BATCH // longest))
            idx = order[start : start + count]
            batch_types = None if types is None else [types[i] for i in idx]
            out[idx] = self.run(request, [ids[i] for i in idx], batch_types, longest)
            start += count
        if normalize or self.normalizes:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    def run(self, request: Any, ids: list, types: list | None, width: int) -> np.ndarray:
        n = len(ids)
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        token_types = np.zeros((n, width), dtype=np.int64)
        for row, seq in enumerate(ids):
            # where the tokenizer itself would put the text: after the padding or before it
            cols = slice(width - len(seq), width) if self.left else slice(0, len(seq))
            input_ids[row, cols] = seq
            mask[row, cols] = 1
            if types is not None:
                token_types[row, cols] = types[row]
        arrays = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
        hidden = request.infer({name: arrays[name] for name in self.inputs})[0]
        if self.pooling == "cls":
            return np.asarray(hidden[:, 0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        return (summed / np.maximum(weights.sum(axis=1), 1e-9)).astype(np.float32)
