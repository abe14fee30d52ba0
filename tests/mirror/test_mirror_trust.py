"""A mirror is not trusted for digests: the manifest's pins or the variant's own source vouch for its bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
from pathlib import Path

import pytest

from catalog.errors import SourceError
from catalog.schema import FileEntry
from tests.helpers.cli import run_toolkit
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import Recorder, fast_config, hf_variant, hf_variant_json, write_manifest
from toolkit import paths
from toolkit.download.api import download_variant
from toolkit.mirror.server import MirrorServer
from toolkit.store.blobs import Store

REAL = random_bytes(1_500_000, seed=11)
FORGED = random_bytes(1_500_000, seed=12)
CONFIG = b'{"model": {"type": "qwen2"}}'
VARIANT = hf_variant("org/tiny", vid="tiny-cpu:1")


@pytest.fixture(autouse=True)
def quick_api_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_DL_BACKOFF_BASE", "0.01")  # the origin's API is retried like any source's


def _store_from(data: bytes, root: Path, monkeypatch: pytest.MonkeyPatch, config: bytes | None = CONFIG) -> Store:
    """A store holding tiny-cpu:1 with `data` as its model.onnx (and `config`, unless None), as a mirror's disk."""
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", data)
        if config is not None:
            hub.add("org/tiny", "genai_config.json", config, lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        download_variant(None, VARIANT, config=fast_config(), root=root)
    return Store(root)


@pytest.fixture()
def lying_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A mirror whose store holds other bytes under tiny-cpu:1, with digests that agree with those bytes."""
    with MirrorServer(_store_from(FORGED, tmp_path / "mirror-store", monkeypatch), port=0) as server:
        server.start_background()
        yield server.url
        server.shutdown()


@pytest.fixture()
def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _no_real_or_forged_blob_but(root: Path, wanted: bytes | None) -> None:
    names = {b.name for b in (root / "blobs" / "sha256").glob("*")} if (root / "blobs").exists() else set()
    assert hashlib.sha256(FORGED).hexdigest() not in names
    if wanted is not None:
        assert hashlib.sha256(wanted).hexdigest() in names


def test_a_mirror_whose_digests_differ_from_the_origin_is_refused_and_the_origin_used(
        lying_mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with HubServer() as origin:
        origin.add("org/tiny", "model.onnx", REAL)
        origin.add("org/tiny", "genai_config.json", CONFIG, lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", origin.url)
        rec = Recorder()
        snap, report = download_variant(None, VARIANT, rec, mirror=lying_mirror, config=fast_config(),
                                        root=tmp_path / "client")
    assert (snap / "model.onnx").read_bytes() == REAL
    assert report.source == "huggingface"
    assert any("the mirror says sha256" in n and "the origin says" in n for n in rec.notes), rec.notes
    _no_real_or_forged_blob_but(tmp_path / "client", REAL)


def test_an_honest_mirror_is_vouched_for_by_the_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store_from(REAL, tmp_path / "mirror-store", monkeypatch)
    with MirrorServer(store, port=0) as server, HubServer() as origin:
        server.start_background()
        origin.add("org/tiny", "model.onnx", REAL)
        origin.add("org/tiny", "genai_config.json", CONFIG, lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", origin.url)
        snap, report = download_variant(None, VARIANT, mirror=server.url, config=fast_config(),
                                        root=tmp_path / "client")
        server.shutdown()
        assert origin.sent("model.onnx") == 0  # the origin answered the listing only; the bytes came from the mirror
    assert report.source == "mirror" and report.digests["origin"] == 2 and report.digests["mirror"] == 0
    assert (snap / "model.onnx").read_bytes() == REAL


def test_with_the_origin_unreachable_the_report_says_only_the_mirror_vouched(
        lying_mirror: str, closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url)
    rec = Recorder()
    _, report = download_variant(None, VARIANT, rec, mirror=lying_mirror, config=fast_config(),
                                 root=tmp_path / "client")
    assert report.digests["mirror"] == 2 and report.digests["origin"] == 0
    assert any("could not vouch" in n for n in rec.notes), rec.notes


def test_require_pinned_refuses_what_only_the_mirror_vouches_for(
        lying_mirror: str, closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url)
    rec = Recorder()
    with pytest.raises(SourceError, match="looks offline"):  # refused the mirror, then the origin is not there
        download_variant(None, VARIANT, rec, mirror=lying_mirror, config=fast_config(require_pinned=True),
                         root=tmp_path / "client")
    assert any("require-pinned refuses them" in n for n in rec.notes), rec.notes
    assert paths.installed_variant_ids(tmp_path / "client") == set()
    _no_real_or_forged_blob_but(tmp_path / "client", None)


def test_pins_in_the_manifest_refuse_a_lying_mirror_even_offline(
        lying_mirror: str, closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url)
    pinned = dataclasses.replace(VARIANT, files=(
        FileEntry("model.onnx", len(REAL), hashlib.sha256(REAL).hexdigest()),
        FileEntry("genai_config.json", len(CONFIG), hashlib.sha256(CONFIG).hexdigest())))
    rec = Recorder()
    with pytest.raises(SourceError, match="looks offline"):  # the mirror is refused, the origin is not there
        download_variant(None, pinned, rec, mirror=lying_mirror, config=fast_config(), root=tmp_path / "client")
    assert any("the manifest pins sha256" in n for n in rec.notes), rec.notes
    assert paths.installed_variant_ids(tmp_path / "client") == set()
    _no_real_or_forged_blob_but(tmp_path / "client", None)


def _cli_env(tmp_path: Path, hub_url: str) -> dict[str, str]:
    manifest, _ = write_manifest(tmp_path / "manifests", "tiny", [hf_variant_json("org/tiny")])
    return {"TOOLKIT_MANIFESTS": str(manifest), "HF_ENDPOINT": hub_url, "TOOLKIT_HOME": str(tmp_path / "client"),
            "TOOLKIT_DL_BACKOFF_BASE": "0.01"}


def test_the_cli_warns_when_only_the_mirror_vouched_and_require_pinned_refuses(
        lying_mirror: str, closed_port_url: str, tmp_path: Path) -> None:
    env = _cli_env(tmp_path, closed_port_url)
    refused = run_toolkit("download", "tiny", "--mirror", lying_mirror, "--require-pinned", env=env)
    assert refused.returncode == 5, refused.stderr  # the mirror was refused; the origin is offline
    assert "--require-pinned refuses them" in refused.stderr and "Traceback" not in refused.stderr
    assert paths.installed_variant_ids(tmp_path / "client") == set()
    taken = run_toolkit("download", "tiny", "--mirror", lying_mirror, "--json", env=env)
    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["digests"]["mirror"] == 2
    plain = run_toolkit("download", "tiny", "--mirror", lying_mirror, "--force", env=env)
    assert "warning: 2 file(s) were checked only against the digests the mirror itself published" in plain.stderr


@pytest.mark.parametrize(("config", "why"), [
    # outside LFS the Hub gives a git blob sha1, the mirror a sha256 of its own: the origin's is the one checked
    (b'{"model": {"type": "EVIL!"}}', "git blob sha1"),
    (None, "file list is not the origin's"),  # a mirror that leaves a file out
])
def test_a_mirror_cannot_change_or_drop_a_file_the_origin_lists_outside_lfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: bytes | None, why: str) -> None:
    assert config is None or len(config) == len(CONFIG)
    store = _store_from(REAL, tmp_path / "mirror-store", monkeypatch, config)
    with MirrorServer(store, port=0) as server, HubServer() as origin:
        server.start_background()
        origin.add("org/tiny", "model.onnx", REAL)
        origin.add("org/tiny", "genai_config.json", CONFIG, lfs=False)
        monkeypatch.setenv("HF_ENDPOINT", origin.url)
        rec = Recorder()
        snap, report = download_variant(None, VARIANT, rec, mirror=server.url,
                                        config=fast_config(require_pinned=True), root=tmp_path / "client")
        server.shutdown()
    assert (snap / "genai_config.json").read_bytes() == CONFIG and (snap / "model.onnx").read_bytes() == REAL
    assert report.source == "huggingface"  # the mirror was refused
    assert any(why in n for n in rec.notes), rec.notes
