"""`mirror serve` facing hostile clients: raw sockets against a real MirrorServer on 127.0.0.1.

Every malformed request gets a clean 4xx (never a dropped connection or a traceback), no request text reaches
a response header, idle and trickling connections are closed, and the server goes on serving afterwards.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import fast_config, hf_variant
from toolkit.download.api import download_variant
from toolkit.mirror.server import MirrorServer
from toolkit.store.blobs import Store

DATA = random_bytes(50_000, seed=5)
FILE = "/toolkit/tiny-cpu/resolve/2/model.onnx"
IDLE = 0.6


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MirrorServer]:
    """A MirrorServer over a store holding tiny-cpu:2 (model.onnx and sub/genai_config.json), short idle timeout."""
    root = tmp_path / "store"
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        hub.add("org/tiny", "sub/genai_config.json", b"{}", lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        download_variant(None, hf_variant("org/tiny", vid="tiny-cpu:2"), config=fast_config(), root=root)
    srv = MirrorServer(Store(root), port=0, idle_timeout=IDLE, max_connections=4)
    srv.start_background()
    yield srv
    srv.shutdown()
    srv.server_close()


def _connect(srv: MirrorServer) -> socket.socket:
    return socket.create_connection(srv.server_address[:2], timeout=5)


def exchange(srv: MirrorServer, request: bytes) -> tuple[int, list[bytes], bytes]:
    """Send one raw request and read until the server closes: (status, raw header lines, body)."""
    with _connect(srv) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no HTTP response head, got {data[:200]!r}"
    status_line, *lines = head.split(b"\r\n")
    return int(status_line.split()[1]), lines, body


def get(path: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    return b"\r\n".join([method + b" " + path + b" HTTP/1.1", b"Host: mirror", *headers, b"Connection: close",
                         b"", b""])


def assert_still_serves(srv: MirrorServer) -> None:
    status, lines, body = exchange(srv, get(FILE.encode(), b"Range: bytes=10-19"))
    assert status == 206 and body == DATA[10:20]


@pytest.mark.parametrize("path", [
    b"/x%0d%0aSet-Cookie:%20pwned=1",
    b"/toolkit/tiny-cpu/resolve/2/x%0d%0aSet-Cookie:%20pwned=1",
    b"/toolkit/tiny-cpu/resolve/2%0d%0aSet-Cookie:%20pwned=1/model.onnx",
    b"/api/models/toolkit/tiny-cpu/revision/2%0aSet-Cookie:%20pwned=1",
    b"/x%0aSet-Cookie:%20pwned=1",
])
def test_crlf_in_the_path_cannot_add_a_response_header(server: MirrorServer, path: bytes) -> None:
    status, lines, body = exchange(server, get(path))
    assert 400 <= status < 500
    assert not any(line.lower().startswith(b"set-cookie") for line in lines), lines
    assert not any(b"pwned" in line for line in lines), lines
    assert all(b": " in line for line in lines)  # every line is a header the server meant to send
    assert_still_serves(server)


def test_no_request_text_in_error_headers(server: MirrorServer) -> None:
    status, lines, body = exchange(server, get(b"/toolkit/tiny-cpu/resolve/2/nothing-here.onnx"))
    assert status == 404 and b"nothing-here" in body
    assert not any(b"nothing-here" in line for line in lines)
    assert b"X-Error-Code: EntryNotFound" in lines


@pytest.mark.parametrize("path", [
    b"/toolkit/tiny-cpu/resolve/2/../../../etc/passwd",
    b"/toolkit/tiny-cpu/resolve/2/..%2f..%2f..%2fetc%2fpasswd",
    b"/toolkit/tiny-cpu/resolve/2/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    b"/toolkit/tiny-cpu/resolve/2/sub%2fgenai_config.json",  # an encoded '/', even to a file that exists
    b"/toolkit/tiny-cpu/resolve/2/sub%5cgenai_config.json",
    b"/toolkit/tiny-cpu/resolve/2/model.onnx%00.txt",
    b"/toolkit/tiny-cpu/resolve/2/./model.onnx",
    b"/toolkit/tiny-cpu/resolve/2//model.onnx",
    b"/toolkit/tiny-cpu/resolve/2/model%ff.onnx",
])
def test_paths_that_are_not_plain_names_are_refused(server: MirrorServer, path: bytes) -> None:
    status, lines, body = exchange(server, get(path))
    assert status == 400, body
    assert b"root:" not in body and body.startswith(b"{")
    assert_still_serves(server)


def test_a_very_long_path_is_refused(server: MirrorServer) -> None:
    status, _, _ = exchange(server, get(b"/toolkit/tiny-cpu/resolve/2/" + b"a" * 10_000))
    assert status == 414
    status, _, _ = exchange(server, get(b"/" + b"a" * 70_000))  # past the standard library's own limit
    assert status == 414
    assert_still_serves(server)


def test_an_oversized_header_is_refused(server: MirrorServer) -> None:
    status, lines, body = exchange(server, get(FILE.encode(), b"X-Big: " + b"b" * 70_000))
    assert status == 431 and body.startswith(b"{")
    assert_still_serves(server)


@pytest.mark.parametrize("value", [
    b"bytes=-5-10",  # a negative start
    b"bytes=abc",
    b"bytes=5",
    b"bytes=",
    b"bytes=10-5",
    b"bytes=" + b"9" * 5000 + b"-",  # past the end (and past int()'s 4300-digit limit)
    b"bytes=0-1,x",
])
def test_malformed_or_unsatisfiable_ranges_get_416(server: MirrorServer, value: bytes) -> None:
    status, lines, body = exchange(server, get(FILE.encode(), b"Range: " + value))
    assert status == 416
    assert f"Content-Range: bytes */{len(DATA)}".encode() in lines
    assert_still_serves(server)


def test_a_huge_range_end_is_clamped_to_the_file(server: MirrorServer) -> None:
    status, lines, body = exchange(server, get(FILE.encode(), b"Range: bytes=100-" + b"9" * 5000))
    assert status == 206 and body == DATA[100:]


def test_several_ranges_get_the_whole_file_once(server: MirrorServer) -> None:
    # RFC 9110 lets a server ignore Range; one copy of the file, never one part per range requested
    status, lines, body = exchange(server, get(FILE.encode(), b"Range: bytes=" + b",".join([b"0-"] * 1000)))
    assert status == 200 and body == DATA


def test_head_sends_the_headers_of_get_and_no_body(server: MirrorServer) -> None:
    status, lines, body = exchange(server, get(FILE.encode(), method=b"HEAD"))
    assert status == 200 and body == b""
    assert f"Content-Length: {len(DATA)}".encode() in lines
    assert f'ETag: "{hashlib.sha256(DATA).hexdigest()}"'.encode() in lines
    status, lines, body = exchange(server, get(b"/toolkit/tiny-cpu/resolve/2/missing", method=b"HEAD"))
    assert status == 404 and body == b""


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"BREW"])
def test_methods_other_than_get_and_head_get_405(server: MirrorServer, method: bytes) -> None:
    status, lines, body = exchange(server, get(FILE.encode(), b"Content-Length: 5", method=method) + b"hello")
    assert status == 405 and b"Allow: GET, HEAD" in lines and b"Connection: close" in lines
    assert_still_serves(server)


def test_an_idle_connection_is_closed(server: MirrorServer) -> None:
    with _connect(server) as s:
        start = time.monotonic()
        assert s.recv(1) == b""  # the server hung up
        assert time.monotonic() - start < IDLE + 2
    assert_still_serves(server)


def test_a_request_trickled_byte_by_byte_is_cut_off(server: MirrorServer) -> None:
    request = get(FILE.encode(), *[b"X-Slow: %d" % i for i in range(200)])  # ~50 s at this pace
    with _connect(server) as s:
        start = time.monotonic()
        try:
            for byte in request:
                s.sendall(bytes([byte]))
                time.sleep(0.02)
                assert time.monotonic() - start < IDLE + 2, "the server kept a trickling request open"
        except OSError:  # the server hung up mid-request
            pass
        else:
            pytest.fail("the whole trickled request got through")
    assert_still_serves(server)


def test_a_keep_alive_connection_serves_requests_then_closes_when_idle(server: MirrorServer) -> None:
    with _connect(server) as s:
        for _ in range(2):
            s.sendall(b"GET " + FILE.encode() + b" HTTP/1.1\r\nHost: mirror\r\nRange: bytes=0-9\r\n\r\n")
            data = b""
            while not data.endswith(DATA[:10]):
                data += s.recv(4096)
            assert data.startswith(b"HTTP/1.1 206")
        start = time.monotonic()
        assert s.recv(1) == b""
        assert time.monotonic() - start < IDLE + 2


def test_connections_past_the_cap_get_503_and_are_closed(server: MirrorServer) -> None:
    idle = [_connect(server) for _ in range(4)]  # max_connections=4: every slot is taken
    try:
        time.sleep(0.1)
        status, lines, body = exchange(server, get(FILE.encode()))
        assert status == 503 and b"Retry-After: 5" in lines
    finally:
        for s in idle:
            s.close()
    time.sleep(0.2)
    assert_still_serves(server)
