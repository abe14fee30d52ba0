"""Inputs that once ended in tracebacks: each is one line naming the file, folder or setting, and its exit code."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import run_toolkit
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import hf_variant_json, write_manifest

DATA = random_bytes(300_000, seed=5)


def one_error_line(out: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


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
