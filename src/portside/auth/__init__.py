"""Access control: who may do what. Controllers (silly, htpasswd, token) behind one interface; policies."""

from portside.auth.access import Access, Resource, Scope, parse_scope, repository_access
from portside.auth.controller import AccessController, AllowAll, AuthRequest, Challenge, Grant

__all__ = [
    "Access",
    "AccessController",
    "AllowAll",
    "AuthRequest",
    "Challenge",
    "Grant",
    "Resource",
    "Scope",
    "parse_scope",
    "repository_access",
]
