"""Read-only checks and statistics over the catalog and segment files, for ``verify`` and
``info``.

Every invariant the write path keeps is checked here against what is really stored: SQLite's
own integrity check, each segment's header, size and checksum, where every row's vector is,
the pending buffer, tombstones, row counts and the metadata index. Call inside one catalog
read transaction. Imports numpy and the standard library; never numba.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CorruptStoreError, StoreIOError
from . import paths, records
from .arrays import graph_problem, lists_fit, open_arrays
from .catalog import Catalog, CollectionRecord
from .checksums import RECORD_COLUMNS, blob_crc, cache_key, record_crc, rid_key, row_crc
from .segments import open_segment
from .textindex import Counts

FETCH = 65_536
MAX_LISTED = 5  # example ids named in one problem line
_MASK = (1 << 64) - 1


@dataclass
class CollectionAudit:
    """What checking one collection found."""

    problems: list[str] = field(default_factory=list)
    segments: int = 0
    rows: int = 0
    bytes: int = 0
    missing_files: bool = False


@dataclass(frozen=True)
class CollectionStats:
    rows: int
    segments: int
    segment_bytes: int
    pending: int
    pending_bytes: int
    deleted: int


def collection_stats(cat: Catalog, coll: int) -> CollectionStats:
    c = cat.conn
    rows = c.execute("SELECT nrows FROM collections WHERE id = ?", (coll,)).fetchone()
    segs, size = c.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM segments WHERE coll = ?", (coll,)
    ).fetchone()
    (size_ivf,) = c.execute(
        "SELECT COALESCE(SUM(size), 0) FROM ivf_files WHERE coll = ?", (coll,)
    ).fetchone()
    size += size_ivf  # index files count as the collection's disk use
    pending, pending_bytes = c.execute(
        "SELECT COUNT(*), COALESCE(SUM(length(vec)), 0) FROM pending WHERE coll = ?", (coll,)
    ).fetchone()
    deleted = c.execute(
        "SELECT COUNT(*) FROM tombstones t JOIN segments s ON s.id = t.seg WHERE s.coll = ?",
        (coll,),
    ).fetchone()[0]
    return CollectionStats(rows[0] if rows else 0, segs, size, pending, pending_bytes, deleted)


def store_problems(cat: Catalog) -> list[str]:
    """SQLite's integrity check, and catalog rows that belong to no collection or segment."""
    c = cat.conn
    out = [
        f"catalog {cat.path}: SQLite integrity check: {msg}"
        for (msg,) in c.execute("PRAGMA integrity_check")
        if msg != "ok"
    ]
    for table in ("segments", "rows", "pending", "mindex", "ivf_files"):
        (n,) = c.execute(
            f"SELECT COUNT(*) FROM {table} WHERE coll NOT IN (SELECT id FROM collections)"
        ).fetchone()
        if n:
            out.append(f"catalog: {n} {table} entries belong to no collection")
    (n,) = c.execute(
        "SELECT COUNT(*) FROM tombstones WHERE seg NOT IN (SELECT id FROM segments)"
    ).fetchone()
    if n:
        out.append(f"catalog: {n} tombstones name no segment")
    (n,) = c.execute(
        "SELECT COUNT(*) FROM tombstones t JOIN segments s ON s.id = t.seg "
        "WHERE t.pos < 0 OR t.pos >= s.count"
    ).fetchone()
    if n:
        out.append(f"catalog: {n} tombstones point past the end of their segment")
    for table, columns in RECORD_COLUMNS.items():
        bad = 0
        for *values, chk in c.execute(f"SELECT {', '.join(columns)}, chk FROM [{table}]"):
            try:
                bad += chk != record_crc(*values)
            except (TypeError, ValueError):
                bad += 1
        if bad:
            out.append(f"catalog: {bad} {table} records fail their checksum")
    (n,) = c.execute("SELECT COUNT(*) FROM embed_cache").fetchone()
    bad = sum(
        not isinstance(vec, bytes)
        or not isinstance(h, bytes)
        or chk != blob_crc(cache_key(enc, h), vec)
        for enc, h, vec, chk in c.execute("SELECT encoder, hash, vec, chk FROM embed_cache")
    )
    if bad:
        out.append(f"catalog: {bad} of {n} cached embeddings fail their checksum")
    return out + path_problems(cat)


