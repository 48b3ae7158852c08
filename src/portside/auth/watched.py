"""A file whose parsed content is reloaded when it changes on disk (htpasswd, policy)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class WatchedFile(Generic[T]):
    """Parses `path` with `load`; `current()` looks at the file at most once per `interval` seconds and
    reloads it when its size, inode or modification time changed. A reload that fails keeps the last good
    content and logs why."""

    def __init__(self, path: str, load: Callable[[str], T], interval: float = 1.0) -> None:
        self.path = path
        self._load = load
        self._interval = interval
        self._checked = 0.0
        self._signature = self._stat()
        self._value = load(path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> T:
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            signature = self._stat()
            if signature != self._signature:
                try:
                    self._value = self._load(self.path)
                    self._signature = signature
                    log.info("reloaded %s", self.path)
                except Exception as exc:
                    log.error("keeping the previous %s: %s", self.path, exc)
        return self._value
