"""Keeping the store tidy: upload sessions abandoned by their clients, and the bytes of crashed uploads."""

from __future__ import annotations

import logging
from datetime import timedelta

from portside.metadata.records import utcnow
from portside.metadata.store import MetadataStore
from portside.storage.content import ContentStore

log = logging.getLogger(__name__)


async def purge_uploads(
    content: ContentStore, store: MetadataStore, age: timedelta, dry_run: bool = False
) -> list[str]:
    """Remove upload sessions idle for longer than `age`, and upload bytes no session owns (left by a crash
    between storing bytes and recording them); returns their ids."""
    cutoff = utcnow() - age
    purged: list[str] = []
    for record in await store.uploads.stale(cutoff):
        purged.append(record.id)
        if not dry_run:
            await content.delete_upload(record.id)
            await store.uploads.delete(record.id)
    for upload_id in await content.upload_ids():
        if upload_id in purged or await store.uploads.get(upload_id) is not None:
            continue
        changed = await content.upload_changed(upload_id)
        if changed is not None and changed < cutoff:
            purged.append(upload_id)
            if not dry_run:
                await content.delete_upload(upload_id)
    if purged:
        log.info("upload purge %s %d session(s)", "would remove" if dry_run else "removed", len(purged))
    return purged
