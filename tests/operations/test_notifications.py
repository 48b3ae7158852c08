"""Notification events and their fields, as a real HTTP endpoint receives them.

docs/operations.md, Notifications: deliveries are POSTs of `{"events": [...]}` with the
`application/vnd.docker.distribution.events.v1+json` media type; `push`, `pull`, `mount` and `delete` events
carry the fields Docker Distribution sends (notifications.md, "Events"); `headers`, `ignoredmediatypes`,
`ignore.mediatypes`, `ignore.actions` and `disabled` are Distribution's endpoint keys (configuration.md,
"notifications").
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import Registry, RegistryFactory
from tests.operations.receiver import EVENTS_MEDIA_TYPE, Receiver
from tests.operations.support import (
    OCI_INDEX,
    OCI_MANIFEST,
    OCTET_STREAM,
    RFC3339,
    USER_AGENT,
    UUID,
    Call,
    Client,
    image_manifest,
    new_config,
    push_image,
    sha256,
    unique_repo,
    write_htpasswd,
)

SECRET_HEADER = "Bearer s3cret-token"
HEADERS = {"Authorization": [SECRET_HEADER], "X-Portside-Test": ["ops", "two"]}
FILTERED = ("/nooctet", "/nomanifest", "/nopull")
DELIVERING = ("/all", *FILTERED, "/redirect", "/accepted")
PLATFORMS = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]


def endpoint(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "timeout": "2s", "threshold": 3, "backoff": "1s", **extra}


@dataclass
class Expected:
    """An event the scenario must produce, and the request that produced it."""

    name: str
    call: Call
    action: str
    repository: str
    digest: str | None = None
    tag: str | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        target = event.get("target") or {}
        if event.get("action") != self.action or target.get("repository") != self.repository:
            return False
        if self.digest is not None and target.get("digest") != self.digest:
            return False
        if self.tag is not None and target.get("tag") != self.tag:
            return False
        return not (self.name == "delete manifest" and target.get("tag"))


@dataclass
class Scenario:
    registry: Registry
    receiver: Receiver
    repo: str
    other: str
    config1: bytes
    config2: bytes
    layer: bytes
    manifest1: bytes
    manifest2: bytes
    client_request_id: str
    head_request_ids: list[str]
    started_wall: float
    ended_wall: float
    expected: dict[str, Expected] = field(default_factory=dict)
    failed: list[tuple[Call, int, str]] = field(default_factory=list)  # (call, its status, the digest it named)

    def events(self, path: str = "/all") -> list[dict[str, Any]]:
        """Distinct events (by id) of this scenario delivered to `path`, in order of first arrival."""
        seen: dict[str, dict[str, Any]] = {}
        for e in self.receiver.delivered_events(path):
            repo = (e.get("target") or {}).get("repository")
            if repo in (self.repo, self.other):
                seen.setdefault(str(e.get("id")), e)
        return list(seen.values())

    def one(self, name: str, path: str = "/all") -> dict[str, Any]:
        exp = self.expected[name]
        found = [e for e in self.events(path) if exp.matches(e)]
        assert len(found) == 1, f"{name}: expected one event at {path}, got {len(found)}: {found}"
        return found[0]

    def fence_arrived(self, path: str) -> bool:
        return any(self.expected["delete blob"].matches(e) for e in self.events(path))


def key(event: dict[str, Any]) -> tuple[Any, ...]:
    t = event.get("target") or {}
    return (
        event.get("action"),
        t.get("repository"),
        t.get("digest"),
        t.get("tag"),
        (event.get("request") or {}).get("id"),
    )


@pytest.fixture(scope="module")
def scenario(module_registry_factory: RegistryFactory, module_receiver: Receiver) -> Scenario:
    """One server with an endpoint per filter; one run of every kind of event, fenced by a final blob delete."""
    rec = module_receiver
    rec.set_mode(302, "/redirect")
    rec.set_mode(202, "/accepted")
    rec.set_mode(404, "/gone")
    reg = module_registry_factory(
        {
            "notifications": {
                "events": {"includereferences": True},
                "endpoints": [
                    endpoint("all", rec.url("/all"), headers=HEADERS),
                    endpoint("nooctet", rec.url("/nooctet"), ignoredmediatypes=[OCTET_STREAM]),
                    endpoint("nomanifest", rec.url("/nomanifest"), ignore={"mediatypes": [OCI_MANIFEST]}),
                    endpoint("nopull", rec.url("/nopull"), ignore={"actions": ["pull"]}),
                    endpoint("redirect", rec.url("/redirect")),
                    endpoint("accepted", rec.url("/accepted")),
                    endpoint("off", rec.url("/off"), disabled=True),
                    endpoint("rejecting", rec.url("/gone")),
                ],
            }
        }
    )
    c = Client(reg.url)
    repo, other = unique_repo("events"), unique_repo("events")
    config1, config2, layer = new_config(), new_config(), os.urandom(2048)
    manifest1, manifest2 = image_manifest(config1, [layer]), image_manifest(config2, [layer])
    d1, d2 = sha256(manifest1), sha256(manifest2)
    client_request_id = f"ops-client-{uuid.uuid4()}"
    head_ids = [f"ops-head-{uuid.uuid4()}", f"ops-head-{uuid.uuid4()}"]
    accept = {"Accept": OCI_MANIFEST}
    started = time.time()
    s = Scenario(
        reg, rec, repo, other, config1, config2, layer, manifest1, manifest2, client_request_id, head_ids, started, 0
    )

    def expect(name: str, call: Call, status: int, action: str, repository: str, **target: str) -> None:
        assert call.status == status, f"{name}: {call.method} {call.path}: {call.status} {call.response.text}"
        s.expected[name] = Expected(name, call, action, repository, **target)

    expect("push blob (POST)", c.push_blob(repo, config1), 201, "push", repo, digest=sha256(config1))
    expect("push blob (PUT)", c.push_blob_chunked(repo, layer), 201, "push", repo, digest=sha256(layer))
    tag_push = c.push_manifest(repo, manifest1, "v1", headers={"X-Request-Id": client_request_id})
    expect("push manifest by tag", tag_push, 201, "push", repo, digest=d1)
    expect("push blob 2", c.push_blob(repo, config2), 201, "push", repo, digest=sha256(config2))
    expect("push manifest by digest", c.push_manifest(repo, manifest2), 201, "push", repo, digest=d2)
    expect(
        "pull manifest by tag",
        c.request("GET", f"/v2/{repo}/manifests/v1", headers=accept),
        200,
        "pull",
        repo,
        digest=d1,
    )
    head = c.request("HEAD", f"/v2/{repo}/manifests/v1", headers={**accept, "X-Request-Id": head_ids[0]})
    assert head.status == 200
    expect(
        "pull manifest by digest",
        c.request("GET", f"/v2/{repo}/manifests/{d2}", headers=accept),
        200,
        "pull",
        repo,
        digest=d2,
    )
    expect("pull blob", c.request("GET", f"/v2/{repo}/blobs/{sha256(layer)}"), 200, "pull", repo, digest=sha256(layer))
    head = c.request("HEAD", f"/v2/{repo}/blobs/{sha256(layer)}", headers={"X-Request-Id": head_ids[1]})
    assert head.status == 200

    # Requests that change nothing: no event.
    def refused(method: str, path: str, status: int, digest: str, **kwargs: Any) -> None:
        headers = {"X-Request-Id": f"ops-failed-{uuid.uuid4()}", **kwargs.pop("headers", {})}
        call = c.request(method, path, headers=headers, **kwargs)
        assert call.status == status, f"{method} {path}: {call.status} {call.response.text}"
        s.failed.append((call, status, digest))

    missing_config = image_manifest(new_config(), [layer])
    refused(
        "PUT",
        f"/v2/{repo}/manifests/broken",
        400,
        sha256(missing_config),
        content=missing_config,
        headers={"Content-Type": OCI_MANIFEST},
    )
    uploads = f"/v2/{repo}/blobs/uploads/"
    refused("POST", uploads, 400, sha256(b"other"), params={"digest": sha256(b"other")}, content=os.urandom(64))
    refused("DELETE", f"/v2/{repo}/manifests/{sha256(b'x')}", 404, sha256(b"x"))
    refused("GET", f"/v2/{repo}/blobs/{sha256(b'y')}", 404, sha256(b"y"))
    mount = c.request("POST", f"/v2/{other}/blobs/uploads/", params={"mount": sha256(layer), "from": repo})
    expect("mount", mount, 201, "mount", other, digest=sha256(layer))
    expect("delete tag", c.request("DELETE", f"/v2/{repo}/manifests/v1"), 202, "delete", repo, tag="v1")
    expect("delete manifest", c.request("DELETE", f"/v2/{repo}/manifests/{d2}"), 202, "delete", repo, digest=d2)
    expect(
        "delete blob",
        c.request("DELETE", f"/v2/{repo}/blobs/{sha256(config2)}"),
        202,
        "delete",
        repo,
        digest=sha256(config2),
    )
    s.ended_wall = time.time()
    c.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(s.fence_arrived(p) for p in DELIVERING):
        time.sleep(0.1)
    time.sleep(0.5)  # anything wrongly sent after the fence to a filtered or disabled endpoint shows up too
    return s


def require_fence(s: Scenario, path: str) -> None:
    assert s.fence_arrived(path), (
        f"the last event (blob delete) never reached {path}; posts: {len(s.receiver.posts(path))}"
    )


def test_deliveries_are_posts_of_the_event_envelope(scenario: Scenario) -> None:
    """POST, `Content-Type: application/vnd.docker.distribution.events.v1+json`, body `{"events": [...]}`
    with 1 to 100 events."""
    require_fence(scenario, "/all")
    posts = scenario.receiver.requests("/all")
    assert posts
    for p in posts:
        assert p.method == "POST"
        assert p.headers.get("Content-Type", "").split(";")[0].strip() == EVENTS_MEDIA_TYPE
        assert 1 <= len(p.events) <= 100, p.body[:300]


def test_configured_headers_reach_their_endpoint_only(scenario: Scenario) -> None:
    """`headers` of an endpoint are added to each of its requests, every value of each (configuration.md,
    endpoints: "each value a list of payloads for that header name")."""
    require_fence(scenario, "/all")
    for p in scenario.receiver.posts("/all"):
        assert p.headers.get("Authorization") == SECRET_HEADER
        values = [v.strip() for line in p.headers.get_all("X-Portside-Test") or [] for v in line.split(",")]
        assert values == ["ops", "two"], p.headers.get_all("X-Portside-Test")
    for path in FILTERED:
        for p in scenario.receiver.posts(path):
            assert p.headers.get("Authorization") != SECRET_HEADER, f"{path} got the headers of another endpoint"


def test_every_expected_event_is_delivered_once_per_kind(scenario: Scenario) -> None:
    """push (manifest, blob), pull (manifest, blob), mount and delete (tag, manifest, blob) events."""
    require_fence(scenario, "/all")
    for name in scenario.expected:
        scenario.one(name)


def test_every_event_carries_id_timestamp_request_actor_source(scenario: Scenario) -> None:
    """Every event: `id` (unique), `timestamp` (RFC 3339), `action`, `target`, `request` (`id`, `addr`, `host`,
    `method`, `useragent`), `actor` (`name` empty without authentication), `source` (`addr`: host:port,
    `instanceID`: a UUID)."""
    require_fence(scenario, "/all")
    events = scenario.events()
    assert len(events) >= len(scenario.expected)
    reg = scenario.registry
    port = reg.host.rsplit(":", 1)[1]
    for e in events:
        assert isinstance(e.get("id"), str), e
        assert e["id"], e
        assert RFC3339.match(str(e.get("timestamp"))), e.get("timestamp")
        when = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
        assert scenario.started_wall - 5 <= when <= scenario.ended_wall + 5, e["timestamp"]
        assert e.get("action") in ("push", "pull", "mount", "delete")
        assert isinstance(e.get("target"), dict)
        req = e.get("request")
        assert isinstance(req, dict), e
        assert req.get("id"), req
        assert str(req.get("addr", "")).startswith("127.0.0.1"), req
        assert req.get("host") == reg.host, req
        assert req.get("method") in ("GET", "PUT", "POST", "DELETE", "PATCH"), req
        assert req.get("useragent") == USER_AGENT, req
        assert isinstance(e.get("actor"), dict), e
        assert (e["actor"].get("name") or "") == "", e["actor"]
        src = e.get("source")
        assert isinstance(src, dict), e
        assert str(src.get("addr", "")).endswith(f":{port}"), src
        assert UUID.match(str(src.get("instanceID", ""))), src
    by_id: dict[str, tuple[Any, ...]] = {}
    for e in scenario.receiver.delivered_events("/all"):
        if (e.get("target") or {}).get("repository") in (scenario.repo, scenario.other):
            assert by_id.setdefault(e["id"], key(e)) == key(e), f"two different events share the id {e['id']}"


def test_request_id_is_the_x_request_id_the_client_saw(scenario: Scenario) -> None:
    """`request.id` is the request's id, which every response carries as `X-Request-Id`; a request that
    arrives with an `X-Request-Id` keeps it (docs/operations.md, Logs)."""
    require_fence(scenario, "/all")
    tag_push = scenario.expected["push manifest by tag"].call
    assert tag_push.request_id == scenario.client_request_id
    for name, exp in scenario.expected.items():
        assert exp.call.request_id, f"{name}: the response carried no X-Request-Id"
        event = scenario.one(name)
        assert event["request"]["id"] == exp.call.request_id, name
        assert event["request"]["method"] == exp.call.method, name


def test_blob_push_events(scenario: Scenario) -> None:
    """A completed blob upload (monolithic POST or final PUT): `push` with target `mediaType:
    application/octet-stream`, `digest`, `size`, `length`, `repository`, `url`."""
    require_fence(scenario, "/all")
    for name, data in (("push blob (POST)", scenario.config1), ("push blob (PUT)", scenario.layer)):
        t = scenario.one(name)["target"]
        digest = sha256(data)
        assert t.get("mediaType") == OCTET_STREAM, t
        assert t.get("digest") == digest
        assert t.get("size") == len(data), t
        assert t.get("length") == len(data), t
        assert t.get("url") == f"{scenario.registry.url}/v2/{scenario.repo}/blobs/{digest}", t
        assert not t.get("tag"), t
        assert not t.get("fromRepository"), t


def test_manifest_push_by_tag_carries_tag_and_references(scenario: Scenario) -> None:
    """A manifest PUT: target `mediaType`, `digest`, `size`, `length`, `repository`, `url`, `tag` when pushed
    by tag, `references` (the manifest's descriptors) with `events.includereferences`."""
    require_fence(scenario, "/all")
    t = scenario.one("push manifest by tag")["target"]
    body = scenario.manifest1
    assert t.get("mediaType") == OCI_MANIFEST
    assert t.get("size") == len(body), t
    assert t.get("length") == len(body), t
    assert t.get("url") == f"{scenario.registry.url}/v2/{scenario.repo}/manifests/{sha256(body)}", t
    assert t.get("tag") == "v1"
    refs = t.get("references")
    assert isinstance(refs, list), t
    assert {r.get("digest") for r in refs} >= {sha256(scenario.config1), sha256(scenario.layer)}, refs
    for r in refs:
        assert r.get("mediaType"), r
        assert r.get("digest"), r
        assert isinstance(r.get("size"), int), r


def test_manifest_push_by_digest_has_no_tag(scenario: Scenario) -> None:
    require_fence(scenario, "/all")
    t = scenario.one("push manifest by digest")["target"]
    assert t.get("mediaType") == OCI_MANIFEST
    assert t.get("size") == len(scenario.manifest2)
    assert t.get("length") == len(scenario.manifest2)
    assert not t.get("tag"), t


def test_pull_events_for_manifest_and_blob_gets(scenario: Scenario) -> None:
    """`pull`: a manifest GET (by tag: `tag` set) and a blob GET, with the push target's fields."""
    require_fence(scenario, "/all")
    by_tag = scenario.one("pull manifest by tag")["target"]
    assert by_tag.get("tag") == "v1"
    assert by_tag.get("mediaType") == OCI_MANIFEST
    assert by_tag.get("size") == len(scenario.manifest1) == by_tag.get("length")
    assert by_tag.get("url") == f"{scenario.registry.url}/v2/{scenario.repo}/manifests/{sha256(scenario.manifest1)}"
    by_digest = scenario.one("pull manifest by digest")["target"]
    assert not by_digest.get("tag"), by_digest
    assert by_digest.get("size") == len(scenario.manifest2)
    blob = scenario.one("pull blob")["target"]
    assert blob.get("size") == len(scenario.layer) == blob.get("length"), blob
    assert blob.get("url") == f"{scenario.registry.url}/v2/{scenario.repo}/blobs/{sha256(scenario.layer)}"


def test_head_requests_send_no_pull_event(scenario: Scenario) -> None:
    """`pull` is sent for a blob `GET`, not `HEAD` (and a manifest HEAD pulls nothing either)."""
    require_fence(scenario, "/all")
    events = scenario.events()
    assert not [e for e in events if (e.get("request") or {}).get("id") in scenario.head_request_ids]
    d1, layer = sha256(scenario.manifest1), sha256(scenario.layer)
    pulls = [e for e in events if e.get("action") == "pull"]
    assert len([e for e in pulls if e["target"].get("digest") == d1]) == 1, "one manifest GET, one HEAD"
    assert len([e for e in pulls if e["target"].get("digest") == layer]) == 1, "one blob GET, one HEAD"


def test_mount_event(scenario: Scenario) -> None:
    """A cross-repository mount: `mount`, target as a blob push plus `fromRepository`."""
    require_fence(scenario, "/all")
    t = scenario.one("mount")["target"]
    digest = sha256(scenario.layer)
    assert t.get("mediaType") == OCTET_STREAM
    assert t.get("size") == len(scenario.layer) == t.get("length"), t
    assert t.get("repository") == scenario.other
    assert t.get("fromRepository") == scenario.repo
    assert t.get("url") == f"{scenario.registry.url}/v2/{scenario.other}/blobs/{digest}", t


def test_delete_events(scenario: Scenario) -> None:
    """`delete`: a tag (target `tag`, `repository`), a manifest by digest and a blob (target `digest`,
    `repository`: "only the digest and repository are sent", notifications.md)."""
    require_fence(scenario, "/all")
    tag = scenario.one("delete tag")["target"]
    assert tag.get("tag") == "v1"
    assert tag.get("repository") == scenario.repo
    extras = {}
    for name in ("delete manifest", "delete blob"):
        t = scenario.one(name)["target"]
        extra = {k: v for k, v in t.items() if k not in ("digest", "repository") and v not in (None, "", 0, [])}
        if extra:
            extras[name] = extra
    assert not extras, f"a delete target has only digest and repository; also sent: {extras}"
    deletes = [e for e in scenario.events() if e.get("action") == "delete"]
    assert not [e for e in deletes if e["target"].get("digest") == sha256(scenario.manifest1)], (
        "deleting a tag deletes only the tag, not its manifest"
    )


def _filtered(scenario: Scenario, path: str, dropped: Any) -> None:
    require_fence(scenario, "/all")
    require_fence(scenario, path)
    everything = scenario.events("/all")
    want = sorted(map(repr, (key(e) for e in everything if not dropped(e))))
    got = sorted(map(repr, (key(e) for e in scenario.events(path))))
    assert got == want
    assert len(want) < len(everything), "the filter must have dropped something in this scenario"


def test_ignoredmediatypes_drops_events_with_that_target_media_type(scenario: Scenario) -> None:
    """`ignoredmediatypes: [application/octet-stream]`: blob events are not published to the endpoint."""
    _filtered(scenario, "/nooctet", lambda e: e["target"].get("mediaType") == OCTET_STREAM)


def test_ignore_mediatypes_drops_events_with_that_target_media_type(scenario: Scenario) -> None:
    """`ignore.mediatypes: [<OCI manifest>]`: manifest push and pull events are not published."""
    _filtered(scenario, "/nomanifest", lambda e: e["target"].get("mediaType") == OCI_MANIFEST)


def test_ignore_actions_drops_those_actions(scenario: Scenario) -> None:
    """`ignore.actions: [pull]`: pull events are not published to the endpoint."""
    _filtered(scenario, "/nopull", lambda e: e.get("action") == "pull")


def test_requests_that_change_nothing_send_no_event(scenario: Scenario) -> None:
    """Events describe changes, written in the same transaction: a refused manifest PUT, an upload whose body
    does not match its digest, a DELETE or GET of something unknown send nothing."""
    require_fence(scenario, "/all")
    ids = {call.request_id for call, _, _ in scenario.failed}
    digests = {digest for _, _, digest in scenario.failed}
    everything = [e for p in scenario.receiver.posts("/all") for e in p.events]
    assert not [e for e in everything if (e.get("request") or {}).get("id") in ids]
    assert not [e for e in everything if (e.get("target") or {}).get("digest") in digests]


def test_a_4xx_answer_is_a_failure_and_the_events_are_sent_again(scenario: Scenario) -> None:
    """ "Any 2xx or 3xx answer delivers them; anything else ... is a failure and they are tried again"."""
    first = scenario.one("push blob (POST)")["id"]

    def tries() -> int:
        return sum(1 for p in scenario.receiver.posts("/gone") for e in p.events if e.get("id") == first)

    scenario.receiver.wait_for(lambda: tries() >= 2, timeout=15, what="the event sent again after a 404")


def test_disabled_endpoint_gets_nothing(scenario: Scenario) -> None:
    """`disabled: true`: notifications are disabled for the endpoint."""
    require_fence(scenario, "/all")
    assert scenario.receiver.requests("/off") == []


@pytest.mark.parametrize("path", ["/accepted", "/redirect"])
def test_2xx_and_3xx_answers_deliver_the_events(scenario: Scenario, path: str) -> None:
    """Any 2xx or 3xx answer delivers the events: each arrives, and is not sent again."""
    require_fence(scenario, "/all")
    require_fence(scenario, path)
    assert sorted(map(repr, map(key, scenario.events(path)))) == sorted(map(repr, map(key, scenario.events("/all"))))
    sent = [e["id"] for p in scenario.receiver.posts(path) for e in p.events]
    ours = {e["id"] for e in scenario.events(path)}
    repeated = {i for i in ours if sent.count(i) > 1}
    assert not repeated, f"events answered {path} were sent again: {repeated}"


def test_events_arrive_oldest_first(scenario: Scenario) -> None:
    """Up to 100 events per POST, oldest first, never reordered for one endpoint."""
    require_fence(scenario, "/all")
    arrival = scenario.events("/all")
    positions = []
    for name, exp in scenario.expected.items():
        found = [i for i, e in enumerate(arrival) if exp.matches(e)]
        assert found, name
        positions.append((found[0], name))
    assert [n for _, n in sorted(positions)] == list(scenario.expected)


def test_actor_is_the_authenticated_user(registry_factory: RegistryFactory, receiver: Receiver, tmp_path: Any) -> None:
    """`actor.name`: the authenticated user (notifications.md: "the subject or username associated with the
    request context")."""
    user, password = "ci-robot", f"pw-{uuid.uuid4().hex}"
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {user: password})
    reg = registry_factory(
        {
            "auth": {"htpasswd": {"realm": "ops", "path": str(htpasswd)}},
            "notifications": {"endpoints": [endpoint("hook", receiver.url("/hook"))]},
        },
        workers=2,
    )
    c = Client(reg.url, auth=(user, password))
    repo = unique_repo("actor")
    data = os.urandom(512)
    call = c.push_blob(repo, data)
    c.close()
    receiver.wait_for(
        lambda: any(e["target"].get("digest") == sha256(data) for e in receiver.delivered_events("/hook")),
        timeout=15,
        what="the push event",
    )
    event = next(e for e in receiver.delivered_events("/hook") if e["target"].get("digest") == sha256(data))
    assert event["actor"].get("name") == user
    assert event["request"]["id"] == call.request_id


