"""`portside events list` and `portside events replay`.

docs/operations.md, Notifications: "`portside events list [CONFIG] [--status pending|failed|delivered]
[--endpoint NAME]` prints deliveries (one JSON object per line). `portside events replay [CONFIG] [--endpoint
NAME] [--id N ...] [--failed]` queues deliveries again: those named, or every failed one (a delivery counts as
failed once it has failed at least `threshold` times)."

A delivery is one event for one endpoint; `--id N` names a delivery by the `id` that `list` prints.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from tests.conftest import RegistryFactory
from tests.operations.receiver import Receiver
from tests.operations.support import RFC3339, Client, events_list, events_replay, sha256, unique_repo, wait_until

FIELDS = {
    "id",
    "endpoint",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
    "delivered_at",
    "last_error",
    "event",
}


def moment(text: str) -> datetime:
    """A timestamp `list` printed (RFC 3339; UTC when it names no zone)."""
    assert RFC3339.match(text), text
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def hook(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "url": url, "timeout": "1s", "threshold": 2, "backoff": "1s"}


def delivered_digests(receiver: Receiver, path: str) -> set[str]:
    return {str((e.get("target") or {}).get("digest")) for e in receiver.delivered_events(path)}


def wait_tried(receiver: Receiver, path: str, digests: set[str], times: int) -> None:
    """Wait until every one of `digests` was POSTed to `path` at least `times` times."""

    def counts() -> dict[str, int]:
        sent = [str((e.get("target") or {}).get("digest")) for p in receiver.posts(path) for e in p.events]
        return {d[:19]: sent.count(d) for d in digests}

    try:
        receiver.wait_for(lambda: min(counts().values()) >= times, 30, f"{times} attempts at {path}")
    except AssertionError:
        raise AssertionError(f"{path}: attempts per event after 30s: {counts()}, expected {times}") from None


def test_list_shows_failed_deliveries_and_replay_sends_them_again(
    registry_factory: RegistryFactory, receiver: Receiver
) -> None:
    """Failing deliveries are listed as failed for their endpoint only; `replay --failed` sends them again
    once the endpoint answers, after which none is failed and they are listed as delivered."""
    receiver.set_mode("fail", "/hook")
    reg = registry_factory(
        {
            "notifications": {
                "endpoints": [hook("hook", receiver.url("/hook")), hook("mirror", receiver.url("/mirror"))]
            }
        },
        workers=2,
    )
    client = Client(reg.url)
    repo = unique_repo("replay")
    blobs = [os.urandom(400 + i) for i in range(3)]
    for b in blobs:
        client.push_blob(repo, b)
    client.close()
    digests = {sha256(b) for b in blobs}

    receiver.wait_for(lambda: digests <= delivered_digests(receiver, "/mirror"), 15, "events at the healthy endpoint")
    wait_tried(receiver, "/hook", digests, 2)

    def failed_at_hook() -> list[dict[str, Any]] | None:
        rows = events_list(reg, "--status", "failed", "--endpoint", "hook")
        return rows if len(rows) >= 3 else None

    failed = wait_until(failed_at_hook, timeout=30, what="three failed deliveries for endpoint hook", interval=0.5)
    assert len(failed) == 3, failed
    assert len(receiver.posts("/hook")) >= 2, "failed at least `threshold` (2) times"
    assert events_list(reg, "--status", "failed", "--endpoint", "mirror") == []
    assert len(events_list(reg, "--status", "delivered", "--endpoint", "mirror")) == 3
    assert len(events_list(reg, "--status", "failed")) == 3
    assert len(events_list(reg)) == 6, "one delivery per event and endpoint"

    receiver.set_mode("ok", "/hook")
    events_replay(reg, "--failed")
    receiver.wait_for(lambda: digests <= delivered_digests(receiver, "/hook"), 20, "the replayed events")
    wait_until(
        lambda: len(events_list(reg, "--status", "delivered", "--endpoint", "hook")) == 3,
        timeout=15,
        what="the replayed deliveries listed as delivered",
        interval=0.5,
    )
    assert events_list(reg, "--status", "failed") == []
    assert events_list(reg, "--status", "pending") == []


def test_replay_by_id_and_by_endpoint_queue_only_those(registry_factory: RegistryFactory, receiver: Receiver) -> None:
    """`replay --id N` queues that delivery again (pending, its failure count reset) and no other; `replay
    --failed --endpoint NAME` queues the failed deliveries of that endpoint only. With the registry stopped the
    commands work on its configuration; at the next start the queued deliveries are sent. Each line of `list`
    carries the documented fields."""
    receiver.set_mode("fail", "/hook")
    receiver.set_mode("fail", "/other")
    reg = registry_factory(
        {"notifications": {"endpoints": [hook("hook", receiver.url("/hook")), hook("other", receiver.url("/other"))]}},
        workers=2,
    )
    client = Client(reg.url)
    repo = unique_repo("replayid")
    blobs = [os.urandom(500 + i) for i in range(2)]
    for b in blobs:
        client.push_blob(repo, b)
    client.close()
    digests = {sha256(b) for b in blobs}
    wait_tried(receiver, "/hook", digests, 2)
    wait_tried(receiver, "/other", digests, 2)

    def failed(endpoint: str) -> list[dict[str, Any]]:
        return events_list(reg, "--status", "failed", "--endpoint", endpoint)

    def ids(status: str, endpoint: str) -> set[Any]:
        return {r.get("id") for r in events_list(reg, "--status", status, "--endpoint", endpoint)}

    wait_until(
        lambda: len(failed("hook")) >= 2 and len(failed("other")) >= 2,
        timeout=30,
        what="two failed deliveries for each endpoint",
        interval=0.5,
    )
    reg.stop()
    hook_rows, other_rows = failed("hook"), failed("other")
    assert len(hook_rows) == 2, hook_rows
    assert len(other_rows) == 2, other_rows
    hook_ids = [row.get("id") for row in hook_rows]
    other_ids = {row.get("id") for row in other_rows}
    assert all(isinstance(i, int) for i in hook_ids), f"list must print each delivery's id for `--id`: {hook_rows}"
    for row in hook_rows + other_rows:
        assert set(row) == FIELDS, row
        assert row["status"] == "failed"
        assert isinstance(row["attempts"], int)
        assert row["attempts"] >= 2, row
        assert moment(row["next_attempt_at"]) > moment(row["created_at"]), "a failed delivery is due again later"
        assert row["delivered_at"] is None
        assert isinstance(row["last_error"], str)
        assert "500" in row["last_error"], row
        assert row["event"]["action"] == "push"
        assert row["event"]["target"]["digest"] in digests
    assert {r["endpoint"] for r in hook_rows} == {"hook"}
    assert {r["endpoint"] for r in other_rows} == {"other"}
    chosen, left = hook_ids

    events_replay(reg, "--id", str(chosen))
    assert ids("failed", "hook") == {left}
    assert chosen in ids("pending", "hook")
    assert ids("failed", "other") == other_ids
    replayed = next(r for r in events_list(reg, "--endpoint", "hook") if r["id"] == chosen)
    assert replayed["attempts"] == 0, f"replay resets the failure count: {replayed}"
    assert replayed["status"] == "pending"
    assert moment(replayed["next_attempt_at"]) <= datetime.now(UTC), "replay queues the delivery at once"

    events_replay(reg, "--failed", "--endpoint", "other")
    assert ids("failed", "other") == set()
    assert other_ids <= ids("pending", "other")
    assert {r["attempts"] for r in events_list(reg, "--endpoint", "other")} == {0}
    assert ids("failed", "hook") == {left}, "replaying another endpoint's deliveries touched this one's"

    receiver.set_mode("ok", "/hook")
    receiver.set_mode("ok", "/other")
    reg.start()
    receiver.wait_for(lambda: digests <= delivered_digests(receiver, "/other"), 30, "the replayed deliveries")
    wait_until(
        lambda: chosen in ids("delivered", "hook") and other_ids <= ids("delivered", "other"),
        timeout=30,
        what="the replayed deliveries delivered after the start",
        interval=0.5,
    )
    for row in events_list(reg, "--status", "delivered"):
        assert set(row) == FIELDS, row
        assert moment(row["delivered_at"]) >= moment(row["created_at"]), row
