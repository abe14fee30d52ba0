"""`local` sources that are archives: zip and tar members land in the store, zip-slip and links do not."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from catalog.errors import SourceError, StoreError
from catalog.schema import Source, Variant
from tests.helpers_net.hub_server import random_bytes
from tests.helpers_net.variants import fast_config
from toolkit.download.api import download_variant

MODEL = random_bytes(700_000, seed=51)


def local_variant(path: Path, subfolder: str | None = None) -> Variant:
    return Variant(
        id="pkg-cpu:1", device="cpu", vendor="any", execution_provider="CPUExecutionProvider",
        format="onnx-genai", quantization="int4", source=Source(type="local", path=str(path), subfolder=subfolder),
    )  # fmt: skip


def test_zip_members_under_a_subfolder_become_the_snapshot(tmp_path: Path) -> None:
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("pkg/model.onnx", MODEL)
        z.writestr("pkg/tok/tokenizer.json", "{}")
        z.writestr("README.md", "not in the package")
    snap, report = download_variant(
        None, local_variant(archive, "pkg"), config=fast_config(), root=tmp_path / "s"
    )
    assert (snap / "model.onnx").read_bytes() == MODEL and (
        snap / "tok" / "tokenizer.json"
    ).read_text() == "{}"
    assert not (snap / "README.md").exists() and report.fetched_files == 2


def test_tar_gz_members_are_copied(tmp_path: Path) -> None:
    archive = tmp_path / "pkg.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo("model.onnx")
        info.size = len(MODEL)
        t.addfile(info, io.BytesIO(MODEL))
    snap, _ = download_variant(None, local_variant(archive), config=fast_config(), root=tmp_path / "s")
    assert (snap / "model.onnx").read_bytes() == MODEL


def test_zip_slip_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../evil.sh", "#!/bin/sh")
    with pytest.raises(StoreError, match="'..'"):
        download_variant(None, local_variant(archive), config=fast_config(), root=tmp_path / "s")
    assert not (tmp_path / "evil.sh").exists()


def test_links_inside_a_tar_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as t:
        link = tarfile.TarInfo("model.onnx")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(SourceError, match="link"):
        download_variant(None, local_variant(archive), config=fast_config(), root=tmp_path / "s")