def test_event_urls_follow_http_host_and_prefix_and_index_references(
    registry_factory: RegistryFactory, receiver: Receiver
) -> None:
    """`url` is built like every other URL of Portside: `http.host` then `http.prefix` (docs/http-behaviour.md,
    URLs); an image index pushed with `includereferences` lists its manifests in `references`."""
    reg = registry_factory(
        {
            "http": {"host": "https://registry.example.test", "prefix": "/mirror/"},
            "notifications": {
                "events": {"includereferences": True},
                "endpoints": [endpoint("hook", receiver.url("/h"))],
            },
        },
        workers=2,
    )
    c = Client(reg.url + "/mirror")
    repo = unique_repo("urls")
    images = [push_image(c, repo, layers=1) for _ in range(2)]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": i.digest, "size": len(i.manifest), "platform": p}
                for i, p in zip(images, PLATFORMS, strict=True)
            ],
        }
    ).encode()
    put = c.request("PUT", f"/v2/{repo}/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX})
    c.close()
    assert put.status == 201, put.response.text

    def pushed(digest: str) -> dict[str, Any] | None:
        found = [e for e in receiver.delivered_events("/h") if (e.get("target") or {}).get("digest") == digest]
        return found[0] if found else None

    receiver.wait_for(lambda: pushed(sha256(index)) is not None, timeout=15, what="the index push event")
    base = f"https://registry.example.test/mirror/v2/{repo}"
    blob = pushed(images[0].blob_digests[1])
    assert blob is not None
    assert blob["target"]["url"] == f"{base}/blobs/{images[0].blob_digests[1]}"
    event = pushed(sha256(index))
    assert event is not None
    t = event["target"]
    assert t.get("mediaType") == OCI_INDEX
    assert t.get("tag") == "multi"
    assert t.get("url") == f"{base}/manifests/{sha256(index)}"
    assert {r.get("digest") for r in t.get("references") or []} >= {i.digest for i in images}, t
