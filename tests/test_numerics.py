"""Portable numerics: the settings, their errors, and the two portability checks.

The two checks (marker ``portability``) compare digests of the project's own training
and slicing with digests recorded in ``cnnclaims.portability.REFERENCE``: they fail
wherever numerics are not portable. Each is shown to fail in a fresh process under
native numerics on a CPU whose native kernels differ (``test_*_fails_under_native``)."""

import os
import platform
import subprocess
import sys

import pytest

from cnnclaims import compat, numerics, portability

# --- the settings ------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    """An environment without kernel variables or a mode; TensorFlow hidden from
    sys.modules (it is imported in this process) where a test says so."""
    for name in (*numerics.KERNEL_VARIABLES, numerics.ENV_NUMERICS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _no_tensorflow(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)


def test_portable_is_the_default_and_sets_the_variables(clean_env):
    _no_tensorflow(clean_env)
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("portable numerics need x86-64")
    assert numerics.apply() == "portable"
    assert {k: os.environ[k] for k in numerics.PORTABLE_SETTINGS} == numerics.PORTABLE_SETTINGS
    assert os.environ[numerics.ENV_NUMERICS] == "portable"  # children agree


def test_native_changes_nothing_and_keeps_the_users_settings(clean_env):
    clean_env.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert numerics.apply("native") == "native"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0" and "ONEDNN_MAX_CPU_ISA" not in os.environ
    fp = numerics.fingerprint("2.21.0", False)
    assert fp["mode"] == "native" and fp["settings"] == {"TF_ENABLE_ONEDNN_OPTS": "0"} and fp["cpu"]
    assert numerics.tag(fp).startswith("native-")
    clean_env.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert numerics.tag(numerics.fingerprint("2.21.0", True)) != numerics.tag(fp)  # recorded: another key


@pytest.mark.parametrize(
    "name, value",
    [("TF_ENABLE_ONEDNN_OPTS", "0"), ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"), ("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")],
)
def test_a_contradicting_user_setting_is_one_clear_error_never_overridden(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(
        numerics.NumericsError,
        match=rf"\${name}={value} contradicts portable numerics.*unset "
        rf"{name}, or run with --numerics native",
    ):
        numerics.apply("portable")
    assert os.environ[name] == value


def test_the_portable_values_set_by_the_user_are_fine(clean_env):
    _no_tensorflow(clean_env)
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("portable numerics need x86-64")
    clean_env.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert numerics.apply("portable") == "portable"


def test_an_unknown_mode_names_the_value_and_the_modes(clean_env):
    with pytest.raises(numerics.NumericsError, match="--numerics 'fast' is not a numerics mode; choose portable"):
        numerics.apply("fast")
    clean_env.setenv(numerics.ENV_NUMERICS, "exact")
    with pytest.raises(numerics.NumericsError, match=r"\$CNNCLAIMS_NUMERICS 'exact'"):
        numerics.mode()


def test_a_cpu_without_avx2_or_not_x86_is_refused_with_the_way_out(clean_env):
    clean_env.setattr(numerics, "cpu_flags", lambda: ("sse4_1", "sse4_2", "avx"))
    with pytest.raises(numerics.NumericsError, match="this CPU lacks avx2, fma; use --numerics native"):
        numerics.apply("portable")
    clean_env.setattr(numerics.platform, "machine", lambda: "aarch64")
    with pytest.raises(numerics.NumericsError, match="this machine is aarch64. Use --numerics native"):
        numerics.apply("portable")


def test_tensorflow_imported_before_the_settings_is_refused(clean_env):
    assert "tensorflow" in sys.modules  # imported by cnnclaims.compat above
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("portable numerics need x86-64")
    with pytest.raises(numerics.NumericsError, match="TensorFlow was imported before cnnclaims"):
        numerics.apply("portable")


def test_the_fingerprint_is_in_every_key_record_and_pins_key():
    v = compat.versions()
    assert v["numerics"] == compat.NUMERICS and v["numerics"]["mode"] in numerics.MODES
    assert compat.version_family().endswith("-" + numerics.tag(compat.NUMERICS))
    if compat.NUMERICS["mode"] == "portable":
        assert compat.NUMERICS["settings"] == numerics.PORTABLE_SETTINGS and compat.NUMERICS["onednn_opts"]
        assert compat.NUMERICS["isa_cap"] == "AVX2" and "cpu" not in compat.NUMERICS  # the same on every CPU


def test_training_refuses_settings_changed_after_tensorflow_started(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    with pytest.raises(RuntimeError, match="kernel settings changed after TensorFlow started"):
        compat.check_numerics()


def test_the_option_is_in_the_one_table_and_checked_for_both_front_ends():
    from cnnclaims.options import BY_FLAG

    opt = BY_FLAG["--numerics"]
    assert opt.env == numerics.ENV_NUMERICS and opt.choices == numerics.MODES and set(opt.fronts) == {"pytest", "cli"}


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_the_onednn_table_matches_this_tensorflow():
    """ONEDNN_BY_TENSORFLOW names the oneDNN of the installed TensorFlow (read from
    ONEDNN_VERBOSE in a fresh process)."""
    from cnnclaims.portability import onednn_version

    seen = onednn_version()
    assert seen is not None, "ONEDNN_VERBOSE printed no version"
    assert numerics.ONEDNN_BY_TENSORFLOW.get(compat.tf.__version__) == seen, (
        f"tensorflow {compat.tf.__version__} bundles oneDNN {seen}: add it to numerics.ONEDNN_BY_TENSORFLOW"
    )


# --- the two portability checks -------------------------------------------------------


@pytest.mark.portability
def test_training_through_the_project_gives_the_recorded_weights():
    """The probe's model trained by training.fit: bit-identical to the digest machine A
    printed (tf2.21-keras3.15), and to the recorded one of every other family."""
    got, _ = portability.train_digest()
    want = portability.expected("train")
    assert got == want, portability.mismatch_text("train", got, want)


@pytest.mark.portability
def test_slicing_gives_the_recorded_activations_and_softmax():
    got = portability.forward_digest()
    want = portability.expected("forward")
    assert got == want, portability.mismatch_text("forward", got, want)


def _fresh(test: str, *args, **env) -> subprocess.CompletedProcess:
    """Run one of the two checks above in a fresh pytest process with ``env``."""
    full = {**os.environ, **env}
    for name in (*numerics.KERNEL_VARIABLES, numerics.ENV_NUMERICS):
        if name not in env:
            full.pop(name, None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            *args,
            f"{__file__}::{test}",
        ],
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _native_differs() -> bool:
    flags = numerics.cpu_flags() or ()
    # TensorFlow's native kernels here are not the AVX2 ones: AVX-512 kernels (and the
    # custom operations on by default with VNNI/BF16/AMX).
    return "avx512f" in flags


@pytest.mark.portability
@pytest.mark.parametrize(
    "test, how",
    [
        ("test_training_through_the_project_gives_the_recorded_weights", "option"),
        ("test_slicing_gives_the_recorded_activations_and_softmax", "variable"),
    ],
)
def test_each_check_fails_under_native_numerics_where_native_kernels_differ(test, how):
    if not _native_differs():
        pytest.skip("this CPU's native kernels are the portable ones (no AVX-512): native cannot differ here")
    r = _fresh(test, "--numerics=native") if how == "option" else _fresh(test, CNNCLAIMS_NUMERICS="native")
    assert r.returncode == 1 and "native numerics run this CPU's own kernels" in r.stdout, r.stdout + r.stderr


@pytest.mark.portability
def test_the_training_check_fails_with_the_isa_cap_removed():
    """Native numerics with the custom operations on and no ISA cap: AVX-512 kernels."""
    if not _native_differs():
        pytest.skip("no AVX-512 here: without the cap oneDNN would still pick AVX2")
    r = _fresh(
        "test_training_through_the_project_gives_the_recorded_weights",
        CNNCLAIMS_NUMERICS="native",
        TF_ENABLE_ONEDNN_OPTS="1",
    )
    assert r.returncode == 1 and f"differs from the {portability.expected('train')}" in r.stdout, r.stdout + r.stderr


@pytest.mark.portability
def test_a_contradicting_variable_stops_pytest_once_before_any_test():
    r = _fresh("test_the_option_is_in_the_one_table_and_checked_for_both_front_ends", TF_ENABLE_ONEDNN_OPTS="0")
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage error
    assert "cnnclaims: $TF_ENABLE_ONEDNN_OPTS=0 contradicts portable numerics" in r.stderr
    assert "passed" not in r.stdout


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_the_numerics_command_prints_the_fingerprint_and_the_probe(capsys):
    from cnnclaims.__main__ import main

    status = main(["numerics"])
    out = capsys.readouterr().out
    assert f"numerics: {compat.NUMERICS['mode']}  pins key family: {compat.version_family()}" in out
    assert "fingerprint: {" in out and "probe train: " in out and "probe forward: " in out
    assert (status == 0) == (out.count("matches the recorded digest") == 2)
