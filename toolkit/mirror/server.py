"""`toolkit mirror serve`: the store over HTTP, Hub-compatible subset, with Range, ETag and sha256.

The standard library's ThreadingHTTPServer (a thread per connection) with `socket.sendfile` for
bodies: enough for a lab or an office fleet without adding a dependency; put a CDN or any static
web server in front of `mirror export` for more.

Clients are not trusted: a request head must arrive whole within `idle_timeout` seconds (so idle and
trickling connections are closed), at most `max_connections` are served at once (more get a 503),
request paths are checked segment by segment (no '..', NUL, control characters or encoded '/'), and no
text from a request is ever written into a response header: error headers carry fixed words, the
detail goes in the JSON body.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from toolkit.mirror.layout import PublishedVariant, index_json, published_variants
from toolkit.store.blobs import Store

_RANGE_SPEC = re.compile(r"^(\d*)-(\d*)$")
_HUGE = 10**18  # a range bound with more digits than this is past the end of any file
MAX_TARGET = 4096  # characters of a request target; Hub paths are far shorter
IDLE_TIMEOUT = 30.0
MAX_CONNECTIONS = 256
# Fixed header words for the Hub's error codes (huggingface_hub turns them into typed errors).
_NOT_FOUND = {"repo": "RepoNotFound", "revision": "RevisionNotFound", "entry": "EntryNotFound"}
_BUSY_BODY = b'{"error": "the mirror is serving as many connections as it may; try again shortly"}\n'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class MirrorServer(ThreadingHTTPServer):
    """An HTTP server over one store; the variant list is re-read on each API request."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 8765, ttl: float = 1.0,
                 idle_timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> None:
        self.store, self.ttl, self.idle_timeout = store, ttl, idle_timeout
        self._cache: tuple[float, dict] = (float("-inf"), {})
        self._cache_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((host, port), _Handler)

    def published(self) -> dict[tuple[str, str], PublishedVariant]:
        """The store's complete variants, re-read at most every `ttl` seconds (many Range requests share it)."""
        with self._cache_lock:
            when, data = self._cache
            if time.monotonic() - when > self.ttl:
                data = published_variants(self.store)
                self._cache = (time.monotonic(), data)
            return data

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request, client_address) -> None:
        """A thread for the connection while a slot is free; a 503 and a close otherwise."""
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:  # clients that hang up are normal here
        pass

    def start_background(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, daemon=True, name="toolkit-mirror")
        t.start()
        return t


