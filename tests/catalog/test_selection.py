"""Variant selection as a table: (device, downloaded, overrides) -> chosen variant, or the error."""

from __future__ import annotations

import pytest

from catalog import Catalog, DeviceError, NoVariantError, UnknownModelError
from catalog.schema import Source, Variant
from catalog.selection import DeviceProfile, select_variant

CPU = frozenset({"CPUExecutionProvider"})
QNN = CPU | {"QNNExecutionProvider"}
OV = CPU | {"OpenVINOExecutionProvider"}
VITIS = CPU | {"VitisAIExecutionProvider"}
CUDA = CPU | {"CUDAExecutionProvider"}

SNAPDRAGON = DeviceProfile("windows", "arm64", frozenset({"qualcomm"}), frozenset({"qualcomm"}), QNN)
SNAPDRAGON_NO_EP = DeviceProfile("windows", "arm64", frozenset({"qualcomm"}), frozenset({"qualcomm"}), CPU)
LUNAR_LAKE_WIN = DeviceProfile("windows", "x86_64", frozenset({"intel"}), frozenset({"intel"}), OV)
LUNAR_LAKE_LINUX = DeviceProfile("linux", "x86_64", frozenset({"intel"}), frozenset({"intel"}), OV)
RYZEN_AI = DeviceProfile("linux", "x86_64", frozenset({"amd"}), frozenset({"amd"}), VITIS)
PLAIN = DeviceProfile("linux", "x86_64", execution_providers=QNN)  # the QNN simulator, but no NPU
NVIDIA_LINUX = DeviceProfile("linux", "x86_64", gpu_vendors=frozenset({"nvidia"}), execution_providers=CUDA)
QUALCOMM_LINUX = DeviceProfile("linux", "arm64", frozenset({"qualcomm"}), execution_providers=QNN)

V = "deepseek-r1-distill-qwen-1.5b"
TABLE = [
    # (case, device, downloaded, --device, --variant, expected variant)
    ("snapdragon with QNN gets the QNN NPU build", SNAPDRAGON, (), None, None, f"{V}-qnn-npu:1"),
    ("snapdragon without the QNN package falls back to CPU", SNAPDRAGON_NO_EP, (), None, None, f"{V}-generic-cpu:1"),
    ("lunar lake on windows gets OpenVINO NPU", LUNAR_LAKE_WIN, (), None, None, f"{V}-openvino-npu:1"),
    ("lunar lake on linux gets OpenVINO NPU", LUNAR_LAKE_LINUX, (), None, None, f"{V}-openvino-npu:1"),
    ("ryzen ai gets the VitisAI build", RYZEN_AI, (), None, None, f"{V}-vitisai-npu:1"),
    ("a plain box gets CPU although the QNN simulator is installed", PLAIN, (), None, None, f"{V}-generic-cpu:1"),
    ("an NVIDIA GPU beats CPU", NVIDIA_LINUX, (), None, None, f"{V}-cuda-gpu:1"),
    ("QNN builds are Windows-only: Snapdragon on Linux gets CPU", QUALCOMM_LINUX, (), None, None, f"{V}-generic-cpu:1"),
    ("--device cpu overrides the NPU", SNAPDRAGON, (), "cpu", None, f"{V}-generic-cpu:1"),
    ("--device is case-insensitive", SNAPDRAGON, (), "CPU", None, f"{V}-generic-cpu:1"),
    ("--device gpu with one candidate picks it with a warning", PLAIN, (), "gpu", None, f"{V}-cuda-gpu:1"),
    ("--variant wins over everything", SNAPDRAGON, (), "cpu", f"{V}-vitisai-npu:1", f"{V}-vitisai-npu:1"),
    ("--variant without version", PLAIN, (), None, f"{V}-qnn-npu", f"{V}-qnn-npu:1"),
]


@pytest.mark.parametrize(("case", "device", "downloaded", "dev", "var", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_selection(case, device, downloaded, dev, var, expected):
    m = Catalog.load().get("deepseek_r1_1_5")
    sel = select_variant(m, device, downloaded, device_override=dev, variant_override=var)
    assert sel.variant.id == expected
    assert sel.line().startswith(f"deepseek_r1_1_5 -> {expected} ")
    assert "\n" not in sel.line()


ERRORS = [
    ("--device npu on a plain box: several NPU builds, none usable", PLAIN, "npu", None, NoVariantError, "--variant"),
    ("unknown device", PLAIN, "tpu", None, DeviceError, "npu, gpu, cpu"),
    ("unknown variant", PLAIN, None, "nope:1", UnknownModelError, "nope:1"),
]


@pytest.mark.parametrize(("case", "device", "dev", "var", "error", "text"), ERRORS, ids=[e[0] for e in ERRORS])
def test_selection_errors(case, device, dev, var, error, text):
    m = Catalog.load().get("deepseek_r1_1_5")
    with pytest.raises(error, match=text.replace("-", r"\-")):
        select_variant(m, device, device_override=dev, variant_override=var)


def _cpu_variant(vid: str) -> Variant:
    return Variant(vid, "cpu", "any", "CPUExecutionProvider", "onnx-genai", "int4", Source("local", path="/x"))


def test_ties_go_to_the_higher_version_then_to_the_downloaded_one():
    from dataclasses import replace

    m = Catalog.load().get("deepseek_r1_1_5")
    m = replace(m, variants=(_cpu_variant("a-cpu:1"), _cpu_variant("b-cpu:2"), _cpu_variant("c-cpu:2")))
    assert select_variant(m, PLAIN).variant.id == "b-cpu:2"
    chosen = select_variant(m, PLAIN, downloaded={"c-cpu:2", "a-cpu:1"})
    assert chosen.variant.id == "c-cpu:2" and "already downloaded" in chosen.reason
