"""Finding and loading manifests: the built-in catalog, the user's folder and TOOLKIT_MANIFESTS."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from catalog import jsonio
from catalog.errors import ManifestError, UnknownModelError
from catalog.schema import Manifest, Variant, parse_manifest

ENV_MANIFESTS = "TOOLKIT_MANIFESTS"
ENV_CONFIG = "TOOLKIT_CONFIG_DIR"


def builtin_manifest_dir() -> Path:
    """The manifests shipped with the package (the source tree's manifests/ when run from a checkout)."""
    source_tree = Path(__file__).resolve().parent.parent / "manifests"
    if source_tree.is_dir():
        return source_tree
    return Path(__file__).resolve().parent / "builtin_manifests"


def config_dir() -> Path:
    """The user's config folder (TOOLKIT_CONFIG_DIR overrides platformdirs' user config dir)."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    from platformdirs import user_config_dir

    return Path(user_config_dir("toolkit", appauthor=False))


def user_manifest_paths() -> list[Path]:
    """Folders or files of user manifests: <config>/manifests, then each entry of TOOLKIT_MANIFESTS."""
    paths = [config_dir() / "manifests"]
    paths += [Path(p) for p in os.environ.get(ENV_MANIFESTS, "").split(os.pathsep) if p]
    return paths


def _json_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
    elif path.is_dir():
        yield from sorted(p for p in path.glob("*.json") if p.is_file())


def load_manifest_file(path: Path) -> Manifest:
    """Read and validate one manifest file."""
    try:
        data = jsonio.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(str(path), "", f"cannot read: {e.strerror or e}") from e
    except ValueError as e:  # malformed, not UTF-8, or nested too deeply
        raise ManifestError(str(path), "", f"not valid JSON: {e}") from e
    return parse_manifest(data, str(path))


def normalize_name(name: str) -> str:
    """Names match ignoring case and the separators users mix up (`-`, `_`, `.`, spaces)."""
    return re.sub(r"[-_.\s]+", "-", name.strip().lower())


class Catalog:
    """All known manifests, by alias; later sources override earlier ones with the same alias."""

    def __init__(self, manifests: Iterable[Manifest]) -> None:
        self.manifests: dict[str, Manifest] = {}
        for m in manifests:
            self.manifests[m.alias] = m
        self._names: dict[str, str] = {}
        for m in self.manifests.values():
            for n in (m.alias, *m.names, m.display_name):
                self._names.setdefault(normalize_name(n), m.alias)

    @classmethod
    def load(cls, extra_paths: Iterable[Path] | None = None, builtin: bool = True) -> Catalog:
        """Built-in manifests, then the user's; an invalid file raises ManifestError naming it."""
        paths = ([builtin_manifest_dir()] if builtin else []) + user_manifest_paths() + list(extra_paths or [])
        manifests = []
        for p in paths:
            for f in _json_files(p):
                manifests.append(load_manifest_file(f))
        return cls(manifests)

    def __iter__(self) -> Iterator[Manifest]:
        return iter(sorted(self.manifests.values(), key=lambda m: (m.parameter_count, m.alias)))

    def __len__(self) -> int:
        return len(self.manifests)

    def get(self, name: str) -> Manifest:
        """A model by alias or any of its other names, or UnknownModelError with the closest names."""
        key = normalize_name(name)
        if key in self._names:
            return self.manifests[self._names[key]]
        found = self.find_variant(name)
        if found:
            return found[0]
        close = difflib.get_close_matches(key, list(self._names), n=3, cutoff=0.5)
        raise UnknownModelError(name, list(dict.fromkeys(self._names[c] for c in close)))

    def find_variant(self, variant_id: str) -> tuple[Manifest, Variant] | None:
        """The manifest and variant whose id (with or without `:version`) is `variant_id`."""
        for m in self.manifests.values():
            v = m.variant(variant_id)
            if v:
                return m, v
        return None
