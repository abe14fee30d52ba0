"""`toolkit mirror serve` and `mirror export`: a real server process, a Hub client, and static files."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import toolkit_process
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import fast_config, hf_variant
from toolkit.download.api import download_variant
from toolkit.mirror.export import export
from toolkit.store.blobs import Store

DATA = random_bytes(2_000_000, seed=3)
CONFIG = b'{"model": {"type": "qwen2"}}'
VARIANT = hf_variant("org/tiny", vid="tiny-cpu:2")


@pytest.fixture()
def filled_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store holding tiny-cpu:2, downloaded from a Hub-like server that is gone afterwards."""
    root = tmp_path / "origin-store"
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        hub.add("org/tiny", "sub/genai_config.json", CONFIG, lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        download_variant(None, VARIANT, config=fast_config(), root=root)
    return root


@pytest.fixture()
def mirror_url(filled_store: Path):
    """A real `toolkit mirror serve --port 0` process over the filled store."""
    proc = toolkit_process("mirror", "serve", "--port", "0", env={"TOOLKIT_HOME": str(filled_store)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert " at http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
    yield line.split(" at ")[1].split()[0]
    proc.kill()
    proc.wait()


def test_revision_api_lists_files_with_sha256(mirror_url: str) -> None:
    info = httpx.get(f"{mirror_url}/api/models/toolkit/tiny-cpu/revision/2").json()
    files = {s["rfilename"]: s for s in info["siblings"]}
    assert files["model.onnx"]["lfs"]["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert files["sub/genai_config.json"]["size"] == len(CONFIG)
    assert len(info["sha"]) == 40
    assert httpx.get(f"{mirror_url}/api/models/toolkit/nothing/revision/1").status_code == 404


def test_resolve_serves_ranges_with_etag_and_sha256(mirror_url: str) -> None:
    url = f"{mirror_url}/toolkit/tiny-cpu/resolve/2/model.onnx"
    r = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == DATA[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    assert r.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert r.headers["x-content-sha256"] == hashlib.sha256(DATA).hexdigest()
    full = httpx.get(url)
    assert full.status_code == 200 and full.content == DATA
    assert httpx.get(url, headers={"Range": f"bytes={len(DATA)}-"}).status_code == 416


def test_huggingface_hub_client_downloads_from_the_mirror(mirror_url: str, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    code = (
        "import sys; from huggingface_hub import hf_hub_download; "
        "print(hf_hub_download('toolkit/tiny-cpu', 'sub/genai_config.json', revision='2', "
        "cache_dir=sys.argv[1]))"
    )
    env = dict(os.environ, HF_ENDPOINT=mirror_url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0")
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "hf")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_bytes() == CONFIG


def test_toolkit_mirror_is_tried_first(
    mirror_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "HF_ENDPOINT", "http://127.0.0.1:9"
    )  # the Hub is unreachable: only the mirror can serve
    monkeypatch.setenv("TOOLKIT_MIRROR", mirror_url)
    snap, report = download_variant(None, VARIANT, config=fast_config(), root=tmp_path / "client")
    assert report.source == "mirror"
    assert (snap / "model.onnx").read_bytes() == DATA and (
        snap / "sub" / "genai_config.json"
    ).read_bytes() == CONFIG


def test_unknown_variant_on_the_mirror_falls_back_to_its_source(
    mirror_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HubServer() as hub:
        hub.add("org/other", "model.onnx", DATA[:1000])
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        from tests.helpers_net.variants import Recorder

        rec = Recorder()
        snap, report = download_variant(
            None,
            hf_variant("org/other", vid="other-cpu:1"),
            rec,
            mirror=mirror_url,
            config=fast_config(),
            root=tmp_path / "client",
        )
    assert report.source == "huggingface" and (snap / "model.onnx").read_bytes() == DATA[:1000]
    assert any("mirror" in n and "using the huggingface source" in n for n in rec.notes)


def test_export_writes_static_files_any_web_server_can_serve(filled_store: Path, tmp_path: Path) -> None:
    dest = tmp_path / "www"
    report = export(Store(filled_store), dest)
    assert report.variants == ["tiny-cpu:2"] and report.files == 2 and report.linked == 2
    index = json.loads((dest / "api" / "toolkit" / "variants").read_text())
    assert index["variants"][0]["id"] == "tiny-cpu:2"
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(dest))  # no Range support at all
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        snap, report = download_variant(
            None, VARIANT, mirror=url, config=fast_config(), root=tmp_path / "client"
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert report.source == "mirror" and (snap / "model.onnx").read_bytes() == DATA


def test_a_mirror_failing_mid_download_hands_over_to_the_variants_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers_net.hub_server import Faults
    from tests.helpers_net.variants import Recorder

    with HubServer() as broken_mirror, HubServer() as hub:
        broken_mirror.add("toolkit/tiny-cpu", "model.onnx", DATA, faults=Faults(statuses=[503] * 1000))
        broken_mirror.add("toolkit/tiny-cpu", "sub/genai_config.json", CONFIG, lfs=False)
        hub.add("org/tiny", "model.onnx", DATA)
        hub.add("org/tiny", "sub/genai_config.json", CONFIG, lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rec = Recorder()
        snap, report = download_variant(
            None, VARIANT, rec, mirror=broken_mirror.url, config=fast_config(retries=1), root=tmp_path / "c"
        )
        from_hub = hub.sent("model.onnx")
    assert report.source == "huggingface" and (snap / "model.onnx").read_bytes() == DATA
    assert any("failed" in n and "using the huggingface source" in n for n in rec.notes)
    assert from_hub >= len(DATA)
