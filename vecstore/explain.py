"""What ``Collection.explain`` returns: how one query was answered and what each stage cost,
built from the ``index.trace.Trace`` the query path filled in as it ran. Imports the results
and the trace only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .index.trace import Trace
from .results import QueryResult

#: Facts shown by ``str()``, in this order, with their labels.
_SHOWN = (
    ("engine", "kernels"),
    ("snapshot", "snapshot"),
    ("selectivity", "filter selectivity (actual)"),
    ("estimated_selectivity", "filter selectivity (planner's estimate)"),
    ("filter_rows", "rows the filter keeps"),
    ("live_rows", "live rows"),
    ("segments", "segments touched"),
    ("indexed_segments", "segments searched through the index"),
    ("pending_rows", "pending rows scanned exactly"),
    ("nlist", "lists (nlist)"),
    ("lists_probed", "lists probed (nprobe)"),
    ("candidates_scored", "candidates scored"),
    ("rows_scanned_exactly", "rows scanned exactly beside the index"),
    ("rows_reranked", "rows re-ranked"),
    ("rows_fetched", "rows read from the catalog"),
    ("rows_cached", "rows already in memory"),
)


@dataclass(frozen=True, eq=False)
class Explanation:
    """How a query was answered.

    Attributes
    ----------
    plan : str
        ``"exact"``, ``"filtered scan"``, ``"IVF"``, ``"IVF-PQ"``, ``"keyword"`` or
        ``"hybrid: keyword + <vector plan>"``.
    reason : str
        Why the planner chose it.
    facts : dict
        What the plan touched: ``segments`` (catalog ids), ``pending_rows``,
        ``candidates_scored`` (rows whose distance was computed), ``rows_reranked``
        (IVF-PQ candidates re-scored on float32 vectors), ``nlist`` and ``lists_probed``
        (IVF), ``selectivity`` and ``estimated_selectivity`` (share of live rows a filter
        keeps; the filter is evaluated before planning, so the planner's estimate is the
        exact count), ``engine`` (``"numba"``, or ``"numpy"`` for the first queries of a
        process while the kernels load), ``snapshot`` (reused or read).
    stages_ms : dict of str to float
        Milliseconds per stage, in the order they ran; ``total`` covers the whole call.
    result : QueryResult
        The query's result, as ``query`` returns it.
    """

    plan: str
    reason: str
    facts: dict[str, Any]
    stages_ms: dict[str, float]
    result: QueryResult

    @classmethod
    def of(cls, trace: Trace, result: QueryResult, *, k: int, mode: str) -> Explanation:
        facts = dict(trace.facts)
        plan = facts.pop("plan", mode)
        reason = facts.pop("reason", "")
        facts.setdefault("k", k)
        stages = {name: 1e3 * t for name, t in trace.stages.items()}
        if "total" in stages:
            stages["total"] = stages.pop("total")  # last
        return cls(plan, reason, facts, stages, result)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python (the result as ``QueryResult.to_dict``)."""
        return {
            "plan": self.plan,
            "reason": self.reason,
            "facts": dict(self.facts),
            "stages_ms": dict(self.stages_ms),
            "result": self.result.to_dict(),
        }

    def __str__(self) -> str:
        lines = [f"plan: {self.plan}", f"why: {self.reason}"]
        for key, label in _SHOWN:
            if key in self.facts:
                value = self.facts[key]
                if isinstance(value, float):
                    value = f"{value:.4f}"
                elif isinstance(value, list) and len(value) > 8:
                    value = f"{len(value)}: {value[:8]} ..."
                lines.append(f"{label}: {value}")
        lines.append("time per stage (ms):")
        lines += [f"  {name:16s} {ms:9.3f}" for name, ms in self.stages_ms.items()]
        lines.append(f"hits: {len(self.result)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        total = self.stages_ms.get("total", 0.0)
        return f"Explanation(plan={self.plan!r}, {len(self.result)} hits, {total:.3f} ms)"
