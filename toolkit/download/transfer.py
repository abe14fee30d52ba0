"""One file over HTTP: parallel Range requests into a pre-sized file, resumable, verified before use.

Workers take parts (see plan.py); an idle worker steals half of the largest remaining part, so the
connections stay busy to the end. A hasher thread follows the written prefix, so the sha256 is ready
moments after the last byte. Faults handled: dropped connections and short bodies (resume within the
part), 429/503 with Retry-After, stalls (a body that stops flowing), a server that ignores Range (one
stream from zero), a changed ETag or a failed checksum (start again, at most `restarts` times). What an
answer means and how long to wait are catalog.sources.retry's decisions, as for every other request.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx

from catalog.errors import DiskFullError, DownloadError, IntegrityError, SourceError, StoreError
from catalog.sources import ResolvedFile
from catalog.sources.http import classify_error, public_url, send
from catalog.sources.retry import CHANGED, OK, RETRY, STALL, Verdict, classify, give_up, next_delay
from toolkit.download.config import DownloadConfig
from toolkit.download.diskio import BINARY, PrefixHasher, disk_error, write_at
from toolkit.download.plan import Part, contiguous_end, parse_content_range, plan_parts, split_largest
from toolkit.download.progress import Progress
from toolkit.download.state import PartialState, load_state, save_state


class _Retry(Exception):
    """This try of a part failed in a way worth another (see catalog.sources.retry.next_delay)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class _NoRange(Exception):
    """The server answered a Range request with the whole body."""


class _Changed(Exception):
    """The file changed on the server (ETag, size) while we were fetching it."""


