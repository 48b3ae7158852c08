"""The typed rows the metadata store hands out and takes in: its vocabulary, shared by every concern."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BlobRecord:
    digest: str
    size: int


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    payload: bytes
    artifact_type: str | None
    subject_digest: str | None
    annotations_json: str | None
    keep_until: datetime | None = None
    """Set on what a pull-through cache fetched: it is kept until then."""

    @property
    def annotations(self) -> dict[str, str] | None:
        """Parsed when asked for: only the referrers API shows them, and every pull would pay for it."""
        return json.loads(self.annotations_json) if self.annotations_json else None


@dataclass(frozen=True)
class NewManifest:
    """A validated manifest ready to be recorded, with what it references."""

    digest: str
    media_type: str
    payload: bytes
    artifact_type: str | None = None
    subject_digest: str | None = None
    annotations: dict[str, str] | None = None
    blob_refs: Sequence[str] = field(default_factory=tuple)
    manifest_refs: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class OutboxEntry:
    """An event for one notification endpoint, recorded with the change it describes."""

    endpoint: str
    event: str


@dataclass(frozen=True)
class Delivery:
    id: int
    endpoint: str
    event: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class UploadRecord:
    id: str
    repository: str
    started_at: datetime
    updated_at: datetime
    has_data: bool = False
    """Whether bytes may have been stored; a session without is empty, with no need to ask storage."""


@dataclass(frozen=True)
class JobRecord:
    """What the store knows of a background job that runs under a lease: its last runs and who holds it now."""

    name: str
    holder: str | None
    lease_until: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    runs: int
    failures: int
