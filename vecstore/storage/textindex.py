"""The keyword index's tables (catalog schema v3) and all of its SQL.

An inverted index in plain catalog tables, written by the same transactions as the rows, so
the index and the rows can never disagree, whatever kills a writer. Per collection:
``text_terms`` is the vocabulary (term -> id, document frequency), ``text_postings`` holds
``(term, row) -> term frequency, document length``, ``text_docs`` remembers which terms each
row's document has (so removing it needs no re-analysis) and ``text_stats`` the counts BM25
needs. Terms arrive already analysed (vecstore.text); this module never sees raw text except
in the v3 backfill, which is handed the analyzer. Imports numpy and the standard library.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CorruptStoreError
from .sqlbits import CHUNK, placeholders

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    import sqlite_utils

BACKFILL_ROWS = 4096

Counts = dict[str, int] | None  # a document's term -> frequency, None without a document


def migrate_v3_text(db: sqlite_utils.Database) -> None:
    """Schema v3: the keyword index's tables."""
    # AUTOINCREMENT: a term id is never reused, so readers may cache postings by (tid, ver);
    # ver changes whenever the term's postings do.
    db.execute(
        "CREATE TABLE [text_terms] ([tid] INTEGER PRIMARY KEY AUTOINCREMENT, "
        "[coll] INTEGER NOT NULL, [term] TEXT NOT NULL, [df] INTEGER NOT NULL, "
        "[ver] INTEGER NOT NULL)"
    )
    db["text_terms"].create_index(["coll", "term"], unique=True)
    # Clustered by term: one term's postings are one contiguous range of the b-tree.
    db.execute(
        "CREATE TABLE [text_postings] ([tid] INTEGER NOT NULL, [rid] INTEGER NOT NULL, "
        "[tf] INTEGER NOT NULL, [dl] INTEGER NOT NULL, PRIMARY KEY ([tid], [rid])) WITHOUT ROWID"
    )
    # tids: the row's term ids as little-endian int64, to remove its postings exactly.
    db["text_docs"].create(
        {"rid": int, "dl": int, "tids": bytes}, pk="rid", not_null=["dl", "tids"]
    )
    db["text_stats"].create(
        {"coll": int, "ndocs": int, "ntokens": int}, pk="coll", not_null=["ndocs", "ntokens"]
    )


