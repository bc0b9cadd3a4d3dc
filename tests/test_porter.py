"""The Porter stemmer, against SQLite FTS5's ``porter`` tokenizer as an oracle."""

from __future__ import annotations

import re
import sqlite3

import pytest

from vecstore.corpora import POS_FILES, WORDNET_DIR
from vecstore.porter import stem


@pytest.mark.parametrize(
    "word, expected",
    [
        ("caresses", "caress"),
        ("ponies", "poni"),
        ("cats", "cat"),
        ("agreed", "agre"),
        ("plastered", "plaster"),
        ("motoring", "motor"),
        ("hopping", "hop"),
        ("filing", "file"),
        ("happy", "happi"),
        ("relational", "relat"),
        ("generalization", "gener"),
        ("electrical", "electr"),
        ("adjustment", "adjust"),
        ("controlling", "control"),
        ("running", "run"),
        ("sky", "sky"),
        ("a", "a"),
        ("is", "is"),
    ],
)
def test_known_stems(word, expected):
    assert stem(word) == expected


def _fts5_stems(words: list[str]) -> list[str]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter ascii')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    conn.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(words, 1))
    got = dict(conn.execute("SELECT doc, term FROM v"))
    conn.close()
    return [got[i] for i in range(1, len(words) + 1)]


@pytest.mark.skipif(
    not all((WORDNET_DIR / f).is_file() for f in POS_FILES.values()),
    reason="needs wordnet-base",
)
def test_agrees_with_fts5_porter_on_the_wordnet_vocabulary():
    words: set[str] = set()
    for name in POS_FILES.values():
        with open(WORDNET_DIR / name, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.startswith("  "):
                    words.update(re.findall(r"[a-z]+", line.lower()))
    words_ = sorted(words)
    assert len(words_) > 90_000
    mine = [stem(w) for w in words_]
    theirs = _fts5_stems(words_)
    differ = [(w, a, b) for w, a, b in zip(words_, mine, theirs) if a != b]
    assert differ == []