def path_problems(cat: Catalog) -> list[str]:
    """File names in the catalog that are not plain names, and store files beside it that
    are not what they must be: a store folder may have been crafted to reach outside it."""
    out = []
    for what, sql in (
        ("folder", "SELECT name, dir FROM collections"),
        (
            "segment file",
            "SELECT c.name, s.file FROM segments s JOIN collections c ON c.id = s.coll",
        ),
        (
            "index file",
            "SELECT c.name, i.file FROM ivf_files i JOIN collections c ON c.id = i.coll",
        ),
    ):
        for coll, name in cat.conn.execute(sql):
            problem = paths.name_problem(name)
            if problem is not None:
                out.append(
                    f"catalog: collection {coll!r} names {what} {name!r}, which {problem}; "
                    "a store names only files inside it (this store may have been crafted)"
                )
    root = cat.path.parent
    side = [cat.path.with_name(cat.path.name + s) for s in paths.SQLITE_SIDE_FILES]
    for path, what in [*((p, "catalog file") for p in side), (root / "LOCK", "the writer lock")]:
        try:
            paths.check_regular(path, what)
        except (CorruptStoreError, StoreIOError) as exc:
            out.append(str(exc))
    base = root / paths.COLLECTIONS
    real = paths.outside(root, base)
    if real is not None:
        out.append(f"the collections folder {base} leads outside the store (to {real})")
    return out


