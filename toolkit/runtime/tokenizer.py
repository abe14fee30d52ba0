"""The package's tokenizer: tokenizer.json through the `tokenizers` library, plus tokenizer_config.json.

`PackageTokenizer` knows the special tokens (bos, eos, added tokens), encodes plain prompts the way
transformers does (adding BOS when the config says so), and renders chat messages through the
package's chat template (see chat_template.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from catalog import jsonio
from catalog.errors import MissingFileError, PackageError
from toolkit.runtime.chat_template import ChatTemplate, load_chat_template

_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """`text` with each lone surrogate (undecodable bytes kept by surrogateescape, half of a UTF-16 pair) as
    U+FFFD: the tokenizers library takes only text that encodes to UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _token_content(value: Any) -> str | None:
    """tokenizer_config tokens are strings or AddedToken objects ({"content": ...})."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class PackageTokenizer:
    """Encoding, decoding and chat rendering for one model package folder."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        path = folder / "tokenizer.json"
        try:
            self._tok = Tokenizer.from_file(str(path))
        except FileNotFoundError as e:
            raise MissingFileError(f"{path}: not found (the package has no tokenizer)") from e
        except Exception as e:  # the tokenizers library raises plain Exceptions for bad files
            raise PackageError(f"{path}: not a valid tokenizer.json: {e}") from e
        self.config = self._read_config(folder / "tokenizer_config.json")
        self.bos_token = _token_content(self.config.get("bos_token"))
        self.eos_token = _token_content(self.config.get("eos_token"))
        self.add_bos_token = bool(self.config.get("add_bos_token", False))
        self.bos_token_id = self.token_to_id(self.bos_token)
        self.eos_token_id = self.token_to_id(self.eos_token)
        self.chat_template: ChatTemplate | None = load_chat_template(folder, self.config, self.special_tokens())

    @staticmethod
    def _read_config(path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        try:
            data = jsonio.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PackageError(f"{path}: not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise PackageError(f"{path}: expected a JSON object")
        return data

    def special_tokens(self) -> dict[str, str]:
        """bos_token, eos_token, pad_token, unk_token as strings, for templates."""
        out = {}
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            text = _token_content(self.config.get(key))
            if text is not None:
                out[key] = text
        return out

    def control_tokens(self) -> dict[int, str]:
        """Added tokens marked special (BOS, EOS, role markers): id -> text. They are not part of the text."""
        return {i: t.content for i, t in self._tok.get_added_tokens_decoder().items() if t.special}

    def token_to_id(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(well_formed(token))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`; with add_special_tokens, BOS is prepended as transformers would. A lone
        surrogate in `text` is encoded as U+FFFD (see well_formed)."""
        ids = self._tok.encode(well_formed(text), add_special_tokens=add_special_tokens).ids
        if add_special_tokens and self.add_bos_token and self.bos_token_id is not None:
            if not ids or ids[0] != self.bos_token_id:
                ids = [self.bos_token_id, *ids]
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def render_chat(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """The prompt text for a conversation; without a chat template, the last user message alone."""
        if self.chat_template is None:
            return str(messages[-1]["content"]) if messages else ""
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt)

    def encode_chat(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of a conversation (templates already write BOS, so none is added; no template: BOS + text)."""
        text = self.render_chat(messages, add_generation_prompt)
        return self.encode(text, add_special_tokens=self.chat_template is None)
