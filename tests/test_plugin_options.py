"""The plugin's options and default paths as a user meets them: the pytest11 entry
point (options given as ``--opt PATH`` with an existing PATH), defaults that follow
the rootdir rather than the working directory, and the header that says them.
"""

import json
import os
from pathlib import Path

import pytest

# As in test_plugin.py: everything the in-process sessions import, imported once here.
import cnnclaims.diagnostics  # noqa: F401
import cnnclaims.run  # noqa: F401
import cnnclaims.testing  # noqa: F401

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'


# --- the entry point: options with a separate, existing path ---------------------------


@pytest.fixture
def repo_like(pytester, tmp_path_factory):
    """A project laid out like this one (its root conftest, testpaths = tests) and
    existing paths for every path option, outside the project as a shared data copy is."""
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makepyprojecttoml(PYPROJECT)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    out = tmp_path_factory.mktemp("elsewhere")
    paths = {"cache": out / "cache", "data": out / "data", "artifacts": out / "art", "pins": out / "pins.json"}
    paths["cache"].mkdir()
    (paths["data"] / "train").mkdir(parents=True)  # an image-folder tree, as far as the header looks
    paths["artifacts"].mkdir()
    paths["pins"].write_text('{"entries": {}}\n')
    return paths


def _expect_header(result, paths):
    result.stdout.fnmatch_lines(
        [
            f"cnnclaims: cache {paths['cache']}",
            f"cnnclaims: artifacts {paths['artifacts']}",
            f"cnnclaims: pinned verdicts {paths['pins']}",
            f"cnnclaims: data: image folder at {paths['data']}",
        ]
    )


def test_options_with_a_space_and_an_existing_path(pytester, repo_like):
    """``--cache-dir PATH`` with PATH an existing folder: pytest must know the option
    before it decides which arguments are test paths (an entry-point plugin's options
    are; a conftest's are not). The root conftest and the entry point coexist."""
    p = repo_like
    # With the tests named, the space form works; without, pytest may take a path for a
    # test path before it knows the option (see the rootdir test below).
    r = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--collect-only",
        "tests",
        "--cache-dir",
        str(p["cache"]),
        "--data",
        str(p["data"]),
        "--artifacts",
        str(p["artifacts"]),
        "--pinned-verdicts",
        str(p["pins"]),
    )
    assert r.ret == 0, r.stdout.str() + r.stderr.str()
    r.stdout.fnmatch_lines(["*test_x*"])
    _expect_header(r, p)


def test_options_with_equals_and_an_existing_path(pytester, repo_like):
    p = repo_like
    r = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--collect-only",
        f"--cache-dir={p['cache']}",
        f"--data={p['data']}",
        f"--artifacts={p['artifacts']}",
        f"--pinned-verdicts={p['pins']}",
    )
    assert r.ret == 0, r.stdout.str() + r.stderr.str()
    r.stdout.fnmatch_lines(["*test_x*"])
    _expect_header(r, p)


# --- defaults follow the rootdir, not the working directory ---------------------------

WHERE = """
import json


def test_where(run):
    exp = run  # constructed only: nothing is loaded or trained
    with open({out!r}, "w") as fh:
        json.dump({{"cache": str(exp.cache_dir)}}, fh)
"""


@pytest.fixture
def from_subdir(pytester, monkeypatch, cnnclaims_plugin_args):
    """A project whose rootdir holds pyproject.toml, with pytest started from tests/."""
    monkeypatch.delenv("CNNCLAIMS_CACHE", raising=False)
    monkeypatch.delenv("CNNCLAIMS_ARTIFACTS", raising=False)
    monkeypatch.delenv("CNNCLAIMS_DATA", raising=False)
    root = pytester.path
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))  # the default cache: the user's cache folder
    pytester.makepyprojecttoml(PYPROJECT)
    sub = root / "tests"
    sub.mkdir()
    out = root / "where.json"
    (sub / "test_where.py").write_text(WHERE.format(out=str(out)))
    monkeypatch.chdir(sub)

    def run(*args):
        r = pytester.runpytest_inprocess("-p", "no:cacheprovider", *cnnclaims_plugin_args, *args)
        assert r.ret == 0, r.stdout.str()
        return r, json.loads(out.read_text())

    return root, sub, run


