"""Result objects returned by queries and gets: small frozen dataclasses, best first.

``QueryResult.scores`` always ranks "higher is better": the cosine similarity for ``cosine``,
the inner product for ``dot``, and the *negative* squared Euclidean distance for ``l2``.
``QueryResult.distances`` gives the same ranking as "lower is better": ``1 - cosine``,
``-dot`` and the squared Euclidean distance. Imports numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Hit:
    """One query match."""

    id: str
    score: float
    document: str | None
    metadata: dict[str, Any]


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
    """

    ids: list[str]
    scores: np.ndarray
    documents: list[str | None]
    metadata: list[dict[str, Any]]
    metric: str

    @property
    def distances(self) -> np.ndarray:
        """Lower is better: ``1 - cosine``, ``-dot`` or the squared L2 distance."""
        if self.metric == "cosine":
            return (1.0 - self.scores).astype(np.float32)
        return (-self.scores).astype(np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Hit]:
        for i, id_ in enumerate(self.ids):
            yield Hit(id_, float(self.scores[i]), self.documents[i], self.metadata[i])

    def __getitem__(self, i: int) -> Hit:
        return Hit(self.ids[i], float(self.scores[i]), self.documents[i], self.metadata[i])

    def to_dict(self) -> dict[str, list]:
        """Plain Python: ``{"ids": [...], "scores": [...], "documents": [...],
        "metadata": [...]}``."""
        return {
            "ids": list(self.ids),
            "scores": [float(s) for s in self.scores],
            "documents": list(self.documents),
            "metadata": [dict(m) for m in self.metadata],
        }

    def to_list(self) -> list[dict[str, Any]]:
        """Plain Python, one dict per hit, best first."""
        return [
            {"id": h.id, "score": h.score, "document": h.document, "metadata": dict(h.metadata)}
            for h in self
        ]

    def __repr__(self) -> str:
        head = ", ".join(f"{i!r}: {s:.4f}" for i, s in zip(self.ids[:3], self.scores[:3]))
        more = ", ..." if len(self) > 3 else ""
        return f"QueryResult({len(self)} hits, metric={self.metric!r}, {{{head}{more}}})"


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