def _bound(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(value: str | None, size: int) -> tuple[int, int] | None | str:
    """A single 'bytes=a-b' range as [start, end); None for no Range, another unit or several ranges (the whole
    file is sent, as RFC 9110 allows); 'unsatisfiable' when out of bounds or not a valid bytes range."""
    if not value:
        return None
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [_RANGE_SPEC.match(part.strip()) for part in spec.split(",")]
    if not all(m and (m.group(1) or m.group(2)) for m in specs):
        return "unsatisfiable"
    if len(specs) > 1:
        return None
    first, last = specs[0].groups()
    if not first:
        n = _bound(last)
        return (max(0, size - n), size) if n > 0 else "unsatisfiable"
    start = _bound(first)
    end = min(size, _bound(last) + 1) if last else size
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


def request_segments(target: str) -> list[str] | None:
    """The request target's path as decoded segments; None unless each is a plain name (no '.', '..', NUL,
    control character, backslash or encoded '/', valid UTF-8). A trailing '/' is ignored."""
    path = urlsplit(target).path
    if not path.startswith("/"):
        return None
    path = path[1:].removesuffix("/")
    if not path:
        return []
    segments = []
    for part in path.split("/"):
        try:
            segment = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if segment in ("", ".", "..") or "/" in segment or "\\" in segment or not segment.isprintable():
            return None
        segments.append(segment)
    return segments


class _RequestDeadline(io.RawIOBase):
    """The connection's reads, each waiting only until the deadline: a request head must arrive whole in time,
    however slowly a client trickles it (a per-read timeout alone lets one byte every few seconds through)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock, self.seconds, self.deadline = sock, seconds, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def restart(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete request within {self.seconds:g} s")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MirrorServer
    server_version = "toolkit-mirror"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader with a deadline
        self._deadline = _RequestDeadline(self.connection, self.server.idle_timeout)
        self.rfile = io.BufferedReader(self._deadline)

    def handle_one_request(self) -> None:
        self._deadline.restart()
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.connection.settimeout(self.server.idle_timeout)  # for the response: a client that stops reading
        if ok and self.command not in ("GET", "HEAD"):
            # a body it may have sent is not read, so the connection cannot carry another request
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are served",
                        extra={"Allow": "GET, HEAD", "Connection": "close"})
            return False
        return ok

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self, code: int, body: bytes, ctype: str = "application/json", extra: dict | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, detail: str, extra: dict | None = None) -> None:
        """An error: the detail (which may quote the request) only in the JSON body, escaped by json.dumps."""
        self._send(code, json.dumps({"error": detail}).encode() + b"\n", extra=extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (malformed request line, headers too long) in the same form, with
        the standard reason phrase: its messages quote the request, and its default puts them in the status line."""
        self._error(code, message or HTTPStatus(code).phrase, extra={"Connection": "close"})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if len(self.path) > MAX_TARGET:
            return self._error(HTTPStatus.REQUEST_URI_TOO_LONG, f"request target longer than {MAX_TARGET} characters")
        segments = request_segments(self.path)
        if segments is None:
            return self._error(HTTPStatus.BAD_REQUEST, "not a plain path (no '..', NUL, control characters or "
                                                       "encoded '/')")
        published = self.server.published()
        if segments == ["api", "toolkit", "variants"]:
            return self._send(200, json.dumps(index_json(published)).encode())
        if len(segments) == 6 and segments[:2] == ["api", "models"] and segments[4] == "revision":
            repo, rev = "/".join(segments[2:4]), segments[5]
            pv = published.get((repo, rev))
            if pv is None:
                return self._not_found(published, repo, f"Repository {repo} revision {rev} not found")
            return self._send(200, json.dumps(pv.revision_json()).encode())
        if len(segments) >= 5 and segments[2] == "resolve":
            repo, rev = "/".join(segments[:2]), segments[3]
            pv = published.get((repo, rev))
            if pv is None:
                return self._not_found(published, repo, f"Repository {repo} revision {rev} not found")
            return self._file(pv, "/".join(segments[4:]))
        self._error(HTTPStatus.NOT_FOUND, f"{'/'.join(segments)} not found")

    def _not_found(self, published: dict, repo: str, detail: str) -> None:
        kind = "revision" if any(r == repo for r, _ in published) else "repo"
        self._error(HTTPStatus.NOT_FOUND, detail, extra={"X-Error-Code": _NOT_FOUND[kind]})

    def _file(self, pv: PublishedVariant, rel: str) -> None:
        entry = next((f for f in pv.files if f.path == rel), None)
        if entry is None:
            return self._error(HTTPStatus.NOT_FOUND, f"{rel} is not a file of {pv.variant_id}",
                               extra={"X-Error-Code": _NOT_FOUND["entry"]})
        blob = self.server.store.blob_path(entry.sha256)
        try:
            fh = open(blob, "rb")
        except OSError:
            return self._error(HTTPStatus.NOT_FOUND, f"{rel}: blob missing from the store (run `toolkit cache verify`)")
        with fh:
            size = entry.size
            rng = parse_range(self.headers.get("Range"), size)
            common = {
                "Accept-Ranges": "bytes",
                "ETag": f'"{entry.sha256}"',
                "X-Linked-Etag": f'"{entry.sha256}"',
                "X-Linked-Size": str(size),
                "X-Repo-Commit": pv.commit,
                "X-Content-Sha256": entry.sha256,
                "Content-Type": "application/octet-stream",
            }
            if rng == "unsatisfiable":
                return self._send(416, b"", extra={"Content-Range": f"bytes */{size}"})
            start, end = rng if isinstance(rng, tuple) else (0, size)
            self.send_response(206 if isinstance(rng, tuple) else 200)
            for k, v in common.items():
                self.send_header(k, v)
            if isinstance(rng, tuple):
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            if self.command == "HEAD":
                return
            try:
                self.wfile.flush()
                self.connection.sendfile(fh, start, end - start)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True


def serve(store: Store, host: str, port: int, idle_timeout: float = IDLE_TIMEOUT,
          max_connections: int = MAX_CONNECTIONS) -> MirrorServer:
    """Bind a MirrorServer (call serve_forever or start_background on it)."""
    return MirrorServer(store, host, port, idle_timeout=idle_timeout, max_connections=max_connections)
