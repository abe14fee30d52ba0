"""From what the user typed (`toolkit run ALIAS|PATH`) to a package folder on disk.

A path to a folder with genai_config.json is used as is. Anything else is a catalog alias: the
variant is chosen for this machine, taken from the store when installed, else downloaded
(after `confirm` agrees; scripts pass --yes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import MissingFileError, ToolkitError
from toolkit.download.config import DownloadConfig
from toolkit.runtime.config import CONFIG_NAME
from toolkit.runtime.model import ChatMarkers, package_root
from toolkit.units import human_size


class DownloadDeclined(ToolkitError):
    """The user said no to downloading the model `run` needs."""

    exit_code = 1


@dataclass(frozen=True)
class ResolvedModel:
    """A package folder and what the catalog says about it (None for a plain path)."""

    folder: Path
    alias: str | None = None
    variant_id: str | None = None
    reason: str = ""
    markers: ChatMarkers | None = None
    downloaded: bool = False


def looks_like_path(name: str) -> bool:
    p = Path(name).expanduser()
    return p.is_dir() or "/" in name or "\\" in name or name.startswith(".")


def resolve_model(
    name: str,
    device: str | None = None,
    variant: str | None = None,
    confirm: Callable[[str], bool] | None = None,
    progress=None,
    mirror: str | None = None,
    config: DownloadConfig | None = None,
) -> ResolvedModel:
    """The package folder for `name`; downloads only when `confirm(question)` returns True."""
    path = Path(name).expanduser()
    if looks_like_path(name):
        if not path.is_dir():
            raise MissingFileError(f"{path}: no such folder (expected a model package with {CONFIG_NAME})")
        return ResolvedModel(package_root(path).resolve())
    from catalog.loader import Catalog
    from catalog.selection import select_variant
    from toolkit import paths
    from toolkit.device import current_profile

    manifest = Catalog.load().get(name)
    installed = paths.installed_variant_ids()
    selection = select_variant(manifest, current_profile(), installed, device, variant)
    chosen = selection.variant
    markers = ChatMarkers(manifest.chat.reasoning_start, manifest.chat.reasoning_end, tuple(manifest.chat.stop))
    folder = paths.snapshot_dir(chosen.id)
    if chosen.id in installed:
        return ResolvedModel(package_root(folder), manifest.alias, chosen.id, selection.reason, markers)
    question = f"{manifest.alias}: download {chosen.id} ({human_size(chosen.size_bytes)})?"
    if confirm is None or not confirm(question):
        raise DownloadDeclined(f"{chosen.id} is not downloaded; run `toolkit download {manifest.alias}` or pass --yes")
    from toolkit.download.api import ensure_variant

    folder = ensure_variant(manifest, chosen, progress, mirror=mirror, config=config)
    return ResolvedModel(package_root(folder), manifest.alias, chosen.id, selection.reason, markers, downloaded=True)
