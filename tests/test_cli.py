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


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--experiments", "0"], "--experiments: must be at least 1, got 0"),
        (["--experiments", "-5"], "--experiments: must be at least 1, got -5"),
        (["--experiments", "abc"], "--experiments: expected an integer, got 'abc'"),
        (["--seed", "-1"], "--seed: must be at least 0, got -1"),
    ],
)
def test_calibrate_refuses_bad_numbers_naming_the_option(tmp_path, capsys, args, expected):
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--cache-dir", str(tmp_path), *args])
    assert e.value.code == 2 and expected in capsys.readouterr().err


@pytest.mark.unit
def test_calibrate_out_that_is_a_folder_is_refused_before_the_simulation(tmp_path, capsys):
    # It ran the whole simulation, then failed with a raw IsADirectoryError.
    assert main(["calibrate", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "is a folder; calibrate writes a JSON file" in capsys.readouterr().err


@pytest.mark.unit
def test_interrupt_is_one_line_with_the_signals_status(monkeypatch, capsys):
    import cnnclaims.__main__ as cli

    def stop(args):
        raise KeyboardInterrupt("cnnclaims: SIGTERM: training stopped")

    monkeypatch.setattr(cli, "_main", stop)
    assert cli.main(["verdicts"]) == 143
    assert capsys.readouterr().err.startswith("cnnclaims: SIGTERM: training stopped; models being trained")
