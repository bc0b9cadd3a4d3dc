"""The keyword analyzer: text -> index terms, the same for documents and queries.

Text is NFKC-normalised and case-folded; outside CJK, diacritics are removed ("Café" and
"cafe" are one term) and words are stemmed and stopwords dropped in the collection's
language: English (the default) through the Porter stemmer and a built-in stop list, other
languages through Snowball (``snowballstemmer``) and the ``stop-words`` lists. Runs of CJK
characters (Han, kana, Hangul), which are written without spaces, become overlapping
character bigrams ("向量数据库" -> 向量 量数 数据 据库); since analyzer version 2, documents
also index each character, so a one-character query (猫) finds them. Terms are plain
strings: nothing a user types is ever a query-language operator.

A collection records its ``Analyzer`` (language and version) in its configuration, and its
postings are only ever read and written through that analyzer. The module-level functions
are version 1 in English, the analyzer of collections made before collections recorded one.
Imports only the standard library; snowballstemmer and stop-words on first use.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from .errors import InvalidInput, MissingDependency
from .porter import stem

# Any change to what an analyzer version does needs a new version: stored postings were made
# by the version a collection records. 1: CJK bigrams only; 2: CJK unigrams too.
VERSION = 2
VERSIONS = (1, 2)
DEFAULT_LANGUAGE = "english"
# "english": Porter + the built-in stop list (exactly version 1's); "none": no stemming and
# no stopwords (code, identifiers, languages Snowball lacks); the rest: Snowball's stemmers
# (snowballstemmer 3's list, less its variants of English and Dutch).
LANGUAGES = (
    "english",
    "none",
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "czech",
    "danish",
    "dutch",
    "esperanto",
    "estonian",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "persian",
    "polish",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "sesotho",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
)

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
    return _contains(substring, _term, unigrams=False)


def _contains(substring: str, word: Callable[[str], str | None], *, unigrams: bool) -> list[str]:
    """``contains_terms`` with ``word`` making a word's term; ``unigrams``: documents index
    every CJK character, so a lone one in the core is a term wherever it stands."""
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
            if len(tok) >= 2 or unigrams or (start > 0 and end < len(norm)):
                out += _cjk(tok)
        elif start > 0 and end < len(norm):
            term = word(tok)
            if term is not None:
                out.append(term)
    return list(dict.fromkeys(out))


# -- per-collection analyzers ------------------------------------------------------------

_SNOWBALL_LOCK = threading.Lock()  # a Snowball stemmer object keeps state between calls


@cache
def _snowball(language: str) -> tuple[Callable[[str], str], frozenset[str]]:
    """``(stem, stopwords)`` of a Snowball language, imported on first use."""
    try:
        import snowballstemmer
        import stop_words
    except ImportError:
        raise MissingDependency(
            f"keyword analysis in {language!r} needs snowballstemmer and stop-words: "
            "pip install -e '.[languages]'"
        ) from None
    stemmer = snowballstemmer.stemmer(language)

    def stem_word(word: str) -> str:
        with _SNOWBALL_LOCK:
            return stemmer.stemWord(word)

    try:
        words = stop_words.get_stop_words(language)
    except stop_words.StopWordError:  # a language the lists lack: stem only
        words = []
    stops = {_normalize(w) for w in words}
    return stem_word, frozenset(stops | {_strip_marks(w) for w in stops})


def _strip_marks(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


@lru_cache(maxsize=200_000)
def _term_in(language: str, token: str) -> str | None:
    """``_term`` in another language than English: the stopword test and the stemmer see
    the word with its diacritics (Snowball's rules are written for them), the term is the
    stem without them (so "Café" and "cafe" still meet)."""
    if language == "none":
        return _strip_marks(token) or None
    stem_word, stops = _snowball(language)
    if token in stops or not token:
        return None
    word = stem_word(token) if token.isalpha() else token
    return _strip_marks(word) or None


def _cjk_both(run: str) -> list[str]:
    """A CJK run's characters and its bigrams (Lucene's CJKBigramFilter with unigrams)."""
    if len(run) == 1:
        return [run]
    return list(run) + [run[i : i + 2] for i in range(len(run) - 1)]


@dataclass(frozen=True)
class Analyzer:
    """How a collection's documents and keyword queries become terms: the ``language`` of
    its stemmer and stopwords (one of ``LANGUAGES``) and the analyzer ``version`` its
    postings were written by. Frozen into the collection's configuration at creation."""

    language: str = DEFAULT_LANGUAGE
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise InvalidInput(
                f"language must be one of {', '.join(LANGUAGES)}; got {self.language!r}"
            )
        if self.version not in VERSIONS:
            raise InvalidInput(
                f"keyword analyzer version {self.version!r} is not one this vecstore knows "
                f"({VERSIONS}); was the store written by a newer vecstore?"
            )
        if self.version == 1 and self.language != DEFAULT_LANGUAGE:
            raise InvalidInput("analyzer version 1 is English only")

    def require(self) -> Analyzer:
        """Self, once the libraries its language needs are known to import (at creation, so
        a missing one is said then, not at the first write)."""
        if self.language not in (DEFAULT_LANGUAGE, "none"):
            _snowball(self.language)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"language": self.language, "version": self.version}

    @classmethod
    def from_json(cls, data: Any) -> Analyzer:
        """The analyzer a stored configuration names; none stored: version 1, English."""
        if data is None:
            return cls(DEFAULT_LANGUAGE, 1)
        if not isinstance(data, dict):
            raise InvalidInput(f"the keyword analyzer must be an object; got {data!r}")
        return cls(data.get("language"), data.get("version"))

    def _word(self, token: str) -> str | None:
        if self.language == DEFAULT_LANGUAGE:
            return _term(token)
        return _term_in(self.language, token)

    def _terms(self, text: str, cjk: Callable[[str], list[str]]) -> list[str]:
        norm = _normalize(text)
        if norm.isascii() and self.language == DEFAULT_LANGUAGE:
            return [t for t in map(_term, _ASCII_WORD.findall(norm)) if t is not None]
        out: list[str] = []
        for tok, is_cjk, _, _ in _words(norm):
            if is_cjk:
                out += cjk(tok)
            else:
                term = self._word(tok)
                if term is not None:
                    out.append(term)
        return out

    def terms(self, text: str) -> list[str]:
        """Every index term of a document, in order, repeats included."""
        return self._terms(text, _cjk if self.version == 1 else _cjk_both)

    def counts(self, text: str | None) -> dict[str, int] | None:
        """``term -> frequency`` of a document, or None for a row without a document."""
        if text is None:
            return None
        return dict(Counter(self.terms(text)))

    def query_terms(self, text: str) -> list[str]:
        """The distinct terms of a keyword query, in order of first appearance (see the
        module-level ``query_terms``). A CJK run of two or more characters is searched by
        its bigrams only, a single character by itself: the bigrams are rarer and rank
        better, and every document holding the run holds them (Elasticsearch's
        ``output_unigrams_if_no_bigrams`` does the same)."""
        return list(dict.fromkeys(self._terms(text, _cjk)))

    def contains_terms(self, substring: str) -> list[str]:
        """Terms every document containing ``substring`` must have (see the module-level
        ``contains_terms``)."""
        if self.version == 1 and self.language == DEFAULT_LANGUAGE:
            return contains_terms(substring)
        return _contains(substring, self._word, unigrams=self.version >= 2)

    def __repr__(self) -> str:
        return f"Analyzer(language={self.language!r}, version={self.version})"
