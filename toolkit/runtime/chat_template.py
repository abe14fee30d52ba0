"""Chat templates rendered with jinja2 the way transformers' apply_chat_template does.

Same environment: sandboxed, trim_blocks and lstrip_blocks, the loopcontrols extension, a
`tojson` filter that keeps non-ASCII, `raise_exception` and `strftime_now` helpers, and the
special tokens (bos_token, eos_token, ...) as variables. The template comes from
tokenizer_config.json (`chat_template`: a string or a list of named templates) or from a
chat_template.jinja file next to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog.errors import PackageError


def _raise_exception(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@dataclass
class ChatTemplate:
    """A compiled chat template and the special-token variables it sees."""

    source: str
    origin: str
    special_tokens: dict[str, str]

    def __post_init__(self) -> None:
        from jinja2 import TemplateError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(self.source)
        except TemplateError as e:
            raise PackageError(f"{self.origin}: chat_template: does not compile: {e}") from e

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **extra: Any) -> str:
        """The prompt text for `messages` (a list of {"role", "content"})."""
        from jinja2 import TemplateError

        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens, **extra
            )
        except TemplateError as e:
            raise PackageError(f"{self.origin}: chat_template: {e}") from e


def load_chat_template(folder: Path, tokenizer_config: dict[str, Any],
                       special_tokens: dict[str, str]) -> ChatTemplate | None:
    """The package's chat template, or None when it has none."""
    origin = str(folder / "tokenizer_config.json")
    source = tokenizer_config.get("chat_template")
    if isinstance(source, list):
        named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
        source = named.get("default") or next(iter(named.values()), None)
    if source is None:
        jinja_file = folder / "chat_template.jinja"
        if jinja_file.is_file():
            source, origin = jinja_file.read_text(encoding="utf-8"), str(jinja_file)
    if source is None:
        return None
    if not isinstance(source, str):
        raise PackageError(f"{origin}: chat_template: expected a string, got {type(source).__name__}")
    return ChatTemplate(source=source, origin=origin, special_tokens=special_tokens)
