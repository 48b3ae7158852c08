"""Storage middlewares: redirect URLs for a CDN, and CloudFront's canned-policy signatures."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from portside.storage.drivers.inmemory import InMemoryDriver
from portside.storage.middleware import CloudFrontMiddleware, RedirectMiddleware, wrap


async def test_redirect_points_at_the_base_url() -> None:
    driver = RedirectMiddleware(InMemoryDriver(), "https://cdn.example.com/registry/")
    url = await driver.redirect_url("/docker/registry/v2/blobs/sha256/ab/abc/data")
    assert url == "https://cdn.example.com/registry/docker/registry/v2/blobs/sha256/ab/abc/data"
    await driver.put_content("/x", b"still a driver")
    assert await driver.get_content("/x") == b"still a driver"


async def test_cloudfront_urls_carry_a_verifiable_canned_policy_signature(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    driver = wrap(
        InMemoryDriver(),
        "cloudfront",
        {"baseurl": "https://d111.cloudfront.net", "privatekey": str(pem), "keypairid": "APKAEXAMPLE", "duration": 60},
    )
    assert isinstance(driver, CloudFrontMiddleware)
    url = await driver.redirect_url("/blob/data")
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://d111.cloudfront.net/blob/data"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["Key-Pair-Id"] == "APKAEXAMPLE"
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Resource": "https://d111.cloudfront.net/blob/data",
                    "Condition": {"DateLessThan": {"AWS:EpochTime": int(query["Expires"])}},
                }
            ]
        },
        separators=(",", ":"),
    ).encode()
    signature = base64.b64decode(query["Signature"].translate(str.maketrans("-_~", "+=/")))
    key.public_key().verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())
