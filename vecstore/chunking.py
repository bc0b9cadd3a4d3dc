"""Split documents into overlapping chunks for retrieval, on paragraph and sentence boundaries.

Pure text processing: imports only the standard library and nothing else from vecstore but
``errors``. A chunk is an exact slice ``text[start:end]`` of its document, so its character
offsets always point back into the source.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from .errors import InvalidInput

UNITS = ("chars", "tokens")

# Strength of the boundary between two words: where a chunk would best end.
INSIDE_WORD, SPACE, LINE, SENTENCE, PARAGRAPH, END = 0, 1, 2, 3, 4, 5

_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*$")
_APPROX_TOKEN = re.compile(r"\w+|[^\w\s]")

TokenCounter = Callable[[Sequence[str]], Sequence[int]]


@dataclass(frozen=True)
class Chunking:
    """How documents are split into chunks.

    Parameters
    ----------
    size : int
        Largest chunk, in ``unit``\\ s. The default (800 characters, about 180 word pieces)
        stays under the 256-token input of all-MiniLM-L6-v2, which truncates longer texts.
    overlap : int
        Up to this many units at the end of one chunk start the next one, so a passage cut by
        a boundary is still found whole; ``0 <= overlap < size``.
    unit : {"chars", "tokens"}
        ``"tokens"`` counts the encoder's tokens when it has a tokenizer (sentence-transformers
        and transformers models), otherwise words and punctuation marks.
    """

    size: int = 800
    overlap: int = 100
    unit: str = "chars"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise InvalidInput(f"chunk size must be a positive int; got {self.size!r}")
        if (
            isinstance(self.overlap, bool)
            or not isinstance(self.overlap, int)
            or not 0 <= self.overlap < self.size
        ):
            raise InvalidInput(
                f"chunk overlap must be an int from 0 to size - 1 ({self.size - 1}); "
                f"got {self.overlap!r}"
            )
        if self.unit not in UNITS:
            raise InvalidInput(f"chunk unit must be one of {UNITS}; got {self.unit!r}")

    def to_json(self) -> dict:
        return {"size": self.size, "overlap": self.overlap, "unit": self.unit}


@dataclass(frozen=True)
class Chunk:
    """One chunk: ``text == document[start:end]``; ``index`` counts from 0 in its document."""

    index: int
    start: int
    end: int
    text: str


def approximate_tokens(texts: Sequence[str]) -> list[int]:
    """Words and punctuation marks: a tokenizer-free stand-in for token counts."""
    return [len(_APPROX_TOKEN.findall(t)) or 1 for t in texts]


def split(
    text: str, chunking: Chunking = Chunking(), *, count_tokens: TokenCounter | None = None
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``chunking.size`` units, overlapping by up to
    ``chunking.overlap``.

    A chunk ends at the strongest boundary in the second half of its allowed length: the end
    of a paragraph (a blank line), else of a sentence, else of a line, else between words;
    a single word longer than ``size`` is cut inside. The next chunk starts at the strongest
    boundary within the last ``overlap`` units of the previous one. Chunks start and end on
    non-space characters; a text of only whitespace has no chunks.

    ``count_tokens`` maps a list of words to their token counts (only for ``unit="tokens"``;
    the default counts words and punctuation marks).
    """
    if not isinstance(text, str):
        raise InvalidInput(f"text to chunk must be a str; got {type(text).__name__}")
    if chunking.unit == "tokens":
        counter = count_tokens or approximate_tokens
    else:
        counter = None
    starts, ends, levels = _words(text, chunking.size, counter)
    n = len(starts)
    if not n:
        return []
    if counter is None:

        def span(i: int, j: int) -> int:
            return ends[j] - starts[i]

        def last_fitting(i: int) -> int:
            # the last word ending within size characters of word i's start
            return bisect.bisect_right(ends, starts[i] + chunking.size, lo=i) - 1

    else:
        prefix = [0, *accumulate(counter([text[s:e] for s, e in zip(starts, ends)]))]

        def span(i: int, j: int) -> int:
            return prefix[j + 1] - prefix[i]

        def last_fitting(i: int) -> int:
            return bisect.bisect_right(prefix, prefix[i] + chunking.size, lo=i + 1) - 2

    size, overlap = chunking.size, chunking.overlap
    chunks: list[Chunk] = []
    i = 0
    last_cut = -1
    while True:
        j = max(last_fitting(i), i)  # every word fits alone: _words cut longer ones
        if j == n - 1:
            cut = j
        else:
            # The strongest boundary (latest among equals) that keeps the chunk at least half
            # full; levels[w] is the boundary before word w.
            lo = j
            while lo > i and span(i, lo - 1) * 2 >= size:
                lo -= 1
            lo = max(lo, last_cut + 1)  # each chunk reaches past the previous one
            cut = max(range(lo, j + 1), key=lambda c: (levels[c + 1], c))
        chunks.append(Chunk(len(chunks), starts[i], ends[cut], text[starts[i] : ends[cut]]))
        if cut == n - 1:
            return chunks
        last_cut = cut
        nxt = cut + 1
        if overlap:
            fits = [k for k in range(i + 1, cut + 1) if span(k, cut) <= overlap]
            if fits:
                full = [k for k in fits if span(k, cut) * 2 >= overlap] or fits
                nxt = max(full, key=lambda k: (levels[k], -k))
        # The next chunk must have room to reach past this one.
        while nxt <= cut and span(nxt, cut + 1) > size:
            nxt += 1
        i = nxt


def _words(
    text: str, size: int, counter: TokenCounter | None
) -> tuple[list[int], list[int], list[int]]:
    """Word spans and the boundary level before each word (plus ``END`` after the last);
    words longer than ``size`` units are cut into pieces that fit."""
    starts: list[int] = []
    ends: list[int] = []
    levels: list[int] = []
    spans = [m.span() for m in _WORD.finditer(text)]
    too_long = _oversized(text, spans, size, counter)
    prev_end = None
    for w, (s, e) in enumerate(spans):
        if prev_end is None:
            level = PARAGRAPH
        else:
            gap = text[prev_end:s]
            if _PARAGRAPH_BREAK.search(gap):
                level = PARAGRAPH
            elif _SENTENCE_END.search(text[starts[-1] : prev_end]):
                level = SENTENCE
            elif "\n" in gap:
                level = LINE
            else:
                level = SPACE
        pieces = _cut(text, s, e, size, counter) if w in too_long else [(s, e)]
        for p, (ps, pe) in enumerate(pieces):
            starts.append(ps)
            ends.append(pe)
            levels.append(level if p == 0 else INSIDE_WORD)
        prev_end = e
    levels.append(END)
    return starts, ends, levels


def _oversized(
    text: str, spans: list[tuple[int, int]], size: int, counter: TokenCounter | None
) -> set[int]:
    if counter is None:
        return {w for w, (s, e) in enumerate(spans) if e - s > size}
    long_ = [w for w, (s, e) in enumerate(spans) if e - s > 1]
    counts = counter([text[spans[w][0] : spans[w][1]] for w in long_]) if long_ else []
    return {w for w, c in zip(long_, counts) if c > size}


def _cut(
    text: str, s: int, e: int, size: int, counter: TokenCounter | None
) -> list[tuple[int, int]]:
    """Cut the word ``text[s:e]`` into pieces of at most ``size`` units."""
    if counter is None:
        return [(p, min(p + size, e)) for p in range(s, e, size)]
    if e - s <= 1 or counter([text[s:e]])[0] <= size:
        return [(s, e)]
    mid = (s + e) // 2
    return _cut(text, s, mid, size, counter) + _cut(text, mid, e, size, counter)
