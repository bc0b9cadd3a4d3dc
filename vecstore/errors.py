"""The vecstore exception hierarchy.

Every error vecstore raises on purpose is a ``VecstoreError``; each subclass also inherits
the builtin a caller would naturally catch (``KeyError``, ``ValueError``, ``OSError``...).
Imports nothing from the rest of the package.
"""

from __future__ import annotations


class VecstoreError(Exception):
    """Base class of every error raised by vecstore."""


class InvalidInput(VecstoreError, ValueError):
    """An argument has the wrong shape, type or value; nothing was changed."""


class DimensionMismatch(InvalidInput):
    """Vectors do not have the collection's dimension."""


class InvalidFilter(InvalidInput):
    """A ``where`` or ``where_document`` filter is malformed."""


class DuplicateIdError(InvalidInput):
    """An id appears twice in one call, or ``add`` was given an id that already exists."""


class EncoderMismatch(InvalidInput):
    """A collection is opened with an encoder other than the one its vectors came from."""


class IdNotFound(VecstoreError, KeyError):
    """``update`` was given ids that do not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class CollectionNotFound(VecstoreError, KeyError):
    """No collection has that name (or it was deleted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CollectionExists(VecstoreError, ValueError):
    """``create_collection`` was given a name that is already taken."""


class ReadOnlyError(VecstoreError, PermissionError):
    """A write was attempted through a store opened with ``read_only=True``."""


class LockTimeout(VecstoreError, TimeoutError):
    """Another process held the writer lock for longer than the lock timeout."""


class StoreNotFound(VecstoreError, FileNotFoundError):
    """The path holds no vecstore store (and could not or should not be created)."""


class CorruptStoreError(VecstoreError, OSError):
    """A store file failed a check: bad magic, size, checksum, schema or record."""


class StoreIOError(VecstoreError, OSError):
    """The operating system failed a write or fsync; the store refuses further writes."""


class DiskFullError(StoreIOError):
    """The disk (or quota) ran out of space during a write. Nothing of that write was
    published or committed, so unlike other I/O failures the handle stays usable: free some
    space and retry."""


class EndpointError(VecstoreError, ConnectionError):
    """An embedding endpoint could not be reached or answered with an HTTP error."""


class MissingDependency(VecstoreError, ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""


class StoreClosed(VecstoreError, RuntimeError):
    """The database was closed."""
