"""The catalog service: manifests, their validation, sources, and variant selection for a device."""

from catalog.errors import (
    BuildError,
    DeviceError,
    DiskFullError,
    DownloadError,
    IntegrityError,
    ManifestError,
    ModelLoadError,
    NotFoundError,
    NoVariantError,
    PackageError,
    SourceError,
    StoreError,
    ToolkitError,
    UnknownModelError,
)
from catalog.loader import Catalog, load_manifest_file
from catalog.schema import ChatFormat, FileEntry, Manifest, Source, Variant, parse_manifest

__all__ = [
    "BuildError",
    "Catalog",
    "ChatFormat",
    "DeviceError",
    "DiskFullError",
    "DownloadError",
    "FileEntry",
    "IntegrityError",
    "Manifest",
    "ManifestError",
    "ModelLoadError",
    "NoVariantError",
    "NotFoundError",
    "PackageError",
    "Source",
    "SourceError",
    "StoreError",
    "ToolkitError",
    "UnknownModelError",
    "Variant",
    "load_manifest_file",
    "parse_manifest",
]
