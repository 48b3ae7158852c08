#!/usr/bin/env python3
"""regbench.py - Portside's benchmark client for Docker Registry HTTP API V2 / OCI Distribution servers.

Dependencies
  * Python >= 3.11, standard library only.
  * optional: uvloop (pip install uvloop)  -> faster event loop for the small-request scenarios
  * optional: wrk (Debian: apt-get install wrk) -> used for manifest_get / tags_list with
    --get-client wrk (default "auto": wrk if on PATH, else the built-in asyncio client)

Usage
  python3 regbench.py --url http://127.0.0.1:5000 [--scenarios LIST] [--label NAME]
                      [--server-pid PID] [--out results.jsonl]
  Scenarios (default: all, in this order):
    big_push        push one --big-mib (1024) MiB random blob: POST, PATCH x --chunk-mib (16) MiB, PUT ?digest= -> MiB/s
    big_pull        GET that blob --pull-repeat (5) times in turn, verify content; median of the pulls -> MiB/s
    small_push      --small-count (2000) distinct --small-size (4096) B blobs, --concurrency (16) workers,
                    POST + monolithic PUT ?digest= (or --small-mode post: single POST ?digest=)   -> blobs/s
    manifest_put    --manifests (1000) OCI image manifests (config + 2 layers pushed above), tags t0000.. -> manifests/s
    manifest_get    GET manifests/t0000 (Accept: OCI manifest), 16 conns, --get-seconds (10)      -> req/s
    tags_list       GET /v2/<repo>/tags/list (1000 tags), 16 conns, --list-seconds (5)            -> req/s
    catalog         creates --catalog-repos (1000) repos (blob mount + manifest, untimed), then walks
                    /v2/_catalog?n=100 following Link headers, 16 workers, --list-seconds         -> pages/s
    concurrent_pull --pull-clients (8) clients each GET a --pull-mib (256) MiB blob at once       -> aggregate MiB/s
  Scenarios that need data another scenario makes (big_pull, manifest_*, tags_list, ...) create it
  untimed when that scenario is not selected.
  Output: one JSON line per scenario on stdout (also appended to --out if given); progress on stderr.
  Each line has: value/unit (the throughput figure), seconds, ok, errors, first_error,
  client_cpu_pct (100 = one core, this process + wrk), and with --server-pid:
  server_cpu_pct and server_rss_mib (max of the pid + its descendants, sampled every 100 ms).

Honesty: every response status is checked; pushed blobs' Docker-Content-Digest headers are checked;
pulled blobs are compared byte-for-byte with the pushed content (whose sha256 was computed when it
was generated), or hashed with --verify sha256; manifests' digests are checked. A scenario with any
error prints ok=false.  Every scenario is bounded by --max-seconds (60).
Only send this to a server you run yourself on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

try:
    import uvloop  # type: ignore
except ImportError:  # pragma: no cover
    uvloop = None

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT_MANIFESTS = ", ".join([
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
MiB = 1 << 20
ALL_SCENARIOS = ["big_push", "big_pull", "small_push", "manifest_put", "manifest_get",
                 "tags_list", "catalog", "concurrent_pull", "tags_list_10k", "catalog_10k"]


def log(*a):
    print("[regbench]", *a, file=sys.stderr, flush=True)


def sha256_digest(data) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def target_of(location: str) -> str:
    """Location header (absolute or relative) -> request target (path?query)."""
    u = urllib.parse.urlsplit(location)
    return u.path + ("?" + u.query if u.query else "")


def add_query(target: str, **params) -> str:
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return target + ("&" if "?" in target else "?") + q


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- server stats
class ProcSampler(threading.Thread):
    """Samples RSS (sum over pid + descendants) every 100 ms; reads CPU time on demand."""

    def __init__(self, pid: int | None):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_rss_kib = 0
        self.max_pss_kib = 0
        self._stop_ev = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def pids(self):
        if not self.pid:
            return []
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                for tid in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        todo.extend(int(x) for x in f.read().split())
            except OSError:
                pass
        return out

    def _sum(self, filename, prefix):
        tot = 0
        for p in self.pids():
            try:
                with open(f"/proc/{p}/{filename}") as f:
                    for line in f:
                        if line.startswith(prefix):
                            tot += int(line.split()[1])
                            break
            except OSError:
                pass
        return tot

    def rss_kib(self):
        return self._sum("status", "VmRSS:")

    def pss_kib(self):
        """Proportional set size summed over the tree: pages shared between processes counted once."""
        return self._sum("smaps_rollup", "Pss:")

    def cpu_s(self):
        tot = 0
        for p in self.pids():
            try:
                with open(f"/proc/{p}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                tot += int(parts[11]) + int(parts[12])  # utime, stime
            except (OSError, IndexError):
                pass
        return tot / self.tick

    def reset_max(self):
        self.max_rss_kib = self.rss_kib()
        self.max_pss_kib = self.pss_kib()

    def run(self):
        while not self._stop_ev.wait(0.1):
            r = self.rss_kib()
            if r > self.max_rss_kib:
                self.max_rss_kib = r
            q = self.pss_kib()
            if q > self.max_pss_kib:
                self.max_pss_kib = q

    def stop(self):
        self._stop_ev.set()


def client_cpu_s():
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


# --------------------------------------------------------------------------- tiny asyncio HTTP/1.1 client
class _H1(asyncio.Protocol):
    """Minimal keep-alive HTTP/1.1 client protocol (Content-Length, chunked, read-to-close)."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.fut = None
        self.method = "GET"
        self.closed = False
        self._reset()

    def _reset(self):
        self.head_done = False
        self.status = 0
        self.headers = None
        self.clen = -1
        self.chunked = False
        self.until_close = False
        self.chunk_need = None
        self.chunks = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.fut is not None:
            try:
                self._parse()
            except Exception as e:  # malformed response
                fut, self.fut = self.fut, None
                self.closed = True
                self.transport.close()
                if not fut.done():
                    fut.set_exception(BenchError(f"bad response: {e!r}"))

    def connection_lost(self, exc):
        self.closed = True
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            if self.head_done and self.until_close:
                fut.set_result((self.status, self.headers, bytes(self.buf)))
            else:
                fut.set_exception(ConnectionError(f"connection lost ({exc!r})"))

    def _parse(self):
        buf = self.buf
        if not self.head_done:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                if len(buf) > 1 << 17:
                    raise BenchError("response head too large")
                return
            head = bytes(buf[:i]).decode("latin-1")
            del buf[:i + 4]
            lines = head.split("\r\n")
            self.status = int(lines[0].split(" ", 2)[1])
            h = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                k = k.strip().lower()
                v = v.strip()
                h[k] = h[k] + ", " + v if k in h else v
            if 100 <= self.status < 200:  # interim response: ignore
                return self._parse()
            self.headers = h
            self.head_done = True
            if self.method == "HEAD" or self.status in (204, 304):
                return self._finish(b"")
            if "chunked" in h.get("transfer-encoding", "").lower():
                self.chunked = True
            elif "content-length" in h:
                self.clen = int(h["content-length"])
            else:
                self.until_close = True
        if self.chunked:
            while True:
                if self.chunk_need is None:
                    j = buf.find(b"\r\n")
                    if j < 0:
                        return
                    size = int(bytes(buf[:j]).split(b";")[0].strip(), 16)
                    del buf[:j + 2]
                    self.chunk_need = size if size else -1
                if self.chunk_need == -1:  # trailers until empty line
                    j = buf.find(b"\r\n")
                    if j < 0:
                        return
                    del buf[:j + 2]
                    if j == 0:
                        return self._finish(b"".join(self.chunks))
                    continue
                if len(buf) < self.chunk_need + 2:
                    return
                self.chunks.append(bytes(buf[:self.chunk_need]))
                del buf[:self.chunk_need + 2]
                self.chunk_need = None
        elif self.clen >= 0:
            if len(buf) >= self.clen:
                body = bytes(buf[:self.clen])
                del buf[:self.clen]
                self._finish(body)

    def _finish(self, body):
        fut, self.fut = self.fut, None
        res = (self.status, self.headers, body)
        if self.headers.get("connection", "").lower() == "close":
            self.closed = True
            self.transport.close()
        self._reset()
        if fut is not None and not fut.done():
            fut.set_result(res)


