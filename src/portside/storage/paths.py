"""Where things live inside a storage driver.

Blobs keep Docker Distribution's layout, so an existing distribution store can be adopted:

    /docker/registry/v2/blobs/<algorithm>/<first two hex>/<hex>/data

Uploads in progress live apart from repositories, one directory per session, so purging them is one listing:

    /docker/registry/v2/uploads/<upload id>/data
"""

from __future__ import annotations

from typing import Final

from portside.digest import Digest

ROOT: Final = "/docker/registry/v2"
BLOBS: Final = f"{ROOT}/blobs"
UPLOADS: Final = f"{ROOT}/uploads"


def blob_dir(digest: Digest) -> str:
    encoded = digest.encoded
    return f"{BLOBS}/{digest.algorithm}/{encoded[:2]}/{encoded}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def upload_dir(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


def upload_data(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/data"
