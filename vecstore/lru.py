"""A small thread-safe least-recently-used map, for the store's in-process query-embedding
cache. Standard library only; must not import anything of vecstore.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class LRU:
    """At most ``maxsize`` entries; reading one makes it the most recent, adding one past
    the limit drops the least recent. ``maxsize=0`` keeps nothing."""

    def __init__(self, maxsize: int):
        self.maxsize = int(maxsize)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
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

    def put(self, key: Hashable, value: Any) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LRU({len(self)}/{self.maxsize}, hits={self.hits}, misses={self.misses})"
