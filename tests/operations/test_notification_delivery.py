"""Durable, at-least-once delivery from the outbox.

docs/operations.md, Notifications: "Portside never loses an event": each event is written to the outbox in the
same transaction as the change, "and delivered from there at least once to every endpoint, with retries and
backoff, across restarts"; "A failing endpoint never slows a push or a pull and never holds up another
endpoint"; deliveries are "oldest first, never reordered for one endpoint". Shutdown: on SIGTERM delivery
stops after its current attempt and "what is not delivered stays in the outbox for the next start".

No wall-clock bounds: a stuck endpoint holds its attempt until the test lets go, so "never slows" and "never
holds up" are seen as order (everything else happens while the attempt is held), and the backoff is read
from the schedule the registry records (`portside events list`, `next_attempt_at`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import Registry, RegistryFactory
from tests.operations.receiver import Receiver
from tests.operations.support import Call, Client, events_list, push_image, sha256, unique_repo, wait_until

HOOK_TIMEOUT = 60.0  # seconds: the endpoint's `timeout`, longer than a test ever holds an attempt
PUSHES = 50
PULLS = 60


def hook(name: str, url: str, timeout: float = HOOK_TIMEOUT, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "timeout": f"{timeout}s", "threshold": 3, "backoff": "1s", **extra}


def push_events(receiver: Receiver, path: str, digests: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Delivered push events by target digest (every copy, in arrival order)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for e in receiver.delivered_events(path):
        d = (e.get("target") or {}).get("digest")
        if e.get("action") == "push" and d in digests:
            out.setdefault(d, []).append(e)
    return out


def first_arrival_order(receiver: Receiver, path: str, digests: list[str]) -> list[str]:
    """Digests of push events in the order their first copy arrived."""
    order: list[str] = []
    wanted = set(digests)
    for e in receiver.delivered_events(path):
        d = (e.get("target") or {}).get("digest")
        if e.get("action") == "push" and d in wanted and d not in order:
            order.append(d)
    return order


def timed_pushes(client: Client, repo: str, blobs: list[bytes]) -> list[Call]:
    return [client.push_blob(repo, b) for b in blobs]


def pulls(client: Client, repo: str, blobs: list[bytes]) -> list[Call]:
    calls = [client.request("GET", f"/v2/{repo}/blobs/{sha256(blobs[i % len(blobs)])}") for i in range(PULLS)]
    assert all(c.status == 200 for c in calls)
    return calls


def pull_event_ids(receiver: Receiver, path: str, repo: str) -> set[str]:
    return {
        str(e.get("id"))
        for e in receiver.delivered_events(path)
        if e.get("action") == "pull" and (e.get("target") or {}).get("repository") == repo
    }


def held_posts(receiver: Receiver, path: str) -> list[Any]:
    """POSTs the receiver is holding (stuck endpoint) and has not answered."""
    return [p for p in receiver.posts(path) if p.answered is None]


def attempts_by_event(reg: Registry, endpoint: str) -> dict[str, int]:
    """Failed attempts the outbox records for each event (by event id) at one endpoint."""
    return {str(row["event"]["id"]): int(row["attempts"]) for row in events_list(reg, "--endpoint", endpoint)}


def all_delivered(reg: Registry) -> list[dict[str, Any]] | None:
    """Every delivery in the outbox, once none is left to send."""
    rows = events_list(reg)
    return rows if rows and all(row["status"] == "delivered" for row in rows) else None


def sigterm_and_wait(reg: Registry, release: Any = None) -> None:
    """SIGTERM, let `release` run, and wait for the registry to exit by itself (only a hang fails)."""
    assert reg.process is not None
    os.killpg(reg.process.pid, signal.SIGTERM)
    if release is not None:
        release()
    try:
        reg.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the registry did not exit after SIGTERM") from None


@pytest.mark.parametrize("failure", ["stuck endpoint, SIGTERM", "refusing endpoint, SIGKILL"])
def test_events_written_while_the_endpoint_is_down_survive_a_restart(
    registry_factory: RegistryFactory, receiver: Receiver, failure: str
) -> None:
    """50 pushes and 60 pulls while the endpoint is dead, then the registry is stopped (or killed) and started
    again with the endpoint back: every event arrives, in order, at most 100 to a POST.

    At-least-once, precisely: the events sent before the endpoint went away are recorded as delivered first,
    and nothing is answered 2xx while it is away, so after the restart an event may arrive more than once only
    if the registry recorded a failed attempt for it after the restart (an answer lost on its way back). Every
    other event arrives exactly once.

    A stuck endpoint never slows a push or a pull: every one of them completes while the endpoint holds the
    registry's delivery attempt (whose timeout is a minute), and on SIGTERM the registry exits once that
    attempt has its answer.
    """
    stuck = failure.startswith("stuck")
    # A killed process's claim on a delivery lasts two timeouts and some: keep it short where one is killed.
    endpoint = hook("hook", receiver.url("/hook"), timeout=HOOK_TIMEOUT if stuck else 3.0)
    reg = registry_factory({"http": {"draintimeout": "5s"}, "notifications": {"endpoints": [endpoint]}}, workers=2)
    client = Client(reg.url)
    repo = unique_repo("durable")

    before = [os.urandom(700 + i) for i in range(5)]
    timed_pushes(client, repo, before)
    before_digests = {sha256(b) for b in before}
    receiver.wait_for(
        lambda: set(push_events(receiver, "/hook", before_digests)) == before_digests,
        timeout=30,
        what="the events pushed while the endpoint is up",
    )
    wait_until(
        lambda: len(events_list(reg, "--status", "delivered", "--endpoint", "hook")) == len(before),
        timeout=30,
        what="the first events recorded as delivered",
        interval=0.5,
    )

    if stuck:
        receiver.set_mode("hang")
    else:
        receiver.down()
    switched = time.monotonic()
    blobs = [os.urandom(1000 + i) for i in range(PUSHES)]
    dead_pushes = timed_pushes(client, repo, blobs)
    pulls(client, repo, blobs)
    client.close()
    if stuck:
        held = [p for p in held_posts(receiver, "/hook") if switched < p.received < dead_pushes[-1].started]
        assert held, "no delivery attempt was held while the last pushes and the pulls were served"

    if stuck:
        sigterm_and_wait(reg, release=lambda: receiver.set_mode("fail"))
    else:
        reg.kill()
    restarting = time.monotonic()
    lost = [p for p in receiver.posts("/hook") if switched < p.received < restarting and p.delivered]
    assert not lost, "an attempt was answered 2xx while the endpoint was away"
    attempts_before = attempts_by_event(reg, "hook")
    receiver.set_mode("ok")
    receiver.up()
    reg.start()

    digests = [sha256(b) for b in blobs]
    wanted = set(digests)
    receiver.wait_for(
        lambda: set(push_events(receiver, "/hook", wanted)) == wanted,
        timeout=60,
        what=f"all {PUSHES} push events after the restart",
    )
    receiver.wait_for(
        lambda: len(pull_event_ids(receiver, "/hook", repo)) >= PULLS,
        timeout=60,
        what=f"all {PULLS} pull events after the restart",
    )
    assert len(pull_event_ids(receiver, "/hook", repo)) == PULLS
    final = wait_until(
        lambda: all_delivered(reg), timeout=60, what="every delivery recorded as delivered", interval=0.5
    )

    # Every push produced exactly one event (one id), and that id arrived.
    events = push_events(receiver, "/hook", wanted | before_digests)
    for d, copies in events.items():
        assert len({e.get("id") for e in copies}) == 1, f"one push, several event ids: {d}"
    # Duplicates only where the registry recorded a failure after the restart.
    failed_again = {
        str(row["event"]["id"])
        for row in final
        if row["endpoint"] == "hook" and int(row["attempts"]) > attempts_before.get(str(row["event"]["id"]), 0)
    }
    counts: Counter[str] = Counter()
    for post in receiver.posts("/hook"):
        assert 1 <= len(post.events) <= 100, f"a POST of {len(post.events)} events"
        if post.delivered:
            counts.update(str(e.get("id")) for e in post.events)
    unexplained = {i: n for i, n in counts.items() if n > 1 and i not in failed_again}
    assert not unexplained, f"events delivered again with no failure recorded for them: {unexplained}"

    assert first_arrival_order(receiver, "/hook", digests) == digests, "events reordered across the restart"


def test_instance_id_changes_with_each_start(registry_factory: RegistryFactory, receiver: Receiver) -> None:
    """`source.instanceID`: a UUID per process, new after each restart (notifications.md, SourceRecord)."""
    reg = registry_factory({"notifications": {"endpoints": [hook("hook", receiver.url("/hook"))]}}, workers=2)
    repo = unique_repo("instance")

    def push_and_collect(n: int) -> set[str]:
        c = Client(reg.url, fresh_connections=True)
        blobs = [os.urandom(300 + i) for i in range(n)]
        timed_pushes(c, repo, blobs)
        c.close()
        wanted = {sha256(b) for b in blobs}
        receiver.wait_for(lambda: set(push_events(receiver, "/hook", wanted)) == wanted, 30, "push events")
        return {e["source"]["instanceID"] for es in push_events(receiver, "/hook", wanted).values() for e in es}

    first = push_and_collect(8)
    reg.restart()
    second = push_and_collect(8)
    assert first
    assert second
    assert not first & second, f"instance ids survived a restart: {first & second}"


def test_a_failing_endpoint_does_not_hold_up_another(
    registry_factory: RegistryFactory, receiver: Receiver, second_receiver: Receiver
) -> None:
    """Two endpoints, one stuck (it holds the first attempt, whose timeout is a minute): the healthy one gets
    every event, in order, while that attempt is still held; the stuck one gets them all, in order, once it
    answers again. One worker: its one dispatcher serves both endpoints."""
    second_receiver.set_mode("hang")
    reg = registry_factory(
        {
            "notifications": {
                "endpoints": [
                    hook("good", receiver.url("/good")),
                    {**hook("stuck", second_receiver.url("/stuck")), "threshold": 1},
                ]
            }
        },
        workers=1,  # with two, the other worker could deliver what one of them holds up
    )
    client = Client(reg.url)
    repo = unique_repo("twoends")
    images = [push_image(client, repo, tag=f"t{i}") for i in range(8)]
    client.close()
    order = [digest for image in images for digest in [*image.blob_digests, image.digest]]

    receiver.wait_for(
        lambda: set(push_events(receiver, "/good", set(order))) == set(order),
        timeout=30,
        what="every push event at the healthy endpoint",
    )
    stuck_posts = second_receiver.posts("/stuck")
    assert stuck_posts, "the stuck endpoint was never tried"
    assert stuck_posts[0].answered is None, "the healthy endpoint's events came only after the stuck attempt ended"
    assert first_arrival_order(receiver, "/good", order) == order

    for e in receiver.delivered_events("/good"):
        if e.get("action") == "push" and (e.get("target") or {}).get("mediaType", "").endswith("manifest.v1+json"):
            assert "references" not in e["target"], "references only with events.includereferences"

    second_receiver.set_mode("ok")
    second_receiver.wait_for(
        lambda: set(push_events(second_receiver, "/stuck", set(order))) == set(order),
        timeout=60,
        what="every push event at the endpoint that recovered",
    )
    assert first_arrival_order(second_receiver, "/stuck", order) == order
    for post in second_receiver.posts("/stuck"):
        assert 1 <= len(post.events) <= 100


def _epoch(text: str) -> float:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


CLOCK_SLACK = 0.25  # seconds: timestamps of one clock, written by two processes


def test_a_failing_endpoint_backs_off_after_threshold_failures_and_the_wait_doubles(
    registry_factory: RegistryFactory, receiver: Receiver
) -> None:
    """ "Retried for ever: quickly for its first `threshold` failures, then with the backoff" that doubles with
    each further failure. The waits are read from the schedule the registry records (`events list`:
    `attempts`, `next_attempt_at`): after its k-th failure the delivery is due `wait(k)` after that failure,
    which came after the receiver saw attempt k and before `events list` showed k attempts.

    - `quick` (threshold 3, backoff 2m): three attempts come without waiting for the backoff, and after the
      third the next is due two minutes on.
    - `double` (threshold 1, backoff 1s): waits of 1, 2, 4, ... seconds, each at least that long between
      attempts, as recorded for every failure the listing catches (at least one from the third on)."""
    receiver.set_mode("fail", "/quick")
    receiver.set_mode("fail", "/double")
    endpoints = [
        {"name": "quick", "url": receiver.url("/quick"), "timeout": "5s", "threshold": 3, "backoff": "2m"},
        {"name": "double", "url": receiver.url("/double"), "timeout": "5s", "threshold": 1, "backoff": "1s"},
    ]
    reg = registry_factory({"notifications": {"endpoints": endpoints}}, workers=2)
    schedule: list[tuple[float, dict[str, tuple[int, float]]]] = []  # (listed by, {endpoint: (attempts, due)})
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            rows = events_list(reg)
            listed = time.time()
            schedule.append((listed, {r["endpoint"]: (int(r["attempts"]), _epoch(r["next_attempt_at"])) for r in rows}))

    client = Client(reg.url)
    client.push_blob(unique_repo("backoff"), os.urandom(100))
    client.close()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def caught(endpoint: str, least: int) -> bool:
        return any(seen.get(endpoint, (0, 0.0))[0] >= least for _, seen in list(schedule))

    try:
        receiver.wait_for(lambda: len(receiver.posts("/quick")) >= 3, timeout=60, what="three quick attempts")
        wait_until(
            lambda: caught("quick", 3) and caught("double", 3),
            timeout=120,
            what="the schedule after the third failure of each endpoint",
            interval=0.2,
        )
    finally:
        stop.set()
        watcher.join(60)

    def recorded(endpoint: str) -> dict[int, tuple[float, float]]:
        """For each failure k the listing caught: the wait it scheduled lies between `due - listed` and
        `due - attempt k`."""
        arrivals = [p.received_wall for p in receiver.posts(f"/{endpoint}")]
        bounds: dict[int, tuple[float, float]] = {}
        for listed, seen in schedule:
            k, due = seen.get(endpoint, (0, 0.0))
            if k and k not in bounds:
                bounds[k] = (due - listed - CLOCK_SLACK, due - arrivals[k - 1] + CLOCK_SLACK)
        return bounds

    quick = recorded("quick")
    for k, (_, most) in quick.items():
        if k < 3:
            assert most < 120, f"quick: failure {k} of 3 waited up to {most:.1f}s, as long as the backoff"
    least, most = quick[3]
    assert least <= 120 <= most, f"quick: after the third failure the wait is {least:.1f}..{most:.1f}s, not 120s"

    double = recorded("double")
    assert max(double) >= 3, double
    for k, (least, most) in double.items():
        wait = 2.0 ** (k - 1)
        assert least <= wait <= most, f"double: after failure {k} the wait is {least:.2f}..{most:.2f}s, not {wait}s"
    arrivals = [p.received for p in receiver.posts("/double")]
    for k in range(1, len(arrivals)):
        gap = arrivals[k] - arrivals[k - 1]
        assert gap >= 2.0 ** (k - 1) - CLOCK_SLACK, f"double: attempt {k + 1} came {gap:.2f}s after attempt {k}"


def test_a_crash_leaves_an_event_for_every_change_and_none_for_the_rest(
    registry_factory: RegistryFactory, receiver: Receiver
) -> None:
    """The event is written "in the same transaction as the change it describes": SIGKILL while four clients
    push; after the restart every blob the registry has gets its push event, and once the outbox is empty a
    push that did not happen has none."""
    endpoint = hook("hook", receiver.url("/hook"), timeout=3.0)  # the killed process's claims last 11 s
    reg = registry_factory({"notifications": {"endpoints": [endpoint]}}, workers=2)
    repo = unique_repo("atomic")
    attempted: list[bytes] = []
    acknowledged = [0] * 4
    stop = threading.Event()

    def pusher(n: int) -> None:
        with httpx.Client(base_url=reg.url, timeout=30) as h:
            while not stop.is_set():
                data = os.urandom(2048)
                attempted.append(data)
                try:
                    r = h.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged[n] += 1

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: min(acknowledged) >= 3, timeout=60, what="three pushes acknowledged per client", interval=0.05)
    reg.kill()
    stop.set()
    for t in threads:
        t.join(30)
    reg.start()

    with httpx.Client(base_url=reg.url, timeout=30) as h:
        present = {sha256(d) for d in attempted if h.head(f"/v2/{repo}/blobs/{sha256(d)}").status_code == 200}
    absent = {sha256(d) for d in attempted} - present
    assert present, "no push completed before the crash"
    receiver.wait_for(
        lambda: present <= set(push_events(receiver, "/hook", present)),
        timeout=60,
        what=f"the push events of the {len(present)} blobs the registry has",
    )
    wait_until(lambda: all_delivered(reg), timeout=60, what="the outbox delivered to the end", interval=0.5)
    assert not set(push_events(receiver, "/hook", absent)), "push events for blobs the registry does not have"
