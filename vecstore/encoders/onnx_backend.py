"""The ONNX Runtime backend of ``SentenceTransformerEncoder``: exports a loaded model's
transformer to ONNX once (offline, from the files already loaded), fuses it, optionally
int8-quantises its weights, caches the result on disk and embeds through it.

Imports nothing from vecstore but ``errors`` and ``tracing`` (the module it exports); torch,
onnx and onnxruntime only when called.
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

from ..errors import InvalidInput, MissingDependency
from . import tracing

QUANTIZE = (None, "int8")
# Bumped whenever the export, fusion or quantisation recipe changes: a cached file made by
# another recipe is then never reused (it would give other vectors under the same spec).
RECIPE = "r1"
POOLINGS = ("mean", "cls")


def backend_name(quantize: str | None) -> str:
    """What the spec records for this backend: ``"onnx"`` or ``"onnx-int8"``."""
    return "onnx" if quantize is None else f"onnx-{quantize}"


def cache_root() -> Path:
    """Where exported models are kept: ``$VECSTORE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/vecstore``, else ``~/.cache/vecstore``; under it, ``onnx/``.

    A user cache rather than the store: one export serves every store on the machine, and a
    store copied elsewhere stays small (the file is rebuilt offline from the model)."""
    root = os.environ.get("VECSTORE_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "vecstore")
    return Path(root).expanduser() / "onnx"


def require() -> None:
    """Raise ``MissingDependency`` unless onnxruntime and onnx are importable."""
    for module in ("onnxruntime", "onnx"):
        # find_spec, not an import: the package names no module to import by a string
        # (tests/reliability/test_security.py), and the real import comes on first use
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(f"backend='onnx' needs {module}: pip install -e '.[onnx]'")


def pooling_of(model: Any) -> tuple[str, bool]:
    """``(pooling mode, normalises)`` of a sentence-transformers model made of a
    Transformer, a Pooling and optionally a Normalize module, the layout the ONNX path
    reproduces; anything else is refused rather than embedded differently."""
    names = [type(m).__name__ for m in model]
    mode = getattr(model[1], "pooling_mode", None) if len(names) > 1 else None
    if names[:2] != ["Transformer", "Pooling"] or names[2:] not in ([], ["Normalize"]):
        mode = None
    if mode not in POOLINGS:
        raise InvalidInput(
            f"backend='onnx' supports models made of Transformer + Pooling ({'/'.join(POOLINGS)})"
            f" [+ Normalize]; this one is {' + '.join(names)} with pooling {mode!r}: "
            "use backend='torch'"
        )
    return mode, names[2:] == ["Normalize"]


def cached_export(model: Any, target: str, identity: str, quantize: str | None) -> Path:
    """The ONNX file for a loaded model, exported into the cache on first use.

    ``identity`` names the exact weights (their SHA-256, or the model name and hub
    revision); the file name joins it with the recipe and the quantisation, so fp32 and
    int8 files, and files of other weights, never stand in for each other."""
    key = hashlib.sha256(f"{identity}|{RECIPE}".encode()).hexdigest()[:24]
    folder = cache_root()
    path = folder / f"{key}-{quantize or 'fp32'}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    # export and quantise in a private temporary folder, then rename into place: a reader
    # never sees a half-written file, and two processes exporting at once both succeed
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        heads, hidden = export(model, target, fp32)
        fused = fuse(fp32, Path(tmp) / "fused.onnx", heads, hidden)
        final = fused
        if quantize == "int8":
            final = Path(tmp) / "int8.onnx"
            quantize_int8(fused, final)
        os.replace(final, path)
    return path


def export(model: Any, target: str, out: Path) -> tuple[int, int]:
    """torch.onnx export of the transformer of ``model`` (last hidden state), with batch and
    sequence axes dynamic, from the local files ``target`` names (never the network).
    Returns the attention heads and hidden size, which the fusion needs."""
    import torch

    traced = tracing.last_hidden(model, target)
    names = traced.names
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            traced.module,
            traced.sample,
            str(out),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    config = traced.config
    return int(getattr(config, "num_attention_heads", 0)), int(getattr(config, "hidden_size", 0))


def fuse(src: Path, out: Path, heads: int, hidden: int) -> Path:
    """ONNX Runtime's transformer fusions (attention, layer norms, GELU) for BERT-type
    graphs; other graphs are left as exported (ORT still applies its generic passes)."""
    from onnxruntime.transformers import optimizer

    with quiet_logging():
        try:
            opt = optimizer.optimize_model(
                str(src), model_type="bert", num_heads=heads, hidden_size=hidden
            )
        except Exception:  # a graph the BERT fusions do not understand: keep it unfused
            return src
    opt.save_model_to_file(str(out))
    return out


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Silence the fusion's and quantiser's warnings and advice (root logger and their own
    loggers) for the duration of an export only."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_int8(src: Path, out: Path) -> None:
    """Dynamic int8 quantisation of the weights, one scale per output channel (per-tensor
    scales cost MiniLM about 0.05 of cosine to its fp32 vectors; per-channel about 0.007)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_logging():
        quantize_dynamic(
            str(src),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # fused ops carry no type information for the shape inference: say float
            extra_options={"DefaultTensorType": 1},
        )


class OnnxRunner:
    """Embeds through an ONNX Runtime session: tokenise, run, pool, normalise.

    Texts are sorted by length and batched, so a batch pads to similar lengths (padding
    costs attention work and changes nothing in the pooled vectors)."""

    def __init__(self, path: Path, model: Any, *, dim: int, threads: int | None, batch_size: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # 0 lets ORT pick (one thread per physical core); a shared machine may want fewer
        opts.intra_op_num_threads = int(threads or 0)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length) if model.max_seq_length else None
        self.pooling, self.normalizes = pooling_of(model)
        self.batch_size = batch_size
        self.dim = dim

    def encode(self, texts: Sequence[str], normalize: bool) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self.run([texts[i] for i in idx])
        if normalize or self.normalizes:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    def run(self, batch: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        feed = {}
        for name in self.inputs:
            arr = enc[name] if name in enc else np.zeros_like(enc["input_ids"])
            feed[name] = np.asarray(arr, dtype=np.int64)
        hidden = self.session.run(None, feed)[0]
        if self.pooling == "cls":
            return hidden[:, 0].astype(np.float32)
        mask = feed["attention_mask"][..., None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        return (summed / np.maximum(mask.sum(axis=1), 1e-9)).astype(np.float32)
