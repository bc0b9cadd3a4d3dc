"""Embedding collections: encoders configured once, stored, rebuilt, and never mixed."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder
from vecstore.encoders import CallableEncoder, EncoderSpec, named

TEXTS = [
    "the cat sat on the mat",
    "dogs chase cats",
    "stock markets fell today",
    "the bank raised interest rates",
    "a kitten naps in the sun",
]


def test_callable_encoder_collection(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        c = db.create_collection("notes", encoder=hashing_encoder)
        assert c.dim == 16 and c.encoder.name == "hashing_encoder"
        c.add([f"t{i}" for i in range(5)], documents=TEXTS, metadata=[{"i": i} for i in range(5)])
        got = c.get(["t0"], include_vectors=True)
        np.testing.assert_array_equal(got.vectors[0], hashing_encoder([TEXTS[0]])[0])
        assert c.query("cat on a mat", k=1).ids == ["t0"]
        assert [r.ids[0] for r in c.query_many(["stock markets", "interest rates bank"], k=1)] == [
            "t2",
            "t3",
        ]
        c.update(["t0"], documents=["stock markets fell today"])  # re-embedded
        assert set(c.query("stock markets fell today", k=2).ids) == {"t0", "t2"}
        c.add(["v"], vectors=hashing_encoder(["explicit vector"]))  # mixed use
        assert c.query(hashing_encoder(["explicit vector"])[0], k=1).ids == ["v"]
        with pytest.raises(vecstore.InvalidInput, match="no document"):
            c.add(["x", "y"], documents=["fine", None])
        with pytest.raises(vecstore.InvalidInput, match="needs documents"):
            c.add(["x"])
    with vecstore.open(path) as db:
        c = db.get_collection("notes")
        assert c.count() == 6  # plain reads need no encoder
        with pytest.raises(vecstore.InvalidInput, match="pass it again"):
            c.query("cat")
        c = db.get_collection("notes", encoder=hashing_encoder)
        assert c.query("kitten sun", k=1).ids == ["t4"]

        def other(texts):
            return hashing_encoder(texts) * 2

        with pytest.raises(vecstore.InvalidInput, match="version="):
            db.get_collection("notes", encoder=other)  # no identity: refused
        with pytest.raises(vecstore.EncoderMismatch, match="revision: '1' != '2'"):
            db.get_collection("notes", encoder=named("hashing_encoder", version="2")(other))
        with pytest.raises(vecstore.EncoderMismatch):
            db.get_collection(
                "notes", encoder=CallableEncoder(hashing_encoder, dim=16, query_prefix="query: ")
            )


def test_encoder_and_dim_must_agree(db):
    with pytest.raises(vecstore.DimensionMismatch):
        db.create_collection("c", dim=8, encoder=hashing_encoder)
    with pytest.raises(vecstore.InvalidInput, match="dim"):
        db.create_collection("c")
    plain = db.create_collection("plain", dim=16)
    with pytest.raises(vecstore.InvalidInput, match="no encoder"):
        plain.query("text")
    with pytest.raises(vecstore.EncoderMismatch, match="without an encoder"):
        db.get_collection("plain", encoder=hashing_encoder)


def test_prefixes_are_applied_and_stored(db):
    seen = []

    def fn(texts):
        seen.extend(texts)
        return hashing_encoder(texts)

    enc = CallableEncoder(
        fn, dim=16, name="fn", version="1", query_prefix="query: ", document_prefix="passage: "
    )
    c = db.create_collection("c", encoder=enc)
    c.add(["a"], documents=["hello"])
    c.query("hi")
    assert seen == ["passage: hello", "query: hi"]
    spec = c.encoder.config()
    assert (spec.query_prefix, spec.document_prefix) == ("query: ", "passage: ")


def test_bad_encoder_output_is_refused(db):
    c = db.create_collection(
        "c",
        encoder=CallableEncoder(lambda t: np.ones((len(t), 4)), dim=4, name="ones", version="1"),
    )
    c.add(["a"], documents=["x"])
    broken = CallableEncoder(lambda t: np.ones((len(t) + 1, 4)), dim=4, name="ones", version="1")
    c2 = db.get_collection("c", encoder=broken)
    with pytest.raises(vecstore.InvalidInput, match="shape"):
        c2.add(["b"], documents=["y"])
    assert c.count() == 1
    with pytest.raises(vecstore.InvalidInput):
        db.create_collection("d", encoder=42)


def test_spec_round_trip():
    spec = EncoderSpec("sentence-transformers", "m", 384, True, 256, "q: ", "p: ", "abc")
    assert EncoderSpec.from_json(spec.to_json()) == spec
    assert (
        spec.differences(
            EncoderSpec("sentence-transformers", "m", 384, True, 256, "q: ", "p: ", None)
        )
        == []
    )
    with pytest.raises(vecstore.InvalidInput):
        EncoderSpec("callable", "m", 0)


def test_embedding_cache_embeds_each_text_once(tmp_path):
    calls: list[str] = []

    def counting(texts):
        calls.extend(texts)
        return hashing_encoder(texts)

    class Counting:  # an Encoder of its own kind: cached (callables are not)
        name, dim = "counting", 16

        def encode(self, texts, kind="document"):
            return counting(list(texts))

        def config(self):
            return EncoderSpec(kind="test-counting", model="counting", dim=16, normalize=False)

    enc = Counting()
    corpus = [f"passage number {i} about topic {i % 7}" for i in range(700)]
    path = tmp_path / "s"
    with vecstore.open(path, progress=False) as db:
        a = db.create_collection("a", encoder=enc)
        a.add([f"p{i}" for i in range(700)], documents=corpus + [])
        assert sorted(calls) == sorted(corpus)
        calls.clear()
        b = db.create_collection("b", encoder=enc)  # same encoder, another collection
        b.add([f"p{i}" for i in range(700)], documents=corpus)
        assert calls == []
        np.testing.assert_array_equal(
            a.get(["p5"], include_vectors=True).vectors, b.get(["p5"], include_vectors=True).vectors
        )
    with vecstore.open(path, progress=False) as db:
        changed = corpus[:]
        changed[3] = "a brand new passage"
        c = db.get_collection("a", encoder=enc)
        c.upsert([f"p{i}" for i in range(700)], documents=changed)  # re-ingest, one edit
        assert calls == ["a brand new passage"]
        assert c.query("brand new passage", k=1).ids == ["p3"]
        calls.clear()
        c.add(["dup1", "dup2"], documents=["same text twice", "same text twice"])
        assert calls == ["same text twice"]


def test_add_batches_streams_with_bounded_memory(tmp_path):
    import tracemalloc

    def cheap(texts):  # content does not matter here, only sizes
        return np.arange(len(texts) * 384, dtype=np.float32).reshape(len(texts), 384) % 7

    enc = CallableEncoder(cheap, dim=384, name="cheap", version="1")

    def corpus(n):
        for i in range(n):
            yield {"id": f"d{i}", "document": f"passage {i}", "metadata": {"i": i}}

    peaks = []
    # seal_rows=256 makes both runs seal, and merge segments of several write blocks; the
    # first run pays one-time imports (the numba kernels)
    for n in (3_000, 64_000):
        with vecstore.open(tmp_path / f"s{n}", progress=False, seal_rows=256) as db:
            c = db.create_collection("c", encoder=enc)
            tracemalloc.start()
            assert c.add_batches(corpus(n), batch_size=1_000) == n
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            assert c.count() == n
            assert c.get(["d123"]).metadata == [{"i": 123}]
    # The peak stays a fraction of the vectors written (98 MB): batches and merge blocks
    # are bounded; nothing holds the whole corpus.
    assert peaks[1] < 0.4 * 64_000 * 384 * 4, peaks


def test_add_batches_validates_rows(db):
    c = db.create_collection("c", dim=2)
    assert c.add_batches([{"id": "a", "vector": [1, 0]}, {"id": "b", "vector": [0, 1]}]) == 2
    with pytest.raises(vecstore.InvalidInput, match="mapping"):
        c.add_batches(["nope"])
    with pytest.raises(vecstore.InvalidInput, match="every row or for none"):
        c.add_batches([{"id": "x", "vector": [1, 0]}, {"id": "y"}])
    with pytest.raises(vecstore.DuplicateIdError):
        c.add_batches([{"id": "a", "vector": [1, 1]}], replace=False)
    assert c.count() == 2


def test_callables_never_share_cached_embeddings(db):
    # even under one name and version: a callable's promise is not trusted with the cache
    a = db.create_collection(
        "a", encoder=CallableEncoder(lambda t: np.ones((len(t), 4)), dim=4, name="f", version="1")
    )
    b = db.create_collection(
        "b",
        encoder=CallableEncoder(lambda t: np.full((len(t), 4), 7.0), dim=4, name="f", version="1"),
    )
    a.add(["x"], documents=["hello"])
    b.add(["x"], documents=["hello"])
    assert b.get(["x"], include_vectors=True).vectors.tolist() == [[7.0] * 4]
