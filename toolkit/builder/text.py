"""Text for calibration and evaluation: read as UTF-8, split into documents on <|endoftext|>."""

from __future__ import annotations

from pathlib import Path

from catalog.errors import BuildError, MissingFileError

STORY_SEPARATOR = "<|endoftext|>"


def read_text(path: Path, what: str = "text file") -> str:
    """A text file as UTF-8; one that is not (perplexity or ranges from mangled text would mislead) or that
    cannot be read is a BuildError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingFileError(f"{path}: {what} does not exist") from None
    except UnicodeDecodeError as e:
        raise BuildError(f"{path}: the {what} is not UTF-8 (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except OSError as e:
        raise BuildError(f"{path}: cannot read the {what} ({e.strerror or e})") from None


def split_documents(text: str) -> list[str]:
    """Documents separated by <|endoftext|> (or the whole text), stripped, empty ones dropped."""
    return [d.strip() for d in text.split(STORY_SEPARATOR) if d.strip()]
