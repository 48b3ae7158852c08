"""The S3 driver (AWS S3 and S3-compatible stores), with Docker Distribution's `storage.s3` keys.

Appending writers are S3 multipart uploads, so an upload can be resumed by any instance: parts of `chunksize`
(at least 5 MiB) are uploaded as bytes arrive, and what is left over when a request ends (less than a part) is
kept in a `<key>.pending` object until the next request or the commit, where it becomes the last part. Memory
per writer is bounded by `chunksize`. Directories are key prefixes; in-progress multipart uploads count as
content, so upload purging can find and abort orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from portside.storage.driver import (
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    PathNotFound,
    StorageDriver,
    StorageError,
    check_dir_path,
)
from portside.storage.drivers.objects import ObjectKeys, PartWriter

MiB = 1024 * 1024
MIN_CHUNK = 5 * MiB
PENDING_SUFFIX = ".pending"
REDIRECT_SECONDS = 20 * 60


def _not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("NoSuchKey", "404", "NotFound", "NoSuchUpload") or status == 404


class _Reader(FileReader):
    def __init__(self, body: Any) -> None:
        self._body = body

    async def read(self, size: int) -> bytes:
        data: bytes = await self._body.read(size)
        return data

    async def close(self) -> None:
        self._body.close()


class _Writer(PartWriter):
    def __init__(
        self, driver: S3Driver, key: str, upload_id: str | None, parts: list[dict[str, Any]], pending: bytes
    ) -> None:
        super().__init__(driver.chunksize, sum(int(p["Size"]) for p in parts) + len(pending), pending)
        self._driver = driver
        self._key = key
        self._upload_id = upload_id
        self._parts = parts
        self._flushed_pending = bytes(pending)
        self._closed = False

    async def _store_part(self, data: bytes | bytearray) -> None:
        client = self._driver.client
        if self._upload_id is None:
            created = await client.create_multipart_upload(**self._driver.put_args(self._key))
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        result = await client.upload_part(
            Bucket=self._driver.bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=bytes(data)
        )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"], "Size": len(data)})

    async def commit(self) -> None:
        driver = self._driver
        if self._upload_id is None:
            await driver.client.put_object(Body=bytes(self._buffer), **driver.put_args(self._key))
        else:
            if self._buffer:
                await self._store_part(self._buffer)
            await driver.client.complete_multipart_upload(
                Bucket=driver.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self._parts]},
            )
        self._buffer = bytearray()
        await driver.delete_key(self._key + PENDING_SUFFIX)
        self._closed = True

    async def cancel(self) -> None:
        driver = self._driver
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                await driver.client.abort_multipart_upload(
                    Bucket=driver.bucket, Key=self._key, UploadId=self._upload_id
                )
        await driver.delete_key(self._key + PENDING_SUFFIX)
        await driver.delete_key(self._key)
        self._closed = True

    async def close(self) -> None:
        """Keep what is buffered for the next writer: the bytes past the last part go to the pending object."""
        if self._closed:
            return
        self._closed = True
        driver = self._driver
        if bytes(self._buffer) == self._flushed_pending:
            return
        if self._buffer:
            await driver.client.put_object(
                Bucket=driver.bucket, Key=self._key + PENDING_SUFFIX, Body=bytes(self._buffer)
            )
        else:
            await driver.delete_key(self._key + PENDING_SUFFIX)


class S3Driver(ObjectKeys, StorageDriver):
    name = "s3"

    def __init__(
        self,
        bucket: str,
        region: str = "us-east-1",
        regionendpoint: str = "",
        accesskey: str = "",
        secretkey: str = "",
        encrypt: bool = False,
        keyid: str = "",
        secure: bool = True,
        skipverify: bool = False,
        chunksize: int = 10 * MiB,
        multipartcopychunksize: int = 32 * MiB,
        multipartcopymaxconcurrency: int = 100,
        multipartcopythresholdsize: int = 32 * MiB,
        rootdirectory: str = "",
        storageclass: str = "STANDARD",
        forcepathstyle: bool = False,
        objectacl: str = "private",
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.endpoint = regionendpoint or None
        if self.endpoint and "://" not in self.endpoint:
            self.endpoint = ("https://" if secure else "http://") + self.endpoint
        self.accesskey = accesskey or None
        self.secretkey = secretkey or None
        self.encrypt = encrypt
        self.keyid = keyid
        self.skipverify = skipverify
        self.chunksize = max(chunksize, MIN_CHUNK)
        self.copy_chunk = max(multipartcopychunksize, MIN_CHUNK)
        self.copy_concurrency = max(multipartcopymaxconcurrency, 1)
        self.copy_threshold = multipartcopythresholdsize
        self.root = rootdirectory.strip("/")
        self.storageclass = storageclass
        self.forcepathstyle = forcepathstyle
        self.objectacl = objectacl
        self._client: Any = None
        self._context: Any = None
        self._lock = asyncio.Lock()

    # ---------------------------------------------------------------- plumbing

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageError("the s3 driver is not connected (call connect())")
        return self._client

    async def connect(self) -> None:
        """Open the client (its connection pool lives on the running event loop)."""
        async with self._lock:
            if self._client is not None:
                return
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(
                s3={"addressing_style": "path" if self.forcepathstyle else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=max(self.copy_concurrency, 10),
            )
            self._context = get_session().create_client(
                "s3",
                region_name=self.region,
                endpoint_url=self.endpoint,
                aws_access_key_id=self.accesskey,
                aws_secret_access_key=self.secretkey,
                verify=not self.skipverify,
                config=config,
            )
            self._client = await self._context.__aenter__()

    async def close(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._client = self._context = None

    def put_args(self, key: str) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "StorageClass": self.storageclass}
        if self.objectacl:
            args["ACL"] = self.objectacl
        if self.encrypt:
            args["ServerSideEncryption"] = "aws:kms" if self.keyid else "AES256"
            if self.keyid:
                args["SSEKMSKeyId"] = self.keyid
        return args

    async def delete_key(self, key: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = await self.client.head_object(Bucket=self.bucket, Key=key)
            return head
        except Exception as exc:
            if _not_found(exc):
                return None
            raise StorageError(f"s3 head {key}: {exc}") from exc

    async def _multipart(self, key: str) -> tuple[str | None, list[dict[str, Any]]]:
        """The newest multipart upload for exactly `key`, and its parts."""
        found = await self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        uploads = [u for u in found.get("Uploads", []) if u["Key"] == key]
        if not uploads:
            return None, []
        upload = max(uploads, key=lambda u: u["Initiated"])
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            listed = await self.client.list_parts(
                Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumberMarker=marker
            )
            parts += [
                {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]} for p in listed.get("Parts", [])
            ]
            if not listed.get("IsTruncated"):
                break
            marker = listed["NextPartNumberMarker"]
        return upload["UploadId"], sorted(parts, key=lambda p: p["PartNumber"])

    async def _abort_all(self, key: str) -> None:
        found = await self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        for upload in found.get("Uploads", []):
            if upload["Key"] == key:
                with contextlib.suppress(Exception):
                    await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])

    # ---------------------------------------------------------------- the interface

    async def get_content(self, path: str) -> bytes:
        key = self.key(path)
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _not_found(exc):
                raise PathNotFound(path) from None
            raise StorageError(f"s3 get {key}: {exc}") from exc
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data

    async def put_content(self, path: str, content: bytes) -> None:
        await self.client.put_object(Body=content, **self.put_args(self.key(path)))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        key = self.key(path)
        head = await self._head(key)
        if head is None:
            raise PathNotFound(path)
        size = int(head["ContentLength"])
        if offset < 0 or offset > size:
            raise InvalidOffset(path, offset)
        if offset == size:
            return _Reader(_EmptyBody())
        response = await self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-")
        return _Reader(response["Body"])

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self.key(path)
        if not append:
            await self._abort_all(key)
            await self.delete_key(key + PENDING_SUFFIX)
            return _Writer(self, key, None, [], b"")
        upload_id, parts = await self._multipart(key)
        pending = b""
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key + PENDING_SUFFIX)
            async with response["Body"] as body:
                pending = await body.read()
        except Exception as exc:
            if not _not_found(exc):
                raise StorageError(f"s3 get {key}{PENDING_SUFFIX}: {exc}") from exc
        if upload_id is None and not pending:
            head = await self._head(key)
            if head is not None:
                # Appending to a committed object: carry its bytes into a new multipart upload.
                pending = await self.get_content(path)
        return _Writer(self, key, upload_id, parts, pending)

    async def stat(self, path: str) -> FileInfo:
        check_dir_path(path)
        if path != "/":
            head = await self._head(self.key(path))
            if head is not None:
                return FileInfo(path, int(head["ContentLength"]), head["LastModified"], False)
        prefix = self.dir_prefix(path)
        listed = await self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1000)
        uploads = await self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        times = [o["LastModified"] for o in listed.get("Contents", [])]
        times += [u["Initiated"] for u in uploads.get("Uploads", [])]
        if not times:
            if path == "/":
                return FileInfo(path, 0, datetime.now(UTC), True)
            raise PathNotFound(path)
        return FileInfo(path, 0, max(times), True)

    async def list(self, path: str) -> list[str]:
        prefix = self.dir_prefix(path)
        children: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            children.update(self.path_of(p["Prefix"]) for p in page.get("CommonPrefixes", []))
            children.update(
                self.path_of(o["Key"]) for o in page.get("Contents", []) if not o["Key"].endswith(PENDING_SUFFIX)
            )
        uploads = await self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        children.update(self.path_of(p["Prefix"]) for p in uploads.get("CommonPrefixes", []))
        children.update(self.path_of(u["Key"]) for u in uploads.get("Uploads", []))
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def move(self, source: str, dest: str) -> None:
        src, dst = self.key(source), self.key(dest)
        head = await self._head(src)
        if head is None:
            raise PathNotFound(source)
        size = int(head["ContentLength"])
        if size <= self.copy_threshold:
            await self.client.copy_object(CopySource={"Bucket": self.bucket, "Key": src}, **self.put_args(dst))
        else:
            await self._multipart_copy(src, dst, size)
        await self.delete_key(src)

    async def _multipart_copy(self, src: str, dst: str, size: int) -> None:
        created = await self.client.create_multipart_upload(**self.put_args(dst))
        upload_id = created["UploadId"]
        limit = asyncio.Semaphore(self.copy_concurrency)

        async def copy(number: int, start: int) -> dict[str, Any]:
            end = min(start + self.copy_chunk, size) - 1
            async with limit:
                result = await self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": src},
                    CopySourceRange=f"bytes={start}-{end}",
                )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        try:
            parts = await asyncio.gather(
                *(copy(i + 1, start) for i, start in enumerate(range(0, size, self.copy_chunk)))
            )
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload_id)
            raise

    async def delete(self, path: str) -> None:
        key = self.key(path)
        deleted = False
        if await self._head(key) is not None:
            await self.delete_key(key)
            deleted = True
        with contextlib.suppress(Exception):
            await self.client.delete_object(Bucket=self.bucket, Key=key + PENDING_SUFFIX)
        prefix = key + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                deleted = True
        uploads = await self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        for upload in uploads.get("Uploads", []):
            if upload["Key"] == key or upload["Key"].startswith(prefix):
                with contextlib.suppress(Exception):
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                deleted = True
        if not deleted:
            raise PathNotFound(path)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        operation = "head_object" if method == "HEAD" else "get_object"
        url: str = await self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": self.key(path)}, ExpiresIn=REDIRECT_SECONDS
        )
        return url

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        async for info in super().walk(path):
            yield info


class _EmptyBody:
    async def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        return None
