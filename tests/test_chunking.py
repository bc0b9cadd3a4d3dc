"""Chunking: exact offsets, bounded sizes and overlaps, paragraph and sentence boundaries."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vecstore
from vecstore.chunking import Chunking, approximate_tokens, split

ESSAY = (
    "# Storage\n\n"
    "Segments are immutable files. Each one is written once and never changed. "
    "A crash can only lose a file that no catalog row names.\n\n"
    "The catalog is a SQLite database in WAL mode. It names every segment file! "
    "Readers see one snapshot per query.\n"
    "A line break inside a paragraph is a weaker boundary.\n\n"
    "Compaction rewrites segments? It drops deleted vectors from the disk."
)


def check_invariants(text: str, chunks, cfg: Chunking, count=None) -> None:
    """What every chunking must satisfy, whatever the text."""
    measure = (lambda s: len(s)) if cfg.unit == "chars" else (lambda s: sum(count(s.split())))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == text[c.start : c.end]
        assert c.text and not c.text[0].isspace() and not c.text[-1].isspace()
        assert measure(c.text) <= cfg.size
    for a, b in zip(chunks, chunks[1:]):
        assert a.start < b.start and a.end < b.end  # always progress
        if b.start < a.end:  # an overlap
            assert measure(text[b.start : a.end]) <= cfg.overlap
    # Nothing is lost: every word is inside some chunk.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    for m in re.finditer(r"\S", text):
        assert m.start() in covered


def test_chunks_end_on_the_strongest_boundary():
    cfg = Chunking(size=200, overlap=0)
    chunks = split(ESSAY, cfg)
    check_invariants(ESSAY, chunks, cfg)
    # Paragraph ends win where they keep a chunk at least half full...
    assert chunks[0].text.endswith("no catalog row names.")
    # ... and every chunk ends at a sentence end at least.
    assert all(c.text[-1] in ".!?" for c in chunks)


def test_overlap_starts_on_a_sentence():
    cfg = Chunking(size=160, overlap=80)
    chunks = split(ESSAY, cfg)
    check_invariants(ESSAY, chunks, cfg)
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
    assert overlapping
    for _, b in overlapping:
        before = ESSAY[: b.start].rstrip()
        assert before[-1] in ".!?" or ESSAY[b.start - 1] == "\n"


def test_small_text_is_one_chunk_and_blank_text_none():
    assert [c.text for c in split("  Hello world.  \n", Chunking(size=50, overlap=10))] == [
        "Hello world."
    ]
    assert split(" \n\t\n ", Chunking()) == []
    assert split("", Chunking()) == []


def test_long_words_are_cut_to_fit():
    text = "short " + "x" * 25 + " tail"
    cfg = Chunking(size=10, overlap=3)
    chunks = split(text, cfg)
    check_invariants(text, chunks, cfg)
    assert [c.text for c in chunks] == ["short", "x" * 10, "x" * 10, "xxxxx tail"]


def test_tokens_unit_counts_with_the_given_tokenizer():
    calls = []

    def two_per_word(words):
        calls.append(len(words))
        return [2] * len(words)

    cfg = Chunking(size=10, overlap=4, unit="tokens")
    chunks = split(ESSAY, cfg, count_tokens=two_per_word)
    check_invariants(ESSAY, chunks, cfg, count=two_per_word)
    assert calls and all(len(c.text.split()) <= 5 for c in chunks)
    assert approximate_tokens(["don't stop", "x"]) == [4, 1]
    # Without a tokenizer, tokens are words and punctuation marks.
    check_invariants(ESSAY, split(ESSAY, cfg), cfg, count=approximate_tokens)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"size": 10, "overlap": 10},
        {"size": 10, "overlap": -1},
        {"unit": "words"},
        {"size": True},
        {"size": 5.0},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(vecstore.InvalidInput):
        Chunking(**kwargs)


def test_non_text_is_refused():
    with pytest.raises(vecstore.InvalidInput, match="str"):
        split(b"bytes", Chunking())


WORDS = st.sampled_from(["a", "bb", "word", "longerword", "x" * 30, "end.", "why?", "ok!"])
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\n\n", " \n \n", "\t"])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    parts=st.lists(st.tuples(WORDS, SEPARATORS), max_size=80),
    size=st.integers(1, 120),
    frac=st.floats(0, 0.9),
)
def test_invariants_hold_for_any_text(parts, size, frac):
    text = "".join(w + s for w, s in parts)
    cfg = Chunking(size=size, overlap=int(size * frac))
    check_invariants(text, split(text, cfg), cfg)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(parts=st.lists(st.tuples(WORDS, SEPARATORS), max_size=60), size=st.integers(1, 40))
def test_invariants_hold_for_tokens(parts, size):
    text = "".join(w + s for w, s in parts)
    cfg = Chunking(size=size, overlap=size // 3, unit="tokens")
    check_invariants(text, split(text, cfg), cfg, count=approximate_tokens)
