"""ONNX Runtime's execution providers: which exist, which plugin packages register, which can run here."""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.device.model import ExecutionProvider

# Plugin packages that ship an execution provider library for onnxruntime.register_execution_provider_library.
PLUGIN_PACKAGES = {"onnxruntime_qnn": "onnxruntime-qnn"}
NOT_COMPUTE = {"AzureExecutionProvider"}


def register_plugins(ort: Any) -> list[dict[str, Any]]:
    """Register every installed plugin EP with onnxruntime once; report what happened for each package."""
    results = []
    for module, dist in PLUGIN_PACKAGES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        entry: dict[str, Any] = {"package": dist, "ep": mod.get_ep_name(), "library": mod.get_library_path()}
        try:
            already = {d.ep_name for d in ort.get_ep_devices()}
            if entry["ep"] not in already:
                ort.register_execution_provider_library(entry["ep"], entry["library"])
        except Exception as e:  # a broken plugin must not break detection
            entry["error"] = f"{type(e).__name__}: {e}"
        results.append(entry)
    return results


def probe_onnxruntime() -> dict[str, Any]:
    """Everything detection needs from onnxruntime, as plain data (what tests record and replay)."""
    import onnxruntime as ort

    record: dict[str, Any] = {"onnxruntime": ort.__version__, "available_providers": ort.get_available_providers()}
    record["plugins"] = register_plugins(ort)
    devices = []
    if hasattr(ort, "get_ep_devices"):
        for d in ort.get_ep_devices():
            devices.append(
                {
                    "ep_name": d.ep_name,
                    "ep_vendor": d.ep_vendor,
                    "device_type": str(d.device.type).rsplit(".", 1)[-1],
                    "device_vendor": d.device.vendor,
                    "library": dict(d.ep_metadata).get("library_path"),
                }
            )
        record["ep_devices"] = devices
    return record


def usable_providers(record: dict[str, Any], arch: str) -> list[ExecutionProvider]:
    """Turn a probe record into the execution providers that can create sessions here.

    A built-in provider counts when onnxruntime lists an EP device for it (or, on onnxruntime builds
    too old for device discovery, when it is compiled in); a plugin counts when it registered.
    """
    devices: dict[str, list[str]] = {}
    libraries: dict[str, str | None] = {}
    for d in record.get("ep_devices", []):
        devices.setdefault(d["ep_name"], []).append(f"{d['device_type']} ({d['device_vendor']})")
        libraries.setdefault(d["ep_name"], d.get("library"))
    has_discovery = "ep_devices" in record
    eps: list[ExecutionProvider] = []
    plugin_eps = {p["ep"]: p for p in record.get("plugins", []) if "error" not in p}
    for name in record.get("available_providers", []):
        if name in NOT_COMPUTE or name in plugin_eps:
            continue
        if has_discovery and name not in devices and name != "CPUExecutionProvider":
            continue
        note = None if has_discovery else "compiled in; device discovery needs onnxruntime >= 1.22"
        eps.append(ExecutionProvider(name, devices.get(name, []), "onnxruntime", None, note))
    for name, plugin in plugin_eps.items():
        devs = devices.get(name, [])
        note = None
        if name == "QNNExecutionProvider" and arch == "x86_64":
            note = "HTP backend runs as a simulator on x86-64 (no Qualcomm NPU)"
        eps.append(ExecutionProvider(name, devs, f"plugin:{plugin['package']}", plugin["library"], note))
    if not any(e.name == "CPUExecutionProvider" for e in eps):
        eps.insert(0, ExecutionProvider("CPUExecutionProvider", [], "onnxruntime"))
    return eps
