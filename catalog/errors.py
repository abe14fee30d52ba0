"""One exception tree for the whole project.

ToolkitError                    every error the CLI turns into a message and an exit code
├── DownloadDeclined            the model is not downloaded and the user (or a script without --yes) said no
├── ManifestError               a manifest file is invalid (names the file, the field, the reason)
├── UnknownModelError           an alias or variant id matches nothing (suggests close names)
├── NoVariantError              no variant of a model fits the device or the overrides
├── DeviceError                 an override names a device that does not exist
├── SettingError                an environment variable or option is out of its range (exit 2, as usage)
├── SourceError                 a source (hub, registry, mirror, folder) could not be resolved
│   └── NotFoundError           the source answered that the model or file does not exist
├── DownloadError               a transfer failed after its retries (network)
│   ├── IntegrityError          bytes did not match the expected size or sha256
│   └── DiskFullError           not enough free space (needed and available in the message)
├── StoreError                  the local store is inconsistent or a path is unsafe
│   └── NotInStoreError         the variant asked for is not in the store (exit 4, as any "not found")
├── MissingFileError            a file or folder given by the user, or needed by a package, does not exist
├── PackageError                a model package (genai_config.json, graphs) is invalid
├── ModelLoadError              a runtime session could not be created
└── BuildError                  a checkpoint could not be turned into a package

`toolkit.errors` re-exports this tree for library users. Every class has an `exit_code`: scripts can tell a missing model from a network
failure, a corrupt download or a full disk.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base of every error the toolkit raises on purpose."""

    exit_code = 1


class DownloadDeclined(ToolkitError):
    """A command needs a model that is not downloaded, and downloading it was declined (or not allowed)."""

    exit_code = 1


class ManifestError(ToolkitError):
    """A manifest is invalid; the message names the file, the field and the reason."""

    exit_code = 3

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file, self.field, self.reason = file, field, reason
        super().__init__(f"{file}: {field}: {reason}" if field else f"{file}: {reason}")


class UnknownModelError(ToolkitError):
    """No model or variant answers to the name; `suggestions` holds the closest names."""

    exit_code = 4

    def __init__(self, name: str, suggestions: list[str] | None = None, kind: str = "model") -> None:
        self.name, self.suggestions = name, list(suggestions or [])
        msg = f"unknown {kind} {name!r}"
        if self.suggestions:
            msg += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        msg += " (see `toolkit list`)"
        super().__init__(msg)


class NoVariantError(ToolkitError):
    """No variant of a model fits the device and overrides."""

    exit_code = 4


class DeviceError(ToolkitError):
    """A device override is not one of npu, gpu, cpu."""

    exit_code = 2


class SettingError(ToolkitError):
    """A setting (environment variable or option) has a value outside its range; names the variable."""

    exit_code = 2


class SourceError(ToolkitError):
    """A source could not be resolved into a file list."""

    exit_code = 5


class NotFoundError(SourceError):
    """The source says the model, revision or file does not exist."""

    exit_code = 4


class DownloadError(ToolkitError):
    """A network transfer failed after its retries."""

    exit_code = 5


class IntegrityError(DownloadError):
    """Bytes on the wire or on disk do not match the expected size or sha256."""

    exit_code = 6


class DiskFullError(DownloadError):
    """Not enough free disk space."""

    exit_code = 7


class StoreError(ToolkitError):
    """The local store is inconsistent, locked, or a path would leave it."""

    exit_code = 8


class NotInStoreError(StoreError):
    """A variant named on the command line is not in the store."""

    exit_code = 4


class PackageError(ToolkitError):
    """A model package is invalid (names the file and field)."""

    exit_code = 9


class MissingFileError(ToolkitError):
    """A file or folder given on the command line, or one a package needs, does not exist (names the path)."""

    exit_code = 4


class ModelLoadError(ToolkitError):
    """An ONNX Runtime session could not be created for a package."""

    exit_code = 9


class BuildError(ToolkitError):
    """A checkpoint could not be built into a package."""

    exit_code = 10
