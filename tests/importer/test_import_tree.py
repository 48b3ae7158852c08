"""`portside import` over a store the Go registry wrote through its HTTP API, with damage added by hand.

docs/operations.md, Migrating from Docker Distribution:
- "Every manifest is read from its blob and verified against its digest. What cannot be adopted faithfully
  is reported and skipped, never recorded. Uploads in progress (`_uploads`) are ignored." (with the table of
  reasons: `schema1`, `blob-missing`, `dangling-tag`, `digest-mismatch`, `missing-reference`, ...)
- "Each repository is committed on its own [...] an import interrupted at any point, even with SIGKILL,
  leaves every repository either as it was or with all it recorded. Run again, the import records only what
  the metadata store lacks: a store that did not change is read and nothing is written."
- "`--dry-run` reads and verifies everything and records nothing" and "`--repository NAME` (repeatable)
  imports only those repositories."
- "A tag present on both sides at different manifests goes to whichever was written last"
- "`portside serve` logs a warning at start-up when the storage holds a distribution `repositories/` tree and
  the metadata store knows no repository, naming `portside import`."
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks.gostore import populate
from click.testing import CliRunner

from portside.cli import main
from tests.conftest import RegistryFactory
from tests.importer.conftest import GoFactory
from tests.importer.support import (
    V2,
    catalog,
    portside_config,
    raw_manifest,
    run_import,
    sha256,
    sqlite_content,
    sqlite_rows,
    tag_list,
    tree_snapshot,
    wait_for,
    write_config,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def fill(go_url: str, repositories: int, manifests: int, **extra: Any) -> Any:
    return asyncio.run(populate(go_url, repositories, manifests, concurrency=8, **extra))


class Tree:
    """Writes into a filesystem store's repositories tree as distribution lays it out."""

    def __init__(self, root: Path) -> None:
        self.v2 = root / V2

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        hex_ = digest.split(":")[1]
        path = self.v2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return digest

    def link(self, repo: str, *parts: str, digest: str) -> None:
        path = self.v2 / "repositories" / repo / Path(*parts) / "link"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(digest)

    def revision(self, repo: str, digest: str) -> None:
        self.link(repo, "_manifests", "revisions", "sha256", digest.split(":")[1], digest=digest)

    def tag(self, repo: str, tag: str, digest: str) -> None:
        self.link(repo, "_manifests", "tags", tag, "current", digest=digest)
        self.link(repo, "_manifests", "tags", tag, "index", "sha256", digest.split(":")[1], digest=digest)

    def layer(self, repo: str, digest: str) -> None:
        self.link(repo, "_layers", "sha256", digest.split(":")[1], digest=digest)


SCHEMA1 = {
    "schemaVersion": 1,
    "name": "REPO",
    "tag": "old",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
    "history": [{"v1Compatibility": '{"id":"x"}'}],
    "signatures": [{"header": {"alg": "ES256"}, "signature": "c2ln", "protected": "cHJvdGVjdGVk"}],
}


