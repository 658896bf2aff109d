"""How much the verdicts move when early stopping monitors other images than the
article's test set: one profile's verdicts (claims and null control) under the article's
protocol and under another ``EarlyStopping``, per (claim, scope), with each group's test
accuracies, the moved labels marked. A script that prints figures; it asserts nothing.

    python benchmarks/early_stopping.py --data PATH [--profile smoke] [--monitor test-half]
        [--holdout 5000] [--seed 0] [--cache-dir DIR] [--other-cache-dir DIR]

The article's protocol reads (or trains) its models in ``--cache-dir`` (default: the user
cache); the other protocol's models have other keys and are trained, when missing, into
``--other-cache-dir`` (default: a folder under the system's temporary folder, kept
between runs), so that the user cache only gains what a run of the article would put
there. Measured on the smoke profile (README, "Early stopping watches the test set"):
``test-half`` trains 15 models in about 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path


def verdict_rows(run) -> dict:
    """``{"C3/frogs": Verdict, "null:C3/seeds": Verdict, ...}`` of a ``cnnclaims.run.Run``."""
    rows = {f"{v.claim}/{v.scope}": v for v in run.verdicts}
    rows.update({f"null:{v.claim}/{v.scope}": v for v in run.null_verdicts})
    return rows


def cell(v) -> str:
    ci = "" if v.ci_low != v.ci_low else f" [{v.ci_low:.3g}, {v.ci_high:.3g}]"  # NaN: the probe has no CI
    return f"{v.verdict} {v.effect:+.3g}{ci}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("CNNCLAIMS_DATA"), help="CIFAR-10 (default $CNNCLAIMS_DATA)")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--monitor", default="test-half", choices=("test-half", "train-holdout"))
    p.add_argument("--holdout", type=int, default=5000, help="training images held out (train-holdout only)")
    p.add_argument("--seed", type=int, default=0, help="the split's seed")
    p.add_argument("--cache-dir", default=None, help="the article protocol's cache (default: the user cache)")
    p.add_argument(
        "--other-cache-dir",
        default=str(Path(tempfile.gettempdir()) / "cnnclaims-early-stopping"),
        help="the other protocol's cache (default: %(default)s)",
    )
    args = p.parse_args(argv)
    from cnnclaims.numerics import apply

    apply(None)  # $CNNCLAIMS_NUMERICS or portable, before anything imports TensorFlow
    from cnnclaims import EarlyStopping
    from cnnclaims.article import ARTICLE
    from cnnclaims.run import Run

    other = EarlyStopping(args.monitor, holdout=args.holdout if args.monitor == "train-holdout" else 0, seed=args.seed)
    runs = {
        "article (test)": Run(args.profile, args.data, cache_dir=args.cache_dir, experiment=ARTICLE),
        other.tag: Run(
            args.profile, args.data, cache_dir=args.other_cache_dir, experiment=replace(ARTICLE, early_stopping=other)
        ),
    }
    rows = {name: verdict_rows(run) for name, run in runs.items()}
    for name, run in runs.items():
        acc = {role: [round(m.test_accuracy, 4) for m in run.models(role)] for role in run.roles}
        print(
            f"{name}: probe test image {run.probe_index}, {len(run.probe_indices)} probe-class images, accuracy {acc}"
        )
    (base, a), (tag, b) = rows.items()
    moved = [k for k in a if a[k].verdict != b[k].verdict]
    print(f"\n{'case':18} {base:44} {tag}")
    for k in a:
        print(f"{k:18} {cell(a[k]):44} {cell(b[k])}{'  MOVED' if k in moved else ''}")
    print(
        f"\n{len(moved)} of {len(a)} labels moved: {', '.join(f'{k} {a[k].verdict} -> {b[k].verdict}' for k in moved)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
