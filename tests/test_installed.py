"""The package as pip installs it: every module and data file of the tree is there, and the console script runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, USE_CHECKOUT, in_source_tree
from tests.helpers.cli import NEUTRAL_CWD, run_toolkit

pytestmark = pytest.mark.skipif(USE_CHECKOUT, reason="TOOLKIT_TESTS_USE_CHECKOUT=1 tests the checkout, not an install")

SOURCE_MODULES = sorted(
    ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
    for package in ("toolkit", "catalog")
    for path in (PROJECT_ROOT / package).rglob("*.py")
)


@pytest.mark.parametrize("module", SOURCE_MODULES)
def test_every_module_of_the_tree_is_installed(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} is missing from the installed package"
    assert not in_source_tree(Path(spec.origin)), f"{module} resolves to the checkout"


def test_the_built_in_manifests_are_installed_as_package_data() -> None:
    spec = importlib.util.find_spec("catalog.builtin_manifests")
    assert spec is not None and spec.submodule_search_locations
    installed = Path(next(iter(spec.submodule_search_locations)))
    assert not in_source_tree(installed)
    for source in sorted((PROJECT_ROOT / "manifests").glob("*.json")):
        assert (installed / source.name).read_bytes() == source.read_bytes(), source.name


def test_the_console_script_runs_from_a_folder_outside_the_checkout() -> None:
    assert not NEUTRAL_CWD.resolve().is_relative_to(PROJECT_ROOT)
    version = run_toolkit("--version")
    assert version.returncode == 0 and version.stdout.startswith("toolkit "), version.stderr
    listed = run_toolkit("list", "--json")
    assert listed.returncode == 0, listed.stderr
    aliases = {row["alias"] for row in json.loads(listed.stdout)}
    assert {"deepseek_r1_1_5", "deepseek_r1_7b", "deepseek_r1_14b"} <= aliases
    cached = run_toolkit("cache", "list", "--json")
    assert cached.returncode == 0, cached.stderr
    assert json.loads(cached.stdout)["variants"] == []
