"""Shared test setup: every test gets its own store and config folder; fixtures come from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Loading a model starts a background huge-page collapse (toolkit/runtime/hugepages.py); in the test process it
# would spend the CI machine's two cores re-backing pytest's own memory. tests/runtime/test_hugepages.py turns
# it back on where it is the subject.
os.environ.setdefault("TOOLKIT_HUGE_PAGES", "0")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"
MACHINES = PROJECT_ROOT / "tests" / "fixtures" / "machines"


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
