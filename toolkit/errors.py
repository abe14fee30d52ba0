"""The one error tree, for library users: `from toolkit.errors import ToolkitError, UnknownModelError`.

It lives in `catalog.errors` (the catalog package stands alone and raises the same errors); see there for
the tree and each class's exit code.
"""

from catalog.errors import (
    BuildError,
    DeviceError,
    DiskFullError,
    DownloadDeclined,
    DownloadError,
    IntegrityError,
    ManifestError,
    MissingFileError,
    ModelLoadError,
    NotFoundError,
    NotInStoreError,
    NoVariantError,
    PackageError,
    SettingError,
    SourceError,
    StoreError,
    ToolkitError,
    UnknownModelError,
)

__all__ = [
    "BuildError", "DeviceError", "DiskFullError", "DownloadDeclined", "DownloadError", "IntegrityError",
    "ManifestError", "MissingFileError", "ModelLoadError", "NotFoundError", "NotInStoreError", "NoVariantError",
    "PackageError", "SettingError", "SourceError", "StoreError", "ToolkitError", "UnknownModelError",
]