def damage(root: Path, repo: str, other: str) -> dict[tuple[str, str, str, str], str]:
    """Add to `repo` what must be skipped; returns the expected skip reports (value: a digest to check)."""
    tree = Tree(root)
    expected: dict[tuple[str, str, str, str], str] = {}
    # schema1, and a tag on it
    schema1 = tree.blob(json.dumps({**SCHEMA1, "name": repo}, indent=3).encode())
    tree.revision(repo, schema1)
    tree.tag(repo, "old", schema1)
    expected[(repo, "manifest", schema1, "schema1")] = schema1
    expected[(repo, "tag", "old", "dangling-tag")] = schema1
    # a tag to a revision that does not exist
    ghost = sha256(b"no such manifest")
    tree.tag(repo, "ghost", ghost)
    expected[(repo, "tag", "ghost", "dangling-tag")] = ghost
    # a revision whose blob is missing, tagged
    missing = sha256(b"a manifest whose blob is gone")
    tree.revision(repo, missing)
    tree.tag(repo, "gone", missing)
    expected[(repo, "manifest", missing, "blob-missing")] = missing
    expected[(repo, "tag", "gone", "dangling-tag")] = missing
    # a layer link to nothing
    nothing = sha256(b"a layer nobody uploaded")
    tree.layer(repo, nothing)
    expected[(repo, "blob", nothing, "blob-missing")] = nothing
    # a manifest blob whose bytes do not match its digest
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    honest = tree.blob(body)
    hex_ = honest.split(":")[1]
    (tree.v2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data").write_bytes(body + b" ")
    tree.revision(repo, honest)
    expected[(repo, "manifest", honest, "digest-mismatch")] = honest
    # an index over a manifest the repository does not have
    child = sha256(b"a child that was never pushed")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": 9}],
        }
    ).encode()
    orphan = tree.blob(index)
    tree.revision(repo, orphan)
    tree.tag(repo, "orphan", orphan)
    expected[(repo, "manifest", orphan, "missing-reference")] = orphan
    expected[(repo, "tag", "orphan", "dangling-tag")] = orphan
    # a deleted revision (distribution leaves the directory) and a deleted layer link: nothing to report
    deleted = tree.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "x": 1}).encode())
    (tree.v2 / "repositories" / repo / "_manifests/revisions/sha256" / deleted.split(":")[1]).mkdir(parents=True)
    (tree.v2 / "repositories" / repo / "_layers/sha256" / ("b" * 64)).mkdir(parents=True)
    # a directory no storage path can name (so no repository name either): passed over
    (tree.v2 / "repositories" / "has space" / "_manifests" / "revisions").mkdir(parents=True)
    # an upload left half done, and a name Portside's grammar refuses
    (tree.v2 / "repositories" / other / "_uploads" / "0f1e" / "data").parent.mkdir(parents=True)
    (tree.v2 / "repositories" / other / "_uploads" / "0f1e" / "data").write_bytes(b"partial")
    bad = tree.blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "y": 1}).encode())
    tree.revision("Bad_Name", bad)
    expected[("Bad_Name", "repository", "Bad_Name", "invalid-name")] = bad
    return expected


@pytest.mark.slow
def test_damage_is_reported_and_skipped_and_the_rest_imported_once(
    go_registry: GoFactory, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    pushed = fill(go.url, 6, 18, indexes=True, untagged=0.2)
    repo, other = sorted(pushed.tags)[:2]
    go_tags = {name: tag_list(go.url, name) for name in catalog(go.url)}
    expected = damage(root, repo, other)
    config = portside_config(tmp_path, {"filesystem": {"rootdirectory": str(root)}})
    config_path = write_config(tmp_path, config)
    before = tree_snapshot(root)

    dry = run_import(config_path, "--dry-run")
    assert dry.skipped == set(expected), sorted(dry.skipped ^ set(expected))
    assert sqlite_content(tmp_path / "portside.db")["repositories"] == set(), "a dry run recorded something"

    first = run_import(config_path)
    assert tree_snapshot(root) == before, "the import wrote into distribution's tree"
    assert first.skipped == set(expected), sorted(first.skipped ^ set(expected))
    assert dry.repositories == {name: {**event, "dry_run": True} for name, event in first.repositories.items()}, (
        "the dry run printed something else than the import did"
    )
    summary = first.summary
    assert summary["repositories"] == len(pushed.tags)
    assert summary["manifests"] == pushed.manifests
    assert summary["tags"] == sum(len(t) for t in pushed.tags.values())
    assert summary["skipped"] == {
        "blob-missing": 2,
        "dangling-tag": 4,
        "digest-mismatch": 1,
        "invalid-name": 1,
        "missing-reference": 1,
        "schema1": 1,
    }

    portside = registry_factory(replace=config)
    assert catalog(portside.url) == sorted(pushed.tags)
    for name, tags in go_tags.items():
        assert tag_list(portside.url, name) == tags, name
        for digest in pushed.untagged[name]:
            assert raw_manifest(portside.url, name, digest).content == raw_manifest(go.url, name, digest).content
    for (name, kind, item, _), digest in expected.items():
        if kind == "tag":
            r = raw_manifest(portside.url, name, item)
            assert r.status_code == 404, (item, r.text)
            assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN", (item, r.text)
        if kind in ("tag", "manifest") and name != "Bad_Name":
            assert raw_manifest(portside.url, name, digest).status_code == 404, (kind, item)
        if kind == "blob":
            assert httpx.head(f"{portside.url}/v2/{name}/blobs/{digest}").status_code == 404

    rows = sqlite_rows(tmp_path / "portside.db")
    second = run_import(config_path)
    assert (second.summary["manifests"], second.summary["tags"], second.summary["blobs"]) == (0, 0, 0)
    assert second.skipped == set(expected)
    assert sqlite_rows(tmp_path / "portside.db") == rows, "a second import of an unchanged store wrote something"


def test_nested_repositories_are_found_and_the_filter_imports_only_those_named(
    go_registry: GoFactory, tmp_path: Path
) -> None:
    """A repository may hold further repositories below it (`lib` and `lib/sub`): the walk finds every one."""
    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    pushed = fill(go.url, 4, 8, names=["lib", "lib/sub", "lib/sub/deep", "other"])
    config_path = write_config(tmp_path, portside_config(tmp_path, {"filesystem": {"rootdirectory": str(root)}}))
    assert set(run_import(config_path, "--dry-run").repositories) == set(pushed.tags) == set(catalog(go.url))
    text = CliRunner().invoke(main, ["import", str(config_path), "--dry-run"])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines[:-1]) == [f"would import {n}" for n in sorted(pushed.tags)]
    assert lines[-1].startswith("4 repositories read: 8 manifests, 8 tags, "), lines[-1]
    assert "would be recorded" in lines[-1]
    wanted = ["lib", "lib/sub/deep"]
    done = run_import(config_path, *[f"--repository={n}" for n in wanted], "--repository", "no/such/repo")
    assert set(done.repositories) == set(wanted)
    assert done.skipped == {("no/such/repo", "repository", "no/such/repo", "not-found")}
    content = sqlite_content(tmp_path / "portside.db")
    assert {name for (name,) in content["repositories"]} == set(wanted)
    assert {(n, t) for n, t, _ in content["tags"]} == {(n, t) for n in wanted for t in pushed.tags[n]}


