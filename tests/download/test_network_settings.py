"""Corporate networks: an HTTP proxy from the environment, and a private CA bundle for TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from catalog.errors import SourceError
from catalog.schema import Source, Variant
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.proxy import ForwardProxy
from tests.helpers_net.variants import fast_config, hf_variant
from toolkit.download.api import download_variant
from toolkit.mirror.server import MirrorServer
from toolkit.store.blobs import Store

DATA = random_bytes(600_000, seed=21)


def test_downloads_go_through_the_proxy_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    with HubServer() as hub, ForwardProxy() as proxy:
        hub.add("org/tiny", "model.onnx", DATA)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        snap, _ = download_variant(None, hf_variant("org/tiny"), config=fast_config(), root=tmp_path)
    assert (snap / "model.onnx").read_bytes() == DATA
    assert any("/api/models/org/tiny/revision/" in u for u in proxy.seen)
    assert any(u.startswith(hub.url) and "/resolve/" in u for u in proxy.seen)


@pytest.fixture()
def tls_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A mirror over HTTPS with a self-signed certificate for 127.0.0.1, serving tiny-cpu:1."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    origin = tmp_path / "origin"
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        download_variant(None, hf_variant("org/tiny"), config=fast_config(), root=origin)
    server = MirrorServer(Store(origin), "127.0.0.1", 0)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "TOOLKIT_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def mirror_variant(base: str) -> Variant:
    return Variant(
        id="tiny-cpu:1",
        device="cpu",
        vendor="any",
        execution_provider="CPUExecutionProvider",
        format="onnx-genai",
        quantization="int4",
        source=Source(type="mirror", base_url=base),
    )


def test_private_ca_is_refused_by_default_with_a_clear_error(tls_mirror, tmp_path: Path) -> None:
    url, _ = tls_mirror
    with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED.*TOOLKIT_CA_BUNDLE") as e:
        download_variant(None, mirror_variant(url), config=fast_config(), root=tmp_path / "client")
    assert url in str(e.value)


@pytest.mark.parametrize("var", ["TOOLKIT_CA_BUNDLE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_ca_bundle_from_the_environment_is_trusted(tls_mirror, tmp_path: Path, monkeypatch, var: str) -> None:
    url, cert = tls_mirror
    monkeypatch.setenv(var, str(cert))
    snap, report = download_variant(None, mirror_variant(url), config=fast_config(), root=tmp_path / "client")
    assert report.source == "mirror" and (snap / "model.onnx").read_bytes() == DATA


def test_unreadable_ca_bundle_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalog.errors import DownloadError
    from catalog.sources.http import make_client

    monkeypatch.setenv("TOOLKIT_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(DownloadError, match="TOOLKIT_CA_BUNDLE="):
        make_client()
