"""Small helpers shared by the catalog's SQL modules: statement chunking and placeholders.

Imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

CHUNK = 900  # bound parameters per statement, well under SQLite's limit


def chunked(seq: Sequence, n: int = CHUNK) -> Iterator[Sequence]:
    """Consecutive slices of ``seq`` of at most ``n`` items: one statement's bound values."""
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def placeholders(n: int) -> str:
    """``n`` comma-separated ``?`` placeholders, for ``IN (...)``."""
    return ",".join("?" * n)
