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


def test_calibrate_refuses_an_unknown_correction(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--cache-dir", str(tmp_path), "--correction", "bonferroni"])
    assert e.value.code == 2 and "invalid choice: 'bonferroni'" in capsys.readouterr().err


@pytest.mark.unit
def test_calibrate_defaults_are_the_calibrations():
    """The parser spells them without importing scipy; they must not drift."""
    import cnnclaims.__main__ as cli
    from cnnclaims.calibration import DEFAULT_EXPERIMENTS
    from cnnclaims.verdicts import CORRECTIONS

    assert cli.DEFAULT_CALIBRATION_EXPERIMENTS == DEFAULT_EXPERIMENTS
    assert cli.CORRECTIONS == tuple(CORRECTIONS)


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


@pytest.mark.unit
def test_version(capsys):
    import cnnclaims

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"cnnclaims {cnnclaims.__version__}"


@pytest.mark.unit
@pytest.mark.parametrize("command", ["run", "verdicts", "figures", "report", "calibrate", "makespan", "pin", "cache"])
def test_each_command_says_what_it_does(command, capsys):
    """A command's --help opens with a description (argparse prints none without one),
    and the top-level help shows no reStructuredText markup."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert out.split("\n\n")[1].strip()[0].isupper(), out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out


@pytest.mark.unit
def test_makespan_offers_only_the_options_that_apply(capsys):
    with pytest.raises(SystemExit):
        main(["makespan", "--help"])
    out = capsys.readouterr().out
    assert "--profile" in out and "--numerics" in out and "--figure" in out
    for training_only in ("--workers", "--executor", "--retrain", "--time-budget", "--ray-address"):
        assert training_only not in out, training_only


@pytest.mark.unit
def test_the_public_api_lists_what_it_exports():
    import cnnclaims

    assert all(hasattr(cnnclaims, name) for name in cnnclaims.__all__)
    assert {"Claim", "Experiment", "parametrize_claims", "ClaimKind"} <= set(cnnclaims.__all__)


def test_verdicts_says_the_profile_pins_and_that_smoke_checks_the_plumbing(synthetic_exp, monkeypatch, capsys):
    """`verdicts --profile smoke` printed the bare table: no profile, no pin key and no
    plumbing warning, which pytest's table and the report both give (a fresh user)."""
    import cnnclaims.__main__ as cli

    monkeypatch.setattr(cli, "_experiment", lambda args, progress=None: synthetic_exp)
    monkeypatch.setenv("COLUMNS", "100")
    assert cli.main(["verdicts", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"profile smoke, data: synthetic random images, pin key {synthetic_exp.pin_key}")
    assert "the smoke profile checks the plumbing" in out and "claim " in out
    assert max(len(line) for line in out.splitlines()) <= 100, max(out.splitlines(), key=len)
