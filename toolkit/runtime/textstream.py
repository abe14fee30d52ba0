"""Text-level stream processing: stop strings and the <think>...</think> reasoning split.

Both work on text deltas as they arrive and hold back only as much text as could still turn out
to be the start of a marker, so the user sees tokens as soon as they are safe to show.
"""

from __future__ import annotations

from collections.abc import Sequence


def _partial_suffix(text: str, markers: Sequence[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `markers`."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


class StopStrings:
    """Finds stop strings across deltas; `feed(delta) -> (safe_text, stopped)`."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        if not self.stops:
            return delta, False
        text = self._pending + delta
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._pending = ""
            return text[:min(hits)], True
        keep = _partial_suffix(text, self.stops)
        self._pending = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], False

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text


class ReasoningSplitter:
    """Splits a stream into ("reasoning", text) and ("answer", text) pieces at the reasoning markers.

    `in_reasoning` starts true when the prompt already opened the reasoning block (DeepSeek-R1's
    generation prompt ends with "<think>\\n").
    """

    def __init__(self, start: str | None = "<think>", end: str | None = "</think>",
                 in_reasoning: bool = False) -> None:
        self.start, self.end = start, end
        self.in_reasoning = in_reasoning and bool(start and end)
        self._pending = ""
        self._strip_next = in_reasoning

    def feed(self, delta: str) -> list[tuple[str, str]]:
        """Pieces of text made final by `delta`, each tagged "reasoning" or "answer"."""
        if not self.start or not self.end:
            return [("answer", delta)] if delta else []
        out: list[tuple[str, str]] = []
        text = self._pending + delta
        self._pending = ""
        while text:
            marker = self.end if self.in_reasoning else self.start
            at = text.find(marker)
            if at >= 0:
                self._emit(out, text[:at])
                text = text[at + len(marker):]
                self.in_reasoning = not self.in_reasoning
                self._strip_next = True
                continue
            keep = _partial_suffix(text, [marker])
            self._emit(out, text[:len(text) - keep])
            self._pending = text[len(text) - keep:] if keep else ""
            break
        return out

    def _emit(self, out: list[tuple[str, str]], text: str) -> None:
        if self._strip_next:
            text = text.lstrip("\n") if self.in_reasoning else text.lstrip()
            if not text:
                return
            self._strip_next = False
        if text:
            out.append(("reasoning" if self.in_reasoning else "answer", text))

    def flush(self) -> list[tuple[str, str]]:
        text, self._pending = self._pending, ""
        out: list[tuple[str, str]] = []
        self._emit(out, text)
        return out
