"""A pull-through cache (a registry mirror): repositories answered from upstream registries and kept in the
local store, behind the library's interfaces, so the HTTP layer serves them as any other."""

from portside.proxy.namespace import ProxyNamespace, Upstream

__all__ = ["ProxyNamespace", "Upstream"]
