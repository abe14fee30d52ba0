"""An Azure Blob Storage look-alike on 127.0.0.1: List Blobs (XML, paged, UTF-8 BOM, as recorded from the
service's 2021-08-06 API) and blob GETs with Range, ETag and a SAS check (`sig` must match)."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

SIG = "recorded-signature"
BLOB_XML = """<Blob><Name>{name}</Name><Properties><Creation-Time>Wed, 03 Apr 2024 17:04:46 GMT</Creation-Time>\
<Last-Modified>Wed, 03 Apr 2024 17:04:46 GMT</Last-Modified><Etag>{etag}</Etag>\
<Content-Length>{size}</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding />\
<Content-Language /><Content-CRC64 /><Content-MD5>{md5}</Content-MD5><Cache-Control /><Content-Disposition />\
<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>\
<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted>\
</Properties><OrMetadata /></Blob>"""
AUTH_FAILED = (
    '\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server '
    "failed to authenticate the request.</Message></Error>"
)


class BlobServer:
    """`with BlobServer() as s:`; `s.put(container, name, data)`; `s.folder_url(container, prefix)` has a SAS."""

    def __init__(self, page_size: int = 2) -> None:
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.page_size = page_size
        self.list_calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                u = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
                if q.get("sig") != SIG:
                    return self.reply(403, AUTH_FAILED.encode(), {"Content-Type": "application/xml"})
                container, _, name = unquote(u.path).lstrip("/").partition("/")
                if container not in outer.blobs:
                    return self.reply(404, b"ContainerNotFound")
                if q.get("comp") == "list":
                    return self.reply(
                        200,
                        outer.listing(container, q.get("prefix", ""), q.get("marker", "")),
                        {"Content-Type": "application/xml"},
                    )
                data = outer.blobs[container].get(name)
                if data is None:
                    return self.reply(404, b"BlobNotFound")
                m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
                etag = '"0x' + hashlib.sha256(data).hexdigest()[:15].upper() + '"'
                if m:
                    start = int(m.group(1))
                    end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
                    return self.reply(
                        206,
                        data[start:end],
                        {"ETag": etag, "Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
                    )
                self.reply(200, data, {"ETag": etag})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def folder_url(self, container: str, prefix: str) -> str:
        return f"{self.account_url}/{container}/{prefix}?sv=2021-08-06&sr=c&sp=rl&sig={SIG}"

    def put(self, container: str, name: str, data: bytes) -> None:
        self.blobs.setdefault(container, {})[name] = data

    def listing(self, container: str, prefix: str, marker: str) -> bytes:
        self.list_calls += 1
        names = sorted(n for n in self.blobs[container] if n.startswith(prefix))
        start = names.index(marker) if marker in names else 0
        page, rest = names[start : start + self.page_size], names[start + self.page_size :]
        blobs = "".join(
            BLOB_XML.format(
                name=escape(n),
                size=len(self.blobs[container][n]),
                etag="0x" + hashlib.sha256(self.blobs[container][n]).hexdigest()[:15].upper(),
                md5=base64.b64encode(hashlib.md5(self.blobs[container][n]).digest()).decode(),
            )
            for n in page
        )
        xml = (
            f'\ufeff<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{self.account_url}/" '
            f'ContainerName="{container}"><Prefix>{escape(prefix)}</Prefix><MaxResults>{self.page_size}</MaxResults>'
            f"<Blobs>{blobs}</Blobs><NextMarker>{escape(rest[0]) if rest else ''}</NextMarker></EnumerationResults>"
        )
        return xml.encode("utf-8")

    def __enter__(self) -> BlobServer:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
