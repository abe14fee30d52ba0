"""A package you built goes into the store with `add_package`: run by alias, published by the mirror, pinned."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from catalog.errors import ManifestError, MissingFileError, NotFoundError, StoreError
from catalog.loader import Catalog, load_manifest_file
from tests.helpers.cli import run_toolkit
from tests.helpers_net.variants import Recorder
from toolkit import paths
from toolkit.download.api import download_variant
from toolkit.download.config import DownloadConfig
from toolkit.mirror.server import MirrorServer
from toolkit.runtime.add_package import add_package
from toolkit.store.blobs import Store


@pytest.fixture()
def added(stories_package: Path):
    return add_package(stories_package, "my-stories-cpu:1")


def test_the_package_is_in_the_store_and_the_catalog_under_its_alias(added, stories_package: Path) -> None:
    assert added.alias == "my_stories_cpu" and added.variant_id in paths.installed_variant_ids()
    for f in stories_package.iterdir():
        assert (added.snapshot / f.name).read_bytes() == f.read_bytes()
    manifest = load_manifest_file(added.manifest_path)
    variant = manifest.variants[0]
    assert variant.source.type == "local" and variant.device == "cpu"
    assert {f.path for f in variant.files} == {f.name for f in stories_package.iterdir()}
    assert all(f.sha256 and len(f.sha256) == 64 for f in variant.files)
    assert Catalog.load().get("my_stories_cpu").variants[0].id == "my-stories-cpu:1"


def test_adding_the_same_package_again_changes_nothing(added, stories_package: Path) -> None:
    again = add_package(stories_package, "my-stories-cpu:1")
    assert again.snapshot == added.snapshot
    assert [v.id for v in load_manifest_file(again.manifest_path).variants] == ["my-stories-cpu:1"]


def test_other_bytes_under_an_id_already_in_the_store_are_refused(added, stories_package: Path, tmp_path) -> None:
    changed = _changed_copy(stories_package, tmp_path / "changed")
    with pytest.raises(StoreError, match="already in the store with other files"):
        add_package(changed, "my-stories-cpu:1")
    assert (added.snapshot / "genai_config.json").read_bytes() == (stories_package / "genai_config.json").read_bytes()


@pytest.mark.parametrize(("folder", "variant_id", "alias", "error"), [
    ("missing", "x-cpu:1", None, MissingFileError),
    ("package", "no version", None, ManifestError),
    ("package", "x-cpu:1", "Bad-Alias", ManifestError),
    ("package", "x-cpu:1", "deepseek_r1_7b", ManifestError),  # a built-in model's alias is not taken over
    ("not-a-package", "x-cpu:1", None, MissingFileError),
])
def test_bad_input_is_refused_before_anything_is_written(stories_package, tmp_path, folder, variant_id, alias,
                                                         error) -> None:
    (tmp_path / "not-a-package").mkdir()
    path = stories_package if folder == "package" else tmp_path / folder
    with pytest.raises(error):
        add_package(path, variant_id, alias)
    assert paths.installed_variant_ids() == set()
    assert not list((Path(os.environ["TOOLKIT_CONFIG_DIR"]) / "manifests").glob("*.json"))


def _changed_copy(package: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in package.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    text = (package / "genai_config.json").read_text()
    (dest / "genai_config.json").write_text(text.replace(" ", "\t", 1))  # same size, other bytes, still JSON
    return dest


def test_another_machine_downloads_it_from_the_mirror_checked_against_the_pinned_digests(
        added, stories_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = load_manifest_file(added.manifest_path)
    config = DownloadConfig.from_env()
    with MirrorServer(Store(), port=0) as server:
        server.start_background()
        snap, report = download_variant(manifest, manifest.variants[0], mirror=server.url, config=config,
                                        root=tmp_path / "client")
        server.shutdown()
    assert report.source == "mirror"
    for f in stories_package.iterdir():
        assert (snap / f.name).read_bytes() == f.read_bytes()
    # a hostile mirror publishes other bytes under the same id, with digests that agree with them
    monkeypatch.setenv("TOOLKIT_CONFIG_DIR", str(tmp_path / "hostile-config"))
    hostile = Store(tmp_path / "hostile-store")
    add_package(_changed_copy(stories_package, tmp_path / "changed"), "my-stories-cpu:1", root=hostile.root)
    elsewhere = dataclasses.replace(manifest.variants[0], source=dataclasses.replace(
        manifest.variants[0].source, path=str(tmp_path / "not-on-this-machine")))
    with MirrorServer(hostile, port=0) as server:
        server.start_background()
        recorder = Recorder()
        with pytest.raises(NotFoundError):  # the mirror was refused, and the package folder is not on this machine
            download_variant(manifest, elsewhere, recorder, mirror=server.url, config=config,
                             root=tmp_path / "client2")
        server.shutdown()
    assert any("genai_config.json: the manifest pins sha256" in note for note in recorder.notes), recorder.notes
    assert not list((tmp_path / "client2").rglob("genai_config.json"))


def test_the_cli_adds_a_package_and_runs_it_by_alias(stories_package: Path) -> None:
    out = run_toolkit("cache", "add", str(stories_package), "--id", "cli-stories-cpu:1", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["alias"] == "cli_stories_cpu" and result["variant"] == "cli-stories-cpu:1"
    ran = run_toolkit("run", "cli_stories_cpu", "--prompt", "Once upon a time", "-n", "8", "-t", "0", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["stats"]["generated_tokens"] == 8
    listed = run_toolkit("cache", "list", "--json")
    assert "cli-stories-cpu:1" in listed.stdout
