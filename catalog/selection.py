"""Variant selection: a pure function of (manifest, device profile, what is downloaded, overrides).

Rank: an NPU variant whose vendor's NPU is present and whose execution provider is usable, then
a usable GPU variant, then CPU; ties go to the higher version, then to a variant already downloaded.
`--variant` picks one variant by id; `--device` (or TOOLKIT_DEVICE) keeps only that kind of device.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from catalog.errors import DeviceError, NoVariantError, UnknownModelError
from catalog.schema import DEVICES, Manifest, Variant

DEVICE_ORDER = {"npu": 0, "gpu": 1, "cpu": 2}
EP_INSTALL_HINTS = {
    "QNNExecutionProvider": "pip install 'toolkit[qnn]' (onnxruntime-qnn)",
    "OpenVINOExecutionProvider": "pip install onnxruntime-openvino",
    "VitisAIExecutionProvider": "install AMD Ryzen AI Software",
    "CUDAExecutionProvider": "pip install onnxruntime-gpu",
    "DmlExecutionProvider": "pip install onnxruntime-directml",
}
VENDOR_NAMES = {"qualcomm": "Qualcomm", "intel": "Intel", "amd": "AMD", "nvidia": "NVIDIA", "any": "any"}


@dataclass(frozen=True)
class DeviceProfile:
    """What selection needs to know about a machine (toolkit.device builds it from a full report)."""

    os: str
    arch: str
    npu_vendors: frozenset[str] = frozenset()
    gpu_vendors: frozenset[str] = frozenset()
    execution_providers: frozenset[str] = frozenset({"CPUExecutionProvider"})


@dataclass(frozen=True)
class Candidate:
    variant: Variant
    usable: bool
    why: str
    downloaded: bool = False


@dataclass(frozen=True)
class Selection:
    """The chosen variant, a one-line reason, and every variant with why it was or was not usable."""

    manifest: Manifest
    variant: Variant
    reason: str
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    def line(self) -> str:
        return f"{self.manifest.alias} -> {self.variant.id} ({self.variant.device}): {self.reason}"


def usability(variant: Variant, device: DeviceProfile) -> tuple[bool, str]:
    """Whether this machine can run the variant, and why (or why not), in a few words."""
    if variant.os and device.os not in variant.os:
        return False, f"built for {'/'.join(variant.os)}, this is {device.os}"
    ep = variant.execution_provider
    ep_ok = ep in device.execution_providers
    vendor = VENDOR_NAMES[variant.vendor]
    if variant.device == "cpu":
        return (True, "CPU") if ep_ok else (False, f"{ep} not available")
    present = device.npu_vendors if variant.device == "npu" else device.gpu_vendors
    kind = variant.device.upper()
    if variant.vendor != "any" and variant.vendor not in present:
        found = ", ".join(VENDOR_NAMES.get(v, v) for v in sorted(present)) or "none"
        return False, f"no {vendor} {kind} (found: {found})"
    if variant.vendor == "any" and not present:
        return False, f"no {kind}"
    if not ep_ok:
        hint = EP_INSTALL_HINTS.get(ep, "install its onnxruntime package")
        return False, f"{vendor} {kind} found but {ep} is not usable ({hint})"
    return True, f"{vendor} {kind} with {ep}"


def _rank_key(c: Candidate) -> tuple[int, int, int]:
    return (DEVICE_ORDER[c.variant.device], -c.variant.version, 0 if c.downloaded else 1)


def select_variant(
    manifest: Manifest,
    device: DeviceProfile,
    downloaded: Collection[str] = (),
    device_override: str | None = None,
    variant_override: str | None = None,
) -> Selection:
    """Choose the variant of `manifest` to use on `device`; raise NoVariantError when none fits."""
    if device_override is not None:
        device_override = device_override.strip().lower()
        if device_override not in DEVICES:
            raise DeviceError(f"unknown device {device_override!r}: use one of {', '.join(DEVICES)}")
    candidates = []
    for v in manifest.variants:
        ok, why = usability(v, device)
        candidates.append(Candidate(v, ok, why, v.id in downloaded))
    candidates.sort(key=_rank_key)
    everything = tuple(candidates)

    if variant_override:
        v = manifest.variant(variant_override)
        if v is None:
            raise UnknownModelError(variant_override, [c.variant.id for c in candidates], kind=f"variant of {manifest.alias}")
        c = next(c for c in candidates if c.variant is v)
        note = "" if c.usable else f"; warning: {c.why}"
        return Selection(manifest, v, f"chosen with --variant{note}", everything)

    if device_override:
        candidates = [c for c in candidates if c.variant.device == device_override]
        if not candidates:
            raise NoVariantError(f"{manifest.alias} has no {device_override.upper()} variant (file: {manifest.file})")
    usable = [c for c in candidates if c.usable]
    if usable:
        best = usable[0]
        skipped = [c for c in candidates if not c.usable and DEVICE_ORDER[c.variant.device] < DEVICE_ORDER[best.variant.device]]
        reason = best.why
        if skipped:
            reason += "; skipped " + "; ".join(f"{c.variant.device}/{c.variant.vendor}: {c.why}" for c in skipped[:3])
        if device_override:
            reason = f"--device {device_override}: {reason}"
        if best.downloaded:
            reason += "; already downloaded"
        return Selection(manifest, best.variant, reason, everything)
    if device_override and len(candidates) == 1:
        c = candidates[0]
        return Selection(manifest, c.variant, f"--device {device_override}; warning: {c.why}", everything)
    listing = "; ".join(f"{c.variant.id}: {c.why}" for c in candidates)
    hint = " Pick one with --variant." if device_override else ""
    raise NoVariantError(f"no usable variant of {manifest.alias} on this machine ({listing}).{hint}")
