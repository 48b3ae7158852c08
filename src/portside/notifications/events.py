"""Events in Docker Distribution's envelope, filtered per endpoint and turned into outbox entries."""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from portside.config.schema import Endpoint
from portside.metadata.records import OutboxEntry

EVENTS_MEDIA_TYPE: Final = "application/vnd.docker.distribution.events.v1+json"
# Distribution's "source.instanceID": one per running process.
INSTANCE_ID: Final = str(uuid.uuid4())


@dataclass(frozen=True)
class RequestRecord:
    id: str
    addr: str
    host: str
    method: str
    useragent: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class NotificationSink:
    """Builds the events of one request; the library hands them to the metadata store with its change."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        request: RequestRecord,
        actor: str | None,
        base_url: str,
        source_addr: str,
        include_references: bool,
    ) -> None:
        self._endpoints = endpoints
        self._request = request
        self._actor = actor
        self._base_url = base_url
        self._source_addr = source_addr or socket.gethostname()
        self._include_references = include_references

    def _wants(self, endpoint: Endpoint, action: str, media_type: str | None) -> bool:
        if action in endpoint.ignore.actions:
            return False
        return not (media_type and media_type in (*endpoint.ignoredmediatypes, *endpoint.ignore.mediatypes))

    def event(self, action: str, target: dict[str, Any]) -> dict[str, Any]:
        target = dict(target)
        if not self._include_references or not target.get("references"):
            target.pop("references", None)
        if "size" in target:
            target["length"] = target["size"]
        repository, digest = target.get("repository"), target.get("digest")
        if repository and digest and action != "delete":
            kind = "blobs" if target.get("mediaType") == "application/octet-stream" else "manifests"
            target["url"] = f"{self._base_url}/v2/{repository}/{kind}/{digest}"
        return {
            "id": str(uuid.uuid4()),
            "timestamp": _now(),
            "action": action,
            "target": target,
            "request": {
                "id": self._request.id,
                "addr": self._request.addr,
                "host": self._request.host,
                "method": self._request.method,
                "useragent": self._request.useragent,
            },
            "actor": {"name": self._actor or ""},
            "source": {"addr": self._source_addr, "instanceID": INSTANCE_ID},
        }

    def entries(self, action: str, target: dict[str, Any]) -> list[OutboxEntry]:
        wanting = [e for e in self._endpoints if self._wants(e, action, target.get("mediaType"))]
        if not wanting:
            return []
        payload = json.dumps(self.event(action, target))
        return [OutboxEntry(endpoint.name, payload) for endpoint in wanting]