class AConn:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.hostport = f"{host}:{port}".encode()
        self.proto: _H1 | None = None

    async def _connect(self):
        loop = asyncio.get_running_loop()
        _, self.proto = await loop.create_connection(_H1, self.host, self.port)

    async def request(self, method: str, target: str, headers: dict | None = None, body: bytes = b""):
        for attempt in (0, 1):
            if self.proto is None or self.proto.closed:
                await self._connect()
            pr = self.proto
            fut = asyncio.get_running_loop().create_future()
            pr.fut, pr.method = fut, method
            parts = [f"{method} {target} HTTP/1.1\r\nHost: ".encode(), self.hostport, b"\r\n"]
            if method not in ("GET", "HEAD") or body:
                parts.append(b"Content-Length: %d\r\n" % len(body))
            if headers:
                for k, v in headers.items():
                    parts.append(f"{k}: {v}\r\n".encode("latin-1"))
            parts.append(b"\r\n")
            pr.transport.write(b"".join(parts) + body if len(body) < 65536 else b"".join(parts))
            if len(body) >= 65536:
                pr.transport.write(body)
            try:
                return await fut
            except ConnectionError:
                # server closed an idle keep-alive connection before answering: retry once
                if attempt or pr.head_done or pr.buf:
                    raise
                self.proto = None
        raise BenchError("unreachable")

    def close(self):
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()


