"""The registry library: Namespace, Repository, BlobStore, BlobWriter, ManifestService, TagService.

It speaks in digests, descriptors and manifests; it knows nothing of HTTP, SQL or storage paths. The services
are protocols (`registry.interfaces`); the `Local*` classes implement them over the metadata store and a
storage driver.
"""

from portside.registry.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    RangeInvalid,
    RegistryError,
    SizeInvalid,
    TagInvalid,
    Unsupported,
    UpstreamError,
    UpstreamUnavailable,
)
from portside.registry.interfaces import (
    BlobContent,
    BlobDeleter,
    BlobIngester,
    BlobProvider,
    BlobStatter,
    BlobStore,
    BlobWriter,
    ByteReader,
    ManifestContent,
    ManifestService,
    Namespace,
    Page,
    Repository,
    TagService,
)
from portside.registry.manifests import parse_manifest_reference
from portside.registry.namespace import LocalNamespace
from portside.registry.options import RegistryOptions

__all__ = [
    "BlobContent",
    "BlobDeleter",
    "BlobIngester",
    "BlobProvider",
    "BlobStatter",
    "BlobStore",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "BlobWriter",
    "ByteReader",
    "DigestInvalid",
    "LocalNamespace",
    "ManifestBlobUnknown",
    "ManifestContent",
    "ManifestInvalid",
    "ManifestService",
    "ManifestTooLarge",
    "ManifestUnknown",
    "NameInvalid",
    "NameUnknown",
    "Namespace",
    "Page",
    "RangeInvalid",
    "RegistryError",
    "RegistryOptions",
    "Repository",
    "SizeInvalid",
    "TagInvalid",
    "TagService",
    "Unsupported",
    "UpstreamError",
    "UpstreamUnavailable",
    "parse_manifest_reference",
]