class TextIndex:
    """The keyword-index methods of ``Catalog`` (a mixin over its connection)."""

    conn: sqlite3.Connection
    path: Path

    # -- writes (inside the caller's write transaction) ---------------------------------

    def index_documents(self, coll: int, rids: Sequence[int], counts: Sequence[Counts]) -> None:
        """Index the documents of new rows; ``counts[i]`` is None for a row without one."""
        docs = [(int(r), c) for r, c in zip(rids, counts) if c is not None]
        if not docs:
            return
        by_term: dict[str, list] = {}
        doc_terms, ntokens = [], 0
        for rid, c in docs:
            dl = sum(c.values())
            ntokens += dl
            for term, tf in c.items():
                by_term.setdefault(term, []).append((rid, tf, dl))
            doc_terms.append((rid, dl, list(c)))
        tids = self._term_ids(coll, by_term)
        # One term's postings in row order, terms in id order: the b-tree takes them in key
        # order (bound one by one: cheaper here than unpacking a JSON array in SQL).
        self.conn.executemany(
            "INSERT INTO text_postings (tid, rid, tf, dl) VALUES (?, ?, ?, ?)",
            (
                (tid, rid, tf, dl)
                for term, tid in sorted(tids.items(), key=lambda kv: kv[1])
                for rid, tf, dl in by_term[term]
            ),
        )
        self.conn.executemany(
            "INSERT INTO text_docs (rid, dl, tids) VALUES (?, ?, ?)",
            (
                (rid, dl, struct.pack(f"<{len(terms)}q", *[tids[t] for t in terms]))
                for rid, dl, terms in doc_terms
            ),
        )
        self.conn.execute(
            "INSERT INTO text_stats (coll, ndocs, ntokens) VALUES (?, ?, ?) ON CONFLICT (coll) "
            "DO UPDATE SET ndocs = ndocs + excluded.ndocs, ntokens = ntokens + excluded.ntokens",
            (coll, len(docs), ntokens),
        )

    def unindex_documents(self, coll: int, rids: Sequence[int]) -> None:
        """Remove the postings of these rows' documents (rows without one are skipped)."""
        found = []
        for i in range(0, len(rids), CHUNK):
            part = [int(r) for r in rids[i : i + CHUNK]]
            found += self.conn.execute(
                f"SELECT rid, dl, tids FROM text_docs WHERE rid IN ({placeholders(len(part))})",
                part,
            ).fetchall()
        if not found:
            return
        pairs, df = [], Counter()
        for rid, _, blob in found:
            ids = np.frombuffer(blob, dtype="<i8").tolist()
            pairs += [(tid, rid) for tid in ids]
            df.update(ids)
        pairs.sort()
        self.conn.executemany("DELETE FROM text_postings WHERE tid = ? AND rid = ?", pairs)
        self._add_df(df, -1)
        done = [r for r, _, _ in found]
        for i in range(0, len(done), CHUNK):
            part = done[i : i + CHUNK]
            self.conn.execute(
                f"DELETE FROM text_docs WHERE rid IN ({placeholders(len(part))})", part
            )
        self.conn.execute(
            "UPDATE text_stats SET ndocs = ndocs - ?, ntokens = ntokens - ? WHERE coll = ?",
            (len(found), sum(dl for _, dl, _ in found), coll),
        )

    def _term_ids(self, coll: int, postings: dict[str, list]) -> dict[str, int]:
        """Ids of the terms of new postings (``term -> postings``), counting them in each
        term's document frequency; terms new to the collection join its vocabulary."""
        query = (
            "SELECT term, tid FROM text_terms "
            "WHERE coll = ? AND term IN (SELECT value FROM json_each(?))"
        )
        ids = dict(self.conn.execute(query, (coll, json.dumps(list(postings)))).fetchall())
        self._add_df(Counter({ids[t]: len(postings[t]) for t in ids}), 1)
        missing = [(t, len(p)) for t, p in postings.items() if t not in ids]
        if missing:
            self.conn.execute(
                "INSERT INTO text_terms (coll, term, df, ver) "
                "SELECT ?, value ->> 0, value ->> 1, 1 FROM json_each(?)",
                (coll, json.dumps(missing)),
            )
            ids.update(self.conn.execute(query, (coll, json.dumps([t for t, _ in missing]))))
        return ids

    def _add_df(self, df: Counter, sign: int) -> None:
        self.conn.executemany(
            "UPDATE text_terms SET df = df + ?, ver = ver + 1 WHERE tid = ?",
            ((sign * n, tid) for tid, n in sorted(df.items())),
        )

    def drop_text(self, coll: int) -> None:
        """Remove a collection's whole keyword index (before its rows are deleted)."""
        self.conn.execute(
            "DELETE FROM text_postings WHERE tid IN (SELECT tid FROM text_terms WHERE coll = ?)",
            (coll,),
        )
        self.conn.execute(
            "DELETE FROM text_docs WHERE rid IN (SELECT rid FROM rows WHERE coll = ?)", (coll,)
        )
        self.conn.execute("DELETE FROM text_terms WHERE coll = ?", (coll,))
        self.conn.execute("DELETE FROM text_stats WHERE coll = ?", (coll,))

    def prune_terms(self, coll: int) -> int:
        """Drop vocabulary entries no document uses any more; return how many."""
        return self.conn.execute(
            "DELETE FROM text_terms WHERE coll = ? AND df = 0", (coll,)
        ).rowcount

    def backfill_text(self, analyzer: Callable[[str], Callable[[str | None], Counts]]) -> None:
        """Index every stored document (the v3 migration of an existing store), each
        collection's by ``analyzer(its stored configuration)``."""
        configs = dict(self.conn.execute("SELECT id, config FROM collections").fetchall())
        analyze = {coll: analyzer(config) for coll, config in configs.items()}
        cur = self.conn.execute(
            "SELECT rid, coll, document FROM rows WHERE document IS NOT NULL ORDER BY rid"
        )
        while batch := cur.fetchmany(BACKFILL_ROWS):
            by_coll: dict[int, list] = {}
            for rid, coll, doc in batch:
                by_coll.setdefault(coll, []).append((rid, analyze[coll](doc)))
            for coll, items in by_coll.items():
                self.index_documents(coll, [r for r, _ in items], [c for _, c in items])

    # -- reads --------------------------------------------------------------------------

    def text_stats(self, coll: int) -> tuple[int, int]:
        """``(documents indexed, their total number of terms)``."""
        row = self.conn.execute(
            "SELECT ndocs, ntokens FROM text_stats WHERE coll = ?", (coll,)
        ).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def text_terms(self, coll: int, terms: Sequence[str]) -> list[tuple[int, str, int, int]]:
        """``(tid, term, df, ver)`` of those of ``terms`` some document of ``coll`` has."""
        return self.conn.execute(
            "SELECT tid, term, df, ver FROM text_terms "
            "WHERE coll = ? AND df > 0 AND term IN (SELECT value FROM json_each(?))",
            (coll, json.dumps(list(terms))),
        ).fetchall()

    def postings(self, tids: Sequence[int]) -> np.ndarray:
        """int64 ``(n, 4)``: tid, rid, tf, dl of every posting of ``tids``, by tid then rid."""
        rows = []
        for i in range(0, len(tids), CHUNK):
            part = list(tids[i : i + CHUNK])
            rows += self.conn.execute(
                "SELECT tid, rid, tf, dl FROM text_postings "
                f"WHERE tid IN ({placeholders(len(part))}) ORDER BY tid, rid",
                part,
            ).fetchall()
        try:
            return np.array(rows, dtype=np.int64).reshape(-1, 4)
        except (TypeError, ValueError, OverflowError):  # a value that is not an integer
            raise CorruptStoreError(
                f"catalog {self.path}: a keyword posting is damaged (run `vecstore verify`)"
            ) from None
