"""The registry library: Namespace, Repository, BlobStore, BlobWriter, ManifestService, TagService.

It speaks in digests, descriptors and manifests; it knows nothing of HTTP, SQL or storage paths.
"""

from portside.registry.blobs import BlobContent, BlobStore
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
)
from portside.registry.manifests import ManifestService, parse_manifest_reference
from portside.registry.namespace import Namespace
from portside.registry.options import RegistryOptions
from portside.registry.repository import Repository
from portside.registry.tags import TagService
from portside.registry.uploads import BlobWriter

__all__ = [
    "BlobContent",
    "BlobStore",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "BlobWriter",
    "DigestInvalid",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestService",
    "ManifestTooLarge",
    "ManifestUnknown",
    "NameInvalid",
    "NameUnknown",
    "Namespace",
    "RangeInvalid",
    "RegistryError",
    "RegistryOptions",
    "Repository",
    "SizeInvalid",
    "TagInvalid",
    "TagService",
    "Unsupported",
    "parse_manifest_reference",
]
