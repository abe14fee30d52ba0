"""Turning a stream of token ids into text deltas that are always whole UTF-8 characters.

Byte-level BPE and byte-fallback vocabularies split one character over several tokens; decoding
a token alone gives U+FFFD. `StreamingDetokenizer` decodes a short window of recent tokens and
emits only the new suffix, holding text back while it ends in an incomplete character.
Decoding from a little context before the new tokens also keeps SentencePiece's leading-space
rules right ("▁the" after a word is " the", not "the").
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class StreamingDetokenizer:
    """Incremental decoder: `add(token) -> str` returns the text that became final with that token."""

    def __init__(self, tokenizer, skip_special_tokens: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self.tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)

    def add(self, token: int) -> str:
        """Append one token; the returned delta may be empty while a character is incomplete."""
        self.tokens.append(token)
        prefix = self._decode(self.tokens[self._prefix_offset:self._read_offset])
        full = self._decode(self.tokens[self._prefix_offset:])
        if full.endswith(REPLACEMENT) or len(full) <= len(prefix):
            return ""
        delta = full[len(prefix):] if full.startswith(prefix) else full
        self._prefix_offset = self._read_offset
        self._read_offset = len(self.tokens)
        return delta

    def flush(self) -> str:
        """Whatever is still held back at the end of generation (an incomplete character decodes as U+FFFD)."""
        prefix = self._decode(self.tokens[self._prefix_offset:self._read_offset])
        full = self._decode(self.tokens[self._prefix_offset:])
        self._prefix_offset = self._read_offset = len(self.tokens)
        if len(full) > len(prefix) and full.startswith(prefix):
            return full[len(prefix):]
        return ""

    @property
    def text(self) -> str:
        """The whole decoded text so far."""
        return self._decode(self.tokens)
