"""macOS: sysctl for the CPU; Apple silicon has a Neural Engine and an integrated GPU."""

from __future__ import annotations

from toolkit.device.ids import vendor_from_text
from toolkit.device.model import Accelerator, CPUInfo
from toolkit.device.probes import Runner

TIMEOUT_S = 5.0
COMMAND = ("sysctl", "machdep.cpu.brand_string", "hw.physicalcpu", "hw.logicalcpu", "hw.optional")


def parse_sysctl(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def read_all(run: Runner, arch: str) -> tuple[CPUInfo, list[Accelerator], list[Accelerator]]:
    kv = parse_sysctl(run(COMMAND, TIMEOUT_S))
    model = kv.get("machdep.cpu.brand_string", "unknown")
    features = [k.rsplit(".", 1)[-1].removeprefix("FEAT_").lower() for k, v in kv.items() if k.startswith("hw.optional.") and v == "1"]
    cpu = CPUInfo(
        model=model,
        vendor=vendor_from_text(model),
        logical_cores=int(kv["hw.logicalcpu"]) if kv.get("hw.logicalcpu", "").isdigit() else None,
        physical_cores=int(kv["hw.physicalcpu"]) if kv.get("hw.physicalcpu", "").isdigit() else None,
        features=sorted(set(features)),
    )
    if arch != "arm64":
        return cpu, [], []
    npu = Accelerator("npu", "apple", "Apple Neural Engine", None, None, None, "sysctl (Apple silicon)")
    gpu = Accelerator("gpu", "apple", f"{model} GPU", None, None, None, "sysctl (Apple silicon)")
    return cpu, [npu], [gpu]
