"""What a query did, recorded as it runs: the plan the planner chose and why, the filter's
selectivity, the segments, lists and rows it touched, and the time of each stage. The query
path records into a ``Trace`` when given one (``Collection.explain``) and skips all of it
otherwise. Imports the standard library only.
"""

from __future__ import annotations

import time
from typing import Any


class Trace:
    """Facts about one query, filled in by the code that runs it."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.stages: dict[str, float] = {}  # seconds, in the order the stages ran

    def note(self, **facts: Any) -> None:
        self.facts.update(facts)

    def stage(self, name: str) -> _Stage:
        """A context timing its block as stage ``name`` (added up if it runs again)."""
        return _Stage(self, name)


class _Stage:
    __slots__ = ("trace", "name", "start")

    def __init__(self, trace: Trace, name: str) -> None:
        self.trace, self.name = trace, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        stages = self.trace.stages
        stages[self.name] = stages.get(self.name, 0.0) + time.perf_counter() - self.start


class _Nothing:
    """The context of a stage without a trace: a shared object whose ``with`` costs about
    0.1 us (a generator-based context manager costs some 1.5 us, per stage, per query)."""

    __slots__ = ()

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


_NOTHING = _Nothing()


def stage(trace: Trace | None, name: str) -> _Stage | _Nothing:
    """``trace.stage(name)``, or a context that does nothing without a trace."""
    return _NOTHING if trace is None else _Stage(trace, name)
