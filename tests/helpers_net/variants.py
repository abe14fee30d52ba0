"""Hand-built manifests and variants pointing at the test servers, and a progress recorder."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from catalog.schema import Manifest, Source, Variant, parse_manifest
from toolkit.download.config import DownloadConfig
from toolkit.download.progress import Progress

KiB = 1024


def fast_config(**overrides: object) -> DownloadConfig:
    """Small segments and short waits so fault tests take well under a second each."""
    values: dict = dict(
        connections=4,
        max_connections=8,
        min_segment=256 * KiB,
        max_segment=1024 * KiB,
        min_split=128 * KiB,
        retries=4,
        backoff_base=0.01,
        backoff_max=0.05,
        stall_timeout=0.5,
        connect_timeout=2.0,
        save_interval=0.02,
        chunk_size=32 * KiB,
        disk_margin=0,
    )
    values.update(overrides)
    return DownloadConfig(**values)


def hf_variant(repo: str, vid: str = "tiny-cpu:1", **source: object) -> Variant:
    return Variant(
        id=vid,
        device="cpu",
        vendor="any",
        execution_provider="CPUExecutionProvider",
        format="onnx-genai",
        quantization="int4",
        source=Source(type="huggingface", repo=repo, **source),
    )


def manifest_json(alias: str, variants: list[dict]) -> dict:
    return {
        "schema_version": 1,
        "alias": alias,
        "display_name": alias,
        "publisher": "test",
        "license": "mit",
        "parameters": "1M",
        "parameter_count": 1000000,
        "context_length": 128,
        "architecture": "llama",
        "task": "chat",
        "variants": variants,
    }


def hf_variant_json(repo: str, vid: str = "tiny-cpu:1") -> dict:
    return {
        "id": vid,
        "device": "cpu",
        "vendor": "any",
        "execution_provider": "CPUExecutionProvider",
        "format": "onnx-genai",
        "quantization": "int4",
        "source": {"type": "huggingface", "repo": repo},
    }


def write_manifest(folder: Path, alias: str, variants: list[dict]) -> tuple[Path, Manifest]:
    """A manifest file for the CLI (point TOOLKIT_MANIFESTS at it) and the parsed Manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{alias}.json"
    data = manifest_json(alias, variants)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, parse_manifest(data, str(path))


class Recorder(Progress):
    """Keeps the notes and the bytes reported, for assertions."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.advanced = 0
        self.done: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def advance(self, path: str, nbytes: int) -> None:
        with self.lock:
            self.advanced += nbytes

    def note(self, message: str) -> None:
        with self.lock:
            self.notes.append(message)

    def file_done(self, path: str, fetched: bool) -> None:
        with self.lock:
            self.done.append((path, fetched))
