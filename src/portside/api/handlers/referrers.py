"""`/v2/<name>/referrers/<digest>`: the manifests whose `subject` is a given manifest."""

from __future__ import annotations

import json

from aiohttp import web

from portside.api.context import Context
from portside.api.handlers.blobs import parse_digest
from portside.manifest import mediatypes as mt
from portside.manifest.descriptor import is_media_type


async def list_referrers(ctx: Context) -> web.StreamResponse:
    repo = ctx.repository()
    subject = parse_digest(ctx.params["digest"])
    artifact_type = ctx.query("artifactType") or None
    # Every artifact type recorded is a media type (pushes are validated), so a filter that is none (a control
    # character in it, say) matches nothing, and is not asked of the store.
    matchable = artifact_type is None or is_media_type(artifact_type)
    descriptors = await repo.referrers(subject, artifact_type) if matchable else []
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in descriptors],
    }
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    return web.Response(body=json.dumps(body).encode(), headers=headers)
