"""A variant's files, several at once, into the store; then its snapshot. `ensure_variant` is the API.

Cooperation between processes: each file is fetched under a per-blob lock; a process that finds the
lock taken works on other files and comes back, and finds the blob there when the other one is done.
So two processes downloading one variant both finish, and every byte is fetched once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from filelock import Timeout

from catalog.errors import DiskFullError, DownloadError, IntegrityError, NotFoundError, SourceError
from catalog.schema import Variant
from catalog.sources import (
    INDEPENDENT,
    ORIGIN,
    ResolvedFile,
    ResolvedVariant,
    checked_file,
    digest_counts,
    resolve,
)
from catalog.sources.http import public_url, request
from catalog.sources.local import open_local
from catalog.sources.mirror import configured_mirror, hands_over, resolve_from
from toolkit.download.config import DownloadConfig
from toolkit.download.progress import Progress
from toolkit.download.state import load_state
from toolkit.download.transfer import FileTransfer
from toolkit.store.blobs import Pins, Store
from toolkit.store.safety import check_listing
from toolkit.store.snapshots import SnapshotFile, write_snapshot
from toolkit.units import human_size


def partial_key(rf: ResolvedFile) -> str:
    """Where a file's partial download lives: its sha256 when known, else a hash of URL and size."""
    if rf.sha256:
        return rf.sha256
    u = urlsplit(rf.url)
    return "u" + hashlib.sha256(f"{u.scheme}://{u.netloc}{u.path}|{rf.size}".encode()).hexdigest()[:40]


@dataclass
class FileStatus:
    path: str
    size: int | None
    sha256: str | None
    in_store: bool
    partial_bytes: int = 0
    digest_from: str = ORIGIN


@dataclass
class TransferReport:
    """What a transfer did: bytes received from the network, files fetched, files found in the store."""

    variant_id: str
    source: str
    revision: str
    files: list[SnapshotFile] = field(default_factory=list)
    fetched_bytes: int = 0
    resumed_bytes: int = 0
    fetched_files: int = 0
    reused_files: int = 0
    seconds: float = 0.0
    digests: dict[str, int] = field(default_factory=dict)  # files by who vouched for their digest


def file_statuses(resolved: ResolvedVariant, store: Store) -> list[FileStatus]:
    """Which files are already in the store, and how much of the others is on disk as a partial."""
    out = []
    check_listing([rf.path for rf in resolved.files], resolved.origin)
    for rf in resolved.files:
        have = bool(rf.sha256) and store.has_blob(rf.sha256, rf.size)
        partial = 0
        if not have and rf.size:
            d = store.partial_dir(partial_key(rf))
            st = load_state(d / "state.json", d / "data", rf.size)
            partial = st.done_bytes if st else 0
        out.append(FileStatus(rf.path, rf.size, rf.sha256, have, partial, rf.digest_from))
    return out


def probe_size(client: httpx.Client, rf: ResolvedFile) -> int:
    """The size of a file whose source listed none: HEAD (retried like every request), reading X-Linked-Size
    or Content-Length."""
    r = request(client, "HEAD", rf.url, private_headers=rf.headers, failure=DownloadError)
    value = r.headers.get("x-linked-size") or r.headers.get("content-length")
    if not value or not value.isdigit():
        raise SourceError(f"{public_url(rf.url)}: the source gives no size for {rf.path} (HEAD answered {r.status_code})")
    return checked_file(replace(rf, size=int(value)), public_url(rf.url)).size or 0


def check_free_space(needed: int, available: int, margin: int, where: Path) -> None:
    """Raise DiskFullError naming the needed and available figures when `needed` does not fit."""
    if needed + margin > available:
        raise DiskFullError(
            f"not enough free space in {where}: {human_size(needed)} needed (+{human_size(margin)} margin), "
            f"{human_size(available)} available; free some space or set TOOLKIT_HOME to a larger disk"
        )