def check_collection(
    cat: Catalog,
    rec: CollectionRecord,
    directory: Path,
    analyze: Callable[[str | None], Counts] | None = None,
) -> CollectionAudit:
    """Check one collection against every invariant of the format (docs/format.md);
    ``analyze`` (vecstore.text.counts) also checks its keyword index."""
    audit = CollectionAudit()
    name = f"collection {rec.name!r}"
    problems = audit.problems
    c = cat.conn
    coll = rec.id
    if not directory.is_dir():
        problems.append(f"{name}: its folder {directory} is missing")
    rows = _rows(c, coll)  # int64 (n, 3): rid, seg (-1 if pending), pos (-1 if pending)
    audit.rows = len(rows)
    (nrows,) = c.execute("SELECT nrows FROM collections WHERE id = ?", (coll,)).fetchone()
    if nrows != len(rows):
        problems.append(f"{name}: the catalog counts {nrows} rows but holds {len(rows)}")

    tombs: dict[int, list[int]] = {}
    for seg, pos in cat.tombstones(coll):
        tombs.setdefault(seg, []).append(pos)
    sealed = rows[rows[:, 1] >= 0]
    known = set()
    for srec in cat.segments(coll):
        info = srec.info
        known.add(srec.id)
        audit.segments += 1
        problem = paths.name_problem(info.file)
        if problem is not None:
            problems.append(f"{name}: its segment file {info.file!r} {problem}; refused")
            continue
        path = directory / info.file
        if info.dim != rec.dim:
            problems.append(f"{name}: segment {info.file} has dim {info.dim}, not {rec.dim}")
            continue
        try:
            seg = open_segment(path, info, verify=True)
        except FileNotFoundError:
            audit.missing_files = True
            problems.append(f"{name}: segment file {path} is missing")
            continue
        except (CorruptStoreError, StoreIOError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        audit.bytes += info.size
        mine = sealed[sealed[:, 1] == srec.id]
        rids, pos = mine[:, 0], mine[:, 2]
        bad = (pos < 0) | (pos >= info.count)
        if bad.any():
            problems.append(
                f"{name}: {int(bad.sum())} rows point past the end of segment {info.file} "
                f"(rids {_few(rids[bad])})"
            )
            rids, pos = rids[~bad], pos[~bad]
        wrong = seg.rids[pos] != rids
        if wrong.any():
            problems.append(
                f"{name}: {int(wrong.sum())} rows point at vectors segment {info.file} "
                f"stores for other rows (rids {_few(rids[wrong])})"
            )
        if len(np.unique(pos)) != len(pos):
            problems.append(f"{name}: two rows share one vector of segment {info.file}")
        dead = np.isin(pos, np.asarray(tombs.get(srec.id, []), dtype=np.int64))
        if dead.any():
            problems.append(
                f"{name}: {int(dead.sum())} rows point at deleted vectors of segment "
                f"{info.file} (rids {_few(rids[dead])})"
            )
    stray = ~np.isin(sealed[:, 1], np.asarray(sorted(known), dtype=np.int64))
    if stray.any():
        problems.append(
            f"{name}: {int(stray.sum())} rows point into segments it does not have "
            f"(rids {_few(sealed[stray, 0])})"
        )
    problems += _pending_problems(c, coll, rec.dim, rows, name)
    # Catalog-only checks last: files are checked early in the snapshot, before a concurrent
    # merge can remove one (verify retries on a fresh snapshot when that happens).
    problems += _checksum_problems(c, coll, name)
    problems += _index_problems(c, coll, name)
    if analyze is not None:
        problems += _text_problems(c, coll, name, analyze)
    problems += _ann_problems(cat, coll, name, directory, audit)
    problems += _code_problems(cat, coll, name, directory, audit)
    return audit


def _code_problems(
    cat: Catalog, coll: int, name: str, directory: Path, audit: CollectionAudit
) -> list[str]:
    """Compressed-vector code files: each checksummed, naming a segment of the collection
    and holding one code row per vector of it."""
    problems = []
    counts = {s.id: s.info for s in cat.segments(coll)}
    for seg, rec in cat.code_files(coll).items():
        problem = paths.name_problem(rec.info.file)
        if problem is not None:
            problems.append(f"{name}: its code file {rec.info.file!r} {problem}; refused")
            continue
        audit.bytes += rec.info.size
        info = counts.get(seg)
        if info is None:
            problems.append(f"{name}: code file {rec.info.file} names no segment it has")
            continue
        try:
            codes = open_arrays(directory / rec.info.file, rec.info, verify=True)
        except FileNotFoundError:
            audit.missing_files = True
            problems.append(f"{name}: code file {directory / rec.info.file} is missing")
            continue
        except (CorruptStoreError, StoreIOError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        got = codes.arrays.get("codes")
        # binary codes are word-major: 8 bytes a row along the second axis
        binary = codes.meta.get("vectors") == "binary"
        rows = None if got is None else (got.shape[-1] // 8 if binary else got.shape[0])
        if codes.meta.get("segment") != info.file or rows != info.count:
            problems.append(f"{name}: code file {rec.info.file} does not fit segment {info.file}")
    return problems


def _ann_problems(
    cat: Catalog, coll: int, name: str, directory: Path, audit: CollectionAudit
) -> list[str]:
    """ANN index files: each checksummed, list files only under a model, each fitting its
    segment (a list per centroid, offsets covering exactly the segment's rows)."""
    problems = []
    model, lists = cat.index_files(coll)
    counts = {s.id: s.info.count for s in cat.segments(coll)}
    opened = {}
    for seg, rec in [(None, model)] * (model is not None) + list(lists.items()):
        problem = paths.name_problem(rec.info.file)
        if problem is not None:
            problems.append(f"{name}: its index file {rec.info.file!r} {problem}; refused")
            continue
        audit.bytes += rec.info.size
        try:
            opened[seg] = open_arrays(directory / rec.info.file, rec.info, verify=True)
        except FileNotFoundError:
            audit.missing_files = True
            problems.append(f"{name}: index file {directory / rec.info.file} is missing")
        except (CorruptStoreError, StoreIOError) as exc:
            problems.append(f"{name}: {exc}")
    if lists and model is None:
        problems.append(f"{name}: {len(lists)} list files but no index model")
    shape = None  # (nlist, m, ksub) of the model
    graph_m = None  # M of an HNSW model
    if None in opened and opened[None].meta.get("kind") == "hnsw":
        mf = opened[None]
        graph_m = mf.meta.get("M")
        if not isinstance(graph_m, int) or not 2 <= graph_m <= 128:
            problems.append(f"{name}: index model {mf.info.file} is malformed")
            graph_m = None
    elif None in opened:
        mf = opened[None]
        centroids, meta = mf.arrays.get("centroids"), mf.meta
        m, ksub = meta.get("m"), meta.get("ksub")
        if (
            centroids is None
            or centroids.ndim != 2
            or not isinstance(m, int)
            or not isinstance(ksub, int)
            or (m and not 1 <= ksub <= 256)
        ):
            problems.append(f"{name}: index model {mf.info.file} is malformed")
        else:
            shape = (centroids.shape[0], m, ksub)
    for seg, f in opened.items():
        if seg is None:
            continue
        count = counts.get(seg)
        if count is None:
            problems.append(f"{name}: list file {f.info.file} belongs to no segment")
        elif graph_m is not None:
            problem = graph_problem(f.arrays, f.meta, count, graph_m)
            if f.meta.get("model") != model.info.file:
                problem = "it was built under another model"
            if problem is not None:
                problems.append(f"{name}: graph file {f.info.file} is corrupt: {problem}")
        elif shape is not None and (
            f.meta.get("model") != model.info.file
            or not lists_fit(f.arrays.get("offsets"), f.arrays.get("codes"), count, *shape)
        ):
            problems.append(f"{name}: list file {f.info.file} does not fit its segment or model")
    return problems


def _rows(c: sqlite3.Connection, coll: int) -> np.ndarray:
    cur = c.execute(
        "SELECT rid, COALESCE(seg, -1), COALESCE(pos, -1) FROM rows WHERE coll = ? ORDER BY rid",
        (coll,),
    )
    blocks = []
    while part := cur.fetchmany(FETCH):
        blocks.append(np.array(part, dtype=np.int64))
    return np.concatenate(blocks) if blocks else np.zeros((0, 3), dtype=np.int64)


def _checksum_problems(c: sqlite3.Connection, coll: int, name: str) -> list[str]:
    """Rows and pending vectors whose checksum (checksums.py) does not match their content."""
    bad_rows, bad_vecs = [], []
    cur = c.execute("SELECT rid, coll, id, document, meta, chk FROM rows WHERE coll = ?", (coll,))
    while part := cur.fetchmany(FETCH):
        for rid, coll_, id_, doc, meta, crc in part:
            try:
                if crc != row_crc(rid, coll_, id_, doc, meta):
                    bad_rows.append(rid)
            except (TypeError, AttributeError, UnicodeEncodeError):
                bad_rows.append(rid)
    for rid, vec, crc in c.execute("SELECT rid, vec, chk FROM pending WHERE coll = ?", (coll,)):
        if not isinstance(vec, bytes) or crc != blob_crc(rid_key(rid), vec):
            bad_vecs.append(rid)
    out = []
    if bad_rows:
        out.append(f"{name}: {len(bad_rows)} rows fail their checksum (rids {_few(bad_rows)})")
    if bad_vecs:
        out.append(
            f"{name}: {len(bad_vecs)} pending vectors fail their checksum (rids {_few(bad_vecs)})"
        )
    return out


def _few(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:MAX_LISTED])
    return shown + (", ..." if len(values) > MAX_LISTED else "")


def _pending_problems(
    c: sqlite3.Connection, coll: int, dim: int, rows: np.ndarray, name: str
) -> list[str]:
    out = []
    waiting = rows[rows[:, 1] < 0, 0]
    pending = np.array(
        c.execute("SELECT rid FROM pending WHERE coll = ? ORDER BY rid", (coll,)).fetchall(),
        dtype=np.int64,
    ).reshape(-1)
    if len(np.unique(pending)) != len(pending):
        out.append(f"{name}: a row has two pending vectors")
    lost = np.setdiff1d(waiting, pending)
    if len(lost):
        out.append(f"{name}: {len(lost)} rows have no vector (rids {_few(lost)})")
    extra = np.setdiff1d(pending, waiting)
    if len(extra):
        out.append(f"{name}: {len(extra)} pending vectors belong to no waiting row")
    (bad,) = c.execute(
        "SELECT COUNT(*) FROM pending WHERE coll = ? AND length(vec) != ?", (coll, 4 * dim)
    ).fetchone()
    if bad:
        out.append(f"{name}: {bad} pending vectors are not {dim} float32 values")
    return out


def _index_problems(c: sqlite3.Connection, coll: int, name: str) -> list[str]:
    """The metadata index must be exactly the entries recomputed from the stored records.

    Both sides are reduced to an order-independent digest (count, sum and xor of entry
    hashes) while streaming, so memory stays flat whatever the collection's size.
    """
    out = []
    bad_records = []

    def expected() -> Iterator[tuple]:
        cur = c.execute("SELECT rid, meta FROM rows WHERE coll = ? AND meta IS NOT NULL", (coll,))
        while part := cur.fetchmany(FETCH):
            for rid, blob in part:
                try:
                    meta = records.unpack(blob)
                    entries = records.entries(rid, meta)
                except CorruptStoreError:
                    bad_records.append(rid)
                    continue
                yield from entries

    def stored() -> Iterator[tuple]:
        cur = c.execute("SELECT key, kind, value, elem, rid FROM mindex WHERE coll = ?", (coll,))
        while part := cur.fetchmany(FETCH):
            yield from part

    want, got = _digest(expected()), _digest(stored())
    if bad_records:
        out.append(
            f"{name}: {len(bad_records)} metadata records are corrupt "
            f"(rids {_few(np.asarray(bad_records))})"
        )
    elif want != got:
        out.append(
            f"{name}: the metadata index disagrees with the stored metadata "
            f"({want[0]} entries expected, {got[0]} found); filters would return wrong rows"
        )
    return out


def _text_problems(
    c: sqlite3.Connection, coll: int, name: str, analyze: Callable[[str | None], Counts]
) -> list[str]:
    """The keyword index must be exactly what analysing the stored (checksummed) documents
    gives: every posting with its tf and document length, every term's df, every indexed
    document's length, and the collection's document and term totals. Streamed into
    digests like the metadata index."""
    df: Counter = Counter()
    totals = [0, 0]  # documents, terms

    def expected_postings() -> Iterator[tuple]:
        cur = c.execute(
            "SELECT rid, document FROM rows WHERE coll = ? AND document IS NOT NULL", (coll,)
        )
        while part := cur.fetchmany(FETCH):
            for rid, doc in part:
                counts = analyze(doc) if isinstance(doc, str) else {}
                dl = sum(counts.values())
                totals[0] += 1
                totals[1] += dl
                df.update(counts.keys())
                yield (rid, "", dl, -1)  # the document's own entry
                for term, tf in counts.items():
                    yield (rid, term, tf, dl)

    def stored_postings() -> Iterator[tuple]:
        cur = c.execute(
            "SELECT p.rid, t.term, p.tf, p.dl FROM text_postings p "
            "JOIN text_terms t ON t.tid = p.tid WHERE t.coll = ?",
            (coll,),
        )
        while part := cur.fetchmany(FETCH):
            yield from part
        yield from c.execute(
            "SELECT d.rid, '', d.dl, -1 FROM text_docs d JOIN rows r ON r.rid = d.rid "
            "WHERE r.coll = ?",
            (coll,),
        )

    want, got = _hashes(expected_postings()), _hashes(stored_postings())
    out = []
    if want != got:
        out.append(
            f"{name}: the keyword index disagrees with the stored documents ({want[0]} "
            f"postings expected, {got[0]} found); keyword queries would rank wrongly"
        )
    stored_df = c.execute(
        "SELECT term, df FROM text_terms WHERE coll = ? AND df != 0", (coll,)
    ).fetchall()
    if _hashes(iter(stored_df)) != _hashes(iter(df.items())):
        out.append(f"{name}: the keyword index's document frequencies are wrong")
    stats = c.execute("SELECT ndocs, ntokens FROM text_stats WHERE coll = ?", (coll,)).fetchone()
    if (tuple(stats) if stats else (0, 0)) != tuple(totals) and (stats or any(totals)):
        out.append(
            f"{name}: the keyword index counts {stats} documents and terms, "
            f"the documents give {tuple(totals)}"
        )
    return out


def _hashes(entries: Iterator[tuple]) -> tuple[int, int, int]:
    """An order-independent digest of tuples of ints and strings: count, sum and xor."""
    n = total = xor = 0
    for entry in entries:
        h = hash(entry) & _MASK
        n += 1
        total = (total + h) & _MASK
        xor ^= h
    return n, total, xor


def _digest(entries: Iterator[tuple]) -> tuple[int, int, int]:
    n = total = xor = 0
    for key, kind, value, elem, rid in entries:
        # hash() is equal for equal numbers (2 == 2.0) within one process, as SQLite compares
        h = hash((key, int(kind), value, int(elem), int(rid))) & _MASK
        n += 1
        total = (total + h) & _MASK
        xor ^= h
    return n, total, xor
