"""Result objects returned by queries and gets: small frozen dataclasses, best first.

``QueryResult.scores`` always ranks "higher is better": the cosine similarity for ``cosine``,
the inner product for ``dot``, and the *negative* squared Euclidean distance for ``l2``.
``QueryResult.distances`` gives the same ranking as "lower is better": ``1 - cosine``,
``-dot`` and the squared Euclidean distance. Keyword (``mode="text"``) scores are BM25, and
hybrid scores the fused score; their ``distances`` are the negated scores. Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Hit:
    """One query match. For keyword and hybrid queries, which halves found it: its 1-based
    rank in each (0 if that half did not return it) and each half's score (None if not)."""

    id: str
    score: float
    document: str | None
    metadata: dict[str, Any]
    vector_rank: int | None = None
    text_rank: int | None = None
    vector_score: float | None = None
    text_score: float | None = None


@dataclass(frozen=True, eq=False)
class QueryResult:
    """The matches of one query vector, best first.

    Attributes
    ----------
    ids : list of str
    scores : float32 ndarray (n,)
        Higher is better (see the module docstring for each metric).
    documents : list of str or None
    metadata : list of dict
    metric : str
        The collection's metric: ``"cosine"``, ``"dot"`` or ``"l2"``.
    mode : str
        ``"vector"`` (scores by ``metric``), ``"text"`` (BM25), ``"hybrid"`` (fused) or
        ``"recommend"`` (``Collection.recommend``'s best_score values, in (-1, 1)) or
        ``"analogy"`` (``Collection.analogy``'s 3CosMul values, in [0, 1e6]).
    vector_ranks, text_ranks : int64 ndarray (n,) or None
        For text and hybrid queries: each hit's 1-based rank in the vector and in the
        keyword ranking, 0 where that half did not return it (None for vector queries, and
        ``vector_ranks`` None for text queries).
    vector_scores, text_scores : float32 ndarray (n,) or None
        Each half's own score (metric score; BM25), NaN where that half did not return it.
    """

    ids: list[str]
    scores: np.ndarray
    documents: list[str | None]
    metadata: list[dict[str, Any]]
    metric: str
    mode: str = "vector"
    vector_ranks: np.ndarray | None = None
    text_ranks: np.ndarray | None = None
    vector_scores: np.ndarray | None = None
    text_scores: np.ndarray | None = None

    _HALVES = ("vector_ranks", "text_ranks", "vector_scores", "text_scores")

    @classmethod
    def of_vector(
        cls,
        ids: list[str],
        scores: np.ndarray,
        documents: list[str | None],
        metadata: list[dict[str, Any]],
        metric: str,
    ) -> QueryResult:
        """``QueryResult(ids, scores, documents, metadata, metric)`` for a vector query,
        made without the frozen dataclass's ten ``object.__setattr__`` calls (most of the
        cost of making one: the quick single-query path's result)."""
        out = object.__new__(cls)
        out.__dict__.update(
            ids=ids, scores=scores, documents=documents, metadata=metadata, metric=metric,
            mode="vector", vector_ranks=None, text_ranks=None, vector_scores=None,
            text_scores=None,
        )  # fmt: skip
        return out

    @classmethod
    def of_rows(cls, ids: list[str], scores: np.ndarray, rows: Any, metric: str) -> QueryResult:
        """``of_vector`` whose ``documents`` and ``metadata`` are made on first access, by
        ``rows.fill()`` (a ``(documents, metadata)`` pair), from what ``rows`` captured when
        the query ran: the quick single-query path's result, which most callers read only
        the ids and scores of. ``rows`` must hold immutable values (stored bytes, strings),
        so a later commit cannot change what the result gives."""
        out = object.__new__(cls)
        out.__dict__.update(
            ids=ids, scores=scores, metric=metric, mode="vector", vector_ranks=None,
            text_ranks=None, vector_scores=None, text_scores=None, _rows=rows,
        )  # fmt: skip
        return out

    def __getstate__(self) -> dict[str, Any]:
        # pickle and copy see every field made (nothing lazy left to carry along)
        self.documents, self.metadata  # noqa: B018
        state = dict(self.__dict__)
        state.pop("_rows", None)
        return state

    @property
    def distances(self) -> np.ndarray:
        """Lower is better: ``1 - cosine``, ``-dot`` or the squared L2 distance (for text and
        hybrid queries, the negated score)."""
        if self.metric == "cosine" and self.mode == "vector":
            return (1.0 - self.scores).astype(np.float32)
        return (-self.scores).astype(np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Hit]:
        for i in range(len(self.ids)):
            yield self[i]

    def __getitem__(self, i: int) -> Hit:
        halves = [self._half(name, i) for name in self._HALVES]
        return Hit(self.ids[i], float(self.scores[i]), self.documents[i], self.metadata[i], *halves)

    def _half(self, name: str, i: int) -> int | float | None:
        values = getattr(self, name)
        if values is None:
            return None
        v = values[i]
        if name.endswith("ranks"):
            return int(v)
        return None if np.isnan(v) else float(v)

    def to_dict(self) -> dict[str, list]:
        """Plain Python: ``{"ids": [...], "scores": [...], "documents": [...],
        "metadata": [...]}``, plus ``"vector_ranks"``, ``"text_ranks"``,
        ``"vector_scores"``, ``"text_scores"`` where present (NaN scores become None)."""
        out: dict[str, list] = {
            "ids": list(self.ids),
            "scores": [float(s) for s in self.scores],
            "documents": list(self.documents),
            "metadata": [dict(m) for m in self.metadata],
        }
        for name in self._HALVES:
            if getattr(self, name) is not None:
                out[name] = [self._half(name, i) for i in range(len(self))]
        return out

    def to_list(self) -> list[dict[str, Any]]:
        """Plain Python, one dict per hit, best first (with each half's rank and score for
        text and hybrid queries)."""
        out = []
        for h in self:
            row = {"id": h.id, "score": h.score, "document": h.document}
            row["metadata"] = dict(h.metadata)
            for name in ("vector_rank", "text_rank", "vector_score", "text_score"):
                if getattr(self, name + "s") is not None:
                    row[name] = getattr(h, name)
            out.append(row)
        return out

    def __repr__(self) -> str:
        head = ", ".join(f"{i!r}: {s:.4f}" for i, s in zip(self.ids[:3], self.scores[:3]))
        more = ", ..." if len(self) > 3 else ""
        kind = f"metric={self.metric!r}" if self.mode == "vector" else f"mode={self.mode!r}"
        return f"QueryResult({len(self)} hits, {kind}, {{{head}{more}}})"