def _copy_local(rf: ResolvedFile, dest: Path, progress: Progress) -> str:
    """Copy a file:// source (a file, or an archive member) into `dest`, hashing as it goes."""
    h = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open_local(rf.url) as fin, open(dest, "wb") as fout:
            while block := fin.read(1 << 20):
                h.update(block)
                fout.write(block)
                progress.advance(rf.path, len(block))
    except (FileNotFoundError, KeyError) as e:
        raise NotFoundError(f"{public_url(rf.url)}: no such file") from e
    return h.hexdigest()


class VariantTransfer:
    """Fetch every file of a resolved variant into the store; `run()` returns a TransferReport."""

    def __init__(
        self,
        resolved: ResolvedVariant,
        store: Store,
        client: httpx.Client,
        config: DownloadConfig,
        progress: Progress | None = None,
        pins: Pins | None = None,
    ) -> None:
        self.resolved, self.store, self.client, self.cfg = resolved, store, client, config
        self.pins = pins  # a file whose sha256 was not known up front is pinned before it gets its name
        self.progress = progress or Progress()
        self.slots = threading.Semaphore(config.max_connections)
        self.report = TransferReport(resolved.variant_id, resolved.source, resolved.revision)
        self.lock = threading.Lock()
        self.cancel = threading.Event()

    def run(self) -> TransferReport:
        t0 = time.monotonic()
        statuses = file_statuses(self.resolved, self.store)
        needed = sum((s.size or 0) - s.partial_bytes for s in statuses if not s.in_store)
        check_free_space(needed, self.store.free_bytes(), self.cfg.disk_margin, self.store.root)
        self.progress.begin(self.resolved.variant_id, needed, sum(1 for s in statuses if not s.in_store))
        pool = ThreadPoolExecutor(max_workers=max(1, self.cfg.max_files), thread_name_prefix="toolkit-file")
        try:
            futures = [pool.submit(self._one, rf) for rf in self.resolved.files]
            while not all(f.done() for f in futures):  # short waits, so Ctrl-C reaches this thread
                wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
                if any(f.done() and f.exception() for f in futures):
                    self.cancel.set()  # one file failed for good: stop the others, keep their state
                    break
            pool.shutdown(wait=True)
            errors = [f.exception() for f in futures if f.done() and f.exception()]
            real = [e for e in errors if not isinstance(e, KeyboardInterrupt)]
            if real or errors:
                raise (real or errors)[0]
            results = [f.result() for f in futures]
        except KeyboardInterrupt:
            self.cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            self.progress.end()
        self.report.files = results
        self.report.seconds = time.monotonic() - t0
        return self.report

    def _one(self, rf: ResolvedFile) -> SnapshotFile:
        if rf.sha256 and self.store.has_blob(rf.sha256, rf.size):
            with self.lock:
                self.report.reused_files += 1
            self.progress.file_done(rf.path, fetched=False)
            return SnapshotFile(rf.path, rf.size or 0, rf.sha256)
        key = partial_key(rf)
        lock = self.store.lock(f"blob-{key}")
        waited = False
        while True:
            if self.cancel.is_set():
                raise KeyboardInterrupt
            try:
                lock.acquire(timeout=0.25)
                break
            except Timeout:
                if rf.sha256 and self.store.has_blob(rf.sha256, rf.size):
                    break
                if not waited:
                    self.progress.note(f"{rf.path}: another process is downloading it; waiting")
                    waited = True
        try:
            if rf.sha256 and self.store.has_blob(rf.sha256, rf.size):
                with self.lock:
                    self.report.reused_files += 1
                self.progress.file_done(rf.path, fetched=False)
                return SnapshotFile(rf.path, rf.size or 0, rf.sha256)
            return self._fetch(rf, key)
        finally:
            if lock.is_locked:
                lock.release()

    def _fetch(self, rf: ResolvedFile, key: str) -> SnapshotFile:
        pdir = self.store.partial_dir(key)
        if rf.url.startswith("file:"):
            self.progress.file_started(rf.path, rf.size or 0, 0)
            data = pdir / "data"
            sha = _copy_local(rf, data, self.progress)
            if rf.sha256 and sha != rf.sha256:
                self.store.remove_partial(key)
                raise IntegrityError(f"{public_url(rf.url)}: sha256 {sha} instead of {rf.sha256}")
            size = data.stat().st_size
            if rf.size is not None and size != rf.size:
                self.store.remove_partial(key)
                raise IntegrityError(f"{public_url(rf.url)}: {size} bytes instead of {rf.size}")
        else:
            if rf.size is None:
                rf = replace(rf, size=probe_size(self.client, rf))
            t = FileTransfer(self.client, rf, pdir, self.cfg, self.progress, self.slots, self.cancel)
            try:
                data, sha = t.run()
            finally:
                with self.lock:
                    self.report.fetched_bytes += t.fetched
                    self.report.resumed_bytes += t.resumed_from
            size = rf.size or 0
        if self.pins is not None:
            self.pins.add((sha,))
        self.store.commit_blob(data, sha, durable=self.cfg.fsync)
        self.store.remove_partial(key)
        with self.lock:
            self.report.fetched_files += 1
        self.progress.file_done(rf.path, fetched=True)
        return SnapshotFile(rf.path, size, sha)


