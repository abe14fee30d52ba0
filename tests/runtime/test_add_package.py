"""A package you built goes into the store with `add_package`: run by alias, published by the mirror, pinned."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from catalog.errors import (
    DownloadError,
    ManifestError,
    MissingFileError,
    NotFoundError,
    PackageError,
    SourceError,
    StoreError,
    ToolkitError,
)
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


# --- what `cache add` may write, and what it must leave alone -------------------------------------------------

HANDMADE = {
    "schema_version": 1, "alias": "handmade", "names": ["hm", "handy:2"], "display_name": "Handmade", "publisher": "me",
    "license": "apache-2.0", "parameters": "1B", "parameter_count": 10**9, "context_length": 4096,
    "architecture": "llama", "task": "chat",
    "variants": [{"id": "hm-cpu:1", "device": "cpu", "vendor": "any", "execution_provider": "CPUExecutionProvider",
                  "format": "onnx-genai", "quantization": "int4", "source": {"type": "huggingface", "repo": "me/hm"}}],
}


def _manifests_dir() -> Path:
    return Path(os.environ["TOOLKIT_CONFIG_DIR"]) / "manifests"


def _write_user_manifest(file_name: str, **changes) -> Path:
    path = _manifests_dir() / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**HANDMADE, **changes}))
    return path


def _disk() -> dict[str, object]:
    """Everything under the store and the config folder: each path with its bytes, link target or `dir`."""
    seen: dict[str, object] = {}
    for top in (Path(os.environ["TOOLKIT_HOME"]), Path(os.environ["TOOLKIT_CONFIG_DIR"])):
        for p in sorted(top.rglob("*")):
            seen[str(p)] = (f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes())
    return seen


def _one_error_line(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize(("variant_id", "alias", "taken_in"), [
    ("stories-x:1", "handmade", "handmade.json"),  # a hand-written manifest with that alias is not rewritten
    ("stories-x:1", "hm", "handmade.json"),  # an alias that is another model's name
    ("HM:1", "other", "handmade.json"),  # the id's name (the new model's name) is another model's, ignoring case
    ("hm-cpu:3", "other", "handmade.json"),  # the id's name is another model's variant, at any version
    ("handy:2", "other", "handmade.json"),  # the whole id is another model's name (as `deepseek-r1:7b` is)
    ("deepseek-r1-distill-qwen-7b-generic-cpu:2", "sneaky", "deepseek_r1_7b.json"),  # a built-in variant
    ("DeepSeek-R1-Distill-Qwen-7B-Generic-CPU:9", "sneaky", "deepseek_r1_7b.json"),
    ("x-cpu:1", "deepseek_r1_distill_qwen_7b_generic_cpu", "deepseek_r1_7b.json"),  # alias = a variant's name
    ("deepseek-r1-7b:1", "sneaky", "deepseek_r1_7b.json"),  # a built-in model's name
    ("x-cpu:1", "deepseek_r1_distill_qwen_14b", "deepseek_r1_14b.json"),  # ... as normalize_name matches it
])
def test_a_name_another_model_answers_to_is_refused_and_nothing_changes(stories_package, variant_id, alias,
                                                                         taken_in) -> None:
    _write_user_manifest("handmade.json")
    before = _disk()
    with pytest.raises(ManifestError, match=taken_in):
        add_package(stories_package, variant_id, alias)
    assert _disk() == before
    catalog = Catalog.load()
    assert catalog.get("hm").alias == "handmade" and catalog.get("hm").license == "apache-2.0"
    assert catalog.get("deepseek-r1-distill-qwen-7b-generic-cpu").alias == "deepseek_r1_7b"


def test_a_file_named_after_the_alias_that_holds_another_model_is_not_overwritten(stories_package) -> None:
    _write_user_manifest("foo.json", alias="bar", names=[])
    before = _disk()
    with pytest.raises(ManifestError, match="foo.json"):
        add_package(stories_package, "stories-x:1", "foo")
    assert _disk() == before
    assert Catalog.load().get("bar").variants[0].id == "hm-cpu:1"


def test_a_file_cache_add_wrote_for_another_alias_is_not_overwritten(stories_package) -> None:
    first = add_package(stories_package, "my-stories-cpu:1", "first")
    moved = first.manifest_path.rename(first.manifest_path.with_name("second.json"))  # still alias `first`
    before = _disk()
    with pytest.raises(ManifestError, match="second.json"):
        add_package(stories_package, "other-stories-cpu:1", "second")
    assert _disk() == before and json.loads(moved.read_text())["alias"] == "first"


@pytest.mark.parametrize("kind", ["folder", "link"])
def test_a_manifest_path_that_is_not_a_plain_file_is_refused_before_installing(stories_package, tmp_path,
                                                                              kind) -> None:
    target = _manifests_dir() / "stories.json"
    target.parent.mkdir(parents=True)
    if kind == "folder":
        target.mkdir()
    else:
        elsewhere = add_package(stories_package, "my-stories-cpu:1", "stories").manifest_path.rename(
            tmp_path / "stories.json")
        target.symlink_to(elsewhere)
    before = _disk()
    with pytest.raises(ManifestError, match="stories.json"):
        add_package(stories_package, "other-stories-cpu:1", "stories")
    assert _disk() == before


def test_adding_to_its_own_earlier_manifest_keeps_its_variants_and_metadata(stories_package) -> None:
    first = add_package(stories_package, "my-stories-cpu:1", "stories")
    data = json.loads(first.manifest_path.read_text())
    data.update(license="apache-2.0", context_length=256, names=[*data["names"], "tiny-tales"])  # the user's edits
    first.manifest_path.write_text(json.dumps(data))
    add_package(stories_package, "my-stories-v2-cpu:1", "stories")
    after = json.loads(first.manifest_path.read_text())
    assert {k: v for k, v in after.items() if k != "variants"} == {k: v for k, v in data.items() if k != "variants"}
    assert [v["id"] for v in after["variants"]] == ["my-stories-v2-cpu:1", "my-stories-cpu:1"]
    assert after["variants"][1] == data["variants"][0]
    catalog = Catalog.load()
    assert catalog.get("tiny-tales").variant("my-stories-v2-cpu:1") is not None
    assert catalog.get("my-stories-v2-cpu").alias == "stories"


# --- failures leave nothing half done -------------------------------------------------------------------------

def test_a_config_folder_that_cannot_hold_manifests_is_refused_before_installing(stories_package, tmp_path,
                                                                                monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TOOLKIT_CONFIG_DIR", str(blocker))
    before = _disk()
    with pytest.raises(StoreError, match="manifests"):
        add_package(stories_package, "half-cpu:1")
    assert _disk() == before and paths.installed_variant_ids() == set()
    out = run_toolkit("cache", "add", str(stories_package), "--id", "half-cpu:1")
    assert out.returncode == 8 and "a-file" in _one_error_line(out)
    assert _disk() == before


@pytest.mark.parametrize("fails_with", [DownloadError("the source went away"), KeyboardInterrupt()])
def test_an_install_that_fails_leaves_no_manifest_and_no_temporary_file(stories_package, monkeypatch,
                                                                        fails_with) -> None:
    import toolkit.runtime.add_package as module

    def failing(*args, **kwargs):
        raise fails_with

    monkeypatch.setattr(module, "ensure_variant", failing)
    _manifests_dir().mkdir(parents=True)
    with pytest.raises(type(fails_with)):
        add_package(stories_package, "my-stories-cpu:1")
    assert list(_manifests_dir().iterdir()) == []


def _manifest_path_blocked_while_installing(monkeypatch, alias: str) -> None:
    """Another process puts a folder where the manifest goes while the files are installed: the rename fails."""
    import toolkit.runtime.add_package as module

    real = module.ensure_variant

    def and_then_block(*args, **kwargs):
        snap = real(*args, **kwargs)
        (_manifests_dir() / f"{alias}.json" / "inside").mkdir(parents=True)
        return snap

    monkeypatch.setattr(module, "ensure_variant", and_then_block)


def test_when_the_manifest_cannot_be_put_in_place_what_this_call_installed_is_removed(stories_package,
                                                                                      monkeypatch) -> None:
    _manifest_path_blocked_while_installing(monkeypatch, "stories")
    with pytest.raises(ToolkitError, match="nothing was added"):
        add_package(stories_package, "my-stories-cpu:1", "stories")
    assert paths.installed_variant_ids() == set()
    assert not list(Store().blobs_dir.glob("*"))
    assert [p.name for p in _manifests_dir().iterdir()] == ["stories.json"]  # the other process's folder only


def test_when_the_manifest_cannot_be_put_in_place_a_variant_that_was_already_there_stays(stories_package,
                                                                                        monkeypatch) -> None:
    first = add_package(stories_package, "my-stories-cpu:1", "first")
    first.manifest_path.unlink()
    _manifest_path_blocked_while_installing(monkeypatch, "second")
    with pytest.raises(ToolkitError, match="toolkit cache remove my-stories-cpu:1"):
        add_package(stories_package, "my-stories-cpu:1", "second")
    assert paths.installed_variant_ids() == {"my-stories-cpu:1"}
    assert [p.name for p in _manifests_dir().iterdir()] == ["second.json"]


def _copy(package: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in package.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def test_a_package_path_that_is_not_utf8_is_refused_before_installing(stories_package, tmp_path) -> None:
    odd = _copy(stories_package, tmp_path / os.fsdecode(b"pkg\xff"))
    before = _disk()
    with pytest.raises(PackageError, match="UTF-8"):
        add_package(odd, "odd-cpu:1")
    assert _disk() == before
    out = run_toolkit("cache", "add", str(odd), "--id", "odd-cpu:1")
    assert out.returncode == PackageError.exit_code and "UTF-8" in _one_error_line(out), out.stderr
    assert _disk() == before


def test_a_file_name_in_the_package_that_is_not_utf8_is_refused_before_installing(stories_package,
                                                                                  tmp_path) -> None:
    odd = _copy(stories_package, tmp_path / "odd")
    (odd / os.fsdecode(b"notes\xff.txt")).write_text("x")
    before = _disk()
    with pytest.raises(PackageError, match="UTF-8"):
        add_package(odd, "odd-cpu:1")
    assert _disk() == before


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_link_that_leaves_the_package_is_refused(stories_package, tmp_path, kind) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the package")
    linked = _copy(stories_package, tmp_path / "linked")
    if kind == "file":
        (linked / "extra.txt").symlink_to(outside / "secret.txt")
    else:
        (linked / "extra").symlink_to(outside, target_is_directory=True)
    before = _disk()
    with pytest.raises(SourceError, match="leaves"):
        add_package(linked, "linked-cpu:1")
    assert _disk() == before


def test_the_cli_refuses_a_taken_name_with_one_error_line(stories_package) -> None:
    _write_user_manifest("handmade.json")
    before = _disk()
    out = run_toolkit("cache", "add", str(stories_package), "--id", "stories-x:1", "--alias", "handmade")
    assert out.returncode == 3 and "handmade.json" in _one_error_line(out)
    out = run_toolkit("cache", "add", str(stories_package), "--id", "deepseek-r1-distill-qwen-7b-generic-cpu:2",
                      "--alias", "sneaky")
    assert out.returncode == 3 and "deepseek_r1_7b.json" in _one_error_line(out)
    assert _disk() == before
    info = run_toolkit("info", "hm", "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["license"] == "apache-2.0"
    info = run_toolkit("info", "deepseek-r1-distill-qwen-7b-generic-cpu", "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["alias"] == "deepseek_r1_7b"
