"""The manifest format: typed records and a validator that names the file, the field and the reason.

A manifest is one JSON object per model. `parse_manifest(data, file)` turns it into a `Manifest`
or raises `ManifestError`. The checks are written out here rather than in a schema library so that
`toolkit list` imports nothing heavy (it must start in well under 0.3 s); `docs/manifests.md`
documents every field, and `manifest_json_schema()` gives the same rules as a JSON Schema for editors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import ManifestError

SCHEMA_VERSION = 1
DEVICES = ("npu", "gpu", "cpu")
VENDORS = ("qualcomm", "intel", "amd", "nvidia", "any")
# The execution providers, by the short names genai_config.json and --ep use, with the device and vendor a
# build for each is made for (what `cache add` writes in a manifest). The one table of them.
PROVIDERS = {
    "qnn": ("QNNExecutionProvider", "npu", "qualcomm"),
    "openvino": ("OpenVINOExecutionProvider", "npu", "intel"),
    "vitisai": ("VitisAIExecutionProvider", "npu", "amd"),
    "cpu": ("CPUExecutionProvider", "cpu", "any"),
    "cuda": ("CUDAExecutionProvider", "gpu", "nvidia"),
    "dml": ("DmlExecutionProvider", "gpu", "any"),
    "webgpu": ("WebGpuExecutionProvider", "gpu", "any"),
}
PROVIDER_NAMES = {short: ep for short, (ep, _, _) in PROVIDERS.items()}  # "qnn" -> "QNNExecutionProvider"
EXECUTION_PROVIDERS = tuple(PROVIDER_NAMES.values())
FORMATS = ("onnx-genai", "openvino-ir")
OSES = ("windows", "linux", "macos")
SOURCE_TYPES = ("huggingface", "azureml", "mirror", "url", "local")
ALIAS_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
VARIANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9]+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileEntry:
    """One file of a variant, pinned where the size or digest is known."""

    path: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a variant's files come from; which fields apply depends on `type`."""

    type: str
    repo: str | None = None
    revision: str | None = None
    subfolder: str | None = None
    registry: str | None = None
    name: str | None = None
    version: str | None = None
    base_url: str | None = None
    path: str | None = None
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    """One build of a model for one kind of device."""

    id: str
    device: str
    vendor: str
    execution_provider: str
    format: str
    quantization: str
    source: Source
    size_bytes: int | None = None
    os: tuple[str, ...] = ()
    files: tuple[FileEntry, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    notes: str = ""

    @property
    def name(self) -> str:
        return self.id.rsplit(":", 1)[0]

    @property
    def version(self) -> int:
        return int(self.id.rsplit(":", 1)[1])


@dataclass(frozen=True)
class ChatFormat:
    """Markers the runtime needs: reasoning delimiters and extra stop strings."""

    reasoning_start: str | None = None
    reasoning_end: str | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """One model: its names, facts and variants. `file` is where it was read from."""

    alias: str
    display_name: str
    publisher: str
    license: str
    parameters: str
    parameter_count: int
    context_length: int
    architecture: str
    task: str
    variants: tuple[Variant, ...]
    names: tuple[str, ...] = ()
    license_url: str | None = None
    base_model: str | None = None
    chat: ChatFormat = field(default_factory=ChatFormat)
    file: str = "<memory>"

    def variant(self, variant_id: str) -> Variant | None:
        for v in self.variants:
            if v.id == variant_id or v.name == variant_id:
                return v
        return None


class _Reader:
    """Reads typed fields out of a JSON object, raising ManifestError with the field's path."""

    def __init__(self, file: str, data: Any, path: str = "") -> None:
        self.file, self.path = file, path
        if not isinstance(data, dict):
            self.fail("", f"expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def fail(self, key: str, reason: str) -> None:
        where = f"{self.path}.{key}" if self.path and key else (self.path or key)
        raise ManifestError(self.file, where, reason)

    def child(self, key: str, data: Any) -> _Reader:
        return _Reader(self.file, data, f"{self.path}.{key}" if self.path else key)

    def get(self, key: str, kind: type | tuple[type, ...], required: bool = True, default: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.fail(key, "is required")
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(key, f"expected {want}, got {type(value).__name__} {value!r}")
        return value

    def string(self, key: str, required: bool = True, choices: tuple[str, ...] = (), pattern: re.Pattern | None = None) -> Any:
        value = self.get(key, str, required)
        if value is None:
            return None
        if not value.strip():
            self.fail(key, "must not be empty")
        if choices and value not in choices:
            self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        if pattern and not pattern.match(value):
            self.fail(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def positive_int(self, key: str, required: bool = True) -> Any:
        value = self.get(key, int, required)
        if value is not None and value <= 0:
            self.fail(key, f"must be positive, got {value}")
        return value

    def strings(self, key: str, choices: tuple[str, ...] = ()) -> tuple[str, ...]:
        values = self.get(key, list, required=False, default=[])
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                self.fail(f"{key}[{i}]", f"expected a non-empty string, got {v!r}")
            if choices and v not in choices:
                self.fail(f"{key}[{i}]", f"{v!r} is not one of {', '.join(choices)}")
        return tuple(values)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            self.fail(unknown[0], "unknown field (check the spelling; see docs/manifests.md)")


def _parse_source(r: _Reader) -> Source:
    kind = r.string("type", choices=SOURCE_TYPES)
    fields: dict[str, Any] = {"type": kind}
    required = {
        "huggingface": ("repo",),
        "azureml": ("registry", "name", "version"),
        "mirror": ("base_url",),
        "url": ("base_url",),
        "local": ("path",),
    }[kind]
    for key in ("repo", "revision", "subfolder", "registry", "name", "version", "base_url", "path"):
        fields[key] = r.string(key, required=key in required)
    fields["include"] = r.strings("include")
    if fields["subfolder"] and (fields["subfolder"].startswith("/") or ".." in fields["subfolder"].split("/")):
        r.fail("subfolder", f"{fields['subfolder']!r} must be a relative path inside the repository")
    if kind == "huggingface" and fields["repo"].count("/") != 1:
        r.fail("repo", f"{fields['repo']!r} must look like owner/name")
    if fields["base_url"] and not fields["base_url"].startswith(("http://", "https://")):
        r.fail("base_url", f"{fields['base_url']!r} must be an http(s) URL")
    r.done()
    return Source(**fields)


def _parse_file(r: _Reader) -> FileEntry:
    path = r.string("path")
    if path.startswith("/") or "\\" in path or ".." in path.split("/") or re.match(r"^[A-Za-z]:", path):
        r.fail("path", f"{path!r} must be a relative POSIX path without '..'")
    size = r.get("size", int, required=False)
    if size is not None and size < 0:
        r.fail("size", f"must not be negative, got {size}")
    sha = r.string("sha256", required=False, pattern=SHA256_RE)
    r.done()
    return FileEntry(path=path, size=size, sha256=sha)


def _parse_variant(r: _Reader) -> Variant:
    v = Variant(
        id=r.string("id", pattern=VARIANT_ID_RE),
        device=r.string("device", choices=DEVICES),
        vendor=r.string("vendor", choices=VENDORS),
        execution_provider=r.string("execution_provider", choices=EXECUTION_PROVIDERS),
        format=r.string("format", choices=FORMATS),
        quantization=r.string("quantization"),
        source=_parse_source(r.child("source", r.get("source", dict))),
        size_bytes=r.positive_int("size_bytes", required=False),
        os=r.strings("os", choices=OSES),
        files=tuple(
            _parse_file(r.child(f"files[{i}]", f)) for i, f in enumerate(r.get("files", list, required=False, default=[]))
        ),
        unconfirmed=r.strings("unconfirmed"),
        notes=r.get("notes", str, required=False, default=""),
    )
    r.done()
    return v


def parse_manifest(data: Any, file: str = "<memory>") -> Manifest:
    """Validate one manifest's JSON data; raise ManifestError naming the file, field and reason."""
    r = _Reader(file, data)
    version = r.get("schema_version", int)
    if version != SCHEMA_VERSION:
        r.fail("schema_version", f"unsupported version {version} (this toolkit reads {SCHEMA_VERSION})")
    top = dict(
        alias=r.string("alias", pattern=ALIAS_RE),
        names=r.strings("names"),
        display_name=r.string("display_name"),
        publisher=r.string("publisher"),
        license=r.string("license"),
        license_url=r.string("license_url", required=False),
        parameters=r.string("parameters"),
        parameter_count=r.positive_int("parameter_count"),
        context_length=r.positive_int("context_length"),
        architecture=r.string("architecture"),
        task=r.string("task"),
        base_model=r.string("base_model", required=False),
    )
    chat_r = r.child("chat", r.get("chat", dict, required=False, default={}))
    chat = ChatFormat(
        reasoning_start=chat_r.string("reasoning_start", required=False),
        reasoning_end=chat_r.string("reasoning_end", required=False),
        stop=chat_r.strings("stop"),
    )
    chat_r.done()
    raw_variants = r.get("variants", list)
    if not raw_variants:
        r.fail("variants", "must list at least one variant")
    variants = tuple(_parse_variant(r.child(f"variants[{i}]", v)) for i, v in enumerate(raw_variants))
    ids = [v.id for v in variants]
    for i, vid in enumerate(ids):
        if vid in ids[:i]:
            r.fail(f"variants[{i}].id", f"duplicate variant id {vid!r}")
    m = Manifest(**top, chat=chat, variants=variants, file=file)
    r.done()
    return m


def manifest_json_schema() -> dict[str, Any]:
    """The same rules as a JSON Schema (draft 2020-12), for editors and external validators."""
    string = {"type": "string", "minLength": 1}
    strings = {"type": "array", "items": string}
    source = {
        "type": "object",
        "additionalProperties": False,
        "required": ["type"],
        "properties": {
            "type": {"enum": list(SOURCE_TYPES)},
            **{k: string for k in ("repo", "revision", "subfolder", "registry", "name", "version", "base_url", "path")},
            "include": strings,
        },
    }
    file_entry = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": string,
            "size": {"type": "integer", "minimum": 0},
            "sha256": {"type": "string", "pattern": SHA256_RE.pattern},
        },
    }
    variant = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "device", "vendor", "execution_provider", "format", "quantization", "source"],
        "properties": {
            "id": {"type": "string", "pattern": VARIANT_ID_RE.pattern},
            "device": {"enum": list(DEVICES)},
            "vendor": {"enum": list(VENDORS)},
            "execution_provider": {"enum": list(EXECUTION_PROVIDERS)},
            "format": {"enum": list(FORMATS)},
            "quantization": string,
            "source": source,
            "size_bytes": {"type": "integer", "minimum": 1},
            "os": {"type": "array", "items": {"enum": list(OSES)}},
            "files": {"type": "array", "items": file_entry},
            "unconfirmed": strings,
            "notes": {"type": "string"},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "toolkit model manifest",
        "type": "object",
        "additionalProperties": False,
        "required": [
            "schema_version", "alias", "display_name", "publisher", "license", "parameters",
            "parameter_count", "context_length", "architecture", "task", "variants",
        ],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "alias": {"type": "string", "pattern": ALIAS_RE.pattern},
            "names": strings,
            "display_name": string,
            "publisher": string,
            "license": string,
            "license_url": string,
            "parameters": string,
            "parameter_count": {"type": "integer", "minimum": 1},
            "context_length": {"type": "integer", "minimum": 1},
            "architecture": string,
            "task": string,
            "base_model": string,
            "chat": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"reasoning_start": string, "reasoning_end": string, "stop": strings},
            },
            "variants": {"type": "array", "minItems": 1, "items": variant},
        },
    }
