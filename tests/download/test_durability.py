"""Durability: a blob's bytes and a snapshot's marker reach the disk before their final names (seen by strace)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import NEUTRAL_CWD, process_env, toolkit_command
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import hf_variant_json, write_manifest

DATA = random_bytes(3_000_000, seed=8)

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian package strace)")


def traced_download(tmp_path: Path, **env: str) -> list[str]:
    """The file-system calls of `toolkit download tiny`, in order, with the path of every descriptor."""
    manifest, _ = write_manifest(tmp_path / "manifests", "tiny", [hf_variant_json("org/tiny")])
    log = tmp_path / "strace.log"
    with HubServer() as hub:
        hub.add("org/tiny", "model.onnx", DATA)
        full_env = process_env({"TOOLKIT_MANIFESTS": str(manifest), "HF_ENDPOINT": hub.url,
                                "TOOLKIT_HOME": str(tmp_path / "home"), **env})
        cmd = ["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", "-o", str(log),
               *toolkit_command(), "download", "tiny"]
        done = subprocess.run(cmd, cwd=NEUTRAL_CWD, env=full_env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "PTRACE" in done.stderr.upper():
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return [line.split(None, 1)[1] for line in log.read_text().splitlines() if " " in line]


def first(lines: list[str], pattern: str, after: int = -1) -> int:
    for i, line in enumerate(lines):
        if i > after and re.search(pattern, line):
            return i
    raise AssertionError(f"no call matching {pattern!r} after line {after}:\n" + "\n".join(lines))


def test_the_blob_and_the_marker_are_on_disk_before_their_final_names(tmp_path: Path) -> None:
    calls = traced_download(tmp_path)
    rename_blob = first(calls, r"^rename.*/partial/[^\"]+/data\".*/blobs/sha256/[0-9a-f]{64}\"")
    assert first(calls, r"^fsync\(\d+</[^>]*/partial/[^>]+/data>\)") < rename_blob
    first(calls, r"^fsync\(\d+</[^>]*/blobs/sha256>\)", after=rename_blob)  # the rename itself is on disk
    rename_marker = first(calls, r"^rename.*complete\.json\.tmp\".*complete\.json\"")
    assert first(calls, r"^fsync\(\d+</[^>]*/snapshots/tiny-cpu/1>\)") < rename_marker  # the links first
    assert first(calls, r"^fsync\(\d+</[^>]*complete\.json\.tmp>\)") < rename_marker
    first(calls, r"^fsync\(\d+</[^>]*/snapshots/tiny-cpu/1/\.toolkit>\)", after=rename_marker)


def test_fsync_can_be_turned_off_for_a_throwaway_store(tmp_path: Path) -> None:
    calls = traced_download(tmp_path, TOOLKIT_DL_FSYNC="0")
    assert not [c for c in calls if c.startswith(("fsync(", "fdatasync("))]


def test_a_copied_snapshot_file_is_on_disk_before_the_marker(tmp_path: Path) -> None:
    # where hard links fail, the snapshot copies the blob: the copy is flushed too. snapshots/ on its own file
    # system (a tmpfs) makes every link fail with EXDEV, as another disk or FAT would.
    snapshots = tmp_path / "home" / "snapshots"
    snapshots.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(snapshots)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root with mount permission to put snapshots/ on another file system")
    try:
        calls = traced_download(tmp_path)
    finally:
        subprocess.run(["umount", str(snapshots)], check=False)
    rename_marker = first(calls, r"^rename.*complete\.json\.tmp\".*complete\.json\"")
    assert first(calls, r"^fsync\(\d+</[^>]*/snapshots/tiny-cpu/1/\.model\.onnx\.tmp\d+>\)") < rename_marker
    assert first(calls, r"^fsync\(\d+</[^>]*/snapshots/tiny-cpu>\)") < rename_marker
