"""The keyword analyzer: text -> index terms, the same for documents and queries.

Text is NFKC-normalised and case-folded; outside CJK, diacritics are removed ("Café" and
"cafe" are one term) and lowercase ASCII words are Porter-stemmed ("running" -> "run").
Runs of CJK characters (Han, kana, Hangul), which are written without spaces, become
overlapping character bigrams ("向量数据库" -> 向量 量数 数据 据库). English stopwords are
dropped. Terms are plain strings: nothing a user types is ever a query-language operator.
Imports only the standard library.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache

from .porter import stem

ANALYZER = "vecstore-1"  # any change to the analysis needs a migration that re-indexes

# Han (with extensions and compatibility ideographs), Hiragana, Katakana, Hangul syllables.
_CJK = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0002fa1f"
)
# Combining marks that can sit inside a word (NFKC leaves some uncomposed).
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u064b-\u065f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
)
_WORD = re.compile(rf"(?:[^\W_]|[{_MARKS}])+")  # letters, digits and marks (CJK included)
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same, on ASCII text
_HAS_CJK = re.compile(f"[{_CJK}]")
_RUNS = re.compile(f"[{_CJK}]+|[^{_CJK}]+")  # a word cut into CJK and other runs
_STEMMABLE = re.compile(r"[a-z]+")

# Lucene's English stopwords plus pronouns, auxiliaries and other function words (NLTK's
# list, without negations): they carry little ranking signal and are the longest posting
# lists, so they are neither indexed nor searched.
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves s t d ll m re ve
    """.split()
)


@lru_cache(maxsize=200_000)
def _term(token: str) -> str | None:
    """The index term of one word token (already NFKC-normalised and case-folded), or None
    for a stopword. Cached: a corpus repeats its words, and stemming is the slow part."""
    word = token
    if not word.isascii():
        # Strip diacritics: decompose, drop the combining marks, recompose the rest.
        decomposed = unicodedata.normalize("NFD", word)
        word = unicodedata.normalize(
            "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        )
    if not word or word in STOPWORDS:
        return None
    return stem(word) if _STEMMABLE.fullmatch(word) else word


def _normalize(text: str) -> str:
    if text.isascii():
        return text.lower()  # what NFKC and case folding do to ASCII
    return unicodedata.normalize("NFKC", text).casefold()


def _words(norm: str) -> Iterator[tuple[str, bool, int, int]]:
    """``(token, is_cjk, start, end)`` of each word token of normalised text: maximal runs
    of letters, digits and marks, cut where CJK and other scripts meet."""
    for m in _WORD.finditer(norm):
        tok = m.group()
        if tok.isascii() or not _HAS_CJK.search(tok):
            yield tok, False, m.start(), m.end()
            continue
        for part in _RUNS.finditer(tok):
            run = part.group()
            yield (
                run,
                _HAS_CJK.match(run) is not None,
                m.start() + part.start(),
                m.start() + part.end(),
            )


def _cjk(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def terms(text: str) -> list[str]:
    """Every index term of ``text``, in order, repeats included."""
    norm = _normalize(text)
    if norm.isascii():
        return [t for t in map(_term, _ASCII_WORD.findall(norm)) if t is not None]
    out: list[str] = []
    for tok, cjk, _, _ in _words(norm):
        if cjk:
            out += _cjk(tok)
        else:
            term = _term(tok)
            if term is not None:
                out.append(term)
    return out


def counts(text: str | None) -> dict[str, int] | None:
    """``term -> frequency`` of a document, or None for a row without a document."""
    if text is None:
        return None
    return dict(Counter(terms(text)))


def query_terms(text: str) -> list[str]:
    """The distinct terms of a keyword query, in order of first appearance. Quotes,
    operators (``OR``, ``NEAR``, ``-``, ``*``, ``col:``) and punctuation are separators,
    never syntax; a query of only stopwords or punctuation has no terms."""
    return list(dict.fromkeys(terms(text)))


@lru_cache(maxsize=1)
def composing() -> tuple[frozenset[str], frozenset[str]]:
    """``(first, second)``: the characters that begin and that end a canonical composition
    (``e`` + U+0301 -> ``é``; Hangul L + V -> LV and LV + T -> LVT). Read once from the
    Unicode data, on first use (0.2 s)."""
    first, second = set(), set()
    for cp in range(0x110000):
        dec = unicodedata.decomposition(chr(cp))
        if dec and not dec.startswith("<") and dec.count(" ") == 1:
            a, b = (chr(int(h, 16)) for h in dec.split())
            if unicodedata.normalize("NFC", a + b) == chr(cp):  # not a composition exclusion
                first.add(a)
                second.add(b)
    first.update(map(chr, range(0x1100, 0x1113)))  # Hangul L jamo
    first.update(map(chr, range(0xAC00, 0xD7A4, 28)))  # Hangul LV syllables
    second.update(map(chr, range(0x1161, 0x1176)))  # Hangul V jamo
    second.update(map(chr, range(0x11A8, 0x11C3)))  # Hangul T jamo
    return frozenset(first), frozenset(second)


def _starts_clean(ch: str) -> bool:
    """Whether normalising never joins ``ch`` to what precedes it: its decomposition starts
    with a starter that ends no composition."""
    if ch.isascii():
        return True  # no ASCII character ends a composition (tests/test_text.py checks)
    head = unicodedata.normalize("NFKD", ch)[0]
    return unicodedata.combining(head) == 0 and head not in composing()[1]


def _ends_clean(ch: str) -> bool:
    """Whether normalising never joins ``ch`` to what follows it: its decomposition ends
    with a starter that is in no composition (one that ends a composition may join what
    precedes it into a character that begins one: Hangul L + V, then + T)."""
    if ch.isascii():
        return not (ch.isalpha() or ch in "<=>")  # a superset of those that begin one
    tail = unicodedata.normalize("NFKD", ch)[-1]
    first, second = composing()
    return unicodedata.combining(tail) == 0 and tail not in first and tail not in second


def contains_terms(substring: str) -> list[str]:
    """Terms every document containing ``substring`` must have. Used to prefilter
    ``$contains`` candidates through the keyword index; the substring test itself still runs
    on every candidate, so the terms may be too few but never one too many.

    A document normalises (NFKC) its copy of the substring differently where the substring's
    ends meet the text around it: ``か`` followed by U+3099 becomes ``が``, Hangul jamo join
    into syllables. So the terms come from the core between the first character that joins
    nothing before it and the last that joins nothing after it (or the last character that
    joins nothing before it, which then starts the cut-off tail): the words of the core that
    do not touch its ends (an end may be part of a longer word in the document), and the CJK
    bigrams inside it.
    """
    n = len(substring)
    i = 0
    while i < n and not _starts_clean(substring[i]):
        i += 1
    j = n
    if j > i and not _ends_clean(substring[-1]):
        j = n - 1
        while j > i and not _starts_clean(substring[j]):
            j -= 1
    core = substring[i:j]
    norm = _normalize(core)
    out: list[str] = []
    for tok, cjk, start, end in _words(norm):
        if cjk:
            if len(tok) >= 2 or (start > 0 and end < len(norm)):
                out += _cjk(tok)
        elif start > 0 and end < len(norm):
            term = _term(tok)
            if term is not None:
                out.append(term)
    return list(dict.fromkeys(out))