def test_later_pushes_on_either_side_win_a_tag(
    go_registry: GoFactory, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """Import, then a push to Portside moves a tag: importing again keeps it (reported as newer in Portside).
    Then the Go registry moves it again: the next import takes distribution's, and picks up its new tag."""
    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    pushed = fill(go.url, 1, 2, names=["app"])
    config = portside_config(tmp_path, {"filesystem": {"rootdirectory": str(root)}})
    config_path = write_config(tmp_path, config)
    run_import(config_path)
    portside = registry_factory(replace=config)

    def repush(url: str, tag: str, note: str) -> str:
        body = json.loads(raw_manifest(go.url, "app", pushed.tags["app"]["v0"]).content)
        body["annotations"] = {"org.example.note": note}
        data = json.dumps(body).encode()
        r = httpx.put(f"{url}/v2/app/manifests/{tag}", content=data, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        return sha256(data)

    ours = repush(portside.url, "v0", "pushed to portside")
    kept = run_import(config_path)
    assert kept.skipped == {("app", "tag", "v0", "newer-in-portside")}
    assert sha256(raw_manifest(portside.url, "app", "v0").content) == ours

    theirs = repush(go.url, "v0", "pushed to distribution afterwards")
    fresh = repush(go.url, "v9", "a new tag in distribution")
    moved = run_import(config_path)
    assert moved.skipped == set()
    assert (moved.summary["manifests"], moved.summary["tags"]) == (2, 2)
    assert sha256(raw_manifest(portside.url, "app", "v0").content) == theirs
    assert sha256(raw_manifest(portside.url, "app", "v9").content) == fresh
    assert tag_list(portside.url, "app") == ["v0", "v1", "v9"]


@pytest.mark.slow
def test_an_import_killed_midway_completes_when_run_again(go_registry: GoFactory, tmp_path: Path) -> None:
    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    pushed = fill(go.url, 40, 120, indexes=True)
    storage = {"filesystem": {"rootdirectory": str(root)}}
    killed_config = write_config(tmp_path, portside_config(tmp_path, storage))
    process = subprocess.Popen(
        [sys.executable, "-m", "portside", "import", str(killed_config), "--json", "--concurrency", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    wait_for(lambda: json.loads(process.stdout.readline() or "{}").get("event") == "repository", 120, "a repository")
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL
    with sqlite3.connect(tmp_path / "portside.db") as conn:
        recorded = conn.execute("SELECT count(*) FROM repositories").fetchone()[0]
    assert 1 <= recorded < len(pushed.tags), f"{recorded} repositories recorded: the kill did not land midway"

    resumed = run_import(killed_config)
    assert resumed.summary["repositories"] == len(pushed.tags)
    assert resumed.skipped == set()
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    reference = write_config(reference_dir, portside_config(reference_dir, storage))
    run_import(reference)
    assert sqlite_content(tmp_path / "portside.db") == sqlite_content(reference_dir / "portside.db")


def test_serve_warns_until_the_store_is_imported(
    go_registry: GoFactory, registry_factory: RegistryFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`portside serve` over a distribution tree and an empty metadata store names the command; once the
    store is imported, the same start-up check (run here in-process) says nothing."""
    from portside.config import load_config
    from portside.service import warn_if_not_imported

    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    fill(go.url, 1, 1)
    config = portside_config(tmp_path, {"filesystem": {"rootdirectory": str(root)}})
    portside = registry_factory(replace=config)
    assert "run `portside import`" in portside.log_path.read_text()
    portside.stop()
    path = write_config(tmp_path, config)
    with caplog.at_level("WARNING", logger="portside.import"):
        warn_if_not_imported(load_config(path))
    assert "portside import" in caplog.text, "the check in-process agrees with serve before the import"
    caplog.clear()
    run_import(path)
    with caplog.at_level("WARNING", logger="portside.import"):
        warn_if_not_imported(load_config(path))
    assert caplog.text == ""


def test_postgresql_records_what_sqlite_does(go_registry: GoFactory, postgres_dsn: str, tmp_path: Path) -> None:
    """The same store imported into PostgreSQL and into SQLite: served the same, and a second import into
    PostgreSQL records nothing."""
    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    pushed = fill(go.url, 3, 9, indexes=True)
    storage = {"filesystem": {"rootdirectory": str(root)}}
    first = run_import(write_config(tmp_path, portside_config(tmp_path, storage, postgres_dsn), "pg.yml"))
    lite = run_import(write_config(tmp_path, portside_config(tmp_path, storage)))
    assert first.summary == lite.summary
    assert first.summary["manifests"] == pushed.manifests
    again = run_import(tmp_path / "pg.yml")
    assert (again.summary["manifests"], again.summary["tags"], again.summary["blobs"]) == (0, 0, 0)
    assert again.summary["already"] == {k: first.summary[k] for k in ("manifests", "tags", "blobs")}


async def test_a_repository_recorded_in_small_batches_ends_as_in_one(go_registry: GoFactory, tmp_path: Path) -> None:
    """A repository with more new manifests than a transaction takes is recorded in several, children before
    the indexes that list them and tags last; the outcome is the same as in one transaction."""
    from portside.metadata.engine import migrate, open_database
    from portside.metadata.imports import ImportStore
    from portside.registry.importer import Importer
    from portside.storage import factory
    from portside.storage.distribution import DistributionTree

    root = tmp_path / "store"
    go = go_registry({"filesystem": {"rootdirectory": str(root)}})
    pushed = await populate(go.url, 1, 12, indexes=True, names=["big"], concurrency=8)
    outcomes = []
    for name, flush in (("small", 2), ("whole", 10_000)):
        db = open_database(f"sqlite:///{tmp_path / name}.db")
        await migrate(db)
        driver = factory.create("filesystem", {"rootdirectory": str(root)})
        try:
            summary = await Importer(DistributionTree(driver), ImportStore(db), flush_manifests=flush).run()
        finally:
            await db.dispose()
            await driver.close()
        assert summary.skipped == {}
        assert (summary.manifests, summary.tags) == (pushed.manifests, 13)
        outcomes.append(sqlite_content(tmp_path / f"{name}.db"))
    assert outcomes[0] == outcomes[1]
