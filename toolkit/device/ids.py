"""Known hardware ids and names: PCI ids of NPUs, vendor ids, and how to tell a vendor from a name."""

from __future__ import annotations

PCI_VENDORS = {"8086": "intel", "1022": "amd", "1002": "amd", "10de": "nvidia", "17cb": "qualcomm", "5143": "qualcomm"}

# (vendor id, device id) -> NPU name. Intel NPUs bind to intel_vpu, AMD XDNA to amdxdna.
PCI_NPUS = {
    ("8086", "7d1d"): "Intel AI Boost NPU (Meteor Lake)",
    ("8086", "ad1d"): "Intel AI Boost NPU (Arrow Lake)",
    ("8086", "643e"): "Intel AI Boost NPU (Lunar Lake)",
    ("8086", "b03e"): "Intel AI Boost NPU (Panther Lake)",
    ("1022", "1502"): "AMD XDNA NPU (Phoenix / Hawk Point)",
    ("1022", "17f0"): "AMD XDNA 2 NPU (Strix / Krackan)",
}
NPU_DRIVERS = {"intel_vpu": "intel", "amdxdna": "amd", "qaic": "qualcomm", "fastrpc": "qualcomm"}

# Device-tree `compatible` prefixes of Snapdragon compute platforms with a Hexagon NPU.
SNAPDRAGON_COMPATIBLE = {
    "qcom,x1e": "Snapdragon X Elite",
    "qcom,x1p": "Snapdragon X Plus",
    "qcom,sc8380xp": "Snapdragon X Elite",
    "qcom,sc8280xp": "Snapdragon 8cx Gen 3",
}

GPU_PCI_CLASSES = ("0x0300", "0x0302", "0x0380")


def vendor_from_text(text: str) -> str:
    """Guess the vendor from a device or manufacturer name, or a PnP id such as PCI\\VEN_8086."""
    t = text.lower()
    if "ven_qcom" in t or "qualcomm" in t or "hexagon" in t or "snapdragon" in t:
        return "qualcomm"
    for ven, vendor in PCI_VENDORS.items():
        if f"ven_{ven}" in t:
            return vendor
    if "intel" in t:
        return "intel"
    if "amd" in t or "advanced micro devices" in t or "radeon" in t:
        return "amd"
    if "nvidia" in t or "geforce" in t:
        return "nvidia"
    if "apple" in t:
        return "apple"
    return "unknown"


INTERESTING_CPU_FEATURES = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_int8", "amx_bf16", "asimd", "asimddp", "asimdhp", "i8mm", "sve", "sve2",
    "bf16", "sme",
)
