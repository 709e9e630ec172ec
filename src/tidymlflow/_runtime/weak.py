"""A map from objects to values that forgets an object when it is garbage-collected. Keyed by
identity, so it holds unhashable objects too (py-tidymodels' fits are unhashable dataclasses)."""

from __future__ import annotations

import threading
import weakref
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class WeakIdMap(Generic[V]):
    """``obj -> value`` while ``obj`` lives; thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Any], V]] = {}
        self._lock = threading.Lock()

    def put(self, obj: Any, value: V) -> None:
        """Remember ``value`` for ``obj``; an object that cannot be referred to weakly (a tuple)
        is not remembered."""
        key = id(obj)

        def forget(_ref: weakref.ref[Any], key: int = key, entries: dict[int, Any] = self._entries,
                   lock: threading.Lock = self._lock) -> None:
            with lock:
                entries.pop(key, None)

        try:
            ref = weakref.ref(obj, forget)
        except TypeError:
            return
        with self._lock:
            self._entries[key] = (ref, value)

    def get(self, obj: Any) -> V | None:
        """The value remembered for ``obj`` (this very object), or None."""
        with self._lock:
            entry = self._entries.get(id(obj))
        if entry is None or entry[0]() is not obj:
            return None
        return entry[1]
