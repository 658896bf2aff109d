"""Where a run's files are: the project's root as pytest finds it, the artifacts
folder, and the pins file, for the plugin, the report and the command line alike.

One pins resolver (``resolve_pins_path``), following pytest-regressions'
``resolve_check_paths``: a path given in full wins; else the experiment's
``pins_name`` in its data folder: beside the test file that parametrizes its claims
(in pytest) or beside the module that declares it (outside pytest), and
``tests/`` under the project's root for an experiment of the installed package
itself (the article): never inside site-packages, which is not the user's.

Imports nothing that starts TensorFlow: the plugin reads these paths at start.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .options import BY_FLAG

__all__ = [
    "find_ini",
    "project_root",
    "under_root",
    "default_pins_folder",
    "resolve_pins_path",
    "declared_folder",
    "pins_path_for",
    "misread_path_option",
]

PACKAGE = Path(__file__).resolve().parent
DEFAULT_PINS_NAME = "pinned_verdicts.json"  # declaration.Experiment.pins_name's default
# Path options that pytest may take for a test path when written with a space.
PATH_OPTIONS = tuple(
    spelling
    for flag in ("--data", "--cache-dir", "--artifacts", "--pinned-verdicts")
    for spelling in (BY_FLAG[flag].pytest_flag, flag)  # and the deprecated short name
)


def find_ini(folder: Path) -> Path | None:
    """The pytest configuration file pytest would find from ``folder`` upwards, or None
    (the same files pytest reads: pytest.ini, pyproject.toml with [tool.pytest.ini_options],
    tox.ini with [pytest], setup.cfg with [tool:pytest])."""
    marks = {
        "pytest.ini": None,
        ".pytest.ini": None,
        "pyproject.toml": "[tool.pytest.ini_options]",
        "tox.ini": "[pytest]",
        "setup.cfg": "[tool:pytest]",
    }
    for d in (folder, *folder.parents):
        for name, section in marks.items():
            f = d / name
            try:
                if f.is_file() and (section is None or section in f.read_text(errors="replace")):
                    return f
            except OSError:
                continue
    return None


def project_root(start: Path | None = None) -> Path:
    """The rootdir a plain ``pytest`` started in ``start`` (default: the working
    directory) would choose: the folder of the ini file found from there upwards, else
    ``start`` itself. The command line's stand-in for pytest's rootdir."""
    start = Path(start or Path.cwd()).resolve()
    ini = find_ini(start)
    return ini.parent if ini is not None else start


def under_root(raw: str | None, rootdir: Path, default: Path) -> Path:
    """``raw`` (an option's or environment variable's value, relative to the working
    directory), else ``default`` under ``rootdir``: started from tests/ or any other
    folder, a run finds the same artifacts and pins."""
    return Path(raw).absolute() if raw else Path(rootdir) / default


def default_pins_folder(rootdir: Path) -> Path:
    """``tests/`` under the rootdir when it exists, else the rootdir."""
    rootdir = Path(rootdir)
    return rootdir / "tests" if (rootdir / "tests").is_dir() else rootdir


def resolve_pins_path(
    pins_name: str, *, explicit: str | Path | None, rootdir: Path, beside: Path | None = None
) -> Path:
    """The pins file: ``explicit`` (--pinned-verdicts, ``pin --file``; relative to the
    working directory), else ``pins_name`` in the folder ``beside`` (of the test file
    that parametrizes the claims, or of the module that declares the experiment), else
    ``default_pins_folder(rootdir)`` / ``pins_name``. A ``beside`` folder inside the
    installed cnnclaims package (``pytest --pyargs cnnclaims.article``, the article's
    declaration) counts as none."""
    if explicit:
        return Path(explicit).absolute()
    if beside is not None:
        beside = Path(beside).resolve()
        if beside != PACKAGE and PACKAGE not in beside.parents:
            return beside / pins_name
    return default_pins_folder(rootdir) / pins_name


def declared_folder(experiment) -> Path | None:
    """The folder of a loaded module that holds ``experiment`` (where its test file
    keeps its pins: ``examples/digits/``), or None where no module does."""
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        try:
            holds = source and any(value is experiment for value in list(vars(module).values()))
        except TypeError:  # a module-like object without a __dict__
            continue
        if holds and source:
            return Path(source).resolve().parent
    return None


def pins_path_for(experiment, explicit: str | Path | None = None, start: Path | None = None) -> Path:
    """The pins file of ``experiment`` outside pytest (the command line's ``pin`` and
    ``report``): ``resolve_pins_path`` with the module that declares it as ``beside``
    and ``project_root(start)`` as the rootdir, so that it is the file a ``pytest`` of
    its test file reads (``examples/widths/pinned_widths.json``; the article's
    ``tests/pinned_verdicts.json``)."""
    return resolve_pins_path(
        experiment.pins_name, explicit=explicit, rootdir=project_root(start), beside=declared_folder(experiment)
    )


def misread_path_option(args: Sequence[str], rootdir: Path, start: Path) -> str | None:
    """Why pytest's rootdir is wrong, or None: pytest picks its rootdir from the
    command line before it loads any plugin, so in ``pytest --cnnclaims-data PATH`` (a space, no
    test path given) PATH looks like a test path and becomes the rootdir: no ini file,
    no testpaths, defaults under PATH. Call it only where pytest found no ini file and
    no test path was named; ``start``: the folder pytest was started in."""
    root, start = Path(rootdir).resolve(), Path(start).resolve()
    if root == start or find_ini(start) is None:
        return None  # nothing moved the rootdir, or there was no ini file to lose
    args = list(args)
    for flag in PATH_OPTIONS:
        if flag not in args or args.index(flag) + 1 >= len(args):
            continue  # not given, or given as --flag=value (which pytest reads right)
        value = args[args.index(flag) + 1]
        v = Path(value).expanduser().resolve()
        if v.exists() and (v == root or root in v.parents):
            return (
                f"pytest took {flag}'s value {value} for a test path and chose its rootdir from it "
                f"({root}; no ini file, so no testpaths): it reads paths before it loads plugins. Write "
                f"{flag}={value} (with '='), or name the tests first: pytest tests {flag} {value}"
            )
    return None
