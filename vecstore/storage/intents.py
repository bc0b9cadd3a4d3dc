"""Intents: the durable record of the files one write transaction publishes and retires.

A write that creates files first records their names in ``intents/<token>.intent``, written
and fsynced before the files are. Just before its commit it adds the names of the files the
commit makes obsolete, and the transaction stores the token in the catalog. After the commit
the retired files are unlinked, then the record, durably, before the write returns. So a
record found on disk belongs to a write that was never acknowledged, and the token in the
catalog says whether its transaction committed: the open-time cleanup (cleanup.py) deletes
files on that proof only, never because the catalog alone does not name them. Imports the
standard library, ``errors`` and the storage layer.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import DiskFullError, StoreIOError
from .files import TMP_SUFFIX, fsync_dir, io_step, remove_quietly, write_durable
from .layout import COLLECTIONS, INTENTS

SUFFIX = ".intent"
FORMAT = "vecstore-intent-1"
# A token is a uuid4 in hex; a name is one path component vecstore could have written.
_TOKEN = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


class IntentCatalog(Protocol):
    """The catalog, as intents see it (storage/catalog.py)."""

    def record_intent(self, token: str, live: set[str]) -> None: ...

    def write(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class Record:
    """An intent read back from disk: entries are ``"<dir>/<file>"``, or ``"<dir>/"`` for a
    whole collection folder, relative to ``collections/``."""

    token: str
    publish: tuple[str, ...]
    retire: tuple[str, ...]


class Intent:
    """The files one write transaction publishes (written before it commits) and retires
    (unlinked after it commits), recorded durably for the next open's cleanup.

    Call ``publishing`` before writing files, ``retiring`` for files the commit makes
    obsolete, ``seal`` inside the transaction just before it commits, then ``committed``
    after the commit, or ``abandoned`` if it did not commit. After an I/O failure, when
    whether it committed is unknown, call neither: the record stays for the next open.
    ``transaction`` does all of that around the catalog's write transaction. A write that
    neither creates nor retires files writes no record.
    """

    def __init__(self, root: Path, cat: IntentCatalog):
        self._root = root
        self._cat = cat
        self.token = uuid.uuid4().hex
        self._publish: list[str] = []
        self._retire: list[str] = []
        self._written: tuple[int, int] | None = None  # (publish, retire) counts on disk

    @property
    def published(self) -> list[Path]:
        """The files this write creates (whether or not they exist yet)."""
        return [self._root / COLLECTIONS / rel for rel in self._publish]

    def publishing(self, directory: Path, names: Iterable[str]) -> None:
        """Record that files ``names`` are about to be written into the collection folder
        ``directory``. Durable when this returns: call it before writing them."""
        self._publish += [f"{directory.name}/{name}" for name in names]
        self._write()

    def retiring(self, directory: Path, names: Iterable[str]) -> None:
        """Files of ``directory`` that this transaction's commit makes obsolete."""
        self._retire += [f"{directory.name}/{name}" for name in names]

    def retiring_folder(self, directory: Path) -> None:
        """A whole collection folder that this transaction's commit makes obsolete."""
        self._retire.append(f"{directory.name}/")

    def seal(self) -> None:
        """Inside the write transaction, just before it commits: make the record durable
        with everything it retires, and store its token in the transaction (the proof, for
        the next open, that it committed)."""
        if not self._publish and not self._retire:
            return
        if self._written != (len(self._publish), len(self._retire)):
            self._write()
        self._cat.record_intent(self.token, live_tokens(self._root))

    @contextmanager
    def transaction(self) -> Iterator[Intent]:
        """The catalog's write transaction, sealed before it commits; then ``committed``,
        or ``abandoned`` if it fails (left for the next open if the failure is an I/O
        error other than a full disk, which leaves whether it committed unknown)."""
        try:
            with self._cat.write():
                yield self
                self.seal()
        except StoreIOError as exc:
            if isinstance(exc, DiskFullError):
                self.abandoned()
            raise
        except BaseException:
            self.abandoned()
            raise
        self.committed()

    def committed(self) -> None:
        """After the commit: unlink the retired files, then the record. Best effort (an
        unlink that fails leaves work for the next open's cleanup, which has the record)."""
        folders = set()
        collections = self._root / COLLECTIONS
        for rel in self._retire:
            folder, _, name = rel.partition("/")
            if name:
                remove_quietly(collections / folder / name)
                folders.add(collections / folder)
            else:
                io_step("unlink", can_fail=False)
                shutil.rmtree(collections / folder, ignore_errors=True)
                folders.add(collections)
        # The unlinks must be durable before the record's unlink is: a retired file that
        # came back after a power loss without its record would be quarantined, not deleted.
        for folder in sorted(folders):
            _fsync_quietly(folder)
        self._drop()

    def abandoned(self) -> None:
        """The transaction did not commit: unlink the files it wrote, then the record."""
        for path in self.published:
            remove_quietly(path)
        for folder in sorted({p.parent for p in self.published}):
            _fsync_quietly(folder)
        self._drop()

    def _write(self) -> None:
        folder = self._root / INTENTS
        if not folder.is_dir():
            folder.mkdir(exist_ok=True)
            fsync_dir(self._root)
        body = {"format": FORMAT, "token": self.token}
        body |= {"publish": self._publish, "retire": self._retire}
        write_durable(folder, f"{self.token}{SUFFIX}", [_encode(body)])
        self._written = (len(self._publish), len(self._retire))

    def _drop(self) -> None:
        if self._written is None:
            return
        remove_quietly(self._root / INTENTS / f"{self.token}{SUFFIX}")
        # Durable before the write returns: a record on disk must mean "not acknowledged".
        io_step("fsync directory", can_fail=False)
        _fsync_quietly(self._root / INTENTS)
        self._written = None


