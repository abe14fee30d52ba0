"""Linux: /proc/cpuinfo, /sys/class/accel, PCI ids and drivers, and the device tree (Snapdragon)."""

from __future__ import annotations

from pathlib import Path

from toolkit.device.ids import (
    GPU_PCI_CLASSES,
    INTERESTING_CPU_FEATURES,
    NPU_DRIVERS,
    PCI_NPUS,
    PCI_VENDORS,
    SNAPDRAGON_COMPATIBLE,
)
from toolkit.device.model import Accelerator, CPUInfo


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _uevent(device: Path) -> dict[str, str]:
    try:
        lines = _read(device / "uevent").splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def read_cpu(root: Path) -> CPUInfo:
    """CPU model, vendor, core counts and the SIMD features that matter for inference."""
    text = _read(root / "proc" / "cpuinfo")
    blocks = [b for b in text.split("\n\n") if b.strip()]
    fields: dict[str, str] = {}
    cores = set()
    logical = 0
    for block in blocks:
        kv = {}
        for line in block.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                kv[k.strip()] = v.strip()
        if "processor" in kv:
            logical += 1
            cores.add((kv.get("physical id", "0"), kv.get("core id", kv["processor"])))
        for k, v in kv.items():
            fields.setdefault(k, v)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("Model") or ""
    if not model:
        try:
            model = _read(root / "proc" / "device-tree" / "model").strip("\x00\n ")
        except OSError:
            model = "unknown"
    implementer = fields.get("CPU implementer", "")
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(fields.get("vendor_id", ""), "")
    if not vendor:
        vendor = {"0x51": "qualcomm", "0x41": "arm", "0x61": "apple"}.get(implementer, "unknown")
    physical = len(cores) if cores and "core id" in fields else None
    return CPUInfo(
        model=model or "unknown",
        vendor=vendor,
        logical_cores=logical or None,
        physical_cores=physical,
        features=[f for f in INTERESTING_CPU_FEATURES if f in flags],
    )


def _pci_devices(root: Path) -> list[tuple[Path, str, str, str]]:
    base = root / "sys" / "bus" / "pci" / "devices"
    found = []
    for dev in sorted(base.iterdir()):
        try:
            vendor = _read(dev / "vendor").strip().lower().removeprefix("0x")
            device = _read(dev / "device").strip().lower().removeprefix("0x")
            cls = _read(dev / "class").strip().lower()
        except OSError:
            continue
        found.append((dev, vendor, device, cls))
    return found


def read_npus(root: Path) -> list[Accelerator]:
    """NPUs from /sys/class/accel (driver bound), PCI ids (even with no driver), and the device tree."""
    npus: dict[str, Accelerator] = {}
    accel = root / "sys" / "class" / "accel"
    if accel.is_dir():
        for node in sorted(accel.iterdir()):
            ev = _uevent(node / "device")
            driver = ev.get("DRIVER")
            pci = ev.get("PCI_ID", "").lower()
            ven, _, dev = pci.partition(":")
            vendor = NPU_DRIVERS.get(driver or "", PCI_VENDORS.get(ven, "unknown"))
            name = PCI_NPUS.get((ven, dev), f"{vendor} accelerator {pci or node.name}")
            key = ev.get("PCI_SLOT_NAME", node.name)
            npus[key] = Accelerator("npu", vendor, name, driver, _driver_version(root, driver), pci or None, f"/sys/class/accel/{node.name}")
    pci_root = root / "sys" / "bus" / "pci" / "devices"
    if pci_root.is_dir():
        for dev, ven, did, _cls in _pci_devices(root):
            if (ven, did) in PCI_NPUS and dev.name not in npus:
                driver = _uevent(dev).get("DRIVER")
                npus[dev.name] = Accelerator(
                    "npu", PCI_VENDORS[ven], PCI_NPUS[(ven, did)], driver, _driver_version(root, driver),
                    f"{ven}:{did}", f"pci {dev.name}" + ("" if driver else " (no driver bound)"),
                )
    npus.update(_snapdragon(root))
    return list(npus.values())


def _driver_version(root: Path, driver: str | None) -> str | None:
    if not driver:
        return None
    try:
        return _read(root / "sys" / "module" / driver / "version").strip() or None
    except OSError:
        return None


def _snapdragon(root: Path) -> dict[str, Accelerator]:
    try:
        compatible = _read(root / "proc" / "device-tree" / "compatible").split("\x00")
    except OSError:
        return {}
    for entry in compatible:
        for prefix, platform_name in SNAPDRAGON_COMPATIBLE.items():
            if entry.startswith(prefix):
                fastrpc = any((root / "dev").glob("fastrpc-cdsp*")) if (root / "dev").is_dir() else False
                return {
                    "device-tree": Accelerator(
                        "npu", "qualcomm", f"Qualcomm Hexagon NPU ({platform_name}, {entry})",
                        "fastrpc" if fastrpc else None, None, None,
                        "device-tree compatible" + ("" if fastrpc else " (no /dev/fastrpc-cdsp: driver not loaded)"),
                    )
                }
    return {}


def read_gpus(root: Path) -> list[Accelerator]:
    """Display controllers on the PCI bus (virtual display adapters are ignored)."""
    gpus = []
    for dev, ven, did, cls in _pci_devices(root):
        if not cls.startswith(GPU_PCI_CLASSES) or ven not in PCI_VENDORS:
            continue
        driver = _uevent(dev).get("DRIVER")
        vendor = PCI_VENDORS[ven]
        gpus.append(Accelerator("gpu", vendor, f"{vendor} GPU [{ven}:{did}]", driver, None, f"{ven}:{did}", f"pci {dev.name}"))
    return gpus


def read_os_version(root: Path) -> str:
    try:
        for line in _read(root / "etc" / "os-release").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return ""
