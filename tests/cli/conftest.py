"""Built packages for the CLI tests that run a model (see tests/helpers/fixtures.py)."""

from tests.helpers.fixtures import *  # noqa: F401,F403
