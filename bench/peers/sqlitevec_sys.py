"""sqlite-vec: a vec0 virtual table (float[d] with distance_metric=cosine, two integer
metadata columns) in a SQLite file, loaded through apsw (this Python's sqlite3 cannot load
extensions). Brute-force KNN; no batch API. Default rollback journal, synchronous=FULL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter


def _connect(path: Path):
    import apsw
    import sqlite_vec

    con = apsw.Connection(str(path / "vec.db"))
    con.enable_load_extension(True)
    con.load_extension(sqlite_vec.loadable_path())
    con.enable_load_extension(False)
    return con


class SqliteVec(Adapter):
    kind = "exact"
    batch_api = False
    library = "sqlite-vec"
    modules = ("apsw", "sqlite_vec")
    notes = "vec0 table, distance_metric=cosine, metadata columns c100 and c10; via apsw"

    @classmethod
    def version(cls) -> str:
        import apsw  # noqa: F401
        import sqlite_vec

        return sqlite_vec.__version__

    def create(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.con = _connect(path)
        self.con.execute(
            f"CREATE VIRTUAL TABLE v USING vec0(id INTEGER PRIMARY KEY, "
            f"embedding float[{self.d}] distance_metric=cosine, c100 INTEGER, c10 INTEGER)"
        )

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        rows = (
            (start + i, x[i].tobytes(), int(fields["c100"][i]), int(fields["c10"][i]))
            for i in range(len(x))
        )
        with self.con:  # one transaction per batch
            self.con.executemany("INSERT INTO v(id, embedding, c100, c10) VALUES (?,?,?,?)", rows)

    def finish(self) -> None:
        self.con.close()

    def open(self, path: Path) -> None:
        self.con = _connect(path)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        rows = self.con.execute(
            "SELECT id FROM v WHERE embedding MATCH ? AND k = ?", (q.tobytes(), k)
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        if field not in ("c100", "c10"):
            raise ValueError(field)
        rows = self.con.execute(
            f"SELECT id FROM v WHERE embedding MATCH ? AND k = ? AND {field} = ?",
            (q.tobytes(), k, int(value)),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def close(self) -> None:
        self.con.close()
