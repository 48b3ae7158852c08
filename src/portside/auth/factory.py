"""Access controllers and the token issuer, built from the `auth:` and `tokenserver:` configuration.

Token authentication's modules are imported only when it is configured: PyJWT and cryptography add some
20 MiB to every worker process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portside.auth.controller import AccessController
from portside.auth.htpasswd import Htpasswd, HtpasswdController
from portside.auth.policy import Policy
from portside.auth.silly import SillyController
from portside.auth.watched import WatchedFile
from portside.config import Config

if TYPE_CHECKING:
    from portside.auth.keys import SigningKey
    from portside.tokenserver.issuer import TokenIssuer


def signing_key(config: Config) -> SigningKey | None:
    """The built-in token server's key, created on first use."""
    if config.tokenserver is None or config.auth is None or config.auth.token is None:
        return None
    from portside.auth.keys import load_or_create_signing_key

    return load_or_create_signing_key(
        config.token_keydir(), config.tokenserver.algorithm, f"{config.auth.token.issuer} token signer"
    )


def build_controller(config: Config) -> AccessController | None:
    auth = config.auth
    if auth is None:
        return None
    if auth.silly is not None:
        return SillyController(auth.silly.realm, auth.silly.service)
    if auth.htpasswd is not None:
        return HtpasswdController(auth.htpasswd.realm, auth.htpasswd.path, auth.htpasswd.policy)
    from portside.auth.keys import load_certificates, load_jwks
    from portside.auth.token import ALGORITHMS, TokenController, TokenVerifier

    token = auth.token
    assert token is not None
    roots = load_certificates(token.rootcertbundle) if token.rootcertbundle else []
    key = signing_key(config)
    if key is not None:
        roots.append(key.certificate)
    verifier = TokenVerifier(
        service=token.service,
        issuer=token.issuer,
        roots=roots,
        jwks=load_jwks(token.jwks) if token.jwks else None,
        algorithms=token.signingalgorithms or ALGORITHMS,
    )
    if config.tokenserver is not None and not token.realm:
        return TokenController(verifier, autoredirect=True, autoredirectpath=config.tokenserver.path)
    return TokenController(verifier, token.realm, token.autoredirect, token.autoredirectpath)


def build_issuer(config: Config) -> TokenIssuer | None:
    key = signing_key(config)
    if key is None or config.tokenserver is None or config.auth is None or config.auth.token is None:
        return None
    from portside.tokenserver.issuer import TokenIssuer

    server = config.tokenserver
    return TokenIssuer(
        key=key,
        issuer=config.auth.token.issuer,
        service=config.auth.token.service,
        users=Htpasswd(server.htpasswd),
        policy=WatchedFile(server.policy, Policy.load) if server.policy else None,
        expiration=server.expiration,
        refresh_expiration=server.refreshexpiration,
    )