def _encode(body: dict) -> bytes:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return json.dumps({"intent": body, "crc32": zlib.crc32(text.encode())}).encode()


def live_tokens(root: Path) -> set[str]:
    """Tokens of the intent records on disk."""
    folder = root / INTENTS
    if not folder.is_dir():
        return set()
    return {p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX)}


def read_records(root: Path) -> tuple[list[Record], list[Path]]:
    """The intent records on disk, and the files in ``intents/`` that are not one (damaged
    records, temp files of a record being written)."""
    folder = root / INTENTS
    records, other = [], []
    if not folder.is_dir():
        return records, other
    for path in sorted(folder.iterdir()):
        record = _read(path) if path.name.endswith(SUFFIX) else None
        if record is None:
            other.append(path)
        else:
            records.append(record)
    return records, other


def is_temp(name: str) -> bool:
    """Whether a file name is a temp file of ``files.write_durable`` (never published)."""
    return re.fullmatch(rf".+\.[0-9a-f]{{12}}{re.escape(TMP_SUFFIX)}", name) is not None


def _read(path: Path) -> Record | None:
    """The record in ``path``, or None if it is damaged or malformed: then it proves
    nothing, and the files it names are quarantined rather than deleted."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 64 << 20:
            return None
        data = json.loads(path.read_bytes())
        body = data["intent"]
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if data["crc32"] != zlib.crc32(text.encode()) or body["format"] != FORMAT:
            return None
        token, publish, retire = body["token"], body["publish"], body["retire"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token) or path.stem != token:
        return None
    entries = [*publish, *retire] if isinstance(publish, list) and isinstance(retire, list) else []
    if len(entries) != len(publish) + len(retire) or not all(map(_entry, entries)):
        return None
    return Record(token, tuple(publish), tuple(retire))


def _entry(rel) -> bool:
    """``"<dir>/<file>"`` or ``"<dir>/"`` of single, plain path components: a record can
    never name anything outside ``collections/``."""
    if not isinstance(rel, str) or rel.count("/") != 1:
        return False
    folder, name = rel.split("/")
    return bool(_NAME.fullmatch(folder)) and (name == "" or bool(_NAME.fullmatch(name)))


def _fsync_quietly(folder: Path) -> None:
    try:
        fsync_dir(folder)
    except OSError:
        pass
