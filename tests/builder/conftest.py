from tests.helpers.fixtures import *  # noqa: F401,F403
