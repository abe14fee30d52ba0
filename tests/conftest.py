"""Shared test setup: the tests exercise the installed package; every test gets its own store and config folder.

The suite tests what users get: `toolkit` and `catalog` must come from site-packages (installed as the README
says), never from this checkout. pytest runs with `--import-mode=importlib` (pyproject.toml), which leaves
sys.path alone; start it as `.venv/bin/pytest`, not `python -m pytest` (that puts the working directory first on
sys.path). TOOLKIT_TESTS_USE_CHECKOUT=1 tests the checkout instead, for quick edits without reinstalling.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"
MACHINES = PROJECT_ROOT / "tests" / "fixtures" / "machines"
USE_CHECKOUT = os.environ.get("TOOLKIT_TESTS_USE_CHECKOUT") == "1"
SOURCE_PACKAGES = ("toolkit", "catalog", "manifests")


def in_source_tree(path: Path) -> bool:
    """Whether `path` is one of the checkout's own source files (not a venv that happens to live inside it)."""
    return any(Path(path).resolve().is_relative_to(PROJECT_ROOT / package) for package in SOURCE_PACKAGES)

if USE_CHECKOUT:
    sys.path.insert(0, str(PROJECT_ROOT))

# Loading a model starts a background huge-page collapse (toolkit/runtime/hugepages.py); in the test process it
# would spend the CI machine's two cores re-backing pytest's own memory. tests/runtime/test_hugepages.py turns
# it back on where it is the subject.
os.environ.setdefault("TOOLKIT_HUGE_PAGES", "0")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run against the checkout unless asked: a green run must mean the installed package works."""
    import catalog
    import toolkit

    for module in (toolkit, catalog):
        origin = Path(module.__file__).resolve()
        if in_source_tree(origin) and not USE_CHECKOUT:
            raise pytest.UsageError(
                f"`{module.__name__}` was imported from the checkout ({origin}), not from the installed package. "
                "Install it (pip install '.[test,qnn,oracle]') and start pytest as `.venv/bin/pytest` "
                "(not `python -m pytest`), or set TOOLKIT_TESTS_USE_CHECKOUT=1 to test the checkout on purpose."
            )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point TOOLKIT_HOME and TOOLKIT_CONFIG_DIR at fresh folders so no test reads or writes the user's."""
    home = tmp_path_factory.mktemp("toolkit-home")
    monkeypatch.setenv("TOOLKIT_HOME", str(home))
    monkeypatch.setenv("TOOLKIT_CONFIG_DIR", str(tmp_path_factory.mktemp("toolkit-config")))
    for var in ("TOOLKIT_MANIFESTS", "TOOLKIT_DEVICE", "TOOLKIT_MIRROR", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {SHARED_FIXTURES} (the project expects ../shared/fixtures)")
    return SHARED_FIXTURES
