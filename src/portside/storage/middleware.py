"""Storage middlewares (`middleware.storage` in configuration): they change where clients fetch blobs from.

- `redirect`: blob reads answer 307 to `baseurl` + the blob's path (a CDN or web server in front of the
  storage).
- `cloudfront`: the same with CloudFront canned-policy signed URLs (RSA-SHA1), valid for `duration`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside.storage.driver import StorageDriver
from portside.storage.wrapper import DriverWrapper

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


def _join(baseurl: str, path: str) -> str:
    return baseurl.rstrip("/") + path


class RedirectMiddleware(DriverWrapper):
    def __init__(self, inner: StorageDriver, baseurl: str) -> None:
        super().__init__(inner)
        self.baseurl = baseurl

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return _join(self.baseurl, path)


def _cloudfront_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().translate(str.maketrans("+=/", "-_~"))


class CloudFrontMiddleware(DriverWrapper):
    def __init__(self, inner: StorageDriver, baseurl: str, privatekey: str, keypairid: str, duration: float) -> None:
        super().__init__(inner)
        self.baseurl = baseurl
        self.keypairid = keypairid
        self.duration = duration
        # Imported here, where a key is loaded: cryptography costs every worker memory it rarely needs.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(Path(privatekey).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{privatekey}: CloudFront signs with an RSA key")
        self._key: RSAPrivateKey = key

    def sign(self, url: str, expires: int) -> str:
        policy = json.dumps(
            {"Statement": [{"Resource": url, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}]},
            separators=(",", ":"),
        ).encode()
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = self._key.sign(policy, padding.PKCS1v15(), hashes.SHA1())
        return f"{url}?Expires={expires}&Signature={_cloudfront_b64(signature)}&Key-Pair-Id={self.keypairid}"

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        return self.sign(_join(self.baseurl, path), int(time.time() + self.duration))


MIDDLEWARES: dict[str, Callable[..., StorageDriver]] = {
    "redirect": RedirectMiddleware,
    "cloudfront": CloudFrontMiddleware,
}


def wrap(driver: StorageDriver, name: str, options: dict[str, Any]) -> StorageDriver:
    return MIDDLEWARES[name](driver, **options)
