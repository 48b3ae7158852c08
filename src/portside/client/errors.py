"""What can go wrong talking to another registry, beyond what the library's errors already say (an unknown
manifest is `ManifestUnknown`, whichever side it is on): the library's own upstream errors."""

from portside.registry.errors import UpstreamError, UpstreamUnavailable

__all__ = ["UpstreamError", "UpstreamUnavailable"]
