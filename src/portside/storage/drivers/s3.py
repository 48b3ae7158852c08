"""The S3 driver (AWS S3 and S3-compatible stores), with Docker Distribution's `storage.s3` keys.

Appending writers are S3 multipart uploads, so an upload can be resumed by any instance: parts of `chunksize`
(at least 5 MiB) are uploaded as bytes arrive, and what is left over when a request ends (less than a part) is
kept in a `<key>.pending` object until the next request or the commit, where it becomes the last part. Memory
per writer is bounded by `chunksize`. Directories are key prefixes; in-progress multipart uploads count as
content, so upload purging can find and abort orphans.

Every call to S3 goes through `_s3_errors`, the one mapping of botocore's failures to the driver's: a missing
key or upload is `PathNotFound`, any other failure a `DriverError` naming the operation, so no failure passes
as success. botocore is imported only when a driver is made (its exceptions when one is raised).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from portside.storage import factory
from portside.storage.driver import (
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from portside.storage.drivers.objects import ObjectKeys, PartWriter
from portside.storage.parameters import DriverParameters

MiB = 1024 * 1024
MIN_CHUNK = 5 * MiB
PENDING_SUFFIX = ".pending"
REDIRECT_SECONDS = 20 * 60
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})


class S3Parameters(DriverParameters):
    """Docker Distribution's `storage.s3` keys."""

    bucket: str
    region: str = "us-east-1"
    regionendpoint: str = ""
    accesskey: str = ""
    secretkey: str = ""
    encrypt: bool = False
    keyid: str = ""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    chunksize: int = Field(default=10 * MiB, ge=MIN_CHUNK)
    multipartcopychunksize: int = Field(default=32 * MiB, ge=MIN_CHUNK)
    multipartcopymaxconcurrency: int = Field(default=100, ge=1)
    multipartcopythresholdsize: int = Field(default=32 * MiB, ge=0)
    rootdirectory: str = ""
    storageclass: str = "STANDARD"
    forcepathstyle: bool = False
    objectacl: str = "private"

    @field_validator("v4auth")
    @classmethod
    def _v4(cls, value: bool) -> bool:
        if not value:
            raise ValueError("false is not supported (S3 requires signature version 4)")
        return value


