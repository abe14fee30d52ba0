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
        self.model.pipeline.kv.reset()  # the next prompt is prefilled whole, as a first one is
        self._epoch = getattr(self, "_epoch", 0) + 1

    def send(self, text: str, config: GenerationConfig | None = None,
             cancel: threading.Event | None = None) -> Iterator[GenerationEvent]:
        """Stream the reply to `text`; the answer (not the reasoning) joins the history, even when cut short."""
        self.messages.append({"role": "user", "content": text})
        epoch, answer, recorded = self._epoch, [], False

        def record() -> None:
            nonlocal recorded
            if not recorded and epoch == self._epoch:  # a reset in between makes this turn history no more
                self.messages.append({"role": "assistant", "content": "".join(answer)})
            recorded = True

        try:
            for event in stream_generate(self.model, list(self.messages), config, cancel):
                if event.kind == "answer":
                    answer.append(event.text)
                elif event.kind == "done":
                    record()
                yield event
        finally:
            record()
