"""Each worker's copy of repositories' sorted tag lists, kept current by the store's tag-list version.

Listing tags reads one indexed number (the repository's tag-list version, raised by the database whenever a
tag appears or goes) and serves the kept list when the number matches, so a listing costs the same at ten
tags as at ten thousand, and every process of every instance sees a change at once. The version is read
before the list, so a change racing a refill at worst stores a newer list under an older version, which the
next listing replaces.
"""

from __future__ import annotations

from collections import OrderedDict


class TagListCache:
    """Sorted tag lists by repository, bounded by the number of names held, least recently used dropped first."""

    def __init__(self, max_names: int = 1_000_000) -> None:
        self.max_names = max_names
        self._lists: OrderedDict[str, tuple[int, list[str]]] = OrderedDict()
        self._held = 0

    def get(self, repository: str, version: int) -> list[str] | None:
        entry = self._lists.get(repository)
        if entry is None or entry[0] != version:
            return None
        self._lists.move_to_end(repository)
        return entry[1]

    def put(self, repository: str, version: int, names: list[str]) -> None:
        if len(names) > self.max_names:
            return
        self._drop(repository)
        self._lists[repository] = (version, names)
        self._held += len(names)
        while self._held > self.max_names:
            oldest = next(iter(self._lists))
            self._drop(oldest)

    def _drop(self, repository: str) -> None:
        entry = self._lists.pop(repository, None)
        if entry is not None:
            self._held -= len(entry[1])
