"""Deletes on a registry configured with `storage.delete.enabled: false`."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .oci import (
    Server,
    assert_blob_content,
    assert_error,
    assert_manifest_content,
    push_image,
    repo_name,
)


def test_deletes_are_405_unsupported_when_disabled(registry_factory: Callable[..., Server]) -> None:
    """OCI "Content Management": disabled deletion MUST be 400 or 405; behaviour doc: 405 UNSUPPORTED.

    Blob, manifest-by-digest and tag deletes are refused and the content stays.
    """
    server = registry_factory({"storage": {"delete": {"enabled": False}}})
    repo = repo_name()
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        image = push_image(client, repo, "kept")
        layer = image.layers[0]
        assert_error(client.delete(f"/v2/{repo}/blobs/{layer.digest}"), 405, "UNSUPPORTED")
        assert_error(client.delete(f"/v2/{repo}/manifests/{image.digest}"), 405, "UNSUPPORTED")
        assert_error(client.delete(f"/v2/{repo}/manifests/kept"), 405, "UNSUPPORTED")
        assert_blob_content(client.get(f"/v2/{repo}/blobs/{layer.digest}"), layer)
        assert_manifest_content(client.get(f"/v2/{repo}/manifests/kept"), image.manifest)
        assert_manifest_content(client.get(f"/v2/{repo}/manifests/{image.digest}"), image.manifest)
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["kept"]
