"""A client of any registry that speaks the Docker Registry HTTP API V2 / OCI Distribution (after distribution's
`registry/client`): `RegistryClient` for the transport (Docker's token flow, Basic auth, TLS, timeouts, retries
that honour `Retry-After`), and `RemoteRepository` with its blob store, manifest service and tag service, which
implement the library's interfaces (`portside.registry.interfaces`) so they stand wherever a repository does.

    async with RegistryClient("https://registry-1.docker.io") as client:
        repo = client.repository("library/alpine")
        manifest = await repo.manifests.get_by_tag("latest")
"""

from portside.client.errors import UpstreamError, UpstreamUnavailable
from portside.client.repository import RemoteBlobStore, RemoteManifestService, RemoteRepository, RemoteTagService
from portside.client.transport import RegistryClient, Timeouts

__all__ = [
    "RegistryClient",
    "RemoteBlobStore",
    "RemoteManifestService",
    "RemoteRepository",
    "RemoteTagService",
    "Timeouts",
    "UpstreamError",
    "UpstreamUnavailable",
]
