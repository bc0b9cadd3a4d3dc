"""Data recipes shared by the pytest-benchmark suites and the comparison scripts."""

from __future__ import annotations

CATEGORIES = 100  # one metadata value of the "category" field marks 1% of the rows


def make_metadata(n: int) -> tuple[list[dict], list[str]]:
    """Three metadata fields and a ~100-character document per row."""
    metas = [
        {
            "category": f"cat{i % CATEGORIES:02d}",
            "year": 1990 + (i * 7) % 35,
            "score": (i * 37 % 1000) / 10,
        }
        for i in range(n)
    ]
    docs = [
        f"Document {i}: a synthetic passage about topic {i % CATEGORIES}, written for the "
        f"vecstore benchmark; it is about a hundred characters long."
        for i in range(n)
    ]
    return metas, docs
