"""The keyword analyzer: folding, stemming, CJK bigrams, stopwords, hostile input."""

from __future__ import annotations

import random

import pytest

from vecstore import text


def test_case_accents_and_compatibility_forms_fold_together():
    assert text.terms("Café CAFE cafe cafés") == ["cafe"] * 4
    assert text.terms("naïve Résumé Ångström") == ["naiv", "resum", "angstrom"]
    assert text.terms("ｆｕｌｌｗｉｄｔｈ ＡＢＣ") == ["fullwidth", "abc"]
    assert text.terms("cafe\u0301") == text.terms("caf\u00e9") == ["cafe"]


def test_english_words_are_stemmed_and_stopwords_dropped():
    assert text.terms("The runners were running quickly") == ["runner", "run", "quickli"]
    assert text.terms("the of and to be or not") == ["not"]
    assert text.query_terms("to be or to be") == []


def test_cjk_runs_become_bigrams_and_keep_their_marks():
    assert text.terms("向量数据库") == ["向量", "量数", "数据", "据库"]
    assert text.terms("中") == ["中"]
    assert text.terms("がぎ") == ["がぎ"]  # dakuten are not stripped from kana
    assert text.terms("한국어 텍스트") == ["한국", "국어", "텍스", "스트"]
    assert text.terms("GPU加速") == ["gpu", "加速"]


@pytest.mark.parametrize(
    "query, expected",
    [
        ('"phrase query"', ["phrase", "queri"]),
        ("cats OR dogs NOT birds", ["cat", "dog", "not", "bird"]),
        ("NEAR(cat dog, 5)", ["near", "cat", "dog", "5"]),
        ("-cat +dog", ["cat", "dog"]),
        ("cat*", ["cat"]),
        ("body:cat", ["bodi", "cat"]),
        ("\x00cat\x00", ["cat"]),
        ("'; DROP TABLE rows; --", ["drop", "tabl", "row"]),
        ("!!! ??? ... ---", []),
        ("", []),
        ("^cat AND {dog}", ["cat", "dog"]),
    ],
)
def test_query_syntax_is_inert(query, expected):
    assert text.query_terms(query) == expected


def test_counts_of_a_missing_document_is_none():
    assert text.counts(None) is None
    assert text.counts("") == {}
    assert text.counts("cat cats dog") == {"cat": 2, "dog": 1}


def test_contains_terms_are_whole_words_inside_the_substring():
    assert text.contains_terms("the quick brown fox") == ["quick", "brown"]
    assert text.contains_terms("vector") == []
    assert text.contains_terms(" vector ") == ["vector"]
    assert text.contains_terms("数据库") == ["数据", "据库"]
    assert text.contains_terms("数") == []
    assert text.contains_terms("a 数 b") == ["数"]


ALPHABET = list("abcdeé ü.,;'\"-_") + ["数", "据", "库", "が", "\u0301", "ＡＢ", " the "]


def test_contains_terms_are_in_every_document_containing_the_substring():
    # The property the $contains prefilter relies on, over random documents and substrings.
    r = random.Random(5)
    for _ in range(3000):
        doc = "".join(r.choice(ALPHABET) for _ in range(r.randint(1, 30)))
        i = r.randint(0, len(doc))
        j = r.randint(i, len(doc))
        sub = doc[i:j]
        assert set(text.contains_terms(sub)) <= set(text.terms(doc)), (doc, sub)
