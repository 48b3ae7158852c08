"""Manifest media types, descriptors and the schema registry that parses and validates pushed manifests."""

from portside.manifest.descriptor import Descriptor, DescriptorError, Platform
from portside.manifest.schema import Manifest, ManifestError, SchemaRegistry, default_registry

__all__ = [
    "Descriptor",
    "DescriptorError",
    "Manifest",
    "ManifestError",
    "Platform",
    "SchemaRegistry",
    "default_registry",
]