def run_async(coro):
    if uvloop is not None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
            return r.run(coro)
    return asyncio.run(coro)


# --------------------------------------------------------------------------- benchmark
class Bench:
    def __init__(self, args):
        self.a = args
        u = urllib.parse.urlsplit(args.url)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit("--url must be http://HOST:PORT")
        self.host, self.port = u.hostname, u.port or 80
        p = args.prefix
        self.big_repo = f"{p}/big"
        self.app_repo = f"{p}/app"
        self.cat_prefix = f"{p}-cat/r"
        self.sampler = ProcSampler(args.server_pid)
        if args.server_pid:
            self.sampler.start()
        self.big = None          # (digest, bytes)
        self.pullblob = None     # (digest, bytes)
        self.small = None        # list of (digest, bytes)
        self.small_pushed = False
        self.config = None       # (digest, bytes)
        self.manifests_done = 0  # number of tags t0000.. put
        self.manifest0 = None    # (digest, bytes) of t0000
        self.results = []

    # ---------------------------------------------------------------- helpers
    def conn(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.a.max_seconds)

    def emit(self, scenario, value, unit, seconds, errors, extra=None, t_cpu0=None, s_cpu0=None):
        rec = {"scenario": scenario, "value": round(value, 2), "unit": unit,
               "seconds": round(seconds, 3), "ok": not errors, "errors": len(errors)}
        if errors:
            rec["first_error"] = str(errors[0])[:300]
        if t_cpu0 is not None and seconds > 0:
            rec["client_cpu_pct"] = round(100 * (client_cpu_s() - t_cpu0) / seconds, 1)
        if self.a.server_pid:
            if s_cpu0 is not None and seconds > 0:
                rec["server_cpu_pct"] = round(100 * (self.sampler.cpu_s() - s_cpu0) / seconds, 1)
            rec["server_rss_mib"] = round(max(self.sampler.max_rss_kib, self.sampler.rss_kib()) / 1024, 1)
            rec["server_pss_mib"] = round(max(self.sampler.max_pss_kib, self.sampler.pss_kib()) / 1024, 1)
        if extra:
            rec.update(extra)
        if self.a.label:
            rec["label"] = self.a.label
        line = json.dumps(rec)
        print(line, flush=True)
        if self.a.out:
            with open(self.a.out, "a") as f:
                f.write(line + "\n")
        self.results.append(rec)

    def start(self):
        self.sampler.reset_max()
        return time.perf_counter(), client_cpu_s(), (self.sampler.cpu_s() if self.a.server_pid else None)

    @staticmethod
    def gen_blob(size):
        data = b"".join(os.urandom(min(16 * MiB, size - o)) for o in range(0, size, 16 * MiB))
        return sha256_digest(data), data

    # ---------------------------------------------------------------- chunked push (blocking)
    def push_chunked(self, repo, digest, data, chunk, deadline):
        mv = memoryview(data)
        c = self.conn()
        try:
            c.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
            r = c.getresponse()
            r.read()
            if r.status != 202:
                raise BenchError(f"POST upload: HTTP {r.status}")
            loc = target_of(r.getheader("Location") or "")
            off = 0
            while off < len(data):
                n = min(chunk, len(data) - off)
                c.request("PATCH", loc, body=mv[off:off + n], headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(n),
                    "Content-Range": f"{off}-{off + n - 1}"})
                r = c.getresponse()
                r.read()
                if r.status != 202:
                    raise BenchError(f"PATCH at {off}: HTTP {r.status}")
                rng = r.getheader("Range")
                if rng is not None and rng.replace("bytes=", "") != f"0-{off + n - 1}":
                    raise BenchError(f"PATCH at {off}: bad Range {rng!r}")
                loc = target_of(r.getheader("Location") or loc)
                off += n
                if time.perf_counter() > deadline:
                    raise BenchError(f"timeout after {off / MiB:.0f} MiB")
            c.request("PUT", add_query(loc, digest=digest), headers={"Content-Length": "0"})
            r = c.getresponse()
            r.read()
            if r.status != 201:
                raise BenchError(f"PUT ?digest: HTTP {r.status}")
            got = r.getheader("Docker-Content-Digest")
            if got is not None and got != digest:
                raise BenchError(f"PUT: digest mismatch {got}")
        finally:
            c.close()

    # ---------------------------------------------------------------- pull (blocking)
    def pull(self, repo, digest, data, bufsize=MiB, barrier=None):
        """GET a blob, read into a reusable buffer, verify. Returns bytes read."""
        c = self.conn()
        try:
            c.connect()
            if barrier is not None:
                barrier.wait()
            c.request("GET", f"/v2/{repo}/blobs/{digest}")
            r = c.getresponse()
            if r.status in (301, 302, 303, 307, 308):
                raise BenchError(f"GET blob redirected to {r.getheader('Location')} (not followed)")
            if r.status != 200:
                raise BenchError(f"GET blob: HTTP {r.status}")
            cl = r.getheader("Content-Length")
            if cl is not None and int(cl) != len(data):
                raise BenchError(f"GET blob: Content-Length {cl} != {len(data)}")
            hd = r.getheader("Docker-Content-Digest")
            if hd is not None and hd != digest:
                raise BenchError(f"GET blob: Docker-Content-Digest {hd} != {digest}")
            buf = bytearray(bufsize)
            bmv = memoryview(buf)
            exp = memoryview(data)
            h = hashlib.sha256() if self.a.verify == "sha256" else None
            off = 0
            while True:
                n = r.readinto(buf)
                if not n:
                    break
                if off + n > len(data):
                    raise BenchError("GET blob: too much data")
                if h is not None:
                    h.update(bmv[:n])
                elif self.a.verify == "bytes":
                    same = (buf == exp[off:off + n]) if n == bufsize else (bytes(bmv[:n]) == exp[off:off + n])
                    if not same:
                        raise BenchError(f"GET blob: content mismatch near offset {off}")
                off += n
            if off != len(data):
                raise BenchError(f"GET blob: short body {off} != {len(data)}")
            if h is not None and "sha256:" + h.hexdigest() != digest:
                raise BenchError("GET blob: sha256 mismatch")
            return off
        finally:
            c.close()

    # ---------------------------------------------------------------- async helpers
    async def _push_small_async(self, repo, blobs, conc, mode, errors):
        idx = 0
        done = 0

        async def worker():
            nonlocal idx, done
            c = AConn(self.host, self.port)
            try:
                while idx < len(blobs):
                    dg, data = blobs[idx]
                    idx += 1
                    try:
                        if mode == "post":
                            st, h, _ = await c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={dg}",
                                                       {"Content-Type": "application/octet-stream"}, data)
                        else:
                            st, h, _ = await c.request("POST", f"/v2/{repo}/blobs/uploads/")
                            if st != 202:
                                raise BenchError(f"POST upload: HTTP {st}")
                            loc = target_of(h.get("location", ""))
                            st, h, _ = await c.request("PUT", add_query(loc, digest=dg),
                                                       {"Content-Type": "application/octet-stream"}, data)
                        if st != 201:
                            raise BenchError(f"monolithic upload: HTTP {st}")
                        if h.get("docker-content-digest", dg) != dg:
                            raise BenchError("upload: digest mismatch")
                        done += 1
                    except (BenchError, OSError, ValueError) as e:
                        errors.append(e)
            finally:
                c.close()

        async with asyncio.timeout(self.a.max_seconds):
            await asyncio.gather(*(worker() for _ in range(conc)))
        return done

    def manifest_for(self, i, layers, annotation=None):
        cdg, cdata = self.config
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": cdg, "size": len(cdata)},
             "layers": [{"mediaType": OCI_LAYER, "digest": dg, "size": len(d)} for dg, d in layers],
             "annotations": {"org.example.regbench.index": annotation or str(i)}}
        return json.dumps(m, separators=(",", ":")).encode()

    async def _put_manifests_async(self, items, conc, errors):
        """items: list of (repo, tag, body)."""
        idx = 0
        done = 0

        async def worker():
            nonlocal idx, done
            c = AConn(self.host, self.port)
            try:
                while idx < len(items):
                    repo, tag, body = items[idx]
                    idx += 1
                    try:
                        st, h, rb = await c.request("PUT", f"/v2/{repo}/manifests/{tag}",
                                                    {"Content-Type": OCI_MANIFEST}, body)
                        if st != 201:
                            raise BenchError(f"PUT manifest {repo}:{tag}: HTTP {st} {rb[:200]!r}")
                        if h.get("docker-content-digest", sha256_digest(body)) != sha256_digest(body):
                            raise BenchError("PUT manifest: digest mismatch")
                        done += 1
                    except (BenchError, OSError, ValueError) as e:
                        errors.append(e)
            finally:
                c.close()

        async with asyncio.timeout(self.a.max_seconds):
            await asyncio.gather(*(worker() for _ in range(conc)))
        return done

    async def _get_loop_async(self, target, headers, seconds, conc, check, errors):
        deadline = time.perf_counter() + seconds
        count = 0

        async def worker():
            nonlocal count
            c = AConn(self.host, self.port)
            try:
                while time.perf_counter() < deadline:
                    try:
                        st, h, body = await c.request("GET", target, headers)
                        if st != 200:
                            raise BenchError(f"GET {target}: HTTP {st}")
                        check(h, body)
                        count += 1
                    except (BenchError, OSError, ValueError) as e:
                        errors.append(e)
                        if len(errors) > 100:
                            return
            finally:
                c.close()

        async with asyncio.timeout(seconds + self.a.max_seconds):
            await asyncio.gather(*(worker() for _ in range(conc)))
        return count

    def wrk(self, target, headers, seconds, conc):
        cmd = ["wrk", f"-t{self.a.wrk_threads}", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(f"http://{self.host}:{self.port}{target}")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        tot = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
        errors = []
        if not m:
            errors.append(BenchError("wrk output not understood: " + out[-300:]))
        if bad and int(bad.group(1)):
            errors.append(BenchError(f"wrk: {bad.group(1)} non-2xx responses"))
        if sock and sum(int(x) for x in sock.groups()):
            errors.append(BenchError("wrk socket errors: " + sock.group(0)))
        return (float(m.group(1)) if m else 0.0), (int(tot.group(1)) if tot else 0), errors, \
            (lat.group(1) if lat else None)

    def get_client(self):
        gc = self.a.get_client
        if gc == "auto":
            gc = "wrk" if shutil.which("wrk") else "python"
        return gc

    # ---------------------------------------------------------------- setup (untimed) helpers
    def ensure_big(self):
        if self.big is None:
            log(f"generating {self.a.big_mib} MiB random blob")
            self.big = self.gen_blob(self.a.big_mib * MiB)

    def ensure_small(self):
        if self.small is None:
            n, sz = self.a.small_count, self.a.small_size
            self.small = [(sha256_digest(d), d) for d in (os.urandom(sz) for _ in range(n))]
            cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": []},
                              "regbench": os.urandom(8).hex()}).encode()
            self.config = (sha256_digest(cfg), cfg)

    def ensure_small_pushed(self):
        self.ensure_small()
        if not self.small_pushed:
            log("setup: pushing small blobs (untimed)")
            errors = []
            run_async(self._push_small_async(self.app_repo, self.small, self.a.concurrency, "postput", errors))
            if errors:
                raise BenchError(f"setup small blobs failed: {errors[0]}")
            self.small_pushed = True
        self.push_config(self.app_repo)

    def push_config(self, repo):
        errors = []
        run_async(self._push_small_async(repo, [self.config], 1, "postput", errors))
        if errors:
            raise BenchError(f"setup config blob failed: {errors[0]}")

    def manifest_items(self, count):
        n = len(self.small)
        items = []
        for i in range(count):
            layers = [self.small[(2 * i) % n], self.small[(2 * i + 1) % n]]
            items.append((self.app_repo, f"t{i:04d}", self.manifest_for(i, layers)))
        return items

    def ensure_manifests(self, count):
        if self.manifests_done >= count:
            return
        self.ensure_small_pushed()
        log(f"setup: putting {count} manifests (untimed)")
        items = self.manifest_items(count)
        errors = []
        run_async(self._put_manifests_async(items, self.a.concurrency, errors))
        if errors:
            raise BenchError(f"setup manifests failed: {errors[0]}")
        self.manifests_done = count
        self.manifest0 = (sha256_digest(items[0][2]), items[0][2])

    # ---------------------------------------------------------------- scenarios
    def prefault(self):
        """VM artifact mitigation (--prefault-mib): write then delete N MiB in /dev/shm so that the
        guest pages the server's page cache is about to use are already backed by the host."""
        n = self.a.prefault_mib
        if n <= 0:
            return
        buf = b"\x01" * (16 * MiB)
        fn = f"/dev/shm/regbench-prefault-{os.getpid()}"
        with open(fn, "wb") as f:
            for _ in range(n // 16):
                f.write(buf)
        os.unlink(fn)

    def sc_big_push(self):
        self.ensure_big()
        dg, data = self.big
        self.prefault()
        t0, c0, s0 = self.start()
        errors = []
        try:
            self.push_chunked(self.big_repo, dg, data, self.a.chunk_mib * MiB, t0 + self.a.max_seconds)
        except (BenchError, OSError, http.client.HTTPException) as e:
            errors.append(e)
        dt = time.perf_counter() - t0
        self.emit("big_push", len(data) / MiB / dt, "MiB/s", dt, errors,
                  {"bytes": len(data), "chunk_mib": self.a.chunk_mib, "prefault_mib": self.a.prefault_mib}, c0, s0)
        if errors:
            self.big_pushed = False
        else:
            self.big_pushed = True

    def sc_big_pull(self):
        if not getattr(self, "big_pushed", False):
            self.ensure_big()
            log("setup: pushing big blob (untimed)")
            self.push_chunked(self.big_repo, self.big[0], self.big[1], self.a.chunk_mib * MiB, time.perf_counter() + 600)
            self.big_pushed = True
        dg, data = self.big
        t0, c0, s0 = self.start()
        errors = []
        rates = []
        for _ in range(self.a.pull_repeat):
            started = time.perf_counter()
            try:
                self.pull(self.big_repo, dg, data)
            except (BenchError, OSError, http.client.HTTPException) as e:
                errors.append(e)
                break
            rates.append(len(data) / MiB / (time.perf_counter() - started))
        dt = time.perf_counter() - t0
        rates.sort()
        value = rates[len(rates) // 2] if rates else 0.0
        self.emit("big_pull", value, "MiB/s", dt, errors,
                  {"bytes": len(data), "verify": self.a.verify, "pulls_mib_s": [round(r) for r in rates]}, c0, s0)

    def sc_small_push(self):
        self.ensure_small()
        errors = []
        t0, c0, s0 = self.start()
        done = run_async(self._push_small_async(self.app_repo, self.small, self.a.concurrency,
                                                self.a.small_mode, errors))
        dt = time.perf_counter() - t0
        self.emit("small_push", done / dt, "blobs/s", dt, errors,
                  {"blobs": done, "size": self.a.small_size, "concurrency": self.a.concurrency,
                   "mode": self.a.small_mode}, c0, s0)
        if not errors:
            self.small_pushed = True

    def sc_manifest_put(self):
        self.ensure_small_pushed()
        items = self.manifest_items(self.a.manifests)
        errors = []
        t0, c0, s0 = self.start()
        done = run_async(self._put_manifests_async(items, self.a.concurrency, errors))
        dt = time.perf_counter() - t0
        self.emit("manifest_put", done / dt, "manifests/s", dt, errors,
                  {"manifests": done, "concurrency": self.a.concurrency}, c0, s0)
        if not errors:
            self.manifests_done = len(items)
            self.manifest0 = (sha256_digest(items[0][2]), items[0][2])

    def _verify_once(self, target, headers, check):
        async def one():
            c = AConn(self.host, self.port)
            try:
                st, h, body = await c.request("GET", target, headers)
            finally:
                c.close()
            if st != 200:
                raise BenchError(f"GET {target}: HTTP {st}")
            check(h, body, full=True)
        run_async(one())

    def sc_manifest_get(self):
        self.ensure_manifests(1)
        mdg, mbody = self.manifest0
        target = f"/v2/{self.app_repo}/manifests/t0000"
        headers = {"Accept": OCI_MANIFEST}

        def check(h, body, full=False):
            if len(body) != len(mbody) or (full and sha256_digest(body) != mdg):
                raise BenchError("manifest body mismatch")
            if full and h.get("docker-content-digest") not in (None, mdg):
                raise BenchError("manifest Docker-Content-Digest mismatch")
        self._timed_get("manifest_get", target, headers, check, self.a.get_seconds)

    def _timed_get(self, name, target, headers, check, seconds):
        errors = []
        try:
            self._verify_once(target, headers, check)
        except (BenchError, OSError) as e:
            errors.append(e)
        gc = self.get_client()
        t0, c0, s0 = self.start()
        extra = {"client": gc, "connections": self.a.concurrency}
        if gc == "wrk":
            rps, n, errs, lat = self.wrk(target, headers, seconds, self.a.concurrency)
            errors += errs
            dt = time.perf_counter() - t0
            extra.update(requests=n, latency_avg=lat)
        else:
            n = run_async(self._get_loop_async(target, headers, seconds, self.a.concurrency, check, errors))
            dt = time.perf_counter() - t0
            rps = n / seconds
            extra.update(requests=n)
        self.emit(name, rps, "req/s", dt, errors, extra, c0, s0)

    def sc_tags_list(self, name="tags_list", want=None):
        want = want or self.a.manifests
        self.ensure_manifests(want)
        target = f"/v2/{self.app_repo}/tags/list"

        def check(h, body, full=False):
            if full:
                tags = json.loads(body)["tags"]
                if len(tags) < want or "t0000" not in tags:
                    raise BenchError(f"tags/list returned {len(tags)} tags, want >= {want}")
            elif len(body) < 6 * want:
                raise BenchError("tags/list body too short")
        self._timed_get(name, target, {}, check, self.a.list_seconds)

    def sc_tags_list_10k(self):
        """tags_list at 10,000 tags: how the cost of one listing grows with the tags it holds."""
        self.sc_tags_list("tags_list_10k", 10000)

    def sc_catalog_10k(self):
        """catalog at 10,000 repositories: how the cost of a page grows with the repositories behind it."""
        self.sc_catalog("catalog_10k", 10000)

    def sc_catalog(self, name="catalog", nrep=None):
        self.ensure_manifests(1)
        nrep = nrep or self.a.catalog_repos
        log(f"setup: creating {nrep} repos via cross-repo mount + manifest put (untimed)")
        cdg, _ = self.config
        ldg, ldata = self.small[0]
        body = self.manifest_for(0, [self.small[0]], annotation="catalog")
        errors = []

        async def setup():
            idx = 0

            async def worker():
                nonlocal idx
                c = AConn(self.host, self.port)
                try:
                    while idx < nrep:
                        repo = f"{self.cat_prefix}{idx:05d}"
                        idx += 1
                        for dg, data in ((cdg, self.config[1]), (ldg, ldata)):
                            st, h, _ = await c.request(
                                "POST", f"/v2/{repo}/blobs/uploads/?mount={dg}&from={self.app_repo}")
                            if st == 202:  # mount not supported: finish as monolithic upload
                                st, h, _ = await c.request(
                                    "PUT", add_query(target_of(h.get("location", "")), digest=dg),
                                    {"Content-Type": "application/octet-stream"}, data)
                            if st != 201:
                                raise BenchError(f"mount into {repo}: HTTP {st}")
                        st, h, rb = await c.request("PUT", f"/v2/{repo}/manifests/latest",
                                                    {"Content-Type": OCI_MANIFEST}, body)
                        if st != 201:
                            raise BenchError(f"PUT manifest {repo}: HTTP {st} {rb[:200]!r}")
                finally:
                    c.close()
            async with asyncio.timeout(900):
                await asyncio.gather(*(worker() for _ in range(self.a.concurrency)))
        try:
            run_async(setup())
        except (BenchError, OSError) as e:
            self.emit(name, 0.0, "pages/s", 0.0, [e])
            return

        walks = 0
        seen_min = [1 << 30]

        async def walk_loop(seconds):
            nonlocal walks
            deadline = time.perf_counter() + seconds
            pages = 0

            async def worker():
                nonlocal pages, walks
                c = AConn(self.host, self.port)
                try:
                    while time.perf_counter() < deadline:
                        target = f"/v2/_catalog?n={self.a.catalog_page}"
                        seen = 0
                        while target and time.perf_counter() < deadline + 5:
                            st, h, body = await c.request("GET", target)
                            if st != 200:
                                raise BenchError(f"GET {target}: HTTP {st}")
                            repos = json.loads(body)["repositories"]
                            if len(repos) > self.a.catalog_page:
                                raise BenchError("catalog page larger than n")
                            pages += 1
                            seen += len(repos)
                            link = h.get("link")
                            m = re.search(r"<([^>]+)>", link) if link else None
                            target = target_of(m.group(1)) if m else None
                        if target is None:
                            walks += 1
                            seen_min[0] = min(seen_min[0], seen)
                except (BenchError, OSError, ValueError, KeyError) as e:
                    errors.append(e)
                finally:
                    c.close()
            async with asyncio.timeout(seconds + self.a.max_seconds):
                await asyncio.gather(*(worker() for _ in range(self.a.concurrency)))
            return pages

        t0, c0, s0 = self.start()
        pages = run_async(walk_loop(self.a.list_seconds))
        dt = time.perf_counter() - t0
        if walks and seen_min[0] < nrep:
            errors.append(BenchError(f"catalog walk saw only {seen_min[0]} repos, want >= {nrep}"))
        self.emit(name, pages / dt, "pages/s", dt, errors,
                  {"page_n": self.a.catalog_page, "full_walks": walks,
                   "repos_seen": seen_min[0] if walks else 0, "workers": self.a.concurrency}, c0, s0)

    def sc_concurrent_pull(self):
        if self.pullblob is None:
            log(f"setup: generating + pushing {self.a.pull_mib} MiB blob (untimed)")
            self.pullblob = self.gen_blob(self.a.pull_mib * MiB)
            self.push_chunked(self.big_repo, self.pullblob[0], self.pullblob[1], self.a.chunk_mib * MiB,
                              time.perf_counter() + 600)
        dg, data = self.pullblob
        k = self.a.pull_clients
        barrier = threading.Barrier(k + 1)
        errors = []
        got = [0] * k

        def th(i):
            try:
                got[i] = self.pull(self.big_repo, dg, data, barrier=barrier)
            except (BenchError, OSError, http.client.HTTPException, threading.BrokenBarrierError) as e:
                errors.append(e)
        ths = [threading.Thread(target=th, args=(i,)) for i in range(k)]
        for t in ths:
            t.start()
        barrier.wait(timeout=30)
        t0, c0, s0 = self.start()
        for t in ths:
            t.join()
        dt = time.perf_counter() - t0
        self.emit("concurrent_pull", sum(got) / MiB / dt, "MiB/s", dt, errors,
                  {"clients": k, "blob_mib": self.a.pull_mib, "verify": self.a.verify}, c0, s0)

    def run(self, scenarios):
        for s in scenarios:
            log(f"scenario {s}")
            try:
                getattr(self, "sc_" + s)()
            except (BenchError, OSError, http.client.HTTPException, TimeoutError) as e:
                log(f"{s}: setup failed: {e!r}")
                self.emit(s, 0.0, "-", 0.0, [e])
        self.sampler.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="registry base URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma list from: " + ",".join(ALL_SCENARIOS))
    ap.add_argument("--prefix", default="regbench", help="repository name prefix")
    ap.add_argument("--label", default="", help="copied into every JSON line")
    ap.add_argument("--out", help="also append JSON lines to this file")
    ap.add_argument("--server-pid", type=int, help="sample this pid (+children) for RSS / CPU")
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--chunk-mib", type=int, default=16)
    ap.add_argument("--small-count", type=int, default=2000)
    ap.add_argument("--small-size", type=int, default=4096)
    ap.add_argument("--small-mode", choices=["postput", "post"], default="postput",
                    help="postput: POST then monolithic PUT ?digest=; post: single POST ?digest= (OCI)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--manifests", type=int, default=1000)
    ap.add_argument("--get-seconds", type=float, default=10)
    ap.add_argument("--list-seconds", type=float, default=5)
    ap.add_argument("--get-client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--catalog-repos", type=int, default=1000)
    ap.add_argument("--catalog-page", type=int, default=100)
    ap.add_argument("--pull-clients", type=int, default=8)
    ap.add_argument("--pull-mib", type=int, default=256)
    ap.add_argument("--pull-repeat", type=int, default=5,
                    help="big_pull: pulls of the big blob, one after another; the median is reported")
    ap.add_argument("--verify", choices=["bytes", "sha256", "none"], default="bytes",
                    help="blob pull check: byte compare with pushed content (default), sha256 of stream, none")
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--prefault-mib", type=int, default=0,
                    help="VM-only: touch+free this much page cache before big_push (see prefault())")
    a = ap.parse_args(argv)
    if a.get_seconds > 55 or a.list_seconds > 55:
        ap.error("keep timed scenarios under 60 s")
    scen = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = [s for s in scen if s not in ALL_SCENARIOS]
    if bad:
        ap.error(f"unknown scenarios {bad}")
    b = Bench(a)
    b.run(scen)
    return 0 if all(r["ok"] for r in b.results) else 1


if __name__ == "__main__":
    sys.exit(main())
