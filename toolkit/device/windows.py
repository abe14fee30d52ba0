"""Windows: one PowerShell/CIM query (processor, video controllers, compute accelerators, their drivers)."""

from __future__ import annotations

import json
from typing import Any

from toolkit.device.ids import vendor_from_text
from toolkit.device.model import Accelerator, CPUInfo

TIMEOUT_S = 20.0
SCRIPT = (
    "$ErrorActionPreference='SilentlyContinue';"
    "$p=Get-CimInstance Win32_Processor|Select-Object Name,Manufacturer,NumberOfCores,NumberOfLogicalProcessors;"
    "$v=Get-CimInstance Win32_VideoController|Select-Object Name,AdapterCompatibility,DriverVersion,PNPDeviceID;"
    "$n=Get-CimInstance Win32_PnPEntity|Where-Object{$_.PNPClass -eq 'ComputeAccelerator' -or $_.Name -match 'NPU|AI Boost|Hexagon'}"
    "|Select-Object Name,Manufacturer,PNPDeviceID,PNPClass,Status;"
    "$d=Get-CimInstance Win32_PnPSignedDriver|Where-Object{$_.DeviceClass -eq 'COMPUTEACCELERATOR'}"
    "|Select-Object DeviceName,DriverVersion,DeviceID,InfName;"
    "$o=Get-CimInstance Win32_OperatingSystem|Select-Object Caption,Version,BuildNumber;"
    "[pscustomobject]@{processor=$p;video=$v;npu=$n;drivers=$d;os=$o}|ConvertTo-Json -Depth 4 -Compress"
)
COMMAND = ("powershell.exe", "-NoProfile", "-NonInteractive", "-Command", SCRIPT)


def _list(value: Any) -> list[dict[str, Any]]:
    """ConvertTo-Json writes one object bare and several as an array."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_inventory(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("PowerShell inventory is not a JSON object")
    return data


def read_cpu(inv: dict[str, Any]) -> CPUInfo:
    procs = _list(inv.get("processor"))
    if not procs:
        return CPUInfo()
    p = procs[0]
    name = (p.get("Name") or "unknown").strip()
    return CPUInfo(
        model=name,
        vendor=vendor_from_text(f"{p.get('Manufacturer', '')} {name}"),
        logical_cores=sum(int(x.get("NumberOfLogicalProcessors") or 0) for x in procs) or None,
        physical_cores=sum(int(x.get("NumberOfCores") or 0) for x in procs) or None,
        features=[],
    )


def read_npus(inv: dict[str, Any]) -> list[Accelerator]:
    drivers = {(d.get("DeviceID") or "").upper(): d for d in _list(inv.get("drivers"))}
    npus = []
    for dev in _list(inv.get("npu")):
        pnp = dev.get("PNPDeviceID") or ""
        name = dev.get("Name") or "unknown NPU"
        driver = drivers.get(pnp.upper(), {})
        status = dev.get("Status")
        source = "Win32_PnPEntity" + (f" (status {status})" if status and status != "OK" else "")
        npus.append(
            Accelerator(
                "npu", vendor_from_text(f"{dev.get('Manufacturer', '')} {name} {pnp}"), name,
                driver.get("InfName"), driver.get("DriverVersion"), _pci_id(pnp), source,
            )
        )
    return npus


def read_gpus(inv: dict[str, Any]) -> list[Accelerator]:
    gpus = []
    for v in _list(inv.get("video")):
        name = v.get("Name") or "unknown GPU"
        if "basic display" in name.lower() or "remote display" in name.lower():
            continue
        pnp = v.get("PNPDeviceID") or ""
        gpus.append(
            Accelerator(
                "gpu", vendor_from_text(f"{v.get('AdapterCompatibility', '')} {name} {pnp}"), name,
                None, v.get("DriverVersion"), _pci_id(pnp), "Win32_VideoController",
            )
        )
    return gpus


def read_os_version(inv: dict[str, Any]) -> str:
    o = inv.get("os") or {}
    return " ".join(str(x) for x in (o.get("Caption"), o.get("Version")) if x)


def _pci_id(pnp: str) -> str | None:
    up = pnp.upper()
    if "VEN_" in up and "DEV_" in up:
        ven = up.split("VEN_", 1)[1][:4].lower()
        dev = up.split("DEV_", 1)[1][:4].lower()
        return f"{ven}:{dev}"
    return None