def resolve_variant(
    variant: Variant, client: httpx.Client, mirror: str | None = None, progress: Progress | None = None
) -> ResolvedVariant:
    """Resolve through the mirror first when one is set (TOOLKIT_MIRROR / --mirror), else the source; a mirror
    that fails hands over to the variant's own source as `hands_over` decides."""
    base = configured_mirror(mirror)
    if base:
        try:
            resolved = resolve_from(base, variant, client)
            for note in resolved.notes:
                (progress or Progress()).note(f"mirror {base}: {note}")
            return resolved
        except (SourceError, DownloadError) as e:
            if not hands_over(variant, base, e):
                raise
            (progress or Progress()).note(f"mirror {base}: {e}; using the {variant.source.type} source")
    return resolve(variant, client)


def check_digests(resolved: ResolvedVariant, require_pinned: bool) -> None:
    """With require_pinned, refuse files whose digest only the serving mirror vouches for, or that have none."""
    weak = [f.path for f in resolved.files if f.digest_from not in INDEPENDENT]
    if require_pinned and weak:
        shown = ", ".join(weak[:3]) + (f" and {len(weak) - 3} more" if len(weak) > 3 else "")
        raise IntegrityError(
            f"{resolved.origin}: {resolved.variant_id}: {len(weak)} file(s) ({shown}) have no sha256 that the "
            "server sending them could not choose (no pin in the manifest, and the origin source did not vouch); "
            "TOOLKIT_REQUIRE_PINNED / --require-pinned refuses them")


def install(
    resolved: ResolvedVariant,
    store: Store,
    client: httpx.Client,
    config: DownloadConfig,
    progress: Progress | None = None,
    pins: Pins | None = None,
) -> tuple[Path, TransferReport]:
    """Fetch a resolved variant and write its snapshot; return the snapshot folder and the report.
    Holds the variant for the whole write (Store.writing) unless the caller passes the Pins of its hold."""
    if pins is None:
        with store.writing(resolved.variant_id, (progress or Progress()).note) as held:
            return install(resolved, store, client, config, progress, held)
    check_digests(resolved, config.require_pinned)
    pins.add(rf.sha256 for rf in resolved.files if rf.sha256)  # before looking for them in the store
    report = VariantTransfer(resolved, store, client, config, progress, pins).run()
    report.digests = digest_counts(resolved.files)
    meta = {"source": resolved.source, "revision": resolved.revision, "origin": resolved.origin}
    snap = write_snapshot(store, resolved.variant_id, report.files, meta, durable=config.fsync)
    return snap, report
