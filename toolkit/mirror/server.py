"""`toolkit mirror serve`: the store over HTTP, Hub-compatible subset, with Range, ETag and sha256.

The standard library's ThreadingHTTPServer (a thread per connection) with `socket.sendfile` for
bodies: enough for a lab or an office fleet without adding a dependency; put a CDN or any static
web server in front of `mirror export` for more.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from toolkit.mirror.layout import PublishedVariant, index_json, published_variants
from toolkit.store.blobs import Store

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class MirrorServer(ThreadingHTTPServer):
    """An HTTP server over one store; the variant list is re-read on each API request."""

    daemon_threads = True

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 8765, ttl: float = 1.0) -> None:
        self.store, self.ttl = store, ttl
        self._cache: tuple[float, dict] = (float("-inf"), {})
        self._cache_lock = threading.Lock()
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

    def handle_error(self, request, client_address) -> None:  # clients that hang up are normal here
        pass

    def start_background(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, daemon=True, name="toolkit-mirror")
        t.start()
        return t


def parse_range(value: str | None, size: int) -> tuple[int, int] | None | str:
    """A single 'bytes=a-b' range as [start, end); None for no Range; 'unsatisfiable' when out of bounds."""
    if not value:
        return None
    m = _RANGE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        return (max(0, size - n), size) if n > 0 else "unsatisfiable"
    start = int(m.group(1))
    end = min(size, int(m.group(2)) + 1) if m.group(2) else size
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MirrorServer
    server_version = "toolkit-mirror"

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

    def _error(self, code: int, message: str) -> None:
        self._send(code, json.dumps({"error": message}).encode(), extra={"X-Error-Message": message})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        published = self.server.published()
        if path in ("/api/toolkit/variants", "/api/toolkit/variants/"):
            return self._send(200, json.dumps(index_json(published)).encode())
        m = _API.match(path)
        if m:
            pv = published.get((m.group("repo"), m.group("rev")))
            if pv is None:
                return self._error(404, f"Repository {m.group('repo')} revision {m.group('rev')} not found")
            return self._send(200, json.dumps(pv.revision_json()).encode())
        m = _RESOLVE.match(path)
        if m:
            pv = published.get((m.group("repo"), m.group("rev")))
            if pv is not None:
                return self._file(pv, m.group("path"))
        self._error(404, f"{path} not found")

    def _file(self, pv: PublishedVariant, rel: str) -> None:
        entry = next((f for f in pv.files if f.path == rel), None)
        if entry is None:
            return self._error(404, f"{rel} is not a file of {pv.variant_id}")
        blob = self.server.store.blob_path(entry.sha256)
        try:
            fh = open(blob, "rb")
        except OSError:
            return self._error(404, f"{rel}: blob missing from the store (run `toolkit cache verify`)")
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
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


def serve(store: Store, host: str, port: int) -> MirrorServer:
    """Bind a MirrorServer (call serve_forever or start_background on it)."""
    return MirrorServer(store, host, port)
