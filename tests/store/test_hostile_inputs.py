"""Inputs that once ended in tracebacks: each is one line naming the file, folder or setting, and its exit code."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import one_error_line, run_toolkit
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import hf_variant_json, write_manifest

DATA = random_bytes(300_000, seed=5)


@pytest.fixture()
def hub():
    with HubServer() as server:
        yield server


def env_for(tmp_path: Path, hub: HubServer, **extra: str) -> dict[str, str]:
    manifest, _ = write_manifest(tmp_path / "manifests", "tiny", [hf_variant_json("org/tiny")])
    return {"TOOLKIT_MANIFESTS": str(manifest), "HF_ENDPOINT": hub.url, "TOOLKIT_HOME": str(tmp_path / "home"),
            "TOOLKIT_DL_BACKOFF_BASE": "0.01", **extra}


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` read-only for this process and its children: a read-only bind mount as root, else chmod."""
    if os.geteuid() == 0:
        bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
        ro = bound.returncode == 0 and subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode == 0
        if not ro:
            if bound.returncode == 0:
                subprocess.run(["umount", str(folder)], check=False)
            pytest.skip("root without mount permission: cannot make a folder read-only here")
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


@pytest.mark.parametrize("command", [("list",), ("cache", "list"), ("download", "tiny")])
def test_toolkit_home_that_is_a_file_is_a_store_error(tmp_path: Path, hub: HubServer, command) -> None:
    (tmp_path / "home").write_text("not a folder")
    out = run_toolkit(*command, env=env_for(tmp_path, hub))
    one_error_line(out, 8, "TOOLKIT_HOME=", "not a folder")


def test_a_read_only_store_gives_one_line_and_loses_nothing(tmp_path: Path, hub: HubServer) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    env = env_for(tmp_path, hub)
    assert run_toolkit("download", "tiny", env=env).returncode == 0
    home = tmp_path / "home"
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    with read_only(home):
        one_error_line(run_toolkit("cache", "remove", "tiny-cpu:1", env=env), 8)
        one_error_line(run_toolkit("download", "tiny", "--force", env=env), 8)
        pruned = run_toolkit("cache", "prune", "--unused-days", "0", env=env)
        assert pruned.returncode in (0, 8) and "Traceback" not in pruned.stderr, pruned.stderr
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == before
    verified = run_toolkit("cache", "verify", env=env)
    assert verified.returncode == 0, verified.stderr


def test_mirror_export_to_a_read_only_folder_gives_one_line(tmp_path: Path, hub: HubServer) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    env = env_for(tmp_path, hub)
    assert run_toolkit("download", "tiny", env=env).returncode == 0
    dest = tmp_path / "www"
    dest.mkdir()
    with read_only(dest):
        one_error_line(run_toolkit("mirror", "export", str(dest), env=env), 8, str(dest))


def test_a_manifest_nested_100000_deep_is_an_invalid_manifest(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    out = run_toolkit("list", env={"TOOLKIT_MANIFESTS": str(deep)})
    one_error_line(out, 3, str(deep), "nested too deeply")


@pytest.mark.parametrize(("paths", "words"), [
    (["a", "a/b"], ["is also a folder"]),
    (["Model.onnx", "model.onnx"], ["differ only in case"]),
    (["x" * 300], ["longer than 255 bytes"]),
])
def test_listings_that_cannot_be_stored_are_refused_before_any_byte(tmp_path: Path, hub: HubServer, paths,
                                                                    words) -> None:
    for path in paths:
        hub.add("org/tiny", path, DATA)
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub))
    one_error_line(out, 8, *words)
    assert sum(hub.sent(p) for p in paths) == 0


@pytest.mark.parametrize(("name", "value"), [("TOOLKIT_DL_CONNECTIONS", "0"), ("TOOLKIT_DL_CONNECTIONS", "-1"),
                                             ("TOOLKIT_DL_MAX_CONNECTIONS", "0"), ("TOOLKIT_DL_CHUNK_SIZE", "0"),
                                             ("TOOLKIT_DL_STALL_TIMEOUT", "nan"), ("TOOLKIT_REQUIRE_PINNED", "maybe")])
def test_download_settings_out_of_range_are_usage_errors(tmp_path: Path, hub: HubServer, name, value) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub, **{name: value}), timeout=30)
    one_error_line(out, 2, name)
    assert hub.sent("model.onnx") == 0


