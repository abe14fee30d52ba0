"""Engine settings, with defaults for real networks and TOOLKIT_DL_* overrides (tests make them quick)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from catalog.errors import SettingError
from catalog.sources.retry import HttpSettings
from toolkit.download.plan import MiB

# The least value of the settings that may be 0 (other counts and sizes: at least 1, times: above 0);
# 0 connections or a 0-byte chunk would wait forever.
MINIMUM = {"retries": 0, "stall_retries": 0, "restarts": 0, "disk_margin": 0, "save_interval": 0.0,
           "backoff_base": 0.0, "backoff_max": 0.0, "retry_after_max": 0.0}
# The most of each setting: past these a value is a typo, and some would overflow a timer (a 1e308 s timeout) or
# an exponential backoff (2**retries), or allocate a chunk of that size.
GiB = 1024 * MiB
MAXIMUM = {"connections": 64, "max_connections": 256, "max_files": 64, "segments_per_connection": 1024,
           "min_segment": GiB, "max_segment": GiB, "min_split": GiB, "chunk_size": 64 * MiB,
           "retries": 1000, "stall_retries": 1000, "restarts": 100,
           "backoff_base": 3600.0, "backoff_max": 3600.0, "retry_after_max": 86400.0, "stall_timeout": 3600.0,
           "connect_timeout": 3600.0, "save_interval": 60.0}
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class DownloadConfig(HttpSettings):
    """How the engine splits, retries and waits. Sizes in bytes, times in seconds. The retry and timeout
    fields come from HttpSettings: every request (sources, transfers, mirror checks) uses them."""

    connections: int = 8  # per file
    max_connections: int = 16  # across all files at once
    max_files: int = 4
    segments_per_connection: int = 16  # small segments: busy connections to the end, hashing close behind
    min_segment: int = 4 * MiB
    max_segment: int = 16 * MiB
    min_split: int = 2 * MiB  # an idle connection steals half of a part only if both halves keep this much
    restarts: int = 2  # whole-file restarts after a changed ETag or a failed checksum
    chunk_size: int = 256 * 1024
    save_interval: float = 0.05  # how often the resume state is written while bytes flow (a small JSON file)
    disk_margin: int = 16 * MiB
    # Refuse files whose digest only the serving mirror vouches for, or that have none (TOOLKIT_REQUIRE_PINNED)
    require_pinned: bool = False
    # fsync each blob and snapshot before its final name (a power cut leaves no name on a partial file); the
    # transfer flushes as it goes, so the last fsync is short. Off only for throwaway stores.
    fsync: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool":
                continue
            low, high = MINIMUM.get(f.name), MAXIMUM.get(f.name)
            if low is None:  # counts and sizes at least 1, times above 0
                ok, bound = (value >= 1, "at least 1") if f.type == "int" else (value > 0, "above 0")
            else:
                ok, bound = value >= low, f"at least {low}"
            if high is not None:
                ok, bound = ok and value <= high, f"{bound} and at most {high}"
            if not ok or not math.isfinite(value):
                raise SettingError(f"{env_name(f.name)}={value}: must be {bound}")

    @classmethod
    def from_env(cls, **overrides: object) -> DownloadConfig:
        """Defaults, then TOOLKIT_DL_<FIELD> variables (e.g. TOOLKIT_DL_STALL_TIMEOUT=2), then overrides."""
        values: dict[str, object] = {}
        for f in fields(cls):
            name = env_name(f.name)
            raw = os.environ.get(name, "").strip()
            if not raw:
                continue
            if f.type == "bool":
                if raw.lower() not in TRUE + FALSE:
                    raise SettingError(f"{name}={raw!r}: expected 1 or 0 (true or false)")
                values[f.name] = raw.lower() in TRUE
                continue
            try:
                values[f.name] = int(raw) if f.type == "int" else float(raw)
            except ValueError as e:
                raise SettingError(f"{name}={raw[:40]!r} is not a number") from e
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def env_name(field_name: str) -> str:
    """The environment variable of a setting: TOOLKIT_DL_<FIELD>, and TOOLKIT_REQUIRE_PINNED."""
    return "TOOLKIT_REQUIRE_PINNED" if field_name == "require_pinned" else f"TOOLKIT_DL_{field_name.upper()}"
