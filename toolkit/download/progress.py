"""What the engine reports while it works; the CLI renders it (rich bars or plain lines)."""

from __future__ import annotations


class Progress:
    """Progress events; every method is a no-op here, subclass what you need. Called from worker threads."""

    def begin(self, variant_id: str, total_bytes: int, files: int) -> None:
        """A variant's transfer starts: the bytes still to fetch and the number of files."""

    def file_started(self, path: str, size: int, already: int) -> None:
        """A file starts (or resumes with `already` bytes on disk)."""

    def advance(self, path: str, nbytes: int) -> None:
        """`nbytes` more of `path` are on disk."""

    def file_done(self, path: str, fetched: bool) -> None:
        """A file is verified in the store (`fetched` False when it was already there)."""

    def note(self, message: str) -> None:
        """Something a user should see: a retry, a wait, a fallback."""

    def end(self) -> None:
        """The transfer is over (successfully or not)."""
