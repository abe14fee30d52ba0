"""Assemble a DeviceReport from the machine's sources; an unreadable source becomes an `unknown` entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from toolkit.device import linux, macos, windows
from toolkit.device.eps import usable_providers
from toolkit.device.model import Accelerator, CPUInfo, DeviceReport, Unknown
from toolkit.device.probes import MachineSources, ProbeFailed

T = TypeVar("T")
READ_ERRORS = (ProbeFailed, OSError, ValueError, KeyError, TypeError, json.JSONDecodeError)


def _try(unknown: list[Unknown], source: str, fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except READ_ERRORS as e:
        unknown.append(Unknown(source, str(e) or type(e).__name__))
        return default


CPU_ONLY_RECORD = {"available_providers": ["CPUExecutionProvider"]}
NOT_PROBED = "onnxruntime not probed: no NPU or GPU was found, so only the CPU can be chosen (`toolkit device` probes)"


def detect(src: MachineSources, probe_eps: bool = True) -> DeviceReport:
    """Read CPU, NPUs, GPUs and execution providers; never raises for an unreadable source.

    With `probe_eps=False` onnxruntime is asked only when an NPU or GPU was found: variant selection needs
    the execution providers only to decide between accelerator builds, and importing onnxruntime is the
    largest part of a cold start (0.07-0.25 s).
    """
    facts = src.platform
    unknown: list[Unknown] = []
    cpu, npus, gpus, os_version = CPUInfo(), [], [], facts.release
    empty: list[Accelerator] = []
    if facts.system == "linux":
        cpu = _try(unknown, "/proc/cpuinfo", lambda: linux.read_cpu(src.root), cpu)
        npus = _try(unknown, "/sys (NPUs)", lambda: linux.read_npus(src.root), empty)
        gpus = _try(unknown, "/sys/bus/pci (GPUs)", lambda: linux.read_gpus(src.root), empty)
        os_version = _try(unknown, "/etc/os-release", lambda: linux.read_os_version(src.root), "") or facts.release
    elif facts.system == "windows":
        inv = _try(unknown, "PowerShell CIM inventory", lambda: windows.parse_inventory(src.run(windows.COMMAND, windows.TIMEOUT_S)), None)
        if inv is not None:
            cpu = windows.read_cpu(inv)
            npus, gpus = windows.read_npus(inv), windows.read_gpus(inv)
            os_version = windows.read_os_version(inv) or facts.release
            unknown.append(Unknown("CPU features", "not read on Windows"))
    elif facts.system == "macos":
        cpu, npus, gpus = _try(unknown, "sysctl", lambda: macos.read_all(src.run, facts.arch), (cpu, empty, empty))
    else:
        unknown.append(Unknown("platform", f"{facts.system} is not supported; CPU only"))
    if probe_eps or npus or gpus:
        record = _try(unknown, "onnxruntime", src.probe_eps, CPU_ONLY_RECORD)
    else:
        record = CPU_ONLY_RECORD
        unknown.append(Unknown("execution providers", NOT_PROBED))
    eps = usable_providers(record, facts.arch)
    return DeviceReport(facts.system, os_version, facts.arch, cpu, npus, gpus, eps, unknown)
