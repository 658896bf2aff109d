"""Root conftest: loads the cnnclaims pytest plugin (options, fixtures, hooks).

src/ goes on the path so that a plain checkout works too; the plugin module itself
holds all the plumbing (see src/cnnclaims/pytest_plugin.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

pytest_plugins = ["cnnclaims.pytest_plugin"]


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_exp(tmp_path_factory):
    """One synthetic experiment (untrained models, random images) for the harness's
    own tests of the plugin, figures and report: building it and its verdicts takes
    seconds, and nothing mutates it."""
    from cnnclaims.testing import synthetic_experiment

    return synthetic_experiment(tmp_path_factory.mktemp("synthetic"))
