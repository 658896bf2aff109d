"""Command line:
``python -m cnnclaims {run,verdicts,figures,report,calibrate,pin,makespan,cache,numerics} [options]``."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

from .errors import CnnClaimsError

# Options that do not apply to a command that trains nothing (makespan reads the
# cache's records; the numerics stay: they are part of every model's key).
# calibrate's defaults, spelled here so that building the parser imports no scipy
# (tests/test_cli.py checks them against calibration.DEFAULT_EXPERIMENTS and
# verdicts.CORRECTIONS).
DEFAULT_CALIBRATION_EXPERIMENTS = 800
CORRECTIONS = ("step-down", "holm-per-family", "none")
TRAINING_ONLY = ("--retrain", "--workers", "--executor", "--ray-address", "--time-budget", "--probe-index")


def _common(p, skip=()):
    from .options import add_to_argparse

    add_to_argparse(p, skip)  # the same table as pytest's (cnnclaims.options)


def _at_least(lowest: int):
    """An argparse type: an integer >= ``lowest`` (argparse names the option on error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {value}")
        return value

    return parse


def _experiment(args, progress=None):
    from .options import BY_FLAG
    from .run import Run

    run = Run.from_options(
        lambda flag: getattr(args, BY_FLAG[flag].dest, None), progress=progress or functools.partial(print, flush=True)
    )
    run.check(data=False)  # the declaration's mistakes (a builder, a layer path) before any training
    return run


def cmd_run(args):
    """Train (or load) the models of conditions a and b; print accuracies and the probe's top-3."""
    import numpy as np

    from .activations import layer_activations
    from .evidence import output_layer

    exp = _experiment(args)
    classes = exp.experiment.classes
    t0 = time.perf_counter()
    print(f"data: {exp.data.source} (fingerprint {exp.data.fingerprint})")
    print(f"probe: test image {exp.probe_index} (class {exp.experiment.probe.class_name})")
    print(f"early stopping: {exp.experiment.early_stopping.describe()}")
    roles = exp.roles if args.all else (exp.a, exp.b)
    exp.train(exp.plan_roles if args.all else roles, first_only=not args.all)
    for role in roles:
        models = exp.models(role) if args.all else [exp.first_model(role)]
        for t in models:
            out = output_layer(exp.experiment, t.model)
            p = layer_activations(t.model, exp.probe_image, [out], feed=exp.experiment.feed)[out][0]
            top = np.argsort(p)[::-1][:3]
            print(
                f"{role:9s} seed {t.spec.seed:4d}: {t.spec.n_train} images, {t.record['epochs']} epochs, "
                f"test accuracy {t.test_accuracy:.4f}; probe top-3: "
                + ", ".join(f"{classes[k]} {p[k]:.3f}" for k in top)
            )
    if args.all and exp.profile.sizes:
        for n, models in exp.sweep_models().items():
            print(
                f"sizes {n:>6} images: test accuracy "
                + ", ".join(
                    f"s{t.spec.seed} {t.test_accuracy:.4f}{'' if t.spec.role == 'sizes' else f' ({t.spec.role})'}"
                    for t in models
                )
            )
    print(f"done in {time.perf_counter() - t0:.1f}s (cache: {exp.cache_dir})")


def cmd_verdicts(args):
    from . import pinned
    from .formatting import terminal_width, wrapped
    from .locations import pins_path_for
    from .report import verdict_table_text
    from .summary import plumbing_line, profile_line

    exp = _experiment(args)
    # The pins the test suite compares with, so the pin column reads as under pytest.
    path = pins_path_for(exp.experiment, getattr(args, "pinned_verdicts", None))
    doc = pinned.load(path)
    entry = pinned.entry(doc, exp.pin_key) or {}
    width = terminal_width()
    # What pytest's table says above it: the profile, data and pins, and that a smoke
    # profile checks the plumbing (a fresh user found neither here). The verdicts come
    # first: they load the models whose accuracies the plumbing line gives, if any.
    verdicts = exp.verdicts
    plumbing = plumbing_line(exp.profile.name, exp.records())
    for line in [profile_line(exp.profile.name, exp.data.source, exp.pin_key, path)] + ([plumbing] if plumbing else []):
        print("\n".join(wrapped(line, width)))
    print(
        verdict_table_text(
            verdicts,
            exp.null_verdicts,
            entry.get("verdicts", {}),
            entry.get("null_control", {}),
            full=args.table == "full",
            width=width,
        )
    )


def cmd_figures(args):
    from .figures import make_figures

    exp = _experiment(args)
    figs = make_figures(exp, Path(args.out), progress=functools.partial(print, flush=True))
    print(f"{sum(map(len, figs.values()))} figures in {args.out}")


def cmd_report(args):
    from .report import write_report

    exp = _experiment(args)
    html, md = write_report(
        exp, Path(args.out), progress=functools.partial(print, flush=True), calibrate=args.calibrate
    )
    print(f"report: {html}\nmarkdown: {md}")


def cmd_calibrate(args):
    """Simulate every inferential scope with the trained models' numbers; exit 1 when a
    family's rate of any wrong verdict has a CI above alpha."""
    import json

    from .calibration import exceeds_alpha, format_calibration, format_null_splits

    exp = _experiment(args)
    t0 = time.perf_counter()
    res = exp.calibration(args.experiments, args.seed, correction=args.correction)
    print(format_calibration(res))
    print(format_null_splits(exp.null_splits) if exp.null_splits else "no null splits: fewer than 4 same-size models")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"calibration": res, "null_splits": exp.null_splits}, indent=2, default=str) + "\n")
    print(f"written to {out} in {time.perf_counter() - t0:.0f}s")
    bad = exceeds_alpha(res)
    if bad:
        print(
            f"error: the rate of any wrong verdict has a 95% CI above alpha for (scope/family/condition): "
            f"{', '.join(bad)}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_makespan(args):
    """Print the simulated makespan of the profile's plans on 1-256 workers from the
    cache's recorded training times (trains nothing; a profile with a sizes sweep reads
    the data to know which sweep models are new)."""
    from . import plots
    from .makespan import makespan_figure, markdown, run_plans
    from .training.progress import recorded

    exp = _experiment(args)
    records = recorded(exp.cache_dir)
    print(f"{len(records)} recorded models in {exp.cache_dir / 'models'}")
    plans = run_plans(exp, records)  # ValueError (one line, status 2) when no record predicts a size
    print(markdown(plans))
    if args.figure:
        print(f"figure: {plots.save(makespan_figure(plans), args.figure)}")
    return 0


def cmd_pin(args):
    from . import pinned
    from .locations import pins_path_for
    from .report import verdict_table_text

    exp = _experiment(args)
    path = pins_path_for(exp.experiment, explicit=args.file)
    key = exp.pin_key
    pinned.write_entry(path, key, exp.verdicts, exp.null_verdicts, exp.profile, exp.data.source)
    print(verdict_table_text(exp.verdicts, exp.null_verdicts))
    print(
        f"pinned {len(exp.verdicts)} verdicts and {len(exp.null_verdicts)} null-control verdicts "
        f"under [{key}] in {path}; review the diff before committing"
    )


def cmd_cache(args):
    """The cache: list, verify, prune, key, reproduce (see ``inventory`` and ``reproduce``)."""
    from . import inventory
    from .cache import ENV_CACHE, default_cache_dir

    folder = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    named = args.cache_dir or os.environ.get(ENV_CACHE)
    if args.action in ("list", "verify", "prune") and named and not folder.is_dir():
        # A misspelled folder is not an empty cache: "0 of 0 entries intact" passed.
        raise ValueError(
            f"no cache folder at {folder} (named by {'--cache-dir' if args.cache_dir else '$' + ENV_CACHE})"
            f": nothing to {args.action}; check the path (the default is {default_cache_dir()})"
        )
    if args.action == "list":
        print(inventory.listing(folder))
        return 0
    if args.action == "verify":
        problems = inventory.verify(folder)
        n = len(inventory.model_entries(folder)) + len(inventory.result_files(folder))
        for p in problems:
            print(f"DAMAGED: {p}")
        print(f"{n - len(problems)} of {n} entries and result files in {folder} intact")
        return 1 if problems else 0
    if args.action == "prune":
        gone = inventory.prune(folder, args.older_than, args.match, args.other_versions, args.damaged, args.dry_run)
        for g in gone:
            print(f"{'would remove' if args.dry_run else 'removed'} {g}")
        print(f"{len(gone)} model entries {'would be ' if args.dry_run else ''}removed from {folder}")
        return 0
    if args.action == "key":
        # Only the key on stdout (a CI step reads it: `echo "key=$(...)" >> $GITHUB_OUTPUT`);
        # decoding the data on a cold runner says so on stderr.
        exp = _experiment(args, progress=functools.partial(print, file=sys.stderr, flush=True))
        print(inventory.plan_key(exp))
        return 0
    from . import reproduce

    if not inventory.model_entries(folder):  # nothing to compare: no data to decode either
        print(
            f"nothing compared: {folder} holds no model (a cold cache proves nothing and disproves nothing; to "
            f"check it, train the plan first: python -m cnnclaims run --all --profile "
            f"{args.profile or 'PROFILE'})"
        )
        return 0
    exp = _experiment(args)

    progress = functools.partial(print, flush=True)
    specs = reproduce.sample(exp, args.groups or None, prefer_cached=True)
    absent = reproduce.missing(exp, specs)
    rows = reproduce.damaged(exp, specs) + absent  # neither is retrained: nothing to compare with
    cached = [s for s in specs if reproduce.is_cached(exp, s)]
    if cached:
        plan = reproduce.choose(
            exp, cached, None if args.time_budget is None else args.time_budget * 60, _workers(args), progress
        )
        rows = reproduce.reproduce(exp, plan, args.workers, progress) + rows
    print(reproduce.table(rows))
    code, message = reproduce.outcome(rows, exp.cache_dir, reproduce.train_hint(exp))
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def _workers(args) -> int:
    from .training.executors.local import default_workers

    return default_workers(args.workers)


def cmd_numerics(args):
    """Print this process's numerics fingerprint and run the portability probe."""
    import json

    from . import numerics, portability
    from .compat import NUMERICS, base_family, version_family

    print(f"numerics: {NUMERICS['mode']}  pins key family: {version_family()}")
    print(f"fingerprint: {json.dumps(NUMERICS, sort_keys=True)}")
    print(f"cpu: {' '.join(numerics.cpu_flags() or ('unknown',))}  caches: {numerics.cpu_caches()}")
    seen = portability.onednn_version()
    print(f"oneDNN: {seen or 'not reported'} (recorded for this TensorFlow: {NUMERICS['onednn']})")
    digest, seconds = portability.train_digest()
    forward = portability.forward_digest()
    status = 0
    for kind, got in (("train", digest), ("forward", forward)):
        want = portability.expected(kind)
        same = got == want
        status |= not same
        print(
            f"probe {kind}: {got}  "
            + ("matches the recorded digest" if same else portability.mismatch_text(kind, got, want))
        )
    print(f"probe training: one epoch of {portability.N_IMAGES} images in {seconds:.1f}s ({base_family()})")
    if args.settings:
        print(
            "\nthe probe under each candidate setting (fresh processes; markdown rows for "
            "../shared/reference/numerics_reference.md):"
        )
        for row in portability.settings_table():
            print(row)
    return status


def _add(sub, name: str, helptext: str, **kw) -> argparse.ArgumentParser:
    """A subcommand whose --help starts with what it does (its help line, as a sentence)."""
    kw.setdefault("description", helptext[0].upper() + helptext[1:] + ".")
    return sub.add_parser(name, help=helptext, **kw)


def main(argv=None):
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="python -m cnnclaims",
        description="The claims of a declared Keras experiment (default: the article) as statistical tests: "
        "train or load its models, print verdicts, figures and a report, pin verdicts, and manage the model cache. "
        "Each command's --help lists its options.",
    )
    parser.add_argument("--version", action="version", version=f"cnnclaims {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = _add(sub, "run", "train/load the models of both conditions; print accuracies and probe top-3")
    _common(p)
    p.add_argument("--all", action="store_true", help="every seed, the null control's and the sizes sweep's models too")
    p.set_defaults(func=cmd_run)
    p = _add(sub, "verdicts", "print the verdict table")
    _common(p)
    p.add_argument(
        "--table",
        choices=("compact", "full"),
        default="compact",
        help="compact (about 110 columns, the default) or full (every statistic)",
    )
    p.set_defaults(func=cmd_verdicts)
    for name, func, default, helptext in (
        ("figures", cmd_figures, "build/figures", "regenerate the article's Figures 1-8 and the claim figures"),
        ("report", cmd_report, "build/report", "write the HTML and Markdown report"),
    ):
        p = _add(sub, name, helptext)
        _common(p)
        p.add_argument("--out", default=default, help=f"output folder (default: {default})")
        if name == "report":
            p.add_argument(
                "--calibrate",
                action="store_true",
                help="compute the design calibration if it is not stored (minutes; default: show the stored one, "
                "or say how to compute it: python -m cnnclaims calibrate)",
            )
        p.set_defaults(func=func)
    p = _add(
        sub,
        "calibrate",
        "every inferential scope's rate of any wrong verdict (per family, under null, partial-null and "
        "mixed truths) and each claim's power, by simulation; and the null splits of real models",
    )
    _common(p)
    p.add_argument(
        "--experiments",
        type=_at_least(1),
        default=None,
        help=f"simulated experiments per condition and scope (default {DEFAULT_CALIBRATION_EXPERIMENTS})",
    )
    p.add_argument(
        "--correction",
        choices=CORRECTIONS,
        default="step-down",
        help="the family's multiplicity procedure (default step-down, the verdicts'; holm-per-family is the "
        "pipeline before it, two separate Holm families, which the check shows failing)",
    )
    p.add_argument("--seed", type=_at_least(0), default=None, help="random seed of the simulation (default fixed)")
    p.add_argument("--out", default="build/artifacts/calibration.json", help="JSON output")
    p.set_defaults(func=cmd_calibrate)
    p = _add(
        sub,
        "makespan",
        "simulated makespan of the profile's models on 1-256 workers, from the cache's recorded training times",
    )
    _common(p, skip=TRAINING_ONLY)
    p.add_argument("--figure", default=None, help="also write the plot as a PNG to this path")
    p.set_defaults(func=cmd_makespan)
    p = _add(sub, "pin", "record this run's verdicts as the pinned verdicts for this version family")
    _common(p)
    p.add_argument(
        "--file",
        default=None,
        help="pinned verdicts file (default: the experiment's pins_name beside "
        "the module that declares it, where its test file reads it; for the article, "
        "tests/pinned_verdicts.json under the project's root, the folder of pytest's ini file)",
    )
    p.set_defaults(func=cmd_pin)
    p = _add(
        sub,
        "cache",
        "the cache folder: list, verify, prune, a key for CI caches, and reproduce "
        "(retrain a sample from scratch and compare bit for bit)",
        description=(
            "The model and result cache: each command's --cache-dir PATH, else $CNNCLAIMS_CACHE, else the "
            "user's cache folder ($XDG_CACHE_HOME/cnnclaims or ~/.cache/cnnclaims)."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("list", "every model entry: size, status, versions, numerics"),
        ("verify", "check every entry's record, checksum and model SHA-256; exit 1 if any fails"),
    ):
        q = actions.add_parser(name, help=helptext, description=helptext)
        q.add_argument("--cache-dir", default=None, help="cache folder (default: the user's; also $CNNCLAIMS_CACHE)")
        q.set_defaults(func=cmd_cache)
    q = actions.add_parser(
        "prune",
        help="remove model entries by age, name, other versions or damage",
        description="Remove the model entries every given criterion selects.",
    )
    q.add_argument("--cache-dir", default=None, help="cache folder (default: the user's; also $CNNCLAIMS_CACHE)")
    q.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="trained more than DAYS days ago")
    q.add_argument("--match", default=None, metavar="GLOB", help="entry names matching GLOB, e.g. 'dummy-*'")
    q.add_argument(
        "--other-versions",
        action="store_true",
        help="trained under other library versions or numerics than this environment's",
    )
    q.add_argument("--damaged", action="store_true", help="entries that fail verify")
    q.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    q.set_defaults(func=cmd_cache)
    q = actions.add_parser(
        "key",
        help="one hash of the profile's plan, for a CI system's cache step",
        description="Print a key that changes whenever any model of the plan would change.",
    )
    _common(q)
    q.set_defaults(func=cmd_cache)
    q = actions.add_parser(
        "reproduce",
        help="retrain one model per group from scratch; exit 1 if any differs from the cache",
        description="Retrain a sample (the cheapest model of each group) into a "
        "temporary cache and compare it bit for bit with the cached one.",
    )
    _common(q)
    q.add_argument("--groups", nargs="*", default=None, help="groups to sample (default: every group of the plan)")
    q.set_defaults(func=cmd_cache)
    p = _add(
        sub,
        "numerics",
        "the numerics fingerprint, and the portability probe against the recorded digests (exit 1 if it differs)",
        description="Print the numerics fingerprint and run the portability probe (training and forward digests).",
    )
    p.add_argument(
        "--numerics",
        default=None,
        choices=("portable", "native"),
        help="portable (default) or native (also $CNNCLAIMS_NUMERICS)",
    )
    p.add_argument(
        "--settings",
        action="store_true",
        help="also run the probe under each candidate kernel setting in a fresh process",
    )
    p.set_defaults(func=cmd_numerics)
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except BrokenPipeError:
        # `cache list | head`: the reader left; say nothing more (Python would print a
        # traceback while flushing stdout at exit).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no file (captured): nothing to flush into a closed pipe
            pass
        return 1
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM (training raises it for both after stopping its workers):
        # one line, the shell's exit status for the signal, no traceback.
        why = str(exc) or "cnnclaims: interrupted"
        print(f"{why}; models being trained were abandoned, the cache holds only complete ones", file=sys.stderr)
        return 143 if "SIGTERM" in why else 130


def _main(args):
    try:
        from .numerics import check_options
        from .options import BY_FLAG

        check_options(lambda flag: getattr(args, BY_FLAG[flag].dest, None))
        _check_folders(args)
        return args.func(args) or 0
    except Exception as exc:  # noqa: BLE001 - ours, or a failed write into the cache
        err = _write_failure(args, exc)
        if err is None and not isinstance(exc, (CnnClaimsError, ValueError)):
            raise
        print(f"error: {err or exc}", file=sys.stderr)
        return 2


def _check_folders(args) -> None:
    """A cache or output folder that cannot be created is one line now, not a
    traceback after minutes of decoding (a read-only cache that exists passes)."""
    from .cache import ENV_CACHE, check_folder, default_cache_dir

    given = getattr(args, "cache_dir", None)
    check_folder(Path(given) if given else default_cache_dir(), "--cache-dir", ENV_CACHE)
    out = getattr(args, "out", None)
    if out:
        folder = Path(out).parent if args.command == "calibrate" else Path(out)
        if args.command == "calibrate" and Path(out).is_dir():
            # Found before minutes of simulation, not by the write at the end.
            raise ValueError(f"--out {out} is a folder; calibrate writes a JSON file: pass --out PATH/calibration.json")
        check_folder(folder, "--out", None, "output folder", must_write=True)


def _write_failure(args, exc):
    """``cache.write_failure`` for the cache of ``args``, sized by its plan."""
    from .cache import default_cache_dir, is_no_space, write_failure

    n_models = None
    try:
        if not is_no_space(exc):  # only a full disk's message counts the plan's models
            raise LookupError
        from .declaration import load_experiment

        experiment = load_experiment(getattr(args, "experiment", None))
        n_models = experiment.profile(getattr(args, "profile", None), getattr(args, "seeds", None)).n_models()
    except Exception:  # noqa: BLE001 - a plan that cannot be counted: the message omits it
        pass
    given = getattr(args, "cache_dir", None)
    return write_failure(exc, Path(given) if given else default_cache_dir(), n_models)


if __name__ == "__main__":
    sys.exit(main())
