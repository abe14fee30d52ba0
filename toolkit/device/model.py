"""What device detection reports: CPU, NPUs, GPUs, usable execution providers, and what was unreadable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from catalog.selection import DeviceProfile


@dataclass
class CPUInfo:
    model: str = "unknown"
    vendor: str = "unknown"
    logical_cores: int | None = None
    physical_cores: int | None = None
    features: list[str] = field(default_factory=list)


@dataclass
class Accelerator:
    """An NPU or GPU: vendor is one of qualcomm, intel, amd, nvidia, apple, or unknown."""

    kind: str
    vendor: str
    name: str
    driver: str | None = None
    driver_version: str | None = None
    pci_id: str | None = None
    source: str = ""


@dataclass
class ExecutionProvider:
    """An ONNX Runtime execution provider that can create sessions here, and the devices it reports."""

    name: str
    devices: list[str] = field(default_factory=list)
    source: str = "onnxruntime"
    library: str | None = None
    note: str | None = None


@dataclass
class Unknown:
    """A source that could not be read, and why; detection goes on without it."""

    source: str
    reason: str


@dataclass
class DeviceReport:
    os: str
    os_version: str
    arch: str
    cpu: CPUInfo
    npus: list[Accelerator] = field(default_factory=list)
    gpus: list[Accelerator] = field(default_factory=list)
    execution_providers: list[ExecutionProvider] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)

    def profile(self) -> DeviceProfile:
        """The summary variant selection works from."""
        return DeviceProfile(
            os=self.os,
            arch=self.arch,
            npu_vendors=frozenset(a.vendor for a in self.npus if a.vendor != "unknown"),
            gpu_vendors=frozenset(a.vendor for a in self.gpus if a.vendor != "unknown"),
            execution_providers=frozenset(ep.name for ep in self.execution_providers) | {"CPUExecutionProvider"},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeviceReport:
        return cls(
            os=d["os"],
            os_version=d.get("os_version", ""),
            arch=d["arch"],
            cpu=CPUInfo(**d["cpu"]),
            npus=[Accelerator(**a) for a in d.get("npus", [])],
            gpus=[Accelerator(**a) for a in d.get("gpus", [])],
            execution_providers=[ExecutionProvider(**e) for e in d.get("execution_providers", [])],
            unknown=[Unknown(**u) for u in d.get("unknown", [])],
        )
