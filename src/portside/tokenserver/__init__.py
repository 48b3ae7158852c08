"""Portside's built-in token server: users from htpasswd, a policy file, tokens per Docker's specification."""

from portside.tokenserver.issuer import InvalidGrant, TokenIssuer

__all__ = ["InvalidGrant", "TokenIssuer"]
