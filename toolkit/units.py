"""How sizes read for people: one formatter for the library and every front end."""

from __future__ import annotations


def human_size(n: int | float | None) -> str:
    """1536 -> '1.5 KB'; None -> '?'. Decimal units, as disks and downloads are sold."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
