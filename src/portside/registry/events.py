"""What the library tells about changes (and pulls): an `EventSink` turns them into outbox entries that the
metadata store records in the same transaction as the change."""

from __future__ import annotations

from typing import Any, Protocol

from portside.metadata.records import OutboxEntry

PUSH, PULL, MOUNT, DELETE = "push", "pull", "mount", "delete"


class EventSink(Protocol):
    def entries(self, action: str, target: dict[str, Any]) -> list[OutboxEntry]:
        """Outbox entries for one event (none when no endpoint wants it)."""
        ...


def entries(sink: EventSink | None, action: str, target: dict[str, Any]) -> list[OutboxEntry]:
    return sink.entries(action, target) if sink is not None else []
