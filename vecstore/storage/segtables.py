"""Segment and tombstone records of the catalog: a mixin of ``Catalog``.

``segments`` names every published segment file with its size and checksum; ``tombstones``
the deleted or replaced vectors still inside one. Records are checked against their ``chk``
(checksums.py), and file names are checked to be plain names (paths.py), when read. Only
SQL; imports no numba.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import paths
from .checksums import check_record, record_crc
from .segments import SegmentInfo
from .sqlbits import chunked, placeholders


@dataclass(frozen=True)
class SegmentRecord:
    id: int
    info: SegmentInfo


class SegmentTables:
    conn: sqlite3.Connection
    path: Path
    checking: bool

    def segments(self, coll: int) -> list[SegmentRecord]:
        out = []
        for sid, coll_, file, count, dim, size, crc, chk in self.conn.execute(
            "SELECT id, coll, file, count, dim, size, crc, chk FROM segments "
            "WHERE coll = ? ORDER BY id",
            (coll,),
        ):
            check_record(self, "segments", (sid, coll_, file, count, dim, size, crc), chk)
            if self.checking:
                paths.plain_name(file, "a segment file", self.path)
            out.append(SegmentRecord(sid, SegmentInfo(file, count, dim, size, crc)))
        return out

    def next_segment_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM segments").fetchone()[0]

    def insert_segment(self, coll: int, info: SegmentInfo, seg: int) -> None:
        self.conn.execute(
            "INSERT INTO segments (id, coll, file, count, dim, size, crc, created, chk) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                *(record := (seg, coll, info.file, info.count, info.dim, info.size, info.crc)),
                time.time(),
                record_crc(*record),
            ),
        )

    def drop_segments(self, seg_ids: Sequence[int]) -> list[str]:
        """Unpublish segments (and their list files); return the index files to unlink."""
        files = []
        for part in chunked(seg_ids):
            marks = placeholders(len(part))
            files += [
                f
                for (f,) in self.conn.execute(
                    f"SELECT file FROM ivf_files WHERE seg IN ({marks})", part
                )
            ]
            self.conn.execute(f"DELETE FROM tombstones WHERE seg IN ({marks})", part)
            self.conn.execute(f"DELETE FROM segments WHERE id IN ({marks})", part)
            self.conn.execute(f"DELETE FROM ivf_files WHERE seg IN ({marks})", part)
        return [paths.plain_name(f, "an index file", self.path) for f in files]

    def tombstones(self, coll: int) -> list[tuple[int, int]]:
        rows = self.conn.execute(
            "SELECT t.seg, t.pos, t.chk FROM tombstones t JOIN segments s ON s.id = t.seg "
            "WHERE s.coll = ?",
            (coll,),
        ).fetchall()
        for seg, pos, chk in rows:
            check_record(self, "tombstones", (seg, pos), chk)
        return [row[:2] for row in rows]

    def dead_counts(self, coll: int) -> dict[int, int]:
        return dict(
            self.conn.execute(
                "SELECT t.seg, COUNT(*) FROM tombstones t JOIN segments s ON s.id = t.seg "
                "WHERE s.coll = ? GROUP BY t.seg",
                (coll,),
            ).fetchall()
        )

    def live_in_segments(self, coll: int, seg_ids: Sequence[int]) -> np.ndarray:
        """int64 ``(n, 3)``: rid, seg, pos of the live rows in the given segments, sorted by
        seg and pos. Fetched in slices, so a merge of millions of rows never holds them as
        Python tuples (24 bytes a row, not about 150)."""
        blocks = []
        for part in chunked(seg_ids):
            cur = self.conn.execute(
                "SELECT rid, seg, pos FROM rows "
                f"WHERE coll = ? AND seg IN ({placeholders(len(part))})",
                (coll, *part),
            )
            while rows := cur.fetchmany(65_536):
                blocks.append(np.array(rows, dtype=np.int64))
        out = np.concatenate(blocks) if blocks else np.zeros((0, 3), dtype=np.int64)
        return out[np.lexsort((out[:, 2], out[:, 1]))]