def test_defaults_follow_the_rootdir_from_a_subdirectory(from_subdir):
    root, sub, run = from_subdir
    r, where = run()
    assert where["cache"] == str(root / "xdg" / "cnnclaims")  # the user's cache folder, not the checkout's
    r.stdout.fnmatch_lines(
        [
            f"cnnclaims: cache {root / 'xdg' / 'cnnclaims'}",
            f"cnnclaims: artifacts {root / 'build' / 'artifacts'}",
            f"cnnclaims: pinned verdicts {root / 'tests' / 'pinned_verdicts.json'}*",
            "cnnclaims: data: keras.datasets.cifar10*",
        ]
    )
    assert not (sub / "build").exists()


def test_environment_beats_the_defaults_and_options_beat_both(from_subdir, monkeypatch, tmp_path):
    root, sub, run = from_subdir
    monkeypatch.setenv("CNNCLAIMS_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("CNNCLAIMS_ARTIFACTS", str(tmp_path / "env-art"))
    r, where = run()
    assert where["cache"] == str(tmp_path / "env-cache")
    r.stdout.fnmatch_lines(
        [f"cnnclaims: cache {tmp_path / 'env-cache'}", f"cnnclaims: artifacts {tmp_path / 'env-art'}"]
    )
    r, where = run(f"--cache-dir={tmp_path / 'opt-cache'}", "--artifacts", str(tmp_path / "opt-art"))
    assert where["cache"] == str(tmp_path / "opt-cache")
    r.stdout.fnmatch_lines(
        [f"cnnclaims: cache {tmp_path / 'opt-cache'}", f"cnnclaims: artifacts {tmp_path / 'opt-art'}"]
    )


CLAIM_CONFTEST = cnnclaims.testing.INNER_CONFTEST
CLAIM_TESTS = """
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)
"""


@pytest.fixture
def synthetic(synthetic_exp):
    cnnclaims.testing.SHARED["experiment"] = synthetic_exp
    yield
    cnnclaims.testing.SHARED.clear()


def test_artifacts_land_under_the_rootdir_from_a_subdirectory(pytester, monkeypatch, synthetic, cnnclaims_plugin_args):
    monkeypatch.delenv("CNNCLAIMS_ARTIFACTS", raising=False)
    root = pytester.path
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))  # the default cache: the user's cache folder
    pytester.makepyprojecttoml(PYPROJECT)
    sub = root / "tests"
    sub.mkdir()
    (sub / "conftest.py").write_text(CLAIM_CONFTEST)
    (sub / "test_inner.py").write_text(CLAIM_TESTS)
    pins = root / "pins.json"  # explicit: the default would be the project's own pins
    monkeypatch.chdir(sub)
    r = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *cnnclaims_plugin_args,
        "--profile",
        "smoke",
        "--pinned-verdicts",
        str(pins),
        "--plots=always",
        "-k",
        "C3-last-layer-sparsity-frogs",
    )
    r.assert_outcomes(failed=1)  # no pins yet: recorded, asking for review
    r.stdout.fnmatch_lines(["*no pinned verdict for C3/frogs*"])
    art = root / "build" / "artifacts"
    doc = json.loads((art / "verdicts.json").read_text())
    assert [(v["claim"], v["scope"]) for v in doc["verdicts"]] == [("C3", "frogs")]
    assert list((art / "plots").glob("C3-*-frogs*.png"))
    r.stdout.fnmatch_lines([f"verdict JSON: {art / 'verdicts.json'}"])
    assert not (sub / "build").exists()


