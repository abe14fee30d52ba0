"""Device detection: what hardware and execution providers this machine has.

`detect()` reads the live machine (or a recorded one); `current_report()` and `current_profile()`
cache the result in the store (device.json) so `toolkit list` does not import onnxruntime or run
PowerShell on every start. The cache is invalidated when the machine, the Python environment or any
onnxruntime package changes, after a day, or with `toolkit device --refresh`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from catalog.selection import DeviceProfile
from toolkit.device.detect import detect
from toolkit.device.model import DeviceReport
from toolkit.device.probes import MachineSources, live_sources, recorded_sources

__all__ = ["DeviceReport", "MachineSources", "current_profile", "current_report", "detect", "recorded_sources"]

CACHE_TTL_S = 24 * 3600


def _onnxruntime_distributions() -> list[str]:
    """Names of the installed onnxruntime* distributions with their versions (their dist-info folders).

    Listing the folders on sys.path is a few milliseconds; importlib.metadata would cost several times that.
    """
    found = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                found += [e.name for e in it if e.name.startswith("onnxruntime") and e.name.endswith(".dist-info")]
        except OSError:
            continue
    return sorted(found)


def _fingerprint() -> dict[str, object]:
    boot = ""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    return {
        "node": platform.node(),
        "system": sys.platform,
        "python": sys.executable,
        "packages": _onnxruntime_distributions(),
        "boot": boot,
    }


def _cache_path() -> Path:
    from toolkit.paths import home

    return home() / "device.json"


def current_report(refresh: bool = False) -> DeviceReport:
    """This machine's report, from the cache when it is still valid."""
    path = _cache_path()
    fp = _fingerprint()
    if not refresh:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("fingerprint") == fp and time.time() - cached.get("time", 0) < CACHE_TTL_S:
                return DeviceReport.from_dict(cached["report"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    report = detect(live_sources())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"device.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fingerprint": fp, "time": time.time(), "report": report.to_dict()}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only store only costs a slower start
    return report


def current_profile(refresh: bool = False) -> DeviceProfile:
    """What variant selection needs about this machine."""
    return current_report(refresh).profile()