def _mapped(exc: Exception, operation: str, path: str) -> Exception:
    """The driver's error for a failure of an S3 call (other exceptions, programming errors, pass unchanged)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return PathNotFound(path)
        return DriverError("s3", f"{operation} {path}: {code or status} {error.get('Message', '')}".rstrip())
    if isinstance(exc, BotoCoreError | OSError | TimeoutError):
        return DriverError("s3", f"{operation} {path}: {type(exc).__name__}: {exc}")
    return exc


@contextlib.contextmanager
def _s3_errors(operation: str, path: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        mapped = _mapped(exc, operation, path)
        if mapped is exc:
            raise
        raise mapped from (None if isinstance(mapped, PathNotFound) else exc)


class _Reader(FileReader):
    def __init__(self, body: Any, path: str) -> None:
        self._body = body
        self._path = path

    async def read(self, size: int) -> bytes:
        with _s3_errors("read", self._path):
            data: bytes = await self._body.read(size)
        return data

    async def close(self) -> None:
        self._body.close()


class _Writer(PartWriter):
    def __init__(
        self,
        driver: S3Driver,
        path: str,
        upload_id: str | None,
        parts: list[dict[str, Any]],
        pending: bytes,
    ) -> None:
        super().__init__(driver.chunksize, sum(int(p["Size"]) for p in parts) + len(pending), pending)
        self._driver = driver
        self._path = path
        self._key = driver.key(path)
        self._upload_id = upload_id
        self._parts = parts
        self._flushed_pending = bytes(pending)
        self._closed = False

    async def _store_part(self, data: bytes | bytearray) -> None:
        client = self._driver.client
        with _s3_errors("upload part of", self._path):
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
            with _s3_errors("put", self._path):
                await driver.client.put_object(Body=bytes(self._buffer), **driver.put_args(self._key))
        else:
            if self._buffer:
                await self._store_part(self._buffer)
            parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self._parts]
            with _s3_errors("complete upload of", self._path):
                await driver.client.complete_multipart_upload(
                    Bucket=driver.bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
                )
        self._buffer = bytearray()
        await driver.delete_if_present(self._key + PENDING_SUFFIX, self._path)
        self._closed = True

    async def cancel(self) -> None:
        driver = self._driver
        if self._upload_id is not None:
            await driver.abort(self._key, self._upload_id, self._path)
        await driver.delete_if_present(self._key + PENDING_SUFFIX, self._path)
        await driver.delete_if_present(self._key, self._path)
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
            with _s3_errors("put pending bytes of", self._path):
                await driver.client.put_object(
                    Bucket=driver.bucket, Key=self._key + PENDING_SUFFIX, Body=bytes(self._buffer)
                )
        else:
            await driver.delete_if_present(self._key + PENDING_SUFFIX, self._path)


class S3Driver(ObjectKeys, StorageDriver):
    name = "s3"

    def __init__(self, parameters: S3Parameters) -> None:
        self.bucket = parameters.bucket
        self.region = parameters.region
        self.endpoint = parameters.regionendpoint or None
        if self.endpoint and "://" not in self.endpoint:
            self.endpoint = ("https://" if parameters.secure else "http://") + self.endpoint
        self.accesskey = parameters.accesskey or None
        self.secretkey = parameters.secretkey or None
        self.encrypt = parameters.encrypt
        self.keyid = parameters.keyid
        self.skipverify = parameters.skipverify
        self.chunksize = parameters.chunksize
        self.copy_chunk = parameters.multipartcopychunksize
        self.copy_concurrency = parameters.multipartcopymaxconcurrency
        self.copy_threshold = parameters.multipartcopythresholdsize
        self.root = parameters.rootdirectory.strip("/")
        self.storageclass = parameters.storageclass
        self.forcepathstyle = parameters.forcepathstyle
        self.objectacl = parameters.objectacl
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

    async def delete_if_present(self, key: str, path: str) -> None:
        """Delete one object; a missing one is fine, any other failure is raised."""
        with contextlib.suppress(PathNotFound), _s3_errors("delete", path):
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def abort(self, key: str, upload_id: str, path: str) -> None:
        """Abort one multipart upload; one already gone is fine."""
        with contextlib.suppress(PathNotFound), _s3_errors("abort upload of", path):
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    async def _head(self, key: str, path: str) -> dict[str, Any] | None:
        try:
            with _s3_errors("head", path):
                head: dict[str, Any] = await self.client.head_object(Bucket=self.bucket, Key=key)
        except PathNotFound:
            return None
        return head

    async def _multipart_pages(self, prefix: str, path: str, delimiter: str = "") -> AsyncIterator[dict[str, Any]]:
        """Every page of the in-progress multipart uploads under `prefix` (S3 lists at most 1,000 a page)."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = delimiter
        with _s3_errors("list uploads under", path):
            async for page in self.client.get_paginator("list_multipart_uploads").paginate(**arguments):
                yield page

    async def _uploads_of(self, key: str, path: str) -> list[dict[str, Any]]:
        """The multipart uploads in progress for exactly `key`."""
        found: list[dict[str, Any]] = []
        async for page in self._multipart_pages(key, path):
            found += [u for u in page.get("Uploads", []) if u["Key"] == key]
        return found

    async def _multipart(self, key: str, path: str) -> tuple[str | None, list[dict[str, Any]]]:
        """The newest multipart upload for exactly `key`, and its parts."""
        uploads = await self._uploads_of(key, path)
        if not uploads:
            return None, []
        upload = max(uploads, key=lambda u: u["Initiated"])
        parts: list[dict[str, Any]] = []
        with _s3_errors("list parts of", path):
            paginator = self.client.get_paginator("list_parts")
            async for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]):
                parts += [
                    {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]} for p in page.get("Parts", [])
                ]
        return upload["UploadId"], sorted(parts, key=lambda p: p["PartNumber"])

    async def _abort_all(self, key: str, path: str) -> None:
        for upload in await self._uploads_of(key, path):
            await self.abort(key, upload["UploadId"], path)

    # ---------------------------------------------------------------- the interface

    async def get_content(self, path: str) -> bytes:
        with _s3_errors("get", path):
            response = await self.client.get_object(Bucket=self.bucket, Key=self.key(path))
            async with response["Body"] as body:
                data: bytes = await body.read()
        return data

    async def put_content(self, path: str, content: bytes) -> None:
        with _s3_errors("put", path):
            await self.client.put_object(Body=content, **self.put_args(self.key(path)))

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        key = self.key(path)
        head = await self._head(key, path)
        if head is None:
            raise PathNotFound(path)
        size = int(head["ContentLength"])
        if offset < 0 or offset > size:
            raise InvalidOffset(path, offset)
        if offset == size:
            return _Reader(_EmptyBody(), path)
        with _s3_errors("get", path):
            response = await self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-")
        return _Reader(response["Body"], path)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key = self.key(path)
        if not append:
            await self._abort_all(key, path)
            await self.delete_if_present(key + PENDING_SUFFIX, path)
            return _Writer(self, path, None, [], b"")
        upload_id, parts = await self._multipart(key, path)
        pending = b""
        try:
            with _s3_errors("get pending bytes of", path):
                response = await self.client.get_object(Bucket=self.bucket, Key=key + PENDING_SUFFIX)
                async with response["Body"] as body:
                    pending = await body.read()
        except PathNotFound:
            pass
        if upload_id is None and not pending and await self._head(key, path) is not None:
            # Appending to a committed object: carry its bytes into a new multipart upload.
            pending = await self.get_content(path)
        return _Writer(self, path, upload_id, parts, pending)

    async def stat(self, path: str) -> FileInfo:
        if path != "/":
            head = await self._head(self.key(path), path)
            if head is not None:
                return FileInfo(path, int(head["ContentLength"]), head["LastModified"], False)
        prefix = self.dir_prefix(path)
        with _s3_errors("list", path):
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
        with _s3_errors("list", path):
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                children.update(self.path_of(p["Prefix"]) for p in page.get("CommonPrefixes", []))
                children.update(
                    self.path_of(o["Key"]) for o in page.get("Contents", []) if not o["Key"].endswith(PENDING_SUFFIX)
                )
        async for page in self._multipart_pages(prefix, path, delimiter="/"):
            children.update(self.path_of(p["Prefix"]) for p in page.get("CommonPrefixes", []))
            # A store that ignores the delimiter here lists deeper keys too: each counts as its first segment.
            children.update(
                self.path_of(prefix + u["Key"][len(prefix) :].split("/", 1)[0]) for u in page.get("Uploads", [])
            )
        if not children and path != "/":
            raise PathNotFound(path)
        return sorted(children)

    async def move(self, source: str, dest: str) -> None:
        src, dst = self.key(source), self.key(dest)
        head = await self._head(src, source)
        if head is None:
            raise PathNotFound(source)
        size = int(head["ContentLength"])
        if size <= self.copy_threshold:
            with _s3_errors("copy", source):
                await self.client.copy_object(CopySource={"Bucket": self.bucket, "Key": src}, **self.put_args(dst))
        else:
            await self._multipart_copy(src, dst, size, source)
        await self.delete_if_present(src, source)

    async def _multipart_copy(self, src: str, dst: str, size: int, path: str) -> None:
        with _s3_errors("copy", path):
            created = await self.client.create_multipart_upload(**self.put_args(dst))
        upload_id = created["UploadId"]
        limit = asyncio.Semaphore(self.copy_concurrency)

        async def copy(number: int, start: int) -> dict[str, Any]:
            end = min(start + self.copy_chunk, size) - 1
            async with limit:
                with _s3_errors("copy", path):
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
            with _s3_errors("copy", path):
                await self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=dst, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
                )
        except BaseException:
            await self.abort(dst, upload_id, path)
            raise

    async def delete(self, path: str) -> None:
        key = self.key(path)
        deleted = False
        if await self._head(key, path) is not None:
            await self.delete_if_present(key, path)
            deleted = True
        await self.delete_if_present(key + PENDING_SUFFIX, path)
        prefix = key + "/"
        with _s3_errors("delete", path):
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if not objects:
                    continue
                result = await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
                failed = result.get("Errors", [])
                if failed:
                    first = failed[0]
                    raise DriverError(
                        "s3",
                        f"delete {path}: {len(failed)} object(s) not deleted, {first.get('Key')}: {first.get('Code')}",
                    )
                deleted = True
        async for page in self._multipart_pages(key, path):
            for upload in page.get("Uploads", []):
                if upload["Key"] == key or upload["Key"].startswith(prefix):
                    await self.abort(upload["Key"], upload["UploadId"], path)
                    deleted = True
        if not deleted:
            raise PathNotFound(path)

    async def delete_files(self, paths: Sequence[str]) -> dict[str, Exception]:
        """DeleteObjects, 1,000 keys a request; S3 reports each key it could not delete."""
        failures: dict[str, Exception] = {}
        by_key = {self.key(path): path for path in paths}
        keys = list(by_key)
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                with _s3_errors("delete", by_key[batch[0]]):
                    result = await self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                    )
            except StorageError as exc:
                failures.update({by_key[k]: exc for k in batch})
                continue
            for error in result.get("Errors", []):
                path = by_key.get(error.get("Key", ""), error.get("Key", ""))
                failures[path] = DriverError("s3", f"delete {path}: {error.get('Code')} {error.get('Message', '')}")
        return failures

    async def walk_files(self, path: str) -> AsyncIterator[FileInfo]:
        """One flat listing of the keys below `path` (sizes and times come with it)."""
        with _s3_errors("list", path):
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.dir_prefix(path)):
                for item in page.get("Contents", []):
                    if not item["Key"].endswith(PENDING_SUFFIX):
                        yield FileInfo(self.path_of(item["Key"]), int(item["Size"]), item["LastModified"], False)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        operation = "head_object" if method == "HEAD" else "get_object"
        with _s3_errors("sign", path):
            url: str = await self.client.generate_presigned_url(
                operation, Params={"Bucket": self.bucket, "Key": self.key(path)}, ExpiresIn=REDIRECT_SECONDS
            )
        return url


class _EmptyBody:
    async def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        return None


factory.register("s3", S3Driver, S3Parameters)
