"""Media types of the manifests Portside understands."""

from __future__ import annotations

from typing import Final

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# Layers that may live outside the registry, fetched from their `urls`.
FOREIGN_LAYERS: Final = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

IMAGE_MANIFESTS: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA1: Final = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
MANIFESTS: Final = IMAGE_MANIFESTS | INDEXES
