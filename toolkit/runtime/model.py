"""A loaded model package: config, tokenizer, decoder pipeline and what ends a reply."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from catalog import jsonio
from catalog.errors import MissingFileError, PackageError
from toolkit.runtime.config import CONFIG_NAME, GenaiConfig, load_genai_config
from toolkit.runtime.pipeline import DecoderPipeline, RuntimeOptions
from toolkit.runtime.tokenizer import PackageTokenizer

DEFAULT_REASONING = ("<think>", "</think>")


@dataclass(frozen=True)
class ChatMarkers:
    """Reasoning delimiters and extra stop strings (from the catalog manifest, or found in the vocabulary)."""

    reasoning_start: str | None = None
    reasoning_end: str | None = None
    stop: tuple[str, ...] = ()


def package_root(folder: Path) -> Path:
    """The folder holding genai_config.json: `folder` itself or its only descendant that has one."""
    folder = Path(folder)
    if (folder / CONFIG_NAME).is_file():
        return folder
    found = sorted(p.parent for p in folder.glob("**/" + CONFIG_NAME) if len(p.relative_to(folder).parts) <= 4)
    if len(found) == 1:
        return found[0]
    if not found:
        raise MissingFileError(f"{folder}: no {CONFIG_NAME} found (not a model package)")
    raise PackageError(f"{folder}: several packages inside ({', '.join(str(f) for f in found)}); give one path")


class LocalModel:
    """Everything needed to generate from one package folder."""

    def __init__(self, folder: Path, options: RuntimeOptions | None = None, markers: ChatMarkers | None = None) -> None:
        start = time.perf_counter()
        if not Path(folder).is_dir():
            raise MissingFileError(f"{folder}: not a folder (expected a model package with {CONFIG_NAME})")
        self.folder = package_root(Path(folder))
        self.config: GenaiConfig = load_genai_config(self.folder)
        self.tokenizer = PackageTokenizer(self.folder)
        self.pipeline = DecoderPipeline(self.config, options)
        default = self._default_markers()
        if markers is None or not markers.reasoning_start:
            markers = ChatMarkers(default.reasoning_start, default.reasoning_end, markers.stop if markers else ())
        self.markers = markers
        self.eos_ids = frozenset(self._eos_ids())
        self.load_seconds = time.perf_counter() - start

    def _default_markers(self) -> ChatMarkers:
        start, end = DEFAULT_REASONING
        if self.tokenizer.token_to_id(start) is not None and self.tokenizer.token_to_id(end) is not None:
            return ChatMarkers(start, end)
        return ChatMarkers()

    def _eos_ids(self) -> set[int]:
        ids = set(self.config.eos_token_ids)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        gen = self.folder / "generation_config.json"
        if gen.is_file():
            try:
                value = jsonio.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
            except (OSError, ValueError, AttributeError):
                value = None
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list):
                ids.update(v for v in value if isinstance(v, int))
        return ids

    @property
    def context_length(self) -> int:
        return self.pipeline.kv.max_tokens

    def prompt_opens_reasoning(self, prompt_text: str) -> bool:
        """Whether the rendered prompt ends inside a reasoning block (DeepSeek-R1 adds '<think>\\n')."""
        start, end = self.markers.reasoning_start, self.markers.reasoning_end
        if not start or not end:
            return False
        tail = prompt_text.rstrip()
        return tail.endswith(start) or tail.rfind(start) > tail.rfind(end)

    def wait_for_huge_pages(self, timeout: float | None = None) -> None:
        """Block until the background huge-page collapse (if any) is done; benchmarks call this."""
        if self.pipeline.huge_pages is not None:
            self.pipeline.huge_pages.wait(timeout)

    def huge_pages_summary(self) -> dict:
        job = self.pipeline.huge_pages
        if job is None:
            return {"enabled": False}
        r = job.report
        return {"enabled": True, "done": job.done, "collapsed_bytes": r.collapsed_bytes,
                "seconds": round(r.seconds, 3), **({"reason": r.reason} if r.reason else {})}

    def describe(self) -> dict:
        """Facts for --json output and bench reports."""
        return {
            "path": str(self.folder),
            "type": self.config.model_type,
            "context_length": self.context_length,
            "providers": self.pipeline.providers,
            "kv_cache": self.pipeline.kv.layout,
            "window": self.pipeline.prompt_window.size,
            "load_seconds": round(self.load_seconds, 3),
            "stages": self.pipeline.report.stages,
            "notes": list(self.pipeline.report.notes),  # e.g. a provider that failed and the CPU that took over
            "huge_pages": self.huge_pages_summary(),
        }
