"""An encoder for CLIP-style models, which put images and texts in one space: texts through
``encode``, images through ``encode_images``, both with transformers' ``CLIPModel``.

Resolves models offline like ``.sentence_transformers`` (a local folder, an installed
packaged copy, then the Hugging Face cache or hub); torch, transformers and Pillow are
imported on first use only. Imports nothing from vecstore but ``errors``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EncoderMismatch, InvalidInput, MissingDependency
from .base import EncoderSpec, Kind, as_matrix, loading
from .sentence_transformers import offline, resolve_model, revision_of

BATCH_SIZE = 32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def features(output: Any) -> Any:
    """The projected embeddings of ``get_text_features``/``get_image_features``: a tensor
    in transformers 4, the ``pooler_output`` of the output object in transformers 5."""
    return output if hasattr(output, "shape") else output.pooler_output


class CLIPEncoder:
    """Embed texts and images with a CLIP model (``openai/clip-vit-base-patch32`` and kin).

    Parameters
    ----------
    model : str
        A model name (``"openai/clip-vit-base-patch32"``) or a local folder holding a
        ``CLIPModel`` and its processor (``save_pretrained`` of both).
    normalize : bool
        L2-normalise embeddings (the default; CLIP compares by cosine).
    query_prefix, document_prefix : str
        Prepended to text queries and text documents (``"a photo of "`` helps CLIP).
    batch_size : int
        Texts or images per forward pass.
    device : str
        torch device, ``"cpu"`` by default.
    expected : EncoderSpec, optional
        A stored spec this encoder must reproduce (checked when the model loads).
    """

    def __init__(
        self,
        model: str,
        *,
        normalize: bool = True,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = BATCH_SIZE,
        device: str = "cpu",
        expected: EncoderSpec | None = None,
    ):
        if not isinstance(model, str) or not model:
            raise InvalidInput(f"model must be a non-empty name or path; got {model!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidInput(f"batch_size must be a positive int; got {batch_size!r}")
        self.name = model
        self.normalize = bool(normalize)
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        self.device = device
        self._expected = expected
        self._model: Any = None
        self._processor: Any = None
        self._torch: Any = None
        self._revision: str | None = None
        self._max_tokens: int | None = None
        self._lock = threading.Lock()
        self._dim = expected.dim if expected is not None else None

    @classmethod
    def from_spec(cls, spec: EncoderSpec, **kwargs: Any) -> CLIPEncoder:
        """Rebuild from a stored spec (``batch_size`` and ``device`` may be given again)."""
        if spec.kind != "clip":
            raise InvalidInput(f"not a CLIP encoder spec (kind {spec.kind!r})")
        return cls(
            spec.model,
            normalize=spec.normalize,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            expected=spec,
            **kwargs,
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        return self._dim

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            try:
                import torch
                from transformers import CLIPModel, CLIPProcessor
            except ImportError:
                raise MissingDependency(
                    "CLIPEncoder needs torch, transformers and Pillow: "
                    "pip install torch==2.13.0 && pip install -e '.[clip]'"
                ) from None
            target, local = resolve_model(self.name)
            options = {"local_files_only": local is not None or offline()}
            try:
                with loading():
                    model = CLIPModel.from_pretrained(target, **options)
                    processor = CLIPProcessor.from_pretrained(target, **options)
            except Exception as exc:  # the hub client raises many types when offline
                raise MissingDependency(
                    f"CLIP model {self.name!r} is not a local folder and could not be loaded "
                    "from the Hugging Face cache or hub "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                ) from None
            model.to(self.device)
            model.train(False)  # inference mode: no dropout
            self._torch, self._processor = torch, processor
            self._revision = revision_of(self.name, local)
            self._dim = int(model.config.projection_dim)
            self._max_tokens = int(model.config.text_config.max_position_embeddings)
            self._model = model
            if self._expected is not None:
                diffs = self._expected.differences(self._spec())
                if diffs:
                    raise EncoderMismatch(
                        f"the collection was embedded with {self._expected.model!r}, but the "
                        f"model found now differs ({'; '.join(diffs)}); its vectors would not "
                        "be comparable"
                    )
            return model

    def _finish(self, out: Any) -> np.ndarray:
        out = features(out)
        if self.normalize:
            out = self._torch.nn.functional.normalize(out, p=2, dim=1)
        return out.float().cpu().numpy()

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        """float32 ``(len(texts), dim)``: text embeddings (truncated to the model's 77
        tokens), comparable with ``encode_images``."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a sequence of str")
        model = self._load()
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        texts = [prefix + t for t in texts]
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = self._processor.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with self._torch.inference_mode():
                feats = model.get_text_features(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                )
            out[start : start + self.batch_size] = self._finish(feats)
        return as_matrix(out, len(texts), self._dim, repr(self.name))

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """float32 ``(len(images), dim)``: image embeddings. Each image is a file path
        (.png, .jpg, .webp...), a PIL image, or an array ``(height, width[, 3 or 4])``
        (uint8 0-255, or floats 0-1)."""
        if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
            raise InvalidInput("images must be a list of paths, PIL images or arrays")
        model = self._load()
        out = np.empty((len(images), self._dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            batch = [as_pil(x) for x in images[start : start + self.batch_size]]
            pixels = self._processor.image_processor(batch, return_tensors="pt")
            with self._torch.inference_mode():
                feats = model.get_image_features(
                    pixel_values=pixels["pixel_values"].to(self.device)
                )
            out[start : start + len(batch)] = self._finish(feats)
        return as_matrix(out, len(images), self._dim, repr(self.name))

    def config(self) -> EncoderSpec:
        self._load()
        return self._spec()

    def _spec(self) -> EncoderSpec:
        return EncoderSpec(
            kind="clip",
            model=self.name,
            dim=self._dim,
            normalize=self.normalize,
            max_tokens=self._max_tokens,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            revision=self._revision,
        )

    def __repr__(self) -> str:
        return f"CLIPEncoder({self.name!r})"


def as_pil(image: Any) -> Any:
    """An RGB PIL image from a path, a PIL image or an array, or ``InvalidInput``."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependency("images need Pillow: pip install pillow") from None
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read image {str(image)!r}: {exc}") from None
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or not arr.size:
        raise InvalidInput(
            f"an image array must be (height, width) or (height, width, 1|3|4); got {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInput("an image array holds NaN or inf")
        arr = (np.clip(arr, 0.0, 1.0) * 255).round()
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr).convert("RGB")
