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

from catalog import jsonio
from catalog.selection import DeviceProfile
from toolkit.device.detect import NOT_PROBED, detect
from toolkit.device.model import DeviceReport
from toolkit.device.probes import MachineSources, live_sources, recorded_sources
from toolkit.files import write_atomic
from toolkit.paths import home

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
    return home() / "device.json"


def current_report(refresh: bool = False, probe_eps: bool = True) -> DeviceReport:
    """This machine's report, from the cache when it is still valid. With `probe_eps=False` a report whose
    execution providers were not probed (no NPU or GPU found; see `detect`) will do."""
    path = _cache_path()
    fp = _fingerprint()
    if not refresh:
        try:
            cached = jsonio.loads(path.read_text(encoding="utf-8"))
            fresh = cached.get("fingerprint") == fp and time.time() - cached.get("time", 0) < CACHE_TTL_S
            if fresh and (cached.get("eps_probed", True) or not probe_eps):
                return DeviceReport.from_dict(cached["report"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    report = detect(live_sources(), probe_eps)
    probed = not any(u.reason == NOT_PROBED for u in report.unknown)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"fingerprint": fp, "time": time.time(), "eps_probed": probed, "report": report.to_dict()}
        write_atomic(path, json.dumps(data))
    except OSError:
        pass  # a read-only store only costs a slower start
    return report


def current_profile(refresh: bool = False) -> DeviceProfile:
    """What variant selection needs about this machine (onnxruntime is imported only if an NPU or GPU is
    present, or the cached report already has the execution providers)."""
    return current_report(refresh, probe_eps=False).profile()
