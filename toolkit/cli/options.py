"""Options more than one command takes, defined once, and the value types that make bad values usage errors."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from toolkit import api

MAX_SEED = 2**32 - 1  # numpy's seeds are non-negative; 32 bits is what other tools take


def add_json(parser: argparse.ArgumentParser, help: str = "Write JSON for scripts.") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=str.lower, choices=api.DEVICES,
                        help=f"Only consider {', '.join(api.DEVICES[:-1])} or {api.DEVICES[-1]} variants "
                             f"(default: ${api.ENV_DEVICE}, else the best for this machine).")


def add_variant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", metavar="ID", help="Use this variant id (see `toolkit info ALIAS`).")


def mirror_url(text: str) -> str:
    """An argparse type: an http or https URL with a host (the check catalog.sources.mirror makes again)."""
    problem = api.url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def add_mirror(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", type=mirror_url, metavar="URL",
                        help="Download from this toolkit mirror first (default: $TOOLKIT_MIRROR).")


def add_require_pinned(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--require-pinned", action="store_true",
                        help="Refuse files whose sha256 only the serving mirror vouches for (no pin in the manifest, "
                             "origin unreachable) or that have none (default: $TOOLKIT_REQUIRE_PINNED).")


def download_config(args: argparse.Namespace):
    """The engine's settings from the environment, with --require-pinned when given."""
    return api.download_settings(require_pinned=True if args.require_pinned else None)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [low, high], else a usage error that says the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def number(low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float (no nan, no inf) in [low, high] where given, else a usage error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def argv_text(text: str) -> str:
    """An argparse type: text from the command line, where bytes that are not UTF-8 (kept by Python as lone
    surrogates) become U+FFFD, as they would in a terminal."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte (a Windows command line)
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def stdin_text() -> str:
    """All of standard input as text: UTF-8 (a leading byte order mark dropped), bytes that are not UTF-8 as
    U+FFFD; empty when there is no standard input (descriptor 0 closed)."""
    if sys.stdin is None:
        return ""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text-only stream put in place by a caller
        return argv_text(sys.stdin.read())
    return stream.read().decode("utf-8-sig", "replace")


def number_list(high: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: whole numbers from 1 to `high` separated by commas (`32,512`)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers like 32,512, got {text!r}") from None
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected positive numbers like 32,512, got {text!r}")
        if max(values) > high:
            raise argparse.ArgumentTypeError(f"each must be at most {high}, got {max(values)}")
        return values

    return parse