@pytest.mark.parametrize(
    "args,env,expected",
    [
        (["--probe-index", "abc"], {}, "--probe-index / $CNNCLAIMS_PROBE 'abc' is not an integer"),
        (["--probe-index=-1"], {}, "--probe-index / $CNNCLAIMS_PROBE -1 is negative"),
        (["--workers", "0"], {}, "--workers must be at least 1, got 0"),
        ([], {"CNNCLAIMS_WORKERS": "abc"}, "$CNNCLAIMS_WORKERS='abc' is not a positive number"),
        (["--seeds", "0"], {}, "--seeds must be at least 1"),
        # The profile is checked against the experiment's declaration: TensorFlow is imported.
        pytest.param(["--profile", "huge"], {}, "unknown profile 'huge'", marks=pytest.mark.integration),
    ],
)
def test_bad_values_are_one_usage_error_at_start(pytester, monkeypatch, args, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in r.stderr.str() and "test_x" not in r.stdout.str()


def test_a_path_option_with_a_space_that_moves_the_rootdir_is_one_usage_error(pytester, monkeypatch):
    # README's setup: the data beside the checkout. pytest reads paths before plugins:
    # `pytest --data ../shared/data` made the data's parent the rootdir (no testpaths,
    # examples/ collected, a confusing "two experiments" error). Now one clear line.
    proj = pytester.path / "main"
    (proj / "tests").mkdir(parents=True)
    (proj / "pyproject.toml").write_text(PYPROJECT)
    (proj / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    (pytester.path / "shared" / "data" / "train").mkdir(parents=True)
    monkeypatch.chdir(proj)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "--data", "../shared/data")
    text = r.stdout.str() + r.stderr.str()
    if r.ret == 0:  # this pytest found the ini file anyway: nothing to refuse
        assert "test_x" in text
        return
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "Write --data=../shared/data (with '=')" in text


def test_the_plugin_does_not_start_tensorflow_in_a_project_that_does_not_use_it(tmp_path, cnnclaims_plugin_args):
    """Checking the options at start imported cnnclaims.compat (for one env-variable
    helper), which imports TensorFlow: a one-test project elsewhere took 13.8 s instead
    of 2.1 (issue 22, 1). Measured after the fix on machine D: 1.16 s vs 1.00 s with
    -p no:cnnclaims."""
    import subprocess
    import sys

    (tmp_path / "test_x.py").write_text("def test_x():\n    assert 1\n")
    code = (
        f"import sys, pytest; pytest.main(['-q', '-p', 'no:cacheprovider', *{cnnclaims_plugin_args!r}, "
        "'test_x.py']); print('PLUGIN', 'cnnclaims.pytest_plugin' in sys.modules, 'TF', 'tensorflow' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNCLAIMS_")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert "1 passed" in out.stdout, out.stdout + out.stderr
    assert "PLUGIN True TF False" in out.stdout, out.stdout  # the plugin ran, and TensorFlow stayed out
    # ... and said nothing there (issue 22, 1: its cache and data lines were printed into
    # any project that had it installed)
    assert "cnnclaims" not in out.stdout.replace("cnnclaims.pytest_plugin", ""), out.stdout


def test_a_session_that_uses_cnnclaims_hears_where_its_files_are(pytester, monkeypatch, cnnclaims_plugin_args):
    """The where-lines come back once a test asks for a cnnclaims fixture (or an option
    or a $CNNCLAIMS_ variable is given): the check above cannot pass by printing nothing."""
    for name in [k for k in os.environ if k.startswith("CNNCLAIMS_")]:
        monkeypatch.delenv(name)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", *cnnclaims_plugin_args, "--collect-only")
    assert "cnnclaims: cache" not in r.stdout.str()
    pytester.makepyfile(test_y="def test_y(run):\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", *cnnclaims_plugin_args, "--collect-only")
    r.stdout.fnmatch_lines(["cnnclaims: cache *", "cnnclaims: data: *"])


def test_no_cnnclaims_disables_it_in_this_checkout_too():
    """``-p no:cnnclaims`` in this repository: the root conftest no longer loads the plugin
    from src/ behind the option's back (issue 22, 1)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cnnclaims", "-p", "no:cacheprovider", "--help"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "cnnclaims" not in out.stdout.lower(), out.stdout


@pytest.mark.integration  # trains or runs TensorFlow sessions: minutes on 2 cores
def test_options_are_prefixed_and_the_old_names_are_deprecated_aliases(pytester, monkeypatch, cnnclaims_plugin_args):
    """``--cnnclaims-NAME`` is the option (no clash with another plugin's ``--profile``);
    the old short name still sets it, with one deprecation warning naming the new
    spelling (issue 22, item 2)."""
    for name in [k for k in os.environ if k.startswith("CNNCLAIMS_")]:
        monkeypatch.delenv(name)
    pytester.makepyfile(
        test_x="def test_x(request):\n    print('PROFILE', request.config.getoption('cnnclaims_profile'))\n"
    )
    new = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *cnnclaims_plugin_args, "-s", "--cnnclaims-profile", "smoke"
    )
    new.stdout.fnmatch_lines(["*PROFILE smoke*"])
    assert "is deprecated" not in new.stdout.str()
    old = pytester.runpytest_subprocess("-p", "no:cacheprovider", *cnnclaims_plugin_args, "-s", "--profile=smoke")
    old.stdout.fnmatch_lines(["*PROFILE smoke*", "*--profile is deprecated*write --cnnclaims-profile*"])
    help_text = pytester.runpytest_subprocess(*cnnclaims_plugin_args, "--help").stdout.str()
    assert "--cnnclaims-profile" in help_text and "--cnnclaims-cache-dir" in help_text


def test_an_alias_another_plugin_took_is_left_to_it(pytester, cnnclaims_plugin_args):
    """A conftest that registers ``--workers`` (as pytest-parallel does) keeps it: no
    clash at start-up, and cnnclaims's option is still there under its own name."""
    pytester.makeconftest(
        "def pytest_addoption(parser):\n    parser.addoption('--workers', dest='other_workers', default='theirs')\n"
    )
    pytester.makepyfile(
        test_x="def test_x(request):\n"
        "    print('WORKERS', request.config.getoption('other_workers'), "
        "request.config.getoption('cnnclaims_workers'))\n"
    )
    r = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *cnnclaims_plugin_args, "-s", "--cnnclaims-workers", "2"
    )
    assert r.ret == 0, r.stdout.str() + r.stderr.str()
    r.stdout.fnmatch_lines(["*WORKERS theirs 2*"])
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", *cnnclaims_plugin_args, "-s", "--workers", "5")
    r.stdout.fnmatch_lines(["*WORKERS 5 None*"])  # theirs: not taken for cnnclaims's old spelling
    assert "is deprecated" not in r.stdout.str()


def test_a_test_marked_unit_and_another_tier_is_one_usage_error(pytester):
    """`-m unit` selects a test marked unit anywhere, a module's pytestmark included:
    twelve tests moved to the integration tier still ran in the unit tier (2 of its 6
    minutes). Both marks on one test now stop the session, naming it; one mark runs."""
    pytester.makepyfile(
        test_x=(
            "import pytest\n"
            "pytestmark = pytest.mark.unit\n\n"
            "@pytest.mark.integration\n"
            "def test_both():\n    pass\n\n"
            "def test_unit():\n    pass\n"
        )
    )
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "unit")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "1 test(s) marked unit and another tier: test_x.py::test_both (integration)" in r.stderr.str()
    pytester.makepyfile(
        test_x="import pytest\n\n@pytest.mark.integration\ndef test_both():\n    pass\n\ndef test_unit():\n    pass\n"
    )
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "unit")
    r.assert_outcomes(passed=1, deselected=1)
