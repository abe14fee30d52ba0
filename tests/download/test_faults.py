"""The engine against a real fault-injecting server on 127.0.0.1: each fault ends in verified bytes
or a clear error, and never a wrong file under a final name."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from catalog.errors import DiskFullError, DownloadError, IntegrityError, NotFoundError, SourceError
from tests.helpers_net.hub_server import Faults, HubServer, random_bytes
from tests.helpers_net.variants import Recorder, fast_config, hf_variant
from toolkit import paths
from toolkit.download.api import download_variant

SIZE = 3 * 1000 * 1000
DATA = random_bytes(SIZE, seed=1)


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch):
    with HubServer() as s:
        monkeypatch.setenv("HF_ENDPOINT", s.url)
        yield s


def serve(hub: HubServer, faults: Faults, lfs: bool = True) -> None:
    hub.add("org/tiny", "model.onnx", DATA, lfs=lfs, faults=faults)
    hub.add("org/tiny", "genai_config.json", b'{"model": {}}', lfs=False)


def fetch(root: Path, progress: Recorder | None = None, **cfg: object):
    return download_variant(
        None, hf_variant("org/tiny"), progress or Recorder(), config=fast_config(**cfg), root=root
    )


def assert_verified(snap: Path) -> None:
    assert (snap / "model.onnx").read_bytes() == DATA
    assert (snap / paths.COMPLETE_MARKER).is_file()


def assert_nothing_final(root: Path) -> None:
    blobs = list((root / "blobs" / "sha256").glob("*")) if (root / "blobs").exists() else []
    assert all(hashlib.sha256(b.read_bytes()).hexdigest() == b.name for b in blobs)
    assert hashlib.sha256(DATA).hexdigest() not in [b.name for b in blobs]
    assert paths.installed_variant_ids(root) == set()
    partial = root / "partial"
    assert not [d for d in partial.iterdir() if d.is_dir() and not any(d.iterdir())] if partial.exists() else True


def test_clean_download_fetches_each_byte_once(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults())
    snap, report = fetch(tmp_path)
    assert_verified(snap)
    assert report.fetched_files == 2
    blob = tmp_path / "blobs" / "sha256" / hashlib.sha256(DATA).hexdigest()
    assert blob.stat().st_ino == (snap / "model.onnx").stat().st_ino  # a hard link, not a copy


def test_dropped_connection_resumes_within_the_part(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(drop_at=SIZE // 3, drop_times=3))
    rec = Recorder()
    snap, _ = fetch(tmp_path, rec)
    assert_verified(snap)
    assert any("retrying" in n for n in rec.notes)


def test_fewer_bytes_than_content_length_is_retried(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(short_by=1000, short_times=2))
    rec = Recorder()
    snap, _ = fetch(tmp_path, rec)
    assert_verified(snap)
    assert any("retrying" in n for n in rec.notes)


def test_wrong_bytes_once_are_detected_and_fetched_again(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(corrupt_at=SIZE // 2, corrupt_times=1))
    rec = Recorder()
    snap, _ = fetch(tmp_path, rec, connections=1)
    assert_verified(snap)
    assert any("sha256" in n and "again" in n for n in rec.notes)


def test_wrong_bytes_every_time_fail_with_integrity_error_and_leave_nothing(
    hub: HubServer, tmp_path: Path
) -> None:
    serve(hub, Faults(corrupt_at=SIZE // 2, corrupt_times=100))
    with pytest.raises(IntegrityError) as e:
        fetch(tmp_path, connections=1)
    assert "sha256" in str(e.value) and "/org/tiny/resolve/" in str(e.value)
    assert e.value.exit_code == 6
    assert_nothing_final(tmp_path)


def test_wrong_bytes_in_a_small_git_file_are_caught_by_its_blob_id(hub: HubServer, tmp_path: Path) -> None:
    hub.add(
        "org/tiny",
        "tokenizer.json",
        DATA[:50_000],
        lfs=False,
        faults=Faults(corrupt_at=10, corrupt_times=100),
    )
    with pytest.raises(IntegrityError, match="git blob sha1"):
        fetch(tmp_path)


def test_429_and_503_with_retry_after_are_honoured(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(statuses=[429, 503], retry_after="1"))
    rec = Recorder()
    t0 = time.monotonic()
    snap, _ = fetch(tmp_path, rec)
    assert_verified(snap)
    assert time.monotonic() - t0 >= 1.0  # waited as told, not the 0.05 s backoff cap
    assert any("HTTP 429" in n for n in rec.notes) and any("HTTP 503" in n for n in rec.notes)


def test_retry_after_too_long_fails_at_once_with_the_servers_figure(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(statuses=[503], retry_after="3600"))
    with pytest.raises(DownloadError, match="3600 s"):
        fetch(tmp_path, retry_after_max=10)
    assert_nothing_final(tmp_path)


def test_endless_503_gives_up_after_the_retries(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(statuses=[503] * 100, retry_after=None))
    with pytest.raises(DownloadError, match="after 4 retries") as e:
        fetch(tmp_path)
    assert e.value.exit_code == 5
    assert_nothing_final(tmp_path)


def test_server_ignoring_range_is_downloaded_in_one_stream(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(ignore_range=True))
    rec = Recorder()
    snap, _ = fetch(tmp_path, rec)
    assert_verified(snap)
    assert any("ignores Range" in n for n in rec.notes)


def test_file_changing_on_the_server_is_never_accepted(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(etag_change_after=1))
    rec = Recorder()
    with pytest.raises((IntegrityError, DownloadError)):
        fetch(tmp_path, rec)
    assert any("ETag changed" in n for n in rec.notes)
    assert_nothing_final(tmp_path)


def test_stalled_connection_is_dropped_and_retried(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(stall_at=SIZE // 4, stall_seconds=5, stall_times=1))
    rec = Recorder()
    t0 = time.monotonic()
    snap, _ = fetch(tmp_path, rec, stall_timeout=0.3)
    assert_verified(snap)
    assert time.monotonic() - t0 < 4
    assert any("ReadTimeout" in n for n in rec.notes)


def test_missing_file_is_not_found(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults())
    with pytest.raises(NotFoundError) as e:
        download_variant(None, hf_variant("org/absent"), config=fast_config(), root=tmp_path)
    assert "org/absent" in str(e.value) and e.value.exit_code == 4


def test_not_enough_disk_fails_before_any_transfer(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(claimed_size=10**12))  # 1 TB: a size a file may have, more than this disk holds
    with pytest.raises(DiskFullError, match="needed") as e:
        fetch(tmp_path)
    assert "available" in str(e.value)
    assert hub.sent("model.onnx") == 0


def test_token_goes_to_the_hub_host_only_never_to_a_redirect_target(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HubServer() as cdn:
        cdn.add("org/tiny", "model.onnx", DATA)
        hub.add("org/tiny", "model.onnx", DATA, faults=Faults(redirect_to=cdn.url))
        monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
        snap, _ = fetch(tmp_path)
        assert_verified(snap)
        hub_auth = [r["headers"].get("Authorization") for r in hub.requests]
        cdn_auth = [r["headers"].get("Authorization") for r in cdn.requests]
    assert hub_auth and all(a == "Bearer hf_secret_token" for a in hub_auth)
    assert cdn.requests and all(a is None for a in cdn_auth)


def test_a_source_listing_a_path_outside_the_snapshot_is_refused_before_any_transfer(
    hub: HubServer, tmp_path: Path
) -> None:
    from catalog.errors import StoreError

    hub.add("org/tiny", "../../outside.txt", b"owned")
    hub.add("org/tiny", "model.onnx", DATA)
    with pytest.raises(StoreError, match="'..'"):
        fetch(tmp_path)
    assert hub.sent("model.onnx") == 0 and not (tmp_path.parent / "outside.txt").exists()


def test_a_busy_hub_api_is_retried_not_fatal(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults())
    hub.api_statuses = [503, 429]
    snap, _ = fetch(tmp_path)
    assert_verified(snap)
    assert sum("/api/models/" in r["path"] for r in hub.requests) == 3


def test_a_busy_hub_api_gives_up_after_the_engines_retries(hub: HubServer, tmp_path: Path) -> None:
    # the API reader retries by the same DownloadConfig as the transfers, not by settings of its own
    serve(hub, Faults())
    hub.api_statuses = [503] * 10
    with pytest.raises(SourceError, match=r"HTTP 503 \(after 1 retries\)") as e:
        fetch(tmp_path, retries=1)
    assert e.value.exit_code == 5
    assert sum("/api/models/" in r["path"] for r in hub.requests) == 2


def test_every_request_names_the_toolkit_and_its_version(hub: HubServer, tmp_path: Path) -> None:
    import importlib.metadata

    serve(hub, Faults(unlisted_size=True))  # API, HEAD and ranged GETs
    fetch(tmp_path)
    agents = {(r["method"], r["headers"].get("User-Agent")) for r in hub.requests}
    assert agents == {(m, f"toolkit/{importlib.metadata.version('toolkit')}") for m in ("GET", "HEAD")}


def test_a_listing_without_sizes_is_completed_with_head(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(unlisted_size=True))
    snap, _ = fetch(tmp_path)
    assert_verified(snap)
    assert any(r["method"] == "HEAD" for r in hub.requests)


def test_a_server_that_ignores_range_and_sends_other_bytes_on_a_retry_is_caught(hub: HubServer, tmp_path: Path) -> None:
    # The first stream pauses at 3/4 (the hasher catches up), then drops before the end; every later stream sends
    # zeros for the first half and the real rest. The digest must cover the bytes in the file, not the first try's.
    serve(hub, Faults(ignore_range=True, drop_at=SIZE - 1, drop_times=99, stall_at=SIZE * 3 // 4, stall_seconds=0.3,
                      stall_times=99, zeros_after_drop=SIZE // 2))
    with pytest.raises(IntegrityError):
        fetch(tmp_path, restarts=1)
    assert_nothing_final(tmp_path)


def test_an_honest_server_that_ignores_range_and_drops_once_still_verifies(hub: HubServer, tmp_path: Path) -> None:
    serve(hub, Faults(ignore_range=True, drop_at=SIZE - 1, drop_times=99, stall_at=SIZE * 3 // 4, stall_seconds=0.3,
                      stall_times=99, zeros_after_drop=0))  # drops once, then sends the same bytes again
    snap, _ = fetch(tmp_path)
    assert_verified(snap)


@pytest.mark.parametrize("size", [-(10**15), 10**15, -1])
def test_a_listed_size_out_of_range_is_refused_before_any_plan(hub: HubServer, tmp_path: Path, size: int) -> None:
    # a negative size once cancelled the others out in the free-space sum; 10**15 planned 60 million parts
    serve(hub, Faults(claimed_size=size))
    with pytest.raises(SourceError, match=f"model.onnx: size {size} is out of range"):
        fetch(tmp_path)
    assert hub.sent("model.onnx") == 0


def test_a_malformed_sha256_in_the_listing_is_refused(hub: HubServer, tmp_path: Path) -> None:
    hub.add("org/tiny", "model.onnx", DATA)
    hub.add("org/tiny", "genai_config.json", b'{"model": {}}', lfs=False)
    hub._sha[("org/tiny", "model.onnx")] = "zz" * 32  # 64 characters, not hex
    with pytest.raises(SourceError, match="is not 64 hex digits"):
        fetch(tmp_path)
    assert hub.sent("model.onnx") == 0