@pytest.mark.parametrize("name", ["{victim}:1", "../../victim:1", "victim/1:1", "x:1\n"])
def test_cache_commands_never_touch_a_folder_outside_the_store(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"
    (victim / "1" / "sub").mkdir(parents=True)
    variant = name.format(victim=victim)
    env = {"TOOLKIT_HOME": str(tmp_path / "home")}  # snapshots/../../victim is tmp_path/victim
    for command in (("cache", "remove", variant), ("cache", "verify", variant)):
        out = run_toolkit(*command, env=env)
        assert out.returncode == 4 and "Traceback" not in out.stderr, out.stderr
    assert (victim / "1" / "sub").is_dir()


@pytest.mark.parametrize(("name", "value"), [("TOOLKIT_DL_BACKOFF_BASE", "1e12"), ("TOOLKIT_DL_BACKOFF_MAX", "1e12"),
                                             ("TOOLKIT_DL_STALL_TIMEOUT", "1e308"),
                                             ("TOOLKIT_DL_CONNECT_TIMEOUT", "1e308"),
                                             ("TOOLKIT_DL_RETRY_AFTER_MAX", "1e9"), ("TOOLKIT_DL_SAVE_INTERVAL", "1e9"),
                                             ("TOOLKIT_DL_CHUNK_SIZE", "99999999999"),
                                             ("TOOLKIT_DL_MAX_SEGMENT", "99999999999999999999"),
                                             ("TOOLKIT_DL_RETRIES", "99999999999999999999")])
def test_download_settings_past_their_maximum_are_usage_errors(tmp_path: Path, hub: HubServer, name, value) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub, **{name: value}), timeout=30)
    one_error_line(out, 2, name, "at most")
    assert hub.requests == []


def test_api_retries_wait_at_most_the_backoff_max(monkeypatch) -> None:
    """The largest TOOLKIT_DL_BACKOFF_BASE the settings take: each API wait is still capped by
    TOOLKIT_DL_BACKOFF_MAX (an uncapped wait would be an hour)."""
    import socket
    import time

    from catalog.errors import SourceError
    from catalog.sources.http import get_json, make_client
    from toolkit.download.config import DownloadConfig

    with socket.socket() as s:  # a port nobody listens on: every attempt is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TOOLKIT_DL_BACKOFF_BASE", "3600")
    monkeypatch.setenv("TOOLKIT_DL_BACKOFF_MAX", "0.01")
    start = time.monotonic()
    with make_client(DownloadConfig.from_env()) as client, pytest.raises(SourceError):
        get_json(client, f"http://127.0.0.1:{port}/api/models/org/tiny/revision/main", retries=3)
    assert time.monotonic() - start < 10


def _socksio_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("socksio") is not None


URL_SETTINGS = [
    ({"TOOLKIT_MIRROR": "http://[::1"}, "TOOLKIT_MIRROR"),
    ({"TOOLKIT_MIRROR": "mirror.local:8765"}, "TOOLKIT_MIRROR"),
    ({"HF_ENDPOINT": "http://[::1"}, "HF_ENDPOINT"),
    ({"HF_ENDPOINT": "ftp://hub.local"}, "HF_ENDPOINT"),
    ({"HTTPS_PROXY": "http://[::1", "https_proxy": "http://[::1"}, "https_proxy"),
    ({"HTTP_PROXY": "ftp://proxy.local", "http_proxy": "ftp://proxy.local"}, "http_proxy"),
    pytest.param({"HTTPS_PROXY": "socks5://127.0.0.1:9", "https_proxy": "socks5://127.0.0.1:9"}, "httpx[socks]",
                 marks=pytest.mark.skipif(_socksio_installed(), reason="socksio is installed: socks proxies work")),
]


@pytest.mark.parametrize(("settings", "named"), URL_SETTINGS, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_urls_and_proxies_that_cannot_be_used_are_usage_errors_before_any_request(tmp_path: Path, hub: HubServer,
                                                                                    settings, named) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub, **settings), timeout=30)
    line = one_error_line(out, 2)
    assert named.lower() in line.lower(), line
    assert hub.requests == []


def test_a_proxy_password_is_not_shown(tmp_path: Path, hub: HubServer) -> None:
    proxy = "http://user:s3cret@[::1"
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub, HTTPS_PROXY=proxy, https_proxy=proxy))
    one_error_line(out, 2, "proxy")
    assert "s3cret" not in out.stderr + out.stdout


@pytest.mark.parametrize("token", ["tökén", "hf_abc def", "hf_\x01"])
def test_a_token_that_cannot_be_a_header_names_hf_token_and_is_not_shown(tmp_path: Path, hub: HubServer,
                                                                           token) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub, HF_TOKEN=token), timeout=30)
    one_error_line(out, 2, "HF_TOKEN", "ASCII")
    assert token not in out.stderr and "ök" not in out.stderr
    assert hub.requests == []


def test_a_token_with_surrounding_white_space_is_sent_without_it(tmp_path: Path, hub: HubServer) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    out = run_toolkit("download", "tiny", env=env_for(tmp_path, hub, HF_TOKEN=" hf_abc\n"), timeout=30)
    assert out.returncode == 0, out.stderr
    assert hub.requests[0]["headers"].get("Authorization") == "Bearer hf_abc"


def test_cache_verify_of_a_variant_not_in_the_store_is_not_found(tmp_path: Path, hub: HubServer) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    env = env_for(tmp_path, hub)
    assert run_toolkit("download", "tiny", env=env).returncode == 0
    out = run_toolkit("cache", "verify", "tiny-cpu:1", "nosuch:1", env=env)
    one_error_line(out, 4, "nosuch:1", "not in the store")
    assert "DAMAGED" not in out.stdout + out.stderr and "tiny-cpu:1" not in out.stderr
