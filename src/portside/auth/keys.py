"""Signing keys and certificates for tokens: loading bundles and JWKS, generating a key, libtrust key IDs."""

from __future__ import annotations

import base64
import datetime
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

Algorithm = Literal["ES256", "RS256", "EdDSA"]


class KeyFileError(ValueError):
    """A key, certificate or JWKS file that cannot be used."""


def libtrust_key_id(key: PublicKeyTypes) -> str:
    """Docker's libtrust key ID: base32 of the first 240 bits of sha256(DER public key), in groups of four."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def load_certificates(path: str) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read certificate bundle {path}: {exc.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeyFileError(f"{path} holds no PEM certificates: {exc}") from None
    return certificates


def load_jwks(path: str) -> dict[str, PublicKeyTypes]:
    """Public keys by `kid` from a JWKS file (`{"keys": [...]}`)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read JWKS {path}: {exc}") from None
    keys: dict[str, PublicKeyTypes] = {}
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        kid = jwk.get("kid")
        kty = jwk.get("kty")
        if not kid or kty not in ("RSA", "EC", "OKP"):
            raise KeyFileError(f"{path}: every key needs a kid and a kty of RSA, EC or OKP")
        try:
            key: Any = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, ValueError, TypeError, KeyError) as exc:
            raise KeyFileError(f"{path}: key {kid!r} is unreadable: {exc}") from None
        keys[kid] = key.public_key() if hasattr(key, "private_bytes") else key
    return keys


SigningPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """The token server's private key, its self-signed certificate, and the JWT header that names them."""

    private_key: SigningPrivateKey
    certificate: x509.Certificate
    algorithm: str

    @property
    def key_id(self) -> str:
        return libtrust_key_id(self.certificate.public_key())

    def jwt_headers(self) -> dict[str, Any]:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {"kid": self.key_id, "x5c": [base64.b64encode(der).decode()]}


def _algorithm_of(key: SigningPrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise KeyFileError(f"unsupported signing key type {type(key).__name__}")


def _generate(algorithm: Algorithm) -> SigningPrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _self_signed(key: SigningPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest)


def load_or_create_signing_key(keydir: str, algorithm: Algorithm, common_name: str) -> SigningKey:
    """The key in `keydir` (key.pem, cert.pem), created on first use and kept. Concurrent starts sharing the
    directory take a lock, so exactly one creates the pair and the others read it."""
    directory = Path(keydir)
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    if not key_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not key_path.exists():
                key = _generate(algorithm)
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                cert_path.write_bytes(_self_signed(key, common_name).public_bytes(serialization.Encoding.PEM))
                tmp = key_path.with_suffix(".tmp")
                tmp.write_bytes(pem)
                os.chmod(tmp, 0o600)
                os.replace(tmp, key_path)
    try:
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot load the token signing key from {keydir}: {exc}") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{key_path}: unsupported key type {type(loaded).__name__}")
    return SigningKey(loaded, certificate, _algorithm_of(loaded))
