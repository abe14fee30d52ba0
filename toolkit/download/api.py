"""The download API the CLI, provisioning and the runtime call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.errors import DownloadError, SourceError, UnknownModelError
from catalog.loader import Catalog
from catalog.schema import Manifest, Variant
from catalog.sources import ResolvedVariant, digest_counts, resolve
from catalog.sources.http import Client, make_client
from catalog.sources.mirror import hands_over
from toolkit import paths
from toolkit.download.config import DownloadConfig
from toolkit.download.manager import FileStatus, TransferReport, file_statuses, install, resolve_variant
from toolkit.download.progress import Progress
from toolkit.store.blobs import Pins, Store
from toolkit.store.cache import VerifyResult, forget_bad, verify_variant
from toolkit.store.snapshots import snapshot_files, touch_last_used


def _client(cfg: DownloadConfig) -> Client:
    """The one client, with the engine's settings; 4 connections beyond the transfers' for API requests."""
    return make_client(cfg, connections=cfg.max_connections + 4)


def ensure_variant(
    manifest: Manifest,
    variant: Variant,
    progress: Progress | None = None,
    *,
    mirror: str | None = None,
    config: DownloadConfig | None = None,
    root: Path | None = None,
    force: bool = False,
) -> Path:
    """Return the variant's snapshot folder, downloading and verifying it first if it is not complete."""
    return download_variant(
        manifest, variant, progress, mirror=mirror, config=config, root=root, force=force
    )[0]


def download_variant(
    manifest: Manifest,
    variant: Variant,
    progress: Progress | None = None,
    *,
    mirror: str | None = None,
    config: DownloadConfig | None = None,
    root: Path | None = None,
    force: bool = False,
) -> tuple[Path, TransferReport | None]:
    """Like ensure_variant, also returning what the transfer did (None if the snapshot was complete)."""
    store = Store(root)
    snap = paths.snapshot_dir(variant.id, store.root)
    if not force and (snap / paths.COMPLETE_MARKER).is_file():
        touch_last_used(snap)
        return snap, None
    with store.writing(variant.id, (progress or Progress()).note) as pins:
        if not force and (snap / paths.COMPLETE_MARKER).is_file():  # the process we waited for wrote it
            touch_last_used(snap)
            return snap, None
        return _fetch_and_install(variant, store, pins, progress, mirror, config)


def _fetch_and_install(
    variant: Variant,
    store: Store,
    pins: Pins,
    progress: Progress | None,
    mirror: str | None,
    config: DownloadConfig | None,
) -> tuple[Path, TransferReport]:
    """Resolve the variant and install it, the caller holding it (`pins`)."""
    cfg = config or DownloadConfig.from_env()
    with _client(cfg) as client:
        resolved = resolve_variant(variant, client, mirror, progress)
        try:
            return install(resolved, store, client, cfg, progress, pins)
        except (DownloadError, SourceError) as e:
            # a mirror that fails mid-way: what it delivered stays in the store (by sha256); the rest
            # comes from the variant's own source
            if resolved.source != "mirror" or not hands_over(variant, resolved.origin, e):
                raise
            (progress or Progress()).note(
                f"mirror {resolved.origin} failed ({e}); using the {variant.source.type} source"
            )
            return install(resolve(variant, client), store, client, cfg, progress, pins)


@dataclass
class DownloadPlan:
    """What a download would do: the source it resolved to, each file's state, the bytes to fetch."""

    manifest: Manifest
    variant: Variant
    resolved: ResolvedVariant
    files: list[FileStatus]
    complete: bool
    free_bytes: int

    @property
    def bytes_to_fetch(self) -> int:
        return sum((f.size or 0) - f.partial_bytes for f in self.files if not f.in_store)

    @property
    def digests(self) -> dict[str, int]:
        """Files by who vouches for their digest (pinned, origin, local, mirror, none)."""
        return digest_counts(self.resolved.files)


def plan_variant(
    manifest: Manifest,
    variant: Variant,
    *,
    mirror: str | None = None,
    config: DownloadConfig | None = None,
    root: Path | None = None,
) -> DownloadPlan:
    """Resolve the variant and report, without fetching, what `ensure_variant` would do."""
    store = Store(root)
    cfg = config or DownloadConfig.from_env()
    with _client(cfg) as client:
        resolved = resolve_variant(variant, client, mirror)
    complete = (paths.snapshot_dir(variant.id, store.root) / paths.COMPLETE_MARKER).is_file()
    return DownloadPlan(
        manifest, variant, resolved, file_statuses(resolved, store), complete, store.free_bytes()
    )


def repair_variant(result: VerifyResult, progress: Progress | None = None, root: Path | None = None) -> bool:
    """Drop the damaged blobs `cache verify` found, fetch them again from the variant's manifest
    source, and return whether the snapshot now verifies."""
    found = Catalog.load().find_variant(result.variant_id)
    if found is None:
        raise UnknownModelError(result.variant_id, kind="variant (no manifest to repair it from)")
    store = Store(root)
    with store.writing(result.variant_id, (progress or Progress()).note) as pins:
        pins.add(f.sha256 for f in snapshot_files(result.variant_id, store.root))  # the healthy ones stay
        forget_bad(store, result)
        _fetch_and_install(found[1], store, pins, progress, None, None)
    return verify_variant(store, result.variant_id).ok
