"""The catalog's record of ANN index files (table ``ivf_files``): a mixin of ``Catalog``.

One model file per indexed collection (``seg`` NULL) and one list file per vector segment
written under it; ``nrows``/``err`` feed the retraining decision. A collection with compressed
vectors also records one code file per segment here, told apart by its name's suffix
(``CODES_SUFFIX``): it lives and dies with its segment as list files do, but belongs to no
model, so ``index_files`` and ``drop_index`` leave it out. Only SQL; imports no numba.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import paths
from .arrays import SUFFIX as INDEX_SUFFIX
from .arrays import ArrayFileInfo
from .checksums import check_record, record_crc

if TYPE_CHECKING:
    import sqlite_utils

#: The name ending of a segment's compressed-vector code file (an index file).
CODES_SUFFIX = f".codes{INDEX_SUFFIX}"
_IS_CODES = f"substr(file, -{len(CODES_SUFFIX)}) = '{CODES_SUFFIX}'"


def migrate_v4_ann(db: sqlite_utils.Database) -> None:
    """Schema v4: the table of ANN index files."""
    # ANN index files: one model file per indexed collection (seg NULL) and one list file per
    # vector segment written under that model. nrows/err feed the retraining decision: err
    # is the summed squared coarse-quantization residual (for the model: the mean on its
    # training sample).
    db["ivf_files"].create(
        {
            "id": int,
            "coll": int,
            "seg": int,
            "file": str,
            "size": int,
            "crc": int,
            "nrows": int,
            "err": float,
        },
        pk="id",
        not_null=["coll", "file", "size", "crc", "nrows", "err"],
    )
    db["ivf_files"].create_index(["coll"])


@dataclass(frozen=True)
class IndexFileRecord:
    info: ArrayFileInfo
    nrows: int
    err: float


class AnnFiles:
    conn: sqlite3.Connection
    path: Path
    checking: bool

    def index_files(self, coll: int) -> tuple[IndexFileRecord | None, dict[int, IndexFileRecord]]:
        """The collection's model file (or None) and its list files by segment id."""
        model, lists = None, {}
        for seg, rec in self._index_records(coll, codes=False):
            if seg is None:
                model = rec
            else:
                lists[seg] = rec
        return model, lists

    def code_files(self, coll: int) -> dict[int, IndexFileRecord]:
        """The collection's compressed-vector code files by segment id."""
        return {seg: rec for seg, rec in self._index_records(coll, codes=True)}

    def _index_records(self, coll: int, *, codes: bool) -> list[tuple[int | None, IndexFileRecord]]:
        out = []
        for seg, file, size, crc, nrows, err, chk in self.conn.execute(
            "SELECT seg, file, size, crc, nrows, err, chk FROM ivf_files WHERE coll = ? AND "
            + ("" if codes else "NOT ")
            + _IS_CODES,
            (coll,),
        ):
            check_record(self, "ivf_files", (coll, seg, file, size, crc, nrows, err), chk)
            if self.checking:
                paths.plain_name(file, "an index file", self.path)
            out.append((seg, IndexFileRecord(ArrayFileInfo(file, size, crc), nrows, err)))
        return out

    def insert_index_file(self, coll: int, seg: int | None, rec: IndexFileRecord) -> None:
        info = rec.info
        values = (coll, seg, info.file, info.size, info.crc, rec.nrows, rec.err)
        self.conn.execute(
            "INSERT INTO ivf_files (coll, seg, file, size, crc, nrows, err, chk) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (*values, record_crc(*values)),
        )

    def drop_index(self, coll: int) -> list[str]:
        """Unpublish the collection's model and list files (not its code files); return their
        names."""
        where = f"coll = ? AND NOT {_IS_CODES}"
        files = [
            f for (f,) in self.conn.execute(f"SELECT file FROM ivf_files WHERE {where}", (coll,))
        ]
        self.conn.execute(f"DELETE FROM ivf_files WHERE {where}", (coll,))
        return [paths.plain_name(f, "an index file", self.path) for f in files]
