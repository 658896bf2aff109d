"""The command line: help, and clear errors for bad input (exit code 2)."""
import pytest

from cnnclaims.__main__ import main


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("run", "verdicts", "figures", "report", "pin"):
        assert cmd in out


def test_missing_data_path(tmp_path, capsys):
    assert main(["run", "--data", str(tmp_path / "nope"), "--cache-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_profile(tmp_path, capsys):
    assert main(["run", "--profile", "huge", "--cache-dir", str(tmp_path)]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


@pytest.mark.parametrize("args,expected", [
    (["--experiments", "0"], "--experiments: must be at least 1, got 0"),
    (["--experiments", "-5"], "--experiments: must be at least 1, got -5"),
    (["--experiments", "abc"], "--experiments: expected an integer, got 'abc'"),
    (["--seed", "-1"], "--seed: must be at least 0, got -1"),
])
def test_calibrate_refuses_bad_numbers_naming_the_option(tmp_path, capsys, args, expected):
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--cache-dir", str(tmp_path), *args])
    assert e.value.code == 2 and expected in capsys.readouterr().err
