"""Figures: the experiment's own (the article declares its Figures 1-8, see
``cnnclaims.article.article_figures``), plus what papers lack (every claim over all
probe-class images and all seeds with CIs, and the null control)."""

from __future__ import annotations

import io
from pathlib import Path

from .diagnostics import claim_plots


def model_summary(model) -> str:
    buf = io.StringIO()
    model.summary(print_fn=lambda line, *a, **k: buf.write(line + "\n"))
    return buf.getvalue()


def make_figures(exp, folder, progress=print) -> dict:
    """All figures; returns claim id -> [paths] and "other" -> [paths].

    The experiment's own figures come from ``Experiment.figures``, a function
    ``(run, folder, progress) -> {name: (path, claim ids)}``, when it declares one."""
    folder = Path(folder)
    by_claim: dict = {}
    other = []
    own = exp.experiment.figures
    for _name, (path, claim_ids) in (own(exp, folder, progress) if own else {}).items():
        for cid in claim_ids:
            by_claim.setdefault(cid, []).append(path)
        if not claim_ids:
            other.append(path)
    for v in exp.verdicts:
        if v.scope != "probe":
            by_claim.setdefault(v.claim, []).extend(claim_plots(exp, v, folder))
    progress("cnnclaims figures: claims over all probe-class images and seeds written")
    for v in exp.null_verdicts:
        if v.scope == "seeds":
            other.extend(claim_plots(exp, v, folder))
    progress(
        f"cnnclaims figures: null control written; {sum(map(len, by_claim.values())) + len(other)} figures in {folder}"
    )
    by_claim["other"] = other
    return by_claim
