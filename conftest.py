"""Root conftest: makes sure the cnnclaims pytest plugin (options, fixtures, hooks)
is loaded.

Installed (`pip install -e .`), cnnclaims declares the plugin as its pytest11 entry
point ``cnnclaims``, which pytest loads before this file, and which ``-p no:cnnclaims``
blocks: this file then leaves it out too, so the option disables the plugin here as
anywhere. In a plain checkout (not installed), or with plugin autoloading disabled,
this file loads it, from src/; there its options need the ``--opt=PATH`` spelling.
The plugin module itself holds all the plumbing (see src/cnnclaims/pytest_plugin.py).
"""

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

_ENTRY_POINT = any(ep.value == "cnnclaims.pytest_plugin" for ep in entry_points(group="pytest11", name="cnnclaims"))
_AUTOLOAD = not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
if "cnnclaims.pytest_plugin" not in sys.modules and not (_ENTRY_POINT and _AUTOLOAD):
    pytest_plugins = ["cnnclaims.pytest_plugin"]


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_exp(tmp_path_factory):
    """One synthetic experiment (untrained models, random images) for the harness's
    own tests of the plugin, figures and report: building it and its verdicts takes
    seconds, and nothing mutates it."""
    from cnnclaims.testing import synthetic_experiment

    return synthetic_experiment(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def cnnclaims_plugin_args():
    """``-p`` arguments that load the cnnclaims plugin in an inner pytester session.

    With cnnclaims installed, its pytest11 entry point ``cnnclaims`` names it (pytest
    also loads it unasked; naming it again under the module's name would register the
    module twice, which pytest refuses); in a plain checkout, the module."""
    return ["-p", "cnnclaims" if _ENTRY_POINT else "cnnclaims.pytest_plugin"]
