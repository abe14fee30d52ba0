"""Options more than one command takes, defined once, and the value types that make bad values usage errors."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from catalog.schema import DEVICES

ENV_DEVICE = "TOOLKIT_DEVICE"


def add_json(parser: argparse.ArgumentParser, help: str = "Write JSON for scripts.") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=str.lower, choices=DEVICES,
                        help=f"Only consider {', '.join(DEVICES[:-1])} or {DEVICES[-1]} variants "
                             f"(default: ${ENV_DEVICE}, else the best for this machine).")


def add_variant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", metavar="ID", help="Use this variant id (see `toolkit info ALIAS`).")


def add_mirror(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", metavar="URL",
                        help="Download from this toolkit mirror first (default: $TOOLKIT_MIRROR).")


def add_require_pinned(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--require-pinned", action="store_true",
                        help="Refuse files whose sha256 only the serving mirror vouches for (no pin in the manifest, "
                             "origin unreachable) or that have none (default: $TOOLKIT_REQUIRE_PINNED).")


def download_config(args: argparse.Namespace):
    """The engine's settings from the environment, with --require-pinned when given."""
    from toolkit.download.config import DownloadConfig

    return DownloadConfig.from_env(require_pinned=True if args.require_pinned else None)


def device_override(flag: str | None) -> str | None:
    """--device wins over TOOLKIT_DEVICE; empty means no override."""
    return flag or os.environ.get(ENV_DEVICE) or None


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


def number(low: float) -> Callable[[str], float]:
    """An argparse type: a float of at least `low`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def number_list(text: str) -> tuple[int, ...]:
    """An argparse type: positive whole numbers separated by commas (`32,512`)."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 32,512, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers like 32,512, got {text!r}")
    return values
