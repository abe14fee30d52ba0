"""A small Hub-compatible server that misbehaves on request: the fault-injecting server of the tests.

It serves `GET /api/models/<repo>/revision/<rev>` and `GET|HEAD /<repo>/resolve/<rev>/<path>` with
Range, ETag, X-Repo-Commit and X-Linked-Size, from files held in memory or on disk. Faults are
set per file path (`Faults`) and each fires a chosen number of times: drop the connection at a byte,
send fewer bytes than Content-Length, flip a byte, answer 429/503 with Retry-After, ignore Range,
change the ETag (and content), stall. It counts the body bytes it sends and logs request headers.
Every connection can be capped at a rate (bytes/s), as CDNs do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Faults:
    """Per-file faults; each `*_times` says how many responses get that fault (then it stops)."""

    drop_at: int | None = None  # close the connection once this absolute byte offset is reached
    drop_times: int = 0
    short_by: int = 0  # send Content-Length but this many bytes fewer, then close
    short_times: int = 0
    corrupt_at: int | None = None  # flip the byte at this absolute offset
    corrupt_times: int = 0
    statuses: list[int] = field(default_factory=list)  # answer these first (e.g. [429, 503])
    retry_after: str | None = "0"
    ignore_range: bool = False
    etag_change_after: int | None = None  # after this many body responses, ETag and content change
    zeros_after_drop: int | None = None  # drop once, then bodies carry zeros below this offset (same ETag)
    stall_at: int | None = None  # stop sending at this absolute offset for stall_seconds
    stall_seconds: float = 0.0
    stall_times: int = 0
    redirect_to: str | None = None  # answer resolve/ with 302 to this base URL + same path
    claimed_size: int | None = None  # the size the revision API reports instead of the real one
    unlisted_size: bool = False  # the revision API gives no size at all for this file


@dataclass
class HostedFile:
    data: bytes | None = None
    disk: Path | None = None
    lfs: bool = True
    faults: Faults = field(default_factory=Faults)
    changed: bool = False
    poisoned_below: int = 0
    dropped_once: bool = False
    body_responses: int = 0

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.disk.stat().st_size  # type: ignore[union-attr]

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            chunk = self.data[start:end]
        else:
            with open(self.disk, "rb") as f:  # type: ignore[arg-type]
                f.seek(start)
                chunk = f.read(end - start)
        if self.changed:
            chunk = bytes(b ^ 0x5A for b in chunk)
        if start < self.poisoned_below:  # a hostile server: other bytes under the same name, size and ETag
            n = min(end, self.poisoned_below) - start
            chunk = bytes(n) + chunk[n:]
        return chunk


def sha256_of(f: HostedFile) -> str:
    if f.data is not None:
        return hashlib.sha256(f.data).hexdigest()
    h = hashlib.sha256()
    with open(f.disk, "rb") as fh:  # type: ignore[arg-type]
        while b := fh.read(1 << 20):
            h.update(b)
    return h.hexdigest()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients hanging up are part of the tests
        pass


class HubServer:
    """Start with `with HubServer() as s:`; add files with `s.add(repo, path, data)`; `s.url` is the base."""

    def __init__(self, rate: float | None = None, port: int = 0) -> None:
        self.repos: dict[str, dict[str, HostedFile]] = {}
        self.rate = rate
        self.lock = threading.Lock()
        self.bytes_sent: dict[str, int] = {}
        self.requests: list[dict] = []
        self.api_statuses: list[int] = []  # answer the revision API with these first (Retry-After: 0)
        self._sha: dict[tuple[str, str], str] = {}
        self.httpd = _QuietServer(("127.0.0.1", port), _make_handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(
        self,
        repo: str,
        path: str,
        data: bytes | None = None,
        disk: Path | None = None,
        lfs: bool = True,
        faults: Faults | None = None,
    ) -> HostedFile:
        f = HostedFile(data=data, disk=disk, lfs=lfs, faults=faults or Faults())
        self.repos.setdefault(repo, {})[path] = f
        self._sha[(repo, path)] = sha256_of(f)
        return f

    def sha256(self, repo: str, path: str) -> str:
        return self._sha[(repo, path)]

    def sent(self, path: str) -> int:
        with self.lock:
            return sum(v for k, v in self.bytes_sent.items() if k.endswith("/" + path))

    def revision_json(self, repo: str) -> dict:
        siblings = []
        for path, f in sorted(self.repos[repo].items()):
            size = f.faults.claimed_size or f.size
            entry: dict = {"rfilename": path} if f.faults.unlisted_size else {"rfilename": path, "size": size}
            if f.lfs and not f.faults.unlisted_size:
                entry["lfs"] = {"sha256": self._sha[(repo, path)], "size": size}
            else:
                entry["blobId"] = hashlib.sha1(f"blob {f.size}\0".encode() + (f.data or b"")).hexdigest()
            siblings.append(entry)
        return {"id": repo, "sha": COMMIT, "siblings": siblings}


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def _make_handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _plain(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            with server.lock:
                server.requests.append({"path": path, "method": self.command, "headers": dict(self.headers)})
            if path == "/_stats":
                with server.lock:
                    body = json.dumps(
                        {"bytes_sent": dict(server.bytes_sent), "requests": len(server.requests)}
                    )
                return self._plain(200, body.encode(), {"Content-Type": "application/json"})
            m = _API.match(path)
            if m:
                with server.lock:
                    status = server.api_statuses.pop(0) if server.api_statuses else None
                if status:
                    return self._plain(status, b"busy", {"Retry-After": "0"})
                repo = m.group("repo")
                if repo not in server.repos:
                    return self._plain(404, b'{"error": "Repository not found"}')
                return self._plain(
                    200, json.dumps(server.revision_json(repo)).encode(), {"Content-Type": "application/json"}
                )
            m = _RESOLVE.match(path)
            if (
                not m
                or m.group("repo") not in server.repos
                or m.group("path") not in server.repos[m.group("repo")]
            ):
                return self._plain(404, b"Entry not found")
            self._serve_file(m.group("repo"), m.group("path"), server.repos[m.group("repo")][m.group("path")])

        def _serve_file(self, repo: str, path: str, f: HostedFile) -> None:
            fl = f.faults
            if fl.redirect_to:
                return self._plain(302, b"", {"Location": f"{fl.redirect_to}{self.path}"})
            with server.lock:
                status = fl.statuses.pop(0) if fl.statuses and self.command == "GET" else None
            if status:
                headers = {"Retry-After": fl.retry_after} if fl.retry_after is not None else {}
                return self._plain(status, b"busy", headers)
            size = f.size
            start, end, partial = 0, size, False
            rng = self.headers.get("Range")
            if rng and not fl.ignore_range:
                rm = _RANGE.match(rng.strip())
                if rm:
                    start = int(rm.group(1))
                    end = min(size, int(rm.group(2)) + 1) if rm.group(2) else size
                    if start >= size or end <= start:
                        return self._plain(416, b"", {"Content-Range": f"bytes */{size}"})
                    partial = True
            if self.command == "GET":
                with server.lock:
                    f.body_responses += 1
                    if fl.etag_change_after is not None and f.body_responses > fl.etag_change_after:
                        f.changed = True
            etag = f'"{server.sha256(repo, path)}{"-changed" if f.changed else ""}"'
            self.send_response(206 if partial else 200)
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Size", str(size))
            if f.lfs:
                self.send_header("X-Linked-Etag", etag)
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if self.command == "HEAD":
                return
            self._send_body(repo, path, f, start, end)

        def _pace(self, nbytes: int) -> None:
            """Cap this connection at server.rate, across all its requests (no burst at each new request)."""
            if not server.rate:
                return
            now = time.monotonic()
            ready = max(getattr(self, "_next_ok", now), now)
            if ready > now:
                time.sleep(ready - now)
            self._next_ok = ready + nbytes / server.rate

        def _take(self, attr: str) -> bool:
            fl = self.server_faults
            with server.lock:
                n = getattr(fl, attr)
                if n > 0:
                    setattr(fl, attr, n - 1)
                    return True
            return False

        def _send_body(self, repo: str, path: str, f: HostedFile, start: int, end: int) -> None:
            fl = f.faults
            if f.disk is not None and fl == Faults() and not f.changed:
                return self._sendfile(repo, path, f, start, end)
            self.server_faults = fl
            stop = end
            drop = (fl.drop_at is not None and start <= fl.drop_at < end
                    and not (fl.zeros_after_drop is not None and f.dropped_once) and self._take("drop_times"))
            if drop:
                stop = fl.drop_at  # type: ignore[assignment]
            short = not drop and fl.short_by > 0 and self._take("short_times")
            if short:
                stop = max(start, end - fl.short_by)
            corrupt = (
                fl.corrupt_at is not None and start <= fl.corrupt_at < end and self._take("corrupt_times")
            )
            stall = fl.stall_at is not None and start <= fl.stall_at < end and self._take("stall_times")
            pos = start
            block = 64 * 1024
            try:
                while pos < stop:
                    if stall and pos >= fl.stall_at:  # type: ignore[operator]
                        time.sleep(fl.stall_seconds)
                        stall = False
                    n = min(block, stop - pos)
                    if stall and pos < fl.stall_at < pos + n:  # type: ignore[operator]
                        n = fl.stall_at - pos  # type: ignore[operator]
                    chunk = f.read(pos, pos + n)
                    if corrupt and pos <= fl.corrupt_at < pos + n:  # type: ignore[operator]
                        i = fl.corrupt_at - pos  # type: ignore[operator]
                        chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                    self._pace(len(chunk))
                    self.wfile.write(chunk)
                    pos += n
                    with server.lock:
                        key = f"{repo}/{path}"
                        server.bytes_sent[key] = server.bytes_sent.get(key, 0) + n
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            if drop or short:
                if drop and fl.zeros_after_drop is not None:
                    f.dropped_once, f.poisoned_below = True, fl.zeros_after_drop
                self.wfile.flush()
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.close_connection = True

        def _sendfile(self, repo: str, path: str, f: HostedFile, start: int, end: int) -> None:
            """Fault-free disk files go out with sendfile in 1 MiB steps (paced when rate-capped)."""
            pos, key = start, f"{repo}/{path}"
            self.wfile.flush()
            try:
                with open(f.disk, "rb") as fh:  # type: ignore[arg-type]
                    while pos < end:
                        step = min(256 * 1024 if server.rate else 1 << 20, end - pos)
                        self._pace(step)
                        n = self.connection.sendfile(fh, pos, step)
                        if n <= 0:
                            break
                        pos += n
                        with server.lock:
                            server.bytes_sent[key] = server.bytes_sent.get(key, 0) + n
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible test data."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def make_disk_file(path: Path, size: int) -> Path:
    """A file of `size` pseudo-random bytes written in blocks (for large benchmark files)."""
    with open(path, "wb") as f:
        left = size
        block = os.urandom(1 << 20)
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    return path
