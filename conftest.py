"""Root conftest: loads the cnnclaims pytest plugin (options, fixtures, hooks).

src/ goes on the path so that a plain checkout works too; the plugin module itself
holds all the plumbing (see src/cnnclaims/pytest_plugin.py).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

pytest_plugins = ["cnnclaims.pytest_plugin"]
