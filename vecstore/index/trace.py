"""What a query did, recorded as it runs: the plan the planner chose and why, the filter's
selectivity, the segments, lists and rows it touched, and the time of each stage. The query
path records into a ``Trace`` when given one (``Collection.explain``) and skips all of it
otherwise. Imports the standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Trace:
    """Facts about one query, filled in by the code that runs it."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.stages: dict[str, float] = {}  # seconds, in the order the stages ran

    def note(self, **facts: Any) -> None:
        self.facts.update(facts)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (added up if it runs more than once)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start


@contextmanager
def stage(trace: Trace | None, name: str) -> Iterator[None]:
    """``trace.stage(name)``, or nothing without a trace."""
    if trace is None:
        yield
    else:
        with trace.stage(name):
            yield
