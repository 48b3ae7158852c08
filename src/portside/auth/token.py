"""The `token` access controller: Bearer JWTs as Docker's token authentication specification describes."""

from __future__ import annotations

import base64
import binascii
import datetime
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from portside.auth.access import Access, bearer_challenge, details
from portside.auth.controller import AccessController, AuthRequest, Challenge, Grant
from portside.auth.keys import libtrust_key_id

log = logging.getLogger("portside.auth")

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512")
LEEWAY: Final = 60


class InvalidToken(Exception):
    pass


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class TokenGrant(Grant):
    def __init__(self, claims: dict[str, Any]) -> None:
        self.user = claims.get("sub") or None
        self._actions: dict[tuple[str, str], set[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
                key = (str(entry.get("type")), str(entry.get("name")))
                self._actions.setdefault(key, set()).update(str(a) for a in entry["actions"])

    def allows(self, access: Access) -> bool:
        actions = self._actions.get((access.resource.type, access.resource.name), set())
        return access.action in actions or "*" in actions


class TokenVerifier:
    """Checks signature, issuer, audience and validity period; remembers tokens it has accepted."""

    def __init__(
        self,
        service: str,
        issuer: str,
        roots: Sequence[x509.Certificate],
        jwks: dict[str, PublicKeyTypes] | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
        cache_size: int = 4096,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.roots = list(roots)
        self._root_fingerprints = {c.fingerprint(hashes.SHA256()) for c in self.roots}
        self._keys_by_kid: dict[str, PublicKeyTypes] = {libtrust_key_id(c.public_key()): c.public_key() for c in roots}
        self._keys_by_kid.update(jwks or {})
        self.algorithms = tuple(algorithms)
        self._accepted: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size

    def _trusted_chain_key(self, x5c: Any) -> PublicKeyTypes:
        if not isinstance(x5c, list) or not x5c:
            raise InvalidToken("x5c must be a non-empty list")
        try:
            chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in x5c]
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidToken(f"unreadable x5c chain: {exc}") from None
        now = datetime.datetime.now(datetime.UTC)
        for cert in chain:
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise InvalidToken("a certificate of the x5c chain is outside its validity period")
        for child, parent in itertools.pairwise(chain):
            if not _issued_by(child, parent):
                raise InvalidToken("x5c chain is broken")
        last = chain[-1]
        if last.fingerprint(hashes.SHA256()) not in self._root_fingerprints and not any(
            _issued_by(last, root) for root in self.roots
        ):
            raise InvalidToken("x5c chain does not lead to a trusted root")
        return chain[0].public_key()

    def _candidate_keys(self, header: dict[str, Any]) -> list[PublicKeyTypes]:
        if "x5c" in header:
            return [self._trusted_chain_key(header["x5c"])]
        kid = header.get("kid")
        if kid:
            key = self._keys_by_kid.get(kid)
            if key is None:
                raise InvalidToken(f"unknown signing key {str(kid)[:80]}")
            return [key]
        return [root.public_key() for root in self.roots]

    def verify(self, token: str) -> dict[str, Any]:
        cached = self._accepted.get(token)
        if cached is not None and cached["exp"] + LEEWAY > time.time():
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise InvalidToken(f"signing algorithm {str(algorithm)[:20]!r} is not accepted")
        last_error: Exception | None = None
        for key in self._candidate_keys(header):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,  # type: ignore[arg-type]
                    algorithms=[algorithm],
                    audience=self.service,
                    issuer=self.issuer,
                    leeway=LEEWAY,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError, ValueError) as exc:
                # Without a kid every trusted key is a candidate; one of another type or curve is not the one.
                last_error = exc
                continue
            except jwt.InvalidTokenError as exc:
                raise InvalidToken(str(exc)) from None
            self._accepted[token] = claims
            while len(self._accepted) > self._cache_size:
                self._accepted.popitem(last=False)
            return claims
        raise InvalidToken(f"signature does not verify: {last_error}")


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # cryptography raises several types for a bad signature or mismatched names
        return False
    return True


class TokenController(AccessController):
    def __init__(
        self,
        verifier: TokenVerifier,
        realm: str = "",
        autoredirect: bool = False,
        autoredirectpath: str = "/auth/token",
    ) -> None:
        self.verifier = verifier
        self.realm = realm
        self.autoredirect = autoredirect or not realm
        self.autoredirectpath = autoredirectpath

    def realm_for(self, request: AuthRequest) -> str:
        return request.base_url + self.autoredirectpath if self.autoredirect else self.realm

    def _challenge(self, request: AuthRequest, needed: Sequence[Access], message: str, error: str | None) -> Challenge:
        header = bearer_challenge(self.realm_for(request), self.verifier.service, needed, error)
        return Challenge(401, "UNAUTHORIZED", message, header, details(needed))

    async def authorize(self, request: AuthRequest, needed: Sequence[Access]) -> Grant:
        token = bearer_token(request.authorization)
        if token is None:
            raise self._challenge(request, needed, "authentication required", None)
        try:
            claims = self.verifier.verify(token)
        except InvalidToken as exc:
            log.warning("rejected token from %s: %s", request.remote, exc)
            raise self._challenge(request, needed, "invalid token", "invalid_token") from None
        grant = TokenGrant(claims)
        if not all(grant.allows(access) for access in needed):
            raise self._challenge(request, needed, "insufficient scope", "insufficient_scope")
        return grant