class _Lazy:
    """``QueryResult.documents`` and ``.metadata`` of a result made by ``of_rows``: made from
    its rows on first access, then kept in the instance (a non-data descriptor: an instance
    that holds the field, as every other result does, never reaches it)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self.name)  # a field without a class-level default
        state = obj.__dict__
        if self.name not in state:
            rows = state.get("_rows")
            if rows is None:
                raise AttributeError(self.name)
            documents, metadata = rows.fill()
            state.setdefault("documents", documents)
            state.setdefault("metadata", metadata)
            state.pop("_rows", None)  # filled: the rows (and the cache they point to) go
        return state[self.name]


# set after the dataclass is made, so that it sees no default for these fields
QueryResult.documents = _Lazy("documents")  # type: ignore[assignment]
QueryResult.metadata = _Lazy("metadata")  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class GetResult:
    """Rows returned by ``Collection.get`` / ``peek``, in the order requested.

    ``vectors`` is a float32 ``(n, dim)`` array when ``include_vectors=True`` was passed,
    otherwise ``None``.
    """

    ids: list[str]
    documents: list[str | None]
    metadata: list[dict[str, Any]]
    vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_list())

    def to_dict(self) -> dict[str, list]:
        out: dict[str, list] = {
            "ids": list(self.ids),
            "documents": list(self.documents),
            "metadata": [dict(m) for m in self.metadata],
        }
        if self.vectors is not None:
            out["vectors"] = self.vectors.tolist()
        return out

    def to_list(self) -> list[dict[str, Any]]:
        rows = []
        for i, id_ in enumerate(self.ids):
            row: dict[str, Any] = {
                "id": id_,
                "document": self.documents[i],
                "metadata": dict(self.metadata[i]),
            }
            if self.vectors is not None:
                row["vector"] = self.vectors[i].tolist()
            rows.append(row)
        return rows

    def __repr__(self) -> str:
        shown = ", ".join(repr(i) for i in self.ids[:5]) + (", ..." if len(self) > 5 else "")
        return f"GetResult({len(self)} rows: [{shown}])"
