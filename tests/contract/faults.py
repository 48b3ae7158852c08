"""A fault-injecting HTTP proxy in front of a real S3 server (moto): it forwards every request except those a
predicate picks, which it answers with an S3 error of its choosing, as a store that refuses an operation would.

It can also page multipart upload listings as S3 does (at most `max-uploads`, 1,000 by default, per answer,
continued from `key-marker`/`upload-id-marker`), which moto does not: moto answers every upload at once.
"""

from __future__ import annotations

import http.client
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

Fault = Callable[[str, str], tuple[int, str] | None]
"""(method, path with query) -> (status, S3 error code) to answer with, or None to forward."""

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
PAGING = ("key-marker", "upload-id-marker", "max-uploads")


def _is_upload_listing(method: str, path: str) -> bool:
    query = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
    return method == "GET" and "uploads" in query and "uploadId" not in query


def _page_uploads(path: str, body: bytes, page: int) -> bytes:
    """Cut moto's whole listing into the page S3 would answer for this request's markers."""
    query = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
    size = min(page, int(query.get("max-uploads", page)))
    marker = (query.get("key-marker", ""), query.get("upload-id-marker", ""))
    ET.register_namespace("", S3_NS)
    root = ET.fromstring(body)
    uploads = root.findall(f"{{{S3_NS}}}Upload")

    def key(upload: ET.Element) -> tuple[str, str]:
        return (upload.findtext(f"{{{S3_NS}}}Key") or "", upload.findtext(f"{{{S3_NS}}}UploadId") or "")

    for upload in uploads:
        root.remove(upload)
    after = sorted((u for u in uploads if key(u) > marker), key=key)
    kept, truncated = after[:size], len(after) > size
    for element in root.findall(f"{{{S3_NS}}}IsTruncated"):
        root.remove(element)
    for upload in kept:
        root.append(upload)
    ET.SubElement(root, f"{{{S3_NS}}}IsTruncated").text = "true" if truncated else "false"
    if truncated:
        ET.SubElement(root, f"{{{S3_NS}}}NextKeyMarker").text = key(kept[-1])[0]
        ET.SubElement(root, f"{{{S3_NS}}}NextUploadIdMarker").text = key(kept[-1])[1]
    return ET.tostring(root, xml_declaration=True, encoding="utf-8")


def _without_paging(path: str) -> str:
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in PAGING]
    return parts.path + "?" + urlencode(query).replace("uploads=", "uploads", 1)


class FaultProxy:
    def __init__(self, upstream: str, fault: Fault | None = None, upload_page: int | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.fault = fault or (lambda method, path: None)
        self.upload_page = upload_page
        self.refused: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.fault(self.command, self.path)
                if fault is not None:
                    proxy.refused.append((self.command, self.path))
                    status, code = fault
                    payload = f"<Error><Code>{code}</Code><Message>refused by the test</Message></Error>".encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                paging = proxy.upload_page is not None and _is_upload_listing(self.command, self.path)
                target = _without_paging(self.path) if paging else self.path
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, target, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                if paging and answer.status == 200:
                    assert proxy.upload_page is not None
                    data = _page_uploads(self.path, data, proxy.upload_page)
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
