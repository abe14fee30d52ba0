"""`cache prune`, `cache remove` and `cache verify --repair` against downloads running in other processes.

Each test starts a real `toolkit` process against a rate-capped Hub server, waits until its transfer is
under way (its partial file has bytes), then runs the cache command in another process while it is still
going, and checks what the user would see: the download ends complete and verified, nothing it needs is
deleted, and the cache command leaves the busy variant alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.schema import Source
from tests.helpers.cli import run_python, run_toolkit, toolkit_process
from tests.helpers_net.hub_server import HubServer, random_bytes
from tests.helpers_net.variants import fast_config, hf_variant, hf_variant_json, write_manifest
from toolkit import paths
from toolkit.download.api import download_variant
from toolkit.download.state import load_state
from toolkit.store.blobs import Store
from toolkit.store.cache import remove_variant, verify_variant

RATE = 1_000_000  # bytes/s per connection: the big file below takes about 1.5 s over 2 connections
BIG = random_bytes(3_000_000, seed=31)
BIG_V2 = random_bytes(3_000_000, seed=32)
SHARED = random_bytes(300_000, seed=33)
EMBEDDINGS = random_bytes(200_000, seed=34)
ONLY_A = random_bytes(100_000, seed=35)
SMALL_FILES = 800  # enough that writing the snapshot's links takes a while, as with a real 3,000-file model
HOUR = 3600


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def cli_env(tmp_path: Path, variants: list[dict]) -> dict[str, str]:
    manifest, _ = write_manifest(tmp_path / "manifests", "pair", variants)
    return {
        "TOOLKIT_MANIFESTS": str(manifest),
        "TOOLKIT_DL_CONNECTIONS": "2",
        "TOOLKIT_DL_MIN_SEGMENT": str(256 * 1024),
        "TOOLKIT_DL_MAX_SEGMENT": str(256 * 1024),
        "TOOLKIT_DL_SAVE_INTERVAL": "0.05",
        "TOOLKIT_DL_BACKOFF_BASE": "0.05",
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return toolkit_process(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_transferring(proc: subprocess.Popen, home: Path, sha: str, size: int) -> None:
    """Return once `proc` has written some bytes of the file with this sha256 (its partial state says so)."""
    part = home / "partial" / sha
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        state = load_state(part / "state.json", part / "data", size)
        if state and state.done_bytes > 0:
            return
        time.sleep(0.02)
    pytest.fail(f"the download never started transferring: {proc.communicate()}")


def age_blobs(store: Store, seconds: float) -> None:
    """Make every blob look downloaded `seconds` ago (a store filled yesterday, past prune's grace)."""
    then = time.time() - seconds
    for blob in store.iter_blobs():
        os.utime(blob, (then, then))


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def assert_complete(store: Store, variant_id: str, files: dict[str, bytes]) -> None:
    snap = paths.snapshot_dir(variant_id, store.root)
    assert (snap / paths.COMPLETE_MARKER).is_file()
    for rel, data in files.items():
        assert (snap / rel).read_bytes() == data, rel
    result = verify_variant(store, variant_id)
    assert result.ok and result.checked == len(files), result.problems[:5]


PRUNE_LOOP = """
import json
from pathlib import Path
from toolkit.store.blobs import Store
from toolkit.store.cache import collect_garbage
runs, busy, removed = 0, set(), []
ran, stop = Path({ran!r}), Path({stop!r})
while not stop.exists():
    r = collect_garbage(Store())
    runs += 1
    ran.touch()
    busy.update(getattr(r, "busy_variants", []))  # softly: the loop must go on to meet the race
    removed += r.removed_variants
print(json.dumps({{"runs": runs, "busy": sorted(busy), "removed": removed}}))
"""


def test_prune_during_a_forced_download_leaves_the_variant_alone_and_the_download_completes(
    tmp_path: Path, isolated_home: Path, hub: HubServer
) -> None:
    store = Store(isolated_home)
    files = {f"tok/{i:04d}.json": f"{{'piece': {i}}}".encode() for i in range(SMALL_FILES)}
    seed = tmp_path / "seed"
    for rel, data in files.items():
        hub.add("org/v", rel, data)
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_bytes(data)
    hub.add("org/v", "model.onnx", BIG)
    # the small files reach the store from a folder first (much faster than 800 requests); the Hub download
    # then finds them there, and the folder's variant goes again
    local = replace(hf_variant("org/seed", "seed-cpu:1"), source=Source(type="local", path=str(seed)))
    download_variant(None, local, config=fast_config(max_files=16))
    download_variant(None, hf_variant("org/v", "v-cpu:1"), config=fast_config())
    remove_variant(store, "seed-cpu:1")
    age_blobs(store, 2 * HOUR)
    hub.add("org/v", "model.onnx", BIG_V2)  # upstream changed: `download --force` fetches the new model
    hub.rate = RATE
    env = cli_env(tmp_path, [hf_variant_json("org/v", "v-cpu:1")])

    proc = start(env, "download", "pair", "--force", "--json")
    wait_until_transferring(proc, isolated_home, hub.sha256("org/v", "model.onnx"), len(BIG_V2))
    ran, stop = tmp_path / "pruned-once", tmp_path / "stop-pruning"
    code = PRUNE_LOOP.format(ran=str(ran), stop=str(stop))
    pruned: list[subprocess.CompletedProcess] = []
    loop = threading.Thread(target=lambda: pruned.append(run_python(code, timeout=90)))
    loop.start()  # prunes over and over until the download has ended, so it also meets the snapshot being written
    deadline = time.monotonic() + 30
    while not ran.exists() and time.monotonic() < deadline and loop.is_alive():
        time.sleep(0.02)
    assert proc.poll() is None, "the download ended before prune ran: the test proves nothing"
    try:
        result = finish(proc)
    finally:
        stop.touch()
        loop.join(timeout=90)

    assert pruned[0].returncode == 0, pruned[0].stderr[-3000:]
    report = json.loads(pruned[0].stdout)
    assert report["runs"] > 0 and report["removed"] == [] and report["busy"] == ["v-cpu:1"], report
    assert len(result["files"]) == SMALL_FILES + 1
    assert_complete(store, "v-cpu:1", {**files, "model.onnx": BIG_V2})


def test_removing_a_variant_while_it_downloads_is_refused_and_the_download_completes(
    tmp_path: Path, isolated_home: Path, hub: HubServer
) -> None:
    hub.add("org/v", "tokenizer.json", SHARED)
    hub.add("org/v", "model.onnx", BIG)
    hub.add("org/w", "model.onnx", SHARED[:1000])
    download_variant(None, hf_variant("org/v", "v-cpu:1"), config=fast_config())
    download_variant(None, hf_variant("org/w", "w-cpu:1"), config=fast_config())
    hub.add("org/v", "model.onnx", BIG_V2)
    hub.rate = RATE
    env = cli_env(tmp_path, [hf_variant_json("org/v", "v-cpu:1")])

    proc = start(env, "download", "pair", "--force", "--json")
    wait_until_transferring(proc, isolated_home, hub.sha256("org/v", "model.onnx"), len(BIG_V2))
    removal = run_toolkit("cache", "remove", "v-cpu:1", "w-cpu:1", env=env, timeout=60)
    assert proc.poll() is None, "the download ended before the removal ran: the test proves nothing"
    assert removal.returncode == 8, removal.stderr  # a store error: nothing removed, try again later
    assert "v-cpu:1" in removal.stderr and "another process" in removal.stderr
    assert "removed w-cpu:1" in removal.stdout  # the busy one did not stop the others
    assert paths.installed_variant_ids(isolated_home) == {"v-cpu:1"}
    finish(proc)
    assert_complete(Store(isolated_home), "v-cpu:1", {"tokenizer.json": SHARED, "model.onnx": BIG_V2})


def test_prune_during_verify_repair_keeps_the_healthy_blobs_and_the_variant_verifies(
    tmp_path: Path, isolated_home: Path, hub: HubServer
) -> None:
    store = Store(isolated_home)
    hub.add("org/v", "tokenizer.json", SHARED)
    hub.add("org/v", "model.onnx", BIG)
    download_variant(None, hf_variant("org/v", "v-cpu:1"), config=fast_config())
    age_blobs(store, 2 * HOUR)
    healthy = store.blob_path(hub.sha256("org/v", "tokenizer.json"))
    healthy_inode = healthy.stat().st_ino
    model = paths.snapshot_dir("v-cpu:1", store.root) / "model.onnx"
    os.chmod(model, 0o600)
    with open(model, "r+b") as f:  # damaged in place through the hard link: the blob is damaged too
        f.seek(1000)
        f.write(b"\x00\x01")
    hub.rate = RATE
    env = cli_env(tmp_path, [hf_variant_json("org/v", "v-cpu:1")])
    tokenizer_sent = hub.sent("tokenizer.json")

    repair = start(env, "cache", "verify", "v-cpu:1", "--repair", "--json")
    wait_until_transferring(repair, isolated_home, hub.sha256("org/v", "model.onnx"), len(BIG))
    pruned = run_toolkit("cache", "prune", "--json", env=env, timeout=60)
    assert repair.poll() is None, "the repair ended before prune ran: the test proves nothing"
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["busy_variants"] == ["v-cpu:1"]  # what prune left alone, and why
    assert healthy.is_file() and healthy.stat().st_ino == healthy_inode  # not deleted, not fetched again

    result = finish(repair)
    assert result["variants"][0]["repaired"], result
    assert hub.sent("tokenizer.json") == tokenizer_sent  # the healthy file was not fetched again
    assert_complete(store, "v-cpu:1", {"tokenizer.json": SHARED, "model.onnx": BIG})


def test_removing_a_sibling_while_a_download_reuses_its_blobs_keeps_the_shared_ones(
    tmp_path: Path, isolated_home: Path, hub: HubServer
) -> None:
    store = Store(isolated_home)
    for repo in ("org/a", "org/b"):
        hub.add(repo, "tokenizer.json", SHARED)
        hub.add(repo, "embeddings.bin", EMBEDDINGS)
    hub.add("org/a", "model.onnx", ONLY_A)
    hub.add("org/b", "model.onnx", BIG)
    download_variant(None, hf_variant("org/a", "a-cpu:1"), config=fast_config())
    hub.rate = RATE
    env = cli_env(tmp_path, [hf_variant_json("org/a", "a-cpu:1"), hf_variant_json("org/b", "b-cpu:1")])

    proc = start(env, "download", "pair", "--variant", "b-cpu:1", "--json")
    wait_until_transferring(proc, isolated_home, hub.sha256("org/b", "model.onnx"), len(BIG))
    removal = run_toolkit("cache", "remove", "a-cpu:1", "--json", env=env, timeout=60)
    assert proc.poll() is None, "the download ended before the removal ran: the test proves nothing"
    assert removal.returncode == 0, removal.stderr
    result = finish(proc)

    assert result["reused_files"] == 2 and result["fetched_files"] == 1, result
    assert_complete(store, "b-cpu:1", {"tokenizer.json": SHARED, "embeddings.bin": EMBEDDINGS, "model.onnx": BIG})
    assert not paths.snapshot_dir("a-cpu:1", store.root).exists()
    assert not store.has_blob(hub.sha256("org/a", "model.onnx"))  # only A used it
    assert json.loads(removal.stdout)["freed_bytes"] == len(ONLY_A)


def test_downloads_of_two_variants_run_at_the_same_time(
    tmp_path: Path, isolated_home: Path, hub: HubServer
) -> None:
    hub.add("org/a", "model.onnx", BIG)
    hub.add("org/b", "model.onnx", BIG_V2)
    hub.rate = RATE
    env = cli_env(tmp_path, [hf_variant_json("org/a", "a-cpu:1"), hf_variant_json("org/b", "b-cpu:1")])

    first = start(env, "download", "pair", "--variant", "a-cpu:1", "--json")
    wait_until_transferring(first, isolated_home, hub.sha256("org/a", "model.onnx"), len(BIG))
    second = start(env, "download", "pair", "--variant", "b-cpu:1", "--json")
    wait_until_transferring(second, isolated_home, hub.sha256("org/b", "model.onnx"), len(BIG_V2))
    assert first.poll() is None, "the first download ended before the second began: the test proves nothing"
    finish(first), finish(second)
    assert_complete(Store(isolated_home), "a-cpu:1", {"model.onnx": BIG})
    assert_complete(Store(isolated_home), "b-cpu:1", {"model.onnx": BIG_V2})


def test_a_killed_download_leaves_nothing_locked(tmp_path: Path, isolated_home: Path, hub: HubServer) -> None:
    hub.add("org/v", "model.onnx", BIG)
    hub.rate = RATE
    env = cli_env(tmp_path, [hf_variant_json("org/v", "v-cpu:1")])
    proc = start(env, "download", "pair", "--json")
    wait_until_transferring(proc, isolated_home, hub.sha256("org/v", "model.onnx"), len(BIG))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    pruned = run_python(
        "import json; from toolkit.store.blobs import Store; from toolkit.store.cache import collect_garbage; "
        "r = collect_garbage(Store()); print(json.dumps(r.busy_variants))"
    )
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == []  # the dead process holds nothing
    assert not list((isolated_home / "locks").glob("*.pins"))
    hub.rate = None
    finish(start(env, "download", "pair", "--json"))
    assert_complete(Store(isolated_home), "v-cpu:1", {"model.onnx": BIG})
