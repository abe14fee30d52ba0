"""Engine settings, with defaults for real networks and TOOLKIT_DL_* overrides (tests make them quick)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from toolkit.download.plan import MiB


@dataclass(frozen=True)
class DownloadConfig:
    """How the engine splits, retries and waits. Sizes in bytes, times in seconds."""

    connections: int = 8  # per file
    max_connections: int = 16  # across all files at once
    max_files: int = 4
    segments_per_connection: int = 16  # small segments: busy connections to the end, hashing close behind
    min_segment: int = 4 * MiB
    max_segment: int = 16 * MiB
    min_split: int = 2 * MiB  # an idle connection steals half of a part only if both halves keep this much
    retries: int = 6  # per part, reset whenever the part made progress
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0  # a longer Retry-After fails at once with the server's figure
    stall_timeout: float = 30.0  # no byte for this long: the connection is dropped and retried
    stall_retries: int = 20  # stalls do not spend retries, but are capped
    connect_timeout: float = 15.0
    restarts: int = 2  # whole-file restarts after a changed ETag or a failed checksum
    chunk_size: int = 256 * 1024
    save_interval: float = 0.05  # how often the resume state is written while bytes flow (a small JSON file)
    disk_margin: int = 16 * MiB

    @classmethod
    def from_env(cls, **overrides: object) -> DownloadConfig:
        """Defaults, then TOOLKIT_DL_<FIELD> variables (e.g. TOOLKIT_DL_STALL_TIMEOUT=2), then overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"TOOLKIT_DL_{f.name.upper()}")
            if raw:
                try:
                    values[f.name] = int(raw) if f.type == "int" else float(raw)
                except ValueError as e:
                    from catalog.errors import ToolkitError

                    raise ToolkitError(f"TOOLKIT_DL_{f.name.upper()}={raw!r} is not a number") from e
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
