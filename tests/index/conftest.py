"""Fixtures of the index tests."""

from __future__ import annotations

import pytest

from vecstore.kernels import single


@pytest.fixture
def graph_one_calls(monkeypatch):
    """A list that grows by one at each call of ``kernels.single.graph_one``, the kernel of
    the single-query HNSW path (``index/quick.py``): whether a query took that path."""
    calls = []
    graph_one = single.graph_one

    def spy(*args):
        calls.append(1)
        return graph_one(*args)

    monkeypatch.setattr(single, "graph_one", spy)
    return calls
