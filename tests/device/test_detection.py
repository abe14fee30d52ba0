"""Device detection replayed on recorded machines, and on this one."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from catalog import Catalog
from catalog.selection import select_variant
from tests.conftest import MACHINES
from tests.helpers.cli import run_python, run_toolkit
from toolkit.device import detect, recorded_sources
from toolkit.device.probes import ProbeFailed, live_sources, subprocess_runner

EXPECTED = {
    # machine: (NPU vendor, NPU name contains, EP, variant suffix with the EP, driver)
    "snapdragon-x-elite-windows": ("qualcomm", "Hexagon", "QNNExecutionProvider", "qnn-npu:1", "qcnspmcdm8380.inf"),
    "core-ultra-200v-windows": ("intel", "AI Boost", "OpenVINOExecutionProvider", "openvino-npu:1", "npu.inf"),
    "core-ultra-200v-linux": ("intel", "Lunar Lake", "OpenVINOExecutionProvider", "openvino-npu:1", "intel_vpu"),
    "ryzen-ai-300-linux": ("amd", "XDNA 2", "VitisAIExecutionProvider", "vitisai-npu:1", "amdxdna"),
}


@pytest.mark.parametrize("machine", sorted(EXPECTED))
def test_recorded_machine_gets_its_vendors_npu_build_when_the_ep_is_usable(machine):
    vendor, name, ep, suffix, driver = EXPECTED[machine]
    report = detect(recorded_sources(MACHINES / machine))
    assert [n.vendor for n in report.npus] == [vendor]
    assert name in report.npus[0].name
    assert report.npus[0].driver == driver
    assert ep in {e.name for e in report.execution_providers}
    for m in Catalog.load():
        sel = select_variant(m, report.profile())
        assert sel.variant.id.endswith(suffix), sel.line()
        assert sel.variant.device == "npu"


@pytest.mark.parametrize("machine", sorted(EXPECTED))
def test_recorded_machine_falls_back_to_cpu_without_the_ep(machine):
    report = detect(recorded_sources(MACHINES / machine, "eps-cpu-only.json"))
    assert report.npus, "the NPU is still found"
    for m in Catalog.load():
        sel = select_variant(m, report.profile())
        assert sel.variant.device == "cpu"
        assert "not usable" in sel.reason or "built for" in sel.reason


def test_plain_linux_box_has_no_npu_and_gets_cpu_although_the_qnn_simulator_is_there():
    report = detect(recorded_sources(MACHINES / "plain-x86-linux"))
    assert report.npus == [] and report.gpus == []
    qnn = next(e for e in report.execution_providers if e.name == "QNNExecutionProvider")
    assert "simulator" in (qnn.note or "")
    assert "avx512f" in report.cpu.features and report.cpu.logical_cores == 2
    assert "AzureExecutionProvider" not in {e.name for e in report.execution_providers}
    for m in Catalog.load():
        assert select_variant(m, report.profile()).variant.device == "cpu"


def test_linux_details_cpu_gpu_and_driver_versions():
    report = detect(recorded_sources(MACHINES / "core-ultra-200v-linux"))
    assert report.os_version == "Ubuntu 24.04.2 LTS"
    assert report.cpu.model == "Intel(R) Core(TM) Ultra 7 258V" and report.cpu.logical_cores == 8
    assert "avx_vnni" in report.cpu.features and "avx512f" not in report.cpu.features
    assert [(g.vendor, g.driver, g.pci_id) for g in report.gpus] == [("intel", "xe", "8086:64a0")]
    assert report.npus[0].driver_version == "1.0.0" and report.npus[0].pci_id == "8086:643e"


def test_windows_skips_the_basic_display_adapter_and_reads_driver_versions():
    report = detect(recorded_sources(MACHINES / "core-ultra-200v-windows"))
    assert [g.name for g in report.gpus] == ["Intel(R) Arc(TM) 140V GPU (16GB)"]
    assert report.npus[0].driver_version == "32.0.100.3104" and report.npus[0].pci_id == "8086:643e"
    assert report.cpu.physical_cores == 8 and report.os_version.startswith("Microsoft Windows 11 Pro")


def _copy(machine: str, tmp_path: Path) -> Path:
    dest = tmp_path / machine
    shutil.copytree(MACHINES / machine, dest)
    return dest


def test_unreadable_sources_are_reported_as_unknown_not_a_crash(tmp_path: Path):
    win = _copy("snapdragon-x-elite-windows", tmp_path)
    (win / "commands" / "powershell.out").unlink()  # PowerShell missing or timed out
    (win / "eps.json").write_text("{ truncated", encoding="utf-8")
    report = detect(recorded_sources(win))
    sources = {u.source for u in report.unknown}
    assert "PowerShell CIM inventory" in sources and "onnxruntime" in sources
    assert report.npus == [] and [e.name for e in report.execution_providers] == ["CPUExecutionProvider"]
    for m in Catalog.load():
        assert select_variant(m, report.profile()).variant.device == "cpu"


def test_a_garbled_sysfs_is_reported_as_unknown(tmp_path: Path):
    lin = _copy("ryzen-ai-300-linux", tmp_path)
    (lin / "root" / "proc" / "cpuinfo").unlink()
    report = detect(recorded_sources(lin))
    assert any(u.source == "/proc/cpuinfo" for u in report.unknown)
    assert report.cpu.model == "unknown" and report.npus[0].vendor == "amd"


def test_powershell_emitting_a_list_of_npus_is_read(tmp_path: Path):
    win = _copy("core-ultra-200v-windows", tmp_path)
    out = win / "commands" / "powershell.out"
    inv = json.loads(out.read_text(encoding="utf-8"))
    inv["npu"] = [inv["npu"], {"Name": "Some Other NPU", "Manufacturer": "Unknown", "PNPDeviceID": "ROOT\\X", "PNPClass": "ComputeAccelerator"}]
    out.write_text(json.dumps(inv), encoding="utf-8")
    report = detect(recorded_sources(win))
    assert [n.vendor for n in report.npus] == ["intel", "unknown"]


def test_live_detection_on_this_machine_never_raises():
    report = detect(live_sources())
    assert report.os in {"linux", "windows", "macos"}
    assert "CPUExecutionProvider" in {e.name for e in report.execution_providers}


def test_the_command_runner_turns_failures_into_probe_failed():
    with pytest.raises(ProbeFailed, match="not found"):
        subprocess_runner(["definitely-not-a-program-xyz"], 1.0)
    with pytest.raises(ProbeFailed, match="timed out"):
        subprocess_runner(["sleep", "5"], 0.2)
    with pytest.raises(ProbeFailed, match="exited 3"):
        subprocess_runner(["sh", "-c", "exit 3"], 5.0)


def test_apple_silicon_reports_the_neural_engine_but_runs_the_cpu_build():
    report = detect(recorded_sources(MACHINES / "apple-m3-macos"))
    assert report.cpu.model == "Apple M3" and report.cpu.physical_cores == 8
    assert {"bf16", "i8mm", "dotprod", "neon"} <= set(report.cpu.features) and "sme" not in report.cpu.features
    assert [(n.vendor, n.name) for n in report.npus] == [("apple", "Apple Neural Engine")]
    assert "CoreMLExecutionProvider" in {e.name for e in report.execution_providers}
    for m in Catalog.load():
        assert select_variant(m, report.profile()).variant.device == "cpu"


def _counting(sources):
    calls = []

    def probe():
        calls.append(1)
        return sources.probe_eps()

    return dataclasses.replace(sources, probe_eps=probe), calls


@pytest.mark.parametrize("machine", ["plain-x86-linux", *sorted(EXPECTED)])
def test_selection_asks_onnxruntime_only_when_an_accelerator_is_present(machine):
    sources, calls = _counting(recorded_sources(MACHINES / machine))
    lazy = detect(sources, probe_eps=False)
    full = detect(recorded_sources(MACHINES / machine))
    assert len(calls) == (1 if full.npus or full.gpus else 0)
    for m in Catalog.load():  # the same choice, with or without the probe
        assert select_variant(m, lazy.profile()).variant.id == select_variant(m, full.profile()).variant.id


def test_list_and_download_dry_run_do_not_import_onnxruntime_on_a_machine_without_accelerators(tmp_path):
    report = detect(live_sources())
    if report.npus or report.gpus:
        pytest.skip("this machine has an NPU or GPU: selection must ask onnxruntime")
    code = ("import sys; from toolkit.cli import main; sys.argv = ['toolkit', 'list', '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('onnxruntime' in sys.modules, file=sys.stderr)")
    out = run_python(code, env={"TOOLKIT_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "False"
    device = run_toolkit("device", "--json", env={"TOOLKIT_HOME": str(tmp_path)})  # the full report probes
    assert device.returncode == 0, device.stderr
    assert "QNNExecutionProvider" in device.stdout or "CPUExecutionProvider" in device.stdout
