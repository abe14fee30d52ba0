"""A conversation: message history over `stream_generate`, reused by the CLI's chat and by scripts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from toolkit.runtime.generate import GenerationConfig, GenerationEvent, stream_generate
from toolkit.runtime.model import LocalModel


class ChatSession:
    """Keeps the messages of one chat; the KV cache of earlier turns is reused when the prompt extends it."""

    def __init__(self, model: LocalModel, system: str | None = None) -> None:
        self.model = model
        self.system = system
        self.messages: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        """Start over (the system prompt stays)."""
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self.model.cached_ids = []

    def send(self, text: str, config: GenerationConfig | None = None,
             cancel: threading.Event | None = None) -> Iterator[GenerationEvent]:
        """Stream the reply to `text`; the answer (not the reasoning) joins the history, even when cut short."""
        self.messages.append({"role": "user", "content": text})
        answer: list[str] = []
        try:
            for event in stream_generate(self.model, list(self.messages), config, cancel):
                if event.kind == "answer":
                    answer.append(event.text)
                yield event
        finally:
            self.messages.append({"role": "assistant", "content": "".join(answer)})
