"""Turning a collection's texts into vectors: its encoder, the store's embedding caches, and
batches with a progress bar.

A document an encoder has embedded before, in any collection of the store, is read back from
the catalog's cache instead of embedded again; a query, from the store's in-process LRU
cache, under the same key. Must not import ``collection`` or ``database``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import inputs
from .encoders.base import Encoder, EncoderSpec
from .encoders.factory import encoder_from_spec
from .errors import InvalidInput
from .storage.buffers import text_hash
from .storage.catalog import CollectionRecord
from .store import Store

EMBED_BATCH = 256  # texts per encoder call (the encoder batches further inside)


class Embedder:
    """The encoder side of one collection: ``spec`` is its stored encoder spec, or None for a
    collection of plain vectors (then every method but ``encoder`` refuses)."""

    def __init__(self, store: Store, record: CollectionRecord, spec: EncoderSpec | None):
        self._store = store
        self._record = record
        self.spec = spec

    @property
    def encoder(self) -> Encoder | None:
        """The encoder (rebuilt from its stored spec on first use), or None."""
        enc = self._store.encoder(self._record)
        if enc is None and self.spec is not None:
            with self._store.encoding():
                enc = encoder_from_spec(self.spec)
            if enc is None:
                raise InvalidInput(
                    f"collection {self._record.name!r} embeds with the {self.spec.kind} "
                    f"encoder {self.spec.model!r}, which cannot be stored; pass it again: "
                    f"db.get_collection({self._record.name!r}, encoder=...)"
                )
            enc = self._store.set_encoder(self._record, enc)
        return enc

    def images(self, images: Sequence) -> np.ndarray:
        """Embed images (paths, PIL images or arrays) through an encoder that embeds them
        (``CLIPEncoder``), in batches with a progress bar. Not cached: an image has no
        cheap identity."""
        enc = self.encoder
        encode_images = getattr(enc, "encode_images", None)
        if encode_images is None:
            what = "no encoder" if enc is None else f"the encoder {enc!r}"
            raise InvalidInput(
                f"collection {self._record.name!r} has {what}, which does not embed images: "
                "create it with a CLIP encoder (vecstore.encoders.CLIPEncoder)"
            )
        if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
            raise InvalidInput(f"images must be a list, one per row; got {type(images).__name__}")
        x = np.empty((len(images), self._record.dim), dtype=np.float32)
        with self._store.progress(len(images), "embedding images", unit="image") as advance:
            for start in range(0, len(images), EMBED_BATCH):
                batch = list(images[start : start + EMBED_BATCH])
                with self._store.encoding():
                    out = encode_images(batch)
                x[start : start + len(batch)] = inputs.matrix(out, self._record.dim, n=len(batch))
                advance(len(batch))
        return x

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed query texts through the store's query cache (keyed like the document
        cache: the encoder's spec and the text; callables are not cached)."""
        key = self.spec.cache_key() if self.spec is not None else None
        if key is None:
            return self.embed(texts, "query")
        cache = self._store.query_cache
        rows_of: dict[bytes, list[int]] = {}  # distinct texts missing from the cache
        x = np.empty((len(texts), self._record.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            h = text_hash(t) if isinstance(t, str) else b"%d" % i  # embed() refuses non-str
            hit = cache.get((key, h)) if h not in rows_of else None
            if hit is None:
                rows_of.setdefault(h, []).append(i)
            else:
                x[i] = hit
        if rows_of:
            fresh = self.embed([texts[rows[0]] for rows in rows_of.values()], "query")
            for (h, rows), vec in zip(rows_of.items(), fresh):
                x[rows] = vec
                vec = vec.copy()
                vec.flags.writeable = False  # shared by later queries: never changed in place
                cache.put((key, h), vec)
        return x

    def embed(self, texts: Sequence[str], kind: str) -> np.ndarray:
        """Embed ``texts`` as ``kind`` ("query" or "document") without the cache."""
        enc = self.encoder
        if enc is None:
            raise InvalidInput(
                f"collection {self._record.name!r} has no encoder: pass vectors, or create "
                "the collection with encoder="
            )
        if any(not isinstance(t, str) for t in texts):
            raise InvalidInput(f"texts to embed must be str; got {texts[:3]!r}...")
        with self._store.encoding():
            out = enc.encode(list(texts), kind)
        return inputs.matrix(out, self._record.dim, n=len(texts))

    def documents(self, docs: Sequence[str | None]) -> np.ndarray:
        """Embed documents through the store's embedding cache. Callable encoders are not
        cached: their name does not identify what they compute."""
        missing = [i for i, d in enumerate(docs) if d is None]
        if missing:
            raise InvalidInput(
                f"row {missing[0]} has no document to embed; pass a document for every row, "
                "or vectors"
            )
        key = self.spec.cache_key()  # None for a callable: never cached
        hashes = [text_hash(d) for d in docs]
        x = np.empty((len(docs), self._record.dim), dtype=np.float32)
        rows_of: dict[bytes, list[int]] = {}
        for i, h in enumerate(hashes):
            rows_of.setdefault(h, []).append(i)
        cacheable = key is not None
        if cacheable:
            with self._store.reading() as cat:
                for h, vec in cat.cached_embeddings(key, list(rows_of)).items():
                    x[rows_of.pop(h)] = np.frombuffer(vec, dtype="<f4")
        todo = list(rows_of)  # distinct texts not in the cache, each embedded once
        with self._store.progress(len(todo), "embedding") as advance:
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start : start + EMBED_BATCH]
                fresh = self.embed([docs[rows_of[h][0]] for h in batch], "document")
                for h, vec in zip(batch, fresh):
                    x[rows_of[h]] = vec
                if cacheable and not self._store.read_only:
                    with self._store.writing() as cat, cat.write():
                        cat.cache_embeddings(key, ((h, v.tobytes()) for h, v in zip(batch, fresh)))
                advance(len(batch))
        return x
