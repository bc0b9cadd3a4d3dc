"""Files in a store that no catalog row names: delete the provable garbage, quarantine the rest.

A read-write open (``tidy``) deletes only what is provably the leftover of a write of this
store that was never acknowledged: temp files (never published, so no catalog can name
them), empty folders, the files of a write whose intent record (intents.py) is on disk and
whose transaction never committed, and the files a committed write retired. Anything else
that the catalog does not name (the catalog may have lost it: a truncated WAL, an older or a
foreign ``catalog.db``) is moved to ``quarantine/<time>/``, never deleted, and reported.
``survey`` finds both kinds for ``verify``; ``restore`` moves quarantined files back once
the catalog names them again. Imports the standard library, ``errors`` and the storage layer.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import paths
from .files import fsync_dir, remove_quietly
from .intents import SUFFIX, is_temp, read_records
from .layout import COLLECTIONS, INTENTS, QUARANTINE

MANIFEST = "manifest.json"
SHOWN = 3  # example paths named in one line of a report

Names = dict[str, set[str]]  # collection folder -> the files the catalog names in it


class TidyCatalog(Protocol):
    """The catalog, as cleanup sees it (storage/catalog.py)."""

    def segment_files(self) -> Names: ...

    def intent_committed(self, token: str) -> bool: ...


@dataclass(frozen=True)
class TidyReport:
    """What a read-write open did with files no catalog row names.

    Attributes
    ----------
    deleted : list of str
        Leftovers of unacknowledged writes, deleted (paths relative to the store).
    quarantined : list of str
        Files and folders moved into ``folder``, relative to the store as they were.
    folder : Path or None
        The quarantine folder of this open, ``<store>/quarantine/<time>``.
    failed : list of str
        Files that could not be moved; left where they were.
    skipped : str or None
        Why nothing was touched (the catalog names files that are missing: it, or the
        files, are damaged, and only ``verify`` can say which).
    """

    deleted: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    folder: Path | None = None
    failed: list[str] = field(default_factory=list)
    skipped: str | None = None

    def warning(self, root: Path) -> str | None:
        """The message a user should see, or None if nothing needs their attention."""
        if self.skipped:
            return (
                f"{self.skipped}. The catalog or the files are damaged: if the files are in "
                f"{root / QUARANTINE}, call Database.restore_quarantine() (vecstore verify "
                "STORE --restore-quarantine); else run `vecstore verify` and restore a backup"
            )
        if not self.quarantined and not self.failed:
            return None
        parts = []
        if self.quarantined:
            parts.append(
                f"{_count(self.quarantined, 'file')} in {root / COLLECTIONS} that catalog.db "
                f"does not name ({_few(self.quarantined)}) {_were(self.quarantined)} moved to "
                f"{self.folder}, not deleted"
            )
        if self.failed:
            parts.append(
                f"{_count(self.failed, 'file')} that catalog.db does not name could not be "
                f"moved to {root / QUARANTINE} and {_were(self.failed)} left in place "
                f"({_few(self.failed)})"
            )
        return (
            "; ".join(parts) + ". If the catalog lost them (a truncated or deleted WAL, an "
            "older or another store's catalog.db), put the right catalog back and call "
            "Database.restore_quarantine() (vecstore verify STORE --restore-quarantine); "
            "if they are not needed, delete the quarantine folder. `vecstore verify` reports "
            "them until then (docs/reliability.md, Quarantine)."
        )


@dataclass(frozen=True)
class RestoreInfo:
    """What ``Database.restore_quarantine()`` moved back.

    Attributes
    ----------
    restored : list of str
        Files moved back into ``collections/`` (relative to the store), which the catalog
        names and which were missing.
    remaining : list of str
        Quarantined files the catalog does not name (or that exist already), left in
        ``quarantine/``.
    """

    restored: list[str]
    remaining: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"restored": list(self.restored), "remaining": list(self.remaining)}


@dataclass(frozen=True)
class Survey:
    """Files no catalog row names, as ``verify`` sees them (absolute paths).

    ``in_flight``: temp files, empty folders and files recorded by the intent of a write in
    progress or interrupted (harmless: the next read-write open deletes them). ``unnamed``:
    files nothing accounts for (the next read-write open quarantines them).
    ``quarantined``: files in ``quarantine/``. ``damaged_intents``: unreadable records.
    """

    in_flight: list[Path]
    unnamed: list[Path]
    quarantined: list[Path]
    damaged_intents: list[Path]

    def problems(self, root: Path) -> list[str]:
        out = []
        if self.unnamed:
            rel = [str(p.relative_to(root)) for p in self.unnamed]
            out.append(
                "catalog names fewer files than the store holds: "
                f"{_count(rel, 'file')} in {root / COLLECTIONS} {_are(rel)} named by no catalog "
                "row "
                f"({_few(rel)}); the next read-write open moves them to {root / QUARANTINE} "
                "(it never deletes them). If the catalog lost them (a truncated or deleted "
                "WAL, an older or another store's catalog.db), put the right catalog back "
                "first"
            )
        by_folder: dict[Path, list[str]] = {}
        for p in self.quarantined:
            folder = root / QUARANTINE / p.relative_to(root / QUARANTINE).parts[0]
            by_folder.setdefault(folder, []).append(str(p.relative_to(folder)))
        for folder, rel in sorted(by_folder.items()):
            out.append(
                "catalog names fewer files than the store holds: "
                f"{_count(rel, 'file')} that no catalog row named {_were(rel)} moved to {folder} "
                f"({_few(rel)}). If the catalog lost them, put the right catalog back and "
                "run `vecstore verify STORE --restore-quarantine` (Database."
                "restore_quarantine()); if they are not needed, delete the folder"
            )
        return out

    def warnings(self, root: Path) -> list[str]:
        out = [
            f"{p} is left over from an unacknowledged write (a temp file, or a file its intent "
            "record names) or belongs to a write in progress; no catalog row names it (the "
            "next read-write open deletes it)"
            for p in self.in_flight
        ]
        out += [
            f"{p} is not a readable intent record; the next read-write open quarantines it "
            "and the files it may name"
            for p in self.damaged_intents
        ]
        return out


def tidy(root: Path, cat: TidyCatalog) -> TidyReport:
    """At a read-write open, under the writer lock (no write is in flight): delete the
    provable leftovers of unacknowledged writes, quarantine every other file the catalog
    does not name. Touches nothing if the catalog names a file that is missing."""
    collections = root / COLLECTIONS
    # Nothing outside the store is ever moved or deleted: not through a collections folder
    # that is a link, nor through a collection folder that is one (reads refuse it).
    paths.inside(root, collections, "the collections folder")
    names = cat.segment_files()
    crafted = [
        f"{d}/{f}" for d, fs in names.items() for f in ("", *fs) if paths.name_problem(f or d)
    ]
    if crafted:  # reads refuse such a store; cleanup must not act on its word either
        return TidyReport(
            skipped=f"the catalog names {_count(crafted, 'file')} by a path, not a plain name "
            f"({_few(crafted)}); nothing was deleted or moved"
        )
    missing = []
    for d, files in names.items():
        if not (collections / d).is_dir():
            missing.append(f"{d}/")
        else:
            missing += [f"{d}/{f}" for f in sorted(files) if not (collections / d / f).exists()]
    if missing:
        return TidyReport(
            skipped=f"the catalog names {_count(missing, 'file')} that {_are(missing)} missing "
            f"({_few(missing)}); nothing was deleted or moved"
        )
    records, other = read_records(root)
    doomed: set[str] = set()  # "<dir>/<file>" or "<dir>/", relative to collections/
    for record in records:
        doomed.update(record.retire if cat.intent_committed(record.token) else record.publish)
    delete: list[Path] = [p for p in other if is_temp(p.name)]  # files, retired folders
    emptied: list[Path] = []  # unnamed folders that hold nothing once their garbage is gone
    move: list[Path] = [p for p in other if not is_temp(p.name)]
    for entry in sorted(collections.iterdir()):
        real_dir = entry.is_dir() and not entry.is_symlink()
        if entry.name in names and not real_dir:
            continue  # a link where a collection folder belongs: reads and verify report it
        if entry.name in names:
            for f in sorted(entry.iterdir()):
                if f.name not in names[entry.name]:
                    (delete if _garbage(f, entry.name, doomed) else move).append(f)
        elif real_dir and f"{entry.name}/" in doomed:
            delete.append(entry)
        elif real_dir:
            inside = sorted(entry.iterdir())
            garbage = [f for f in inside if _garbage(f, entry.name, doomed)]
            delete += garbage
            (emptied if len(garbage) == len(inside) else move).append(entry)
        else:
            move.append(entry)
    deleted = []
    for path in delete:
        if path.is_dir() and not path.is_symlink():
            if f"{path.name}/" in doomed and path.parent == collections:
                shutil.rmtree(path, ignore_errors=True)  # a folder a committed write retired
            else:
                try:
                    path.rmdir()  # an empty folder (fails, keeping it, if not empty)
                except OSError:
                    continue
        else:
            remove_quietly(path)
        deleted.append(str(path.relative_to(root)))
    for path in emptied:
        try:
            path.rmdir()  # fails, keeping it, if anything appeared in it meanwhile
        except OSError:
            continue
        deleted.append(str(path.relative_to(root)))
    folder, moved, failed = _quarantine(root, move)
    for d in {p.parent for p in delete + emptied + move}:
        _fsync_quietly(d)
    if records:
        # The records go only once the files they doom are gone (a crash in between repeats
        # the same decisions). Their tokens stay in the catalog, harmless, until the next
        # write that records an intent forgets them.
        for record in records:
            remove_quietly(root / INTENTS / f"{record.token}{SUFFIX}")
        _fsync_quietly(root / INTENTS)
    return TidyReport(deleted, moved, folder, failed)


def _garbage(path: Path, folder: str, doomed: set[str]) -> bool:
    """Whether an entry of a collection folder is provably a leftover: a temp file, a file
    named by the intent of a write that (by its record) must not keep it, or an empty
    folder (it holds no data)."""
    if path.is_symlink():
        return False
    if path.is_dir():
        return not any(path.iterdir())
    return path.is_file() and (is_temp(path.name) or f"{folder}/{path.name}" in doomed)


def _quarantine(root: Path, paths: list[Path]) -> tuple[Path | None, list[str], list[str]]:
    """Move ``paths`` (inside the store) to a new ``quarantine/<time>/`` folder, keeping
    their place relative to the store. Returns the folder, what moved and what could not."""
    if not paths:
        return None, [], []
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    folder = root / QUARANTINE / stamp
    moved, failed = [], []
    for path in paths:
        rel = path.relative_to(root)
        target = folder / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        except OSError:
            failed.append(str(rel))
            continue
        moved.append(str(rel))
    if not moved:
        shutil.rmtree(folder, ignore_errors=True)
        return None, [], failed
    manifest = {
        "moved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "why": "a read-write open found these files in the store but no catalog row named "
        "them, and nothing proved them the leftovers of an unacknowledged write",
        "files": moved,
        "restore": "put the right catalog.db back, then call Database.restore_quarantine() "
        "or run `vecstore verify STORE --restore-quarantine` (docs/reliability.md)",
    }
    try:
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    except OSError:
        pass  # only a note for people (a full disk must not stop the open)
    for d in sorted({p.parent for p in folder.rglob("*")} | {folder, folder.parent, root}):
        _fsync_quietly(d)
    return folder, moved, failed


def survey(root: Path, names: Callable[[], Names]) -> Survey:
    """Files the catalog does not name, for ``verify``: read-only, and safe while other
    processes write. ``names`` reads the named files in a fresh catalog snapshot.

    A file counts as unnamed only if it exists after being unnamed in a snapshot taken
    before and in one taken after the intent records were read, and no record names it.
    (A write records its files before writing them and drops the record only after the
    commit and its unlinks, so a file of a write in flight is always accounted for.)
    """
    collections = root / COLLECTIONS
    listed: list[Path] = []
    empty: list[Path] = []
    if collections.is_dir() and paths.outside(root, collections) is None:
        for entry in sorted(collections.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                inside = sorted(entry.iterdir())
                listed += inside
                if not inside:
                    empty.append(entry)
            else:
                listed.append(entry)
    before = names()
    records, other = read_records(root)
    after = names()
    recorded = {rel for r in records for rel in (*r.publish, *r.retire)}
    in_flight, unnamed = [], []
    for path in listed:
        rel = path.relative_to(collections)
        folder, name = (rel.parts[0], rel.parts[1]) if len(rel.parts) == 2 else (rel.name, "")
        if name in before.get(folder, ()) or name in after.get(folder, ()):
            continue
        if not name and (folder in before or folder in after):
            continue
        if not os.path.lexists(path):
            continue  # unlinked by a write that finished meanwhile
        if (
            is_temp(path.name)
            or f"{folder}/{name}" in recorded
            or f"{folder}/" in recorded
            or (name and _garbage(path, folder, set()))  # an empty folder holds no data
        ):
            in_flight.append(path)
        else:
            unnamed.append(path)
    for path in empty:
        if path.name not in before and path.name not in after and path.exists():
            in_flight.append(path)  # a folder holds no data; the next open removes it
    return Survey(
        in_flight,
        unnamed,
        quarantined(root),
        [p for p in other if not is_temp(p.name)],
    )


def quarantined(root: Path) -> list[Path]:
    """Every file under ``quarantine/`` (manifests excepted)."""
    folder = root / QUARANTINE
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if (p.is_symlink() or not p.is_dir())
        and not (p.name == MANIFEST and p.parent.parent == folder)
    )


def restore(root: Path, cat: TidyCatalog) -> RestoreInfo:
    """Move quarantined files back into ``collections/`` if the catalog names them and they
    are missing there (under the writer lock). The rest stays in ``quarantine/``."""
    names = cat.segment_files()
    collections = root / COLLECTIONS
    restored, remaining = [], []
    top = root / QUARANTINE
    stamps = sorted(top.iterdir(), reverse=True) if top.is_dir() else []
    for stamp in stamps:  # newest first: a file quarantined twice is restored once
        if not stamp.is_dir() or stamp.is_symlink():
            continue
        base = stamp / COLLECTIONS
        for d in sorted(base.iterdir()) if base.is_dir() else []:
            if not d.is_dir() or d.is_symlink():
                remaining.append(str(d.relative_to(root)))
                continue
            if d.name in names and not (collections / d.name).exists():
                (collections / d.name).mkdir()
            for f in sorted(d.iterdir()):
                target = collections / d.name / f.name
                if f.name in names.get(d.name, ()) and not os.path.lexists(target):
                    os.rename(f, target)
                    restored.append(str(target.relative_to(root)))
                else:
                    remaining.append(str(f.relative_to(root)))
            _fsync_quietly(collections / d.name)
            _rmdir_empty(d)
        _rmdir_empty(base)
        if [p.name for p in stamp.iterdir()] == [MANIFEST]:
            (stamp / MANIFEST).unlink()
        _rmdir_empty(stamp)
    if stamps:
        _rmdir_empty(top)
    _fsync_quietly(collections)
    return RestoreInfo(restored, remaining)


def _rmdir_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _fsync_quietly(folder: Path) -> None:
    try:
        fsync_dir(folder)
    except OSError:
        pass


def _count(items: list, what: str) -> str:
    return f"{len(items)} {what}{'' if len(items) == 1 else 's'}"


def _few(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (", ..." if len(items) > SHOWN else "")


def _were(items: list) -> str:
    return "was" if len(items) == 1 else "were"


def _are(items: list) -> str:
    return "is" if len(items) == 1 else "are"
