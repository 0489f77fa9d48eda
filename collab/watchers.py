"""Callbacks by key (an annotation): who is told of a change, registered for
as long as a ``with`` block lasts. Callbacks must not block; one that
raises is logged and the others are still told."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

log = logging.getLogger("collab.watchers")

C = TypeVar("C", bound=Callable[..., None])


class Watchers(Generic[C]):
    def __init__(self, what: str) -> None:
        #: What the watchers hear of, for the log.
        self.what = what
        self._by_key: dict[int, set[C]] = {}

    @contextlib.contextmanager
    def watch(self, key: int, callback: C) -> Iterator[None]:
        watchers = self._by_key.setdefault(key, set())
        watchers.add(callback)
        try:
            yield
        finally:
            watchers.discard(callback)
            if not watchers:
                self._by_key.pop(key, None)

    def any(self, key: int) -> bool:
        return bool(self._by_key.get(key))

    def tell(self, key: int, *args: Any) -> None:
        for callback in list(self._by_key.get(key, ())):
            try:
                callback(*args)
            except Exception:
                log.exception(f"a {self.what} watcher failed", extra={"annotation": key})
