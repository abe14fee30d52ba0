"""`toolkit cache list/verify/remove/prune` on a real store filled through the engine."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_toolkit
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import fast_config, hf_variant, hf_variant_json, write_manifest
from toolkit import paths
from toolkit.download.api import download_variant
from toolkit.store.blobs import Store
from toolkit.store.cache import collect_garbage, list_cached, remove_variant, verify_variant

SHARED = random_bytes(400_000, seed=11)
ONLY_A = random_bytes(300_000, seed=12)
ONLY_B = random_bytes(200_000, seed=13)


@pytest.fixture()
def store(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two variants sharing one blob, in the store TOOLKIT_HOME points at; a manifest for the CLI."""
    with HubServer() as hub:
        hub.add("org/a", "tokenizer.json", SHARED)
        hub.add("org/a", "model.onnx", ONLY_A)
        hub.add("org/b", "tokenizer.json", SHARED)
        hub.add("org/b", "model.onnx", ONLY_B)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        download_variant(None, hf_variant("org/a", "a-cpu:1"), config=fast_config())
        download_variant(None, hf_variant("org/b", "b-cpu:1"), config=fast_config())
        manifest, _ = write_manifest(
            tmp_path / "m", "pair", [hf_variant_json("org/a", "a-cpu:1"), hf_variant_json("org/b", "b-cpu:1")]
        )
        monkeypatch.setenv("TOOLKIT_MANIFESTS", str(manifest))
        yield Store(isolated_home), hub


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_toolkit(*args, timeout=60)


def test_list_shows_variants_with_size(store) -> None:
    s, _ = store
    out = cli("cache", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["variant"]: r for r in json.loads(out.stdout)["variants"]}
    assert rows["a-cpu:1"]["size"] == len(SHARED) + len(ONLY_A) and rows["b-cpu:1"]["files"] == 2
    assert rows["a-cpu:1"]["last_used"] > time.time() - 60
    assert [c.variant_id for c in list_cached(s)] == ["a-cpu:1", "b-cpu:1"]


def test_verify_finds_a_damaged_file_and_repair_fetches_it_again(store) -> None:
    s, _ = store
    target = paths.snapshot_dir("a-cpu:1", s.root) / "model.onnx"
    os.chmod(target, stat.S_IWUSR | stat.S_IRUSR)
    with open(target, "r+b") as f:  # a user editing a file in place damages the shared blob too
        f.seek(1000)
        f.write(b"\x00\x01")
    assert not verify_variant(s, "a-cpu:1").ok and verify_variant(s, "b-cpu:1").ok
    out = cli("cache", "verify", "--json")
    assert out.returncode == 6
    result = {r["variant"]: r for r in json.loads(out.stdout)["variants"]}
    assert "sha256" in result["a-cpu:1"]["problems"][0] and result["b-cpu:1"]["ok"]
    fixed = cli("cache", "verify", "a-cpu:1", "--repair", "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert target.read_bytes() == ONLY_A


def test_remove_frees_blobs_no_other_variant_uses(store) -> None:
    s, _ = store
    freed = remove_variant(s, "a-cpu:1")
    assert freed == len(ONLY_A)
    assert not paths.snapshot_dir("a-cpu:1", s.root).exists()
    assert verify_variant(s, "b-cpu:1").ok  # the shared tokenizer blob stayed
    out = cli("cache", "remove", "nothing:1")
    assert out.returncode == 4 and "nothing:1" in out.stderr  # not there: exit 4, as the README table says


def test_prune_removes_old_unreferenced_blobs_stale_partials_and_unused_variants(store) -> None:
    s, _ = store
    orphan = s.blob_path("0" * 64)
    orphan.write_bytes(b"x" * 10)
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    fresh_orphan = s.blob_path("1" * 64)
    fresh_orphan.write_bytes(b"y")  # might be a download about to link it: kept
    stale = s.partial_dir("2" * 64)
    stale.mkdir(parents=True)
    (stale / "data").write_bytes(b"z" * 100)
    os.utime(stale / "data", (time.time() - 2 * 86400, time.time() - 2 * 86400))
    b_snap = paths.snapshot_dir("b-cpu:1", s.root)
    (b_snap / ".toolkit" / "last_used").write_text(str(time.time() - 40 * 86400))
    report = collect_garbage(s, unused_days=30)
    assert report.removed_variants == ["b-cpu:1"]
    assert not orphan.exists() and fresh_orphan.exists() and not stale.exists()
    assert paths.installed_variant_ids(s.root) == {"a-cpu:1"}
    assert verify_variant(s, "a-cpu:1").ok
