"""Options are declared once (cnnclaims.options) and the two front ends agree."""

import argparse

import pytest

from cnnclaims import options

pytestmark = pytest.mark.unit


def test_pytest_and_cli_offer_the_same_shared_options(pytestconfig):
    parser = argparse.ArgumentParser()
    options.add_to_argparse(parser)
    cli = {a.option_strings[0]: a for a in parser._actions if a.option_strings and a.dest != "help"}
    shared = [o for o in options.OPTIONS if o.fronts == options.BOTH]
    assert set(cli) == {o.flag for o in shared}
    for o in shared:
        # pytest parsed this very session with the same table: the option exists there
        pytestconfig.getoption(o.pytest_flag)  # (pytest spells it with the prefix)
        assert cli[o.flag].help == o.full_help() and (o.env is None or f"${o.env}" in o.full_help())


def test_profile_env_is_the_default_in_both(monkeypatch):
    monkeypatch.setenv(options.ENV_PROFILE, "smoke")
    parser = argparse.ArgumentParser()
    options.add_to_argparse(parser)
    assert parser.parse_args([]).profile == "smoke"


@pytest.mark.parametrize(
    "flag,value,expected",
    [
        ("--workers", 0, "--workers must be at least 1, got 0"),
        ("--seeds", 0, "--seeds must be at least 1, got 0"),
        ("--probe-index", "abc", "is not an integer"),
        ("--probe-index", "-3", "is negative"),
    ],
)
def test_check_names_the_option(flag, value, expected):
    with pytest.raises(ValueError, match=expected):
        options.check(lambda f: value if f == flag else None)


def test_cli_uses_the_same_check(capsys):
    from cnnclaims.__main__ import main

    assert main(["verdicts", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1, got 0" in capsys.readouterr().err


def test_options_and_the_executor_registry_import_no_tensorflow():
    """options is a leaf that reads its executor choices from the registry
    (cnnclaims.training.executors): importing either starts no TensorFlow and no
    executor (a fresh process: this one has imported TensorFlow already)."""
    import subprocess
    import sys

    code = (
        "import sys, cnnclaims.options, cnnclaims.training.executors; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'ray') "
        "or m.startswith('cnnclaims.training.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['cnnclaims.training.executors']"
