"""Reading every row of a collection in insertion order, a page at a time, for export.

Keyset pagination on the row id: each page is a range scan of the primary key, so reading a
collection costs one pass however large it is (``LIMIT ... OFFSET`` would re-read and re-sort
everything before each page). Call inside one catalog read transaction for a consistent
snapshot. Imports only the standard library and the catalog.
"""

from __future__ import annotations

from .catalog import Catalog
from .records import StoredRow


def rows_after(cat: Catalog, coll: int, after: int, limit: int) -> list[StoredRow]:
    """Up to ``limit`` rows of ``coll`` whose rid is above ``after``, in rid (insertion)
    order."""
    # The unary + keeps SQLite off the (coll, id) index, which would need a sort by rid.
    rows = cat.conn.execute(
        "SELECT id, rid, seg, pos, document, meta FROM rows "
        "WHERE +coll = ? AND rid > ? ORDER BY rid LIMIT ?",
        (coll, after, limit),
    )
    return [StoredRow(*row) for row in rows]
