"""A small thread-safe least-recently-used map, for the store's in-process query-embedding
cache and per-field filter columns. Standard library only; must not import anything of vecstore.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class LRU:
    """At most ``maxsize`` entries (and, given ``max_bytes``, at most that many bytes as
    ``put`` declares them); reading one makes it the most recent, adding one past a limit
    drops the least recent. ``maxsize=0`` keeps nothing."""

    def __init__(self, maxsize: int, *, max_bytes: int | None = None):
        self.maxsize = int(maxsize)
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        """The value of ``key``, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any, *, nbytes: int = 0) -> None:
        """Keep ``value`` under ``key``; ``nbytes`` counts against ``max_bytes``."""
        if self.maxsize <= 0 or (self.max_bytes is not None and nbytes > self.max_bytes):
            return
        with self._lock:
            self._bytes += nbytes - self._sizes.get(key, 0)
            self._sizes[key] = nbytes
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                old, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(old)

    def discard(self, which: Callable[[Hashable], bool]) -> None:
        """Forget every entry whose key ``which`` accepts."""
        with self._lock:
            for key in [key for key in self._items if which(key)]:
                del self._items[key]
                self._bytes -= self._sizes.pop(key)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LRU({len(self)}/{self.maxsize}, hits={self.hits}, misses={self.misses})"
