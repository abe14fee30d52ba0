"""Paths from manifests and sources cannot leave the snapshot folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog.errors import StoreError
from toolkit.store.safety import check_relpath, safe_join


@pytest.mark.parametrize("path", ["model.onnx", "sub/dir/tokenizer.json", "a..b/c", ".hidden"])
def test_plain_relative_paths_are_accepted(path: str) -> None:
    assert check_relpath(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside", "'..'"),
        ("sub/../../x", "'..'"),
        ("C:/Windows/x.dll", "absolute"),
        ("c:x", "absolute"),
        ("sub\\x", "backslash"),
        ("a\x00b", "NUL"),
        ("", "empty"),
        ("a//b", "empty or '.'"),
        ("./a", "empty or '.'"),
        (".toolkit/complete.json", "reserved"),
    ],
)
def test_unsafe_paths_are_refused_with_the_reason(path: str, why: str) -> None:
    with pytest.raises(StoreError) as e:
        check_relpath(path, where="manifest x.json")
    assert why in str(e.value) and "manifest x.json" in str(e.value)


def test_a_link_that_leaves_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "snap"
    root.mkdir()
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(StoreError, match="leaves"):
        safe_join(root, "escape/secret.txt")
    assert safe_join(root, "inside/file.bin") == root / "inside" / "file.bin"