class FileTransfer:
    """Fetch one file into `partial_dir/data` and verify it; `run()` returns (data path, sha256 hex)."""

    def __init__(
        self,
        client: httpx.Client,
        rf: ResolvedFile,
        partial_dir: Path,
        config: DownloadConfig,
        progress: Progress | None = None,
        connection_slots: threading.Semaphore | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if rf.size is None:
            raise SourceError(f"{public_url(rf.url)}: the source gave no size for {rf.path}")
        self.client, self.rf, self.cfg = client, rf, config
        self.size = rf.size
        self.progress = progress or Progress()
        self.slots = connection_slots or threading.Semaphore(config.connections)
        self.dir = partial_dir
        self.data_path, self.state_path = partial_dir / "data", partial_dir / "state.json"
        self.lock = threading.Lock()
        self.abort = threading.Event()
        self.cancel = cancel or threading.Event()  # set by the caller (Ctrl-C): stop, keep the state
        self.error: BaseException | None = None
        self.active: list[Part] = []
        self.fetched = 0  # bytes received from the network, including any thrown away
        self.resumed_from = 0
        self._last_save = 0.0
        self._save_lock = threading.Lock()
        self._discarded = False
        self._fd = -1
        self._epoch = 0  # raised before bytes already written are written again (under self.lock)
        self.state = PartialState(self.size)

    # -- state ---------------------------------------------------------------------------------
    def _fresh_state(self, etag: str | None = None, ranges: bool = True) -> PartialState:
        parts = plan_parts(
            self.size,
            self.cfg.connections,
            self.cfg.min_segment,
            self.cfg.max_segment,
            self.cfg.segments_per_connection,
        )
        return PartialState(self.size, etag, ranges, parts if ranges else [Part(0, self.size)])

    def _open(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            loaded = load_state(self.state_path, self.data_path, self.size)
            if loaded is None:
                self.state = self._fresh_state()
                with open(self.data_path, "wb") as f:
                    f.truncate(self.size)  # sparse: no space used until written
                save_state(self.state_path, self.state)
            else:
                self.state = loaded
            self._fd = os.open(self.data_path, os.O_WRONLY | BINARY)
        except OSError as e:
            raise disk_error(self.data_path, e) from e
        self.resumed_from = self.state.done_bytes

    def _save(self, force: bool = False) -> None:
        """Write the resume state: at most every save_interval from the workers, always when forced."""
        now = time.monotonic()
        if self._discarded or (not force and now - self._last_save < self.cfg.save_interval):
            return
        if not self._save_lock.acquire(blocking=force):
            return  # another worker is saving right now
        try:
            with self.lock:
                snapshot = PartialState(
                    self.size,
                    self.state.etag,
                    self.state.ranges,
                    [Part(p.start, p.end, p.done) for p in self.state.parts],
                )
                self._last_save = now
            try:
                save_state(self.state_path, snapshot)
            except OSError as e:  # a full disk meets the small state file too: the same clear error
                raise disk_error(self.state_path, e) from e
        finally:
            self._save_lock.release()

    def _reset(self, ranges: bool, keep_etag: bool) -> None:
        with self.lock:
            self.state = self._fresh_state(self.state.etag if keep_etag else None, ranges)
        self._save(force=True)

    # -- workers -------------------------------------------------------------------------------
    def _next_part(self) -> Part | None:
        with self.lock:
            for p in self.state.parts:
                if not p.complete and p not in self.active:
                    self.active.append(p)
                    return p
            if not self.state.ranges:
                return None
            new = split_largest(self.active, self.cfg.min_split)
            if new is not None:
                self.state.parts.append(new)
                self.active.append(new)
            return new

    def _worker(self) -> None:
        try:
            while not self.abort.is_set():
                part = self._next_part()
                if part is None:
                    return
                try:
                    self._fetch_part(part)
                finally:
                    with self.lock:
                        self.active.remove(part)
        except BaseException as e:  # handed to run(), which raises it in the caller's thread
            with self.lock:
                if self.error is None:
                    self.error = e
            self.abort.set()

    def _fetch_part(self, part: Part) -> None:
        attempts = stalls = 0
        while not self.abort.is_set() and not part.complete:
            start = part.pos
            try:
                with self.slots:
                    self._stream(part)
                if not part.complete and not self.abort.is_set():
                    raise _Retry(Verdict(RETRY, reason="the server closed the response early"))
                continue
            except _Retry as e:
                verdict = e.verdict
            except httpx.TransportError as e:
                verdict = classify_error(self.rf.url, e)
            if part.pos > start:
                attempts = 0
            if verdict.kind == STALL:
                stalls += 1
            else:
                attempts += 1
            delay = next_delay(verdict, attempts, stalls, self.cfg)
            if delay is None:
                raise DownloadError(f"{public_url(self.rf.url)}: {give_up(verdict, attempts, stalls, self.cfg)}") from None
            self.progress.note(f"{self.rf.path}: {verdict.reason}; retrying in {delay:.1f} s")
            if self.abort.wait(delay):
                return

    def _stream(self, part: Part) -> None:
        with self.lock:
            ranges = self.state.ranges
            if not ranges:
                if part.done:  # without Range there is no resuming: the stream starts again from byte zero,
                    self._epoch += 1  # writing over what the hasher may have read (see PrefixHasher)
                part.done = 0
            start, end = part.pos, part.end
        headers = {"Range": f"bytes={start}-{end - 1}"} if ranges else {}
        response = send(self.client, "GET", self.rf.url, headers, self.rf.headers, stream=True)
        try:
            self._check_response(response, start, end, ranges)
            for chunk in response.iter_raw(self.cfg.chunk_size):
                if self.abort.is_set():
                    return
                with self.lock:
                    self.fetched += len(chunk)
                    n = min(len(chunk), part.end - part.pos)
                    if n > 0:
                        self._write(chunk[:n] if n < len(chunk) else chunk, part.pos)
                        part.done += n
                if n > 0:
                    self.progress.advance(self.rf.path, n)
                self._save()
                if part.complete:
                    return
        except httpx.TransportError as e:  # the body had begun: a read timeout now is a stall
            raise _Retry(classify_error(self.rf.url, e, in_body=True)) from None
        finally:
            response.close()

    def _write(self, data: bytes, offset: int) -> None:
        try:
            write_at(self._fd, data, offset)
        except OSError as e:
            raise disk_error(self.data_path, e) from e

    def _check_response(self, r: httpx.Response, start: int, end: int, ranges: bool) -> None:
        verdict = classify(r)
        if verdict.kind == CHANGED:
            raise _Changed(f"the server says the range {start}-{end - 1} is not satisfiable")
        if verdict.kind == RETRY:
            raise _Retry(verdict)
        if verdict.kind != OK:
            raise verdict.error(public_url(self.rf.url), DownloadError)
        code = r.status_code
        etag = r.headers.get("x-linked-etag") or r.headers.get("etag")
        with self.lock:
            if etag and self.state.etag and etag != self.state.etag:
                raise _Changed(f"the ETag changed from {self.state.etag} to {etag}")
            if etag and not self.state.etag:
                self.state.etag = etag
        if code == 200:
            if ranges:
                raise _NoRange()
            length = r.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) != self.size:
                raise _Changed(f"the server now sends {length} bytes, expected {self.size}")
            return
        cr = parse_content_range(r.headers.get("content-range"))
        if cr is None or cr[0] != start or cr[1] < start:
            got = r.headers.get("content-range")
            raise _Retry(Verdict(RETRY, code, reason=f"the server sent range {got!r} for bytes={start}-{end - 1}"))
        if cr[2] is not None and cr[2] != self.size:
            raise _Changed(f"the file is now {cr[2]} bytes, expected {self.size}")

    # -- coordination --------------------------------------------------------------------------
    def _run_workers(self) -> None:
        self.abort.clear()
        self.error = None
        n = self.cfg.connections if self.state.ranges else 1
        threads = [threading.Thread(target=self._worker, daemon=True, name="toolkit-dl") for _ in range(n)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
                    if self.cancel.is_set():
                        self.abort.set()
        except BaseException:  # Ctrl-C in this thread: stop the workers; the state keeps what is on disk
            self.abort.set()
            for t in threads:
                t.join(1.0)
            raise
        if self.cancel.is_set():
            raise KeyboardInterrupt
        if self.error is not None:
            raise self.error

    def run(self) -> tuple[Path, str]:
        """Fetch, verify size and digests, and return (data path, sha256). Raises on failure."""
        self._open()
        restarts = 0
        self.progress.file_started(self.rf.path, self.size, self.resumed_from)
        try:
            while True:
                hasher = PrefixHasher(
                    self.data_path,
                    self.size,
                    self._written_end,
                    git=bool(self.rf.git_sha1) and not self.rf.sha256,
                    md5=bool(self.rf.md5) and not self.rf.sha256,
                    flush=self.cfg.fsync,
                )
                hasher.start()
                try:
                    self._run_workers()
                except _NoRange:
                    hasher.stop.set()
                    self.progress.note(f"{self.rf.path}: the server ignores Range; fetching in one stream")
                    self._reset(ranges=False, keep_etag=True)
                    continue
                except _Changed as e:
                    hasher.stop.set()
                    restarts += 1
                    if restarts > self.cfg.restarts:
                        raise DownloadError(
                            f"{public_url(self.rf.url)}: the file keeps changing on the server ({e})"
                        ) from None
                    self.progress.note(f"{self.rf.path}: {e}; starting this file again")
                    self._reset(ranges=self.state.ranges, keep_etag=False)
                    continue
                except BaseException:
                    hasher.stop.set()
                    raise
                hasher.join()
                if hasher.error is not None:
                    raise StoreError(f"{self.data_path}: cannot read back: {hasher.error}")
                problem = self._verify(hasher)
                if problem is None:
                    return self.data_path, hasher.sha256.hexdigest()
                restarts += 1
                if restarts > self.cfg.restarts:
                    self.discard()
                    raise IntegrityError(f"{public_url(self.rf.url)}: {problem}; the bytes were discarded")
                self.progress.note(f"{self.rf.path}: {problem}; downloading it again")
                self._reset(ranges=self.state.ranges, keep_etag=False)
        finally:
            if self._fd >= 0:
                try:
                    self._save(force=True)
                except (OSError, DiskFullError, StoreError):  # keep the error that ended the transfer
                    pass
                os.close(self._fd)
                self._fd = -1

    def _written_end(self, cursor: int) -> tuple[int, int]:
        with self.lock:
            return contiguous_end(self.state.parts, cursor), self._epoch

    def _verify(self, hasher: PrefixHasher) -> str | None:
        size = os.stat(self.data_path).st_size
        if hasher.epoch != self._epoch:
            return "bytes were written again after they were hashed"
        if size != self.size or hasher.cursor != self.size:
            return f"size {size} (hashed {hasher.cursor}) instead of {self.size}"
        got = hasher.sha256.hexdigest()
        if self.rf.sha256 and got != self.rf.sha256:
            return f"sha256 {got} instead of {self.rf.sha256}"
        if hasher.sha1 is not None and hasher.sha1.hexdigest() != self.rf.git_sha1:
            return f"git blob sha1 {hasher.sha1.hexdigest()} instead of {self.rf.git_sha1}"
        if hasher.md5 is not None and hasher.md5.hexdigest() != self.rf.md5:
            return f"md5 {hasher.md5.hexdigest()} instead of {self.rf.md5}"
        return None

    def discard(self) -> None:
        """Remove the partial data and state (after a final integrity failure)."""
        self._discarded = True
        for p in (self.data_path, self.state_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        try:
            self.dir.rmdir()  # only if empty: another process may have put its own state there
        except OSError:
            pass
