"""Plot functions: arrays in, a matplotlib Figure out (Agg, no display).

Each function is usable outside pytest; ``save`` writes a Figure as PNG and closes it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display, ever: tests and CI are headless
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402  (makespan_plot's axis labels)
import numpy as np  # noqa: E402

__all__ = [
    "COLOURS",
    "DPI",
    "entropy_bars",
    "feature_map_grid",
    "feature_maps_side_by_side",
    "fitted",
    "forest_plot",
    "makespan_plot",
    "paired_distributions",
    "PALETTE",
    "save",
    "seed_points",
    "show_image",
    "size_trend",
    "softmax_bars",
    "text_figure",
    "value_histograms",
    "VERDICT_COLOURS",
]

# Panel colours by position (condition a, condition b, the null group), so any
# experiment's names get the same scheme.
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
COLOURS = {"null": "tab:green"}
DPI = 100


# The PNG text chunk that holds a figure's caption (``save``, ``caption_of``).
CAPTION_KEY = "Description"


def save(fig, path, caption: str | None = None) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made) and close it; returns ``path``.

    ``caption``: what the figure shows, in words, stored in the PNG's ``Description``
    text chunk, which the report reads as the figure's caption (``caption_of``);
    default the figure's title (its suptitle, else its first axes' title), its lines
    joined by "; ". The PNG is ``figsize x DPI`` pixels: titles are wrapped to fit (``fitted``)
    where they are set."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = caption if caption is not None else _title_of(fig)
    # A title's lines are its parts ("Fig. 2: conv2d_1, dummy" / "probe frog ..."): one line, "; " between.
    metadata = (
        {CAPTION_KEY: "; ".join(" ".join(ln.split()) for ln in text.splitlines() if ln.strip())} if text else None
    )
    fig.savefig(path, dpi=DPI, metadata=metadata)
    plt.close(fig)
    return path


def _title_of(fig) -> str:
    sup = fig.get_suptitle()
    if sup:
        return sup
    return next((ax.get_title() for ax in fig.axes if ax.get_title()), "")


def caption_of(path) -> str | None:
    """The caption ``save`` stored in the PNG at ``path`` (None: none stored, as in a
    PNG written elsewhere or before captions were stored)."""
    from PIL import Image

    with Image.open(path) as im:
        text = getattr(im, "text", {}).get(CAPTION_KEY)  # PNG text chunks (PIL's PngImageFile.text)
    return text or None


def fitted(text: str, width_in: float, fontsize: float = 10) -> str:
    """``text`` with each line wrapped to fit ``width_in`` inches at ``fontsize`` points,
    so that a title is never wider than its figure (matplotlib does not wrap titles;
    ``tight_layout`` then makes room for the extra lines). DejaVu Sans, matplotlib's
    default, averages about 0.55 em per character: a line holds
    ``width_in * 72 / (0.55 * fontsize)`` characters."""
    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) if line.strip() else line for line in text.splitlines())


def _grid(ax_grid, maps, cmap="viridis"):
    maps = np.asarray(maps)
    for k, ax in enumerate(ax_grid):
        ax.set_xticks([])
        ax.set_yticks([])
        if k < maps.shape[-1]:
            ax.imshow(maps[..., k], cmap=cmap)


def feature_map_grid(maps: np.ndarray, title: str = ""):
    """A 4x4 grid of one image's feature maps, (h, w, 16) (the article's Figs. 2-5)."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"expected one image's maps of shape (h, w, c), got {maps.shape}")
    fig, axes = plt.subplots(4, 4, figsize=(5, 5.3))
    _grid(axes.ravel(), maps)
    fig.suptitle(fitted(title, 5), fontsize=10)
    fig.tight_layout()
    return fig


def show_image(ax, image) -> None:
    """One (H, W, C) image: RGB as it is, one channel (grayscale) in grey."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray")
    elif image.ndim == 3 and image.shape[-1] == 3:
        ax.imshow(image)
    else:  # another channel count: the first channel
        ax.imshow(image.reshape(*image.shape[:2], -1)[..., 0], cmap="gray")


def feature_maps_side_by_side(image, maps_a, maps_b, labels: tuple[str, str], title: str = ""):
    """The input (any (H, W, C) image) and two models' 4x4 feature-map grids of one
    layer, side by side."""
    fig = plt.figure(figsize=(12, 5.2))
    head, body = fig.subfigures(2, 1, height_ratios=[0.14, 1])  # type: ignore[misc]  # an array of 2
    head.text(0.5, 0.5, fitted(title, 12), ha="center", va="center", fontsize=10)
    sub = body.subfigures(1, 3, width_ratios=[1, 2, 2])
    ax = sub[0].subplots()
    show_image(ax, image)
    ax.set_title("input")
    ax.axis("off")
    for sf, maps, label in zip(sub[1:], (maps_a, maps_b), labels, strict=False):
        _grid(sf.subplots(4, 4).ravel(), maps)
        sf.suptitle(label, color=COLOURS.get(label, "black"))
    return fig


def value_histograms(values: dict, title: str = "", xlabel: str = "value", bins: int = 32, range_=(0.0, 1.0)):
    """Overlaid histograms of pixel/activation values (the article's Figs. 6-7)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, v in values.items():
        v = np.asarray(v, dtype=np.float64).ravel()
        ax.hist(
            v,
            bins=bins,
            range=range_,
            alpha=0.55,
            label=f"{label} (n={v.size})",
            color=COLOURS.get(label),
            density=True,
        )
    ax.set_xlabel(fitted(xlabel, 6))
    ax.set_ylabel("density")
    ax.set_title(fitted(title, 6), fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def paired_distributions(per_image: dict, stat: str, title: str = ""):
    """Per-image statistic of two models over many images: histograms and paired differences."""
    (la, a), (lb, b) = list(per_image.items())[:2]
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    finite = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]])
    # All NaN (a statistic undefined on every image): empty panels that say so, not a crash.
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    rng = (lo, hi if hi > lo else lo + 1)
    if not finite.size:
        ax1.set_title("undefined (NaN) on every image", fontsize=9)
    for label, v in ((la, a), (lb, b)):
        ax1.hist(
            v[np.isfinite(v)],
            bins=40,
            range=rng,
            alpha=0.55,
            color=COLOURS.get(label),
            label=f"{label}: median {np.median(v[np.isfinite(v)]) if np.isfinite(v).any() else float('nan'):.3g}",
        )
    ax1.set_xlabel(fitted(stat, 5))
    ax1.set_ylabel("images")
    ax1.legend()
    d = a - b
    d = d[np.isfinite(d)]
    ax2.hist(d, bins=40, color="grey")
    ax2.axvline(0, color="black", lw=1)
    ax2.set_xlabel(f"{la} - {lb} (per image)")
    ax2.set_title(f"{np.mean(d > 0):.0%} of {len(d)} images > 0" if len(d) else "no image with both values", fontsize=9)
    fig.suptitle(fitted(title, 11), fontsize=10)
    fig.tight_layout()
    return fig


def seed_points(per_seed: dict, stat: str, ci=None, title: str = ""):
    """One point per trained model, group means, and the CI of the difference."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [3, 1]})
    for i, (label, vals) in enumerate(per_seed.items()):
        vals = np.asarray(vals, dtype=np.float64)
        jitter = np.linspace(-0.08, 0.08, len(vals)) if len(vals) > 1 else np.zeros(1)
        ax.scatter(np.full(len(vals), i) + jitter, vals, color=COLOURS.get(label), zorder=3)
        ax.hlines(np.mean(vals), i - 0.2, i + 0.2, color="black")
    ax.set_xticks(range(len(per_seed)), list(per_seed))
    ax.set_ylabel(fitted(stat, 3))  # along the axes' height: 4 in, less the title
    ax.set_xlim(-0.5, len(per_seed) - 0.5)
    if ci is not None:
        est, lo, hi = ci
        ax2.errorbar(
            [0],
            [est],
            yerr=[[est - lo], [hi - est]] if np.isfinite([lo, hi]).all() else None,
            fmt="o",
            color="black",
            capsize=6,
        )
        ax2.axhline(0, color="grey", lw=1, ls="--")
        ax2.set_xticks([0], ["difference\n95% CI"])
    else:
        ax2.axis("off")
    fig.suptitle(fitted(title, 9), fontsize=10)
    fig.tight_layout()
    return fig


def size_trend(sizes, per_seed, fit, sesoi: float, stat: str, title: str = ""):
    """The sizes scope's evidence: one point per model, mean and 95% CI per size, the
    fitted trend and the SESOI band.

    ``sizes``: (k,) training-set sizes (images, x on a log axis); ``per_seed``: (k, s)
    numbers, one per model (row: size, column: seed; NaN: no value); ``fit``: (slope per
    decade, intercept, CI low, CI high) of ``stats.trend``; ``sesoi``: the equivalence
    margin per decade (the verdict's ``sesoi``, from ``verdicts.sizes_margin``). The band
    is every line through the grand mean whose slope lies within +/- that margin: a
    trend inside it is negligible."""
    from scipy import stats as sps

    sizes = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(per_seed, dtype=np.float64)
    x = np.log10(sizes)
    fig, ax = plt.subplots(figsize=(10, 5))
    for j in range(y.shape[1]):
        ax.scatter(
            10 ** (x + 0.012 * (j - (y.shape[1] - 1) / 2)),
            y[:, j],
            s=16,
            color=PALETTE[j % len(PALETTE)],
            alpha=0.7,
            zorder=3,
            label=f"seed {j}" if j < 8 else None,
        )
    means, half = [], []
    for row in y:
        row = row[np.isfinite(row)]
        means.append(row.mean() if len(row) else np.nan)
        half.append(sps.t.ppf(0.975, len(row) - 1) * row.std(ddof=1) / np.sqrt(len(row)) if len(row) > 1 else np.nan)
    ax.errorbar(sizes, means, yerr=half, fmt="s", color="black", capsize=4, zorder=4, label="mean, 95% CI")
    slope, intercept, lo, hi = fit
    xs = np.linspace(x.min(), x.max(), 50)
    if np.isfinite([slope, intercept]).all():
        ax.plot(
            10**xs,
            intercept + slope * xs,
            color="black",
            lw=1.5,
            label=f"trend {slope:.3g}/decade [{lo:.3g}, {hi:.3g}]",
        )
    if np.isfinite(sesoi):
        xm, ym = np.mean(x), np.nanmean(y)
        ax.fill_between(
            10**xs,
            ym - sesoi * np.abs(xs - xm),
            ym + sesoi * np.abs(xs - xm),
            color="grey",
            alpha=0.25,
            label=f"|slope| < SESOI margin {sesoi:.3g}/decade",
        )
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{int(n):,}" for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training-set size (images, log scale)")
    ax.set_ylabel(fitted(stat, 3.5))
    ax.legend(fontsize=7, loc="best")
    ax.set_title(fitted(title, 9, 9), fontsize=9)
    fig.tight_layout()
    return fig


def entropy_bars(entropies: dict, title: str = ""):
    """Entropies (bits) of the input and of each model's last conv layer (claim C7)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = list(entropies)
    vals = [float(entropies[k]) for k in labels]
    ax.bar(labels, vals, color=[COLOURS.get(k.split()[0], "grey") for k in labels])
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom")
    ax.margins(y=0.12)  # room above the tallest bar for its value
    ax.set_ylabel("entropy (bits)")
    ax.set_title(fitted(title, 5.2), fontsize=10)
    fig.tight_layout()
    return fig


def softmax_bars(probs: dict, classes, true_class: int, title: str = ""):
    """Softmax distributions over ``classes`` (names), one panel per model (the
    article's Fig. 8); the bar of ``true_class`` (an index) is green.

    ``probs``: {panel label: (len(classes),) probabilities}. Raises ValueError for
    another length. With more than 20 classes only every k-th class and the true one
    are named on the axis."""
    fig, axes = plt.subplots(1, len(probs), figsize=(5 * len(probs), 4), squeeze=False)
    k_n = len(classes)
    step = max(1, int(np.ceil(k_n / 20)))
    ticks = sorted(set(range(0, k_n, step)) | {int(true_class)})
    for i, (ax, (label, p)) in enumerate(zip(axes[0], probs.items(), strict=False)):
        p = np.asarray(p, dtype=np.float64).ravel()
        if p.shape != (k_n,):
            raise ValueError(f"expected {k_n} class probabilities, got shape {p.shape}")
        base = COLOURS.get(label, PALETTE[i % len(PALETTE)])
        colours = ["tab:green" if k == true_class else base for k in range(k_n)]
        ax.bar(range(k_n), p, color=colours)
        ax.set_xticks(ticks, [classes[k] for k in ticks], rotation=60)
        ax.set_ylim(0, 1)
        ax.set_title(
            f"{label}: argmax {classes[int(np.argmax(p))]}, p({classes[true_class]})={p[true_class]:.2f}", fontsize=10
        )
    fig.suptitle(fitted(title, 5 * len(probs)), fontsize=10)
    fig.tight_layout()
    return fig


def text_figure(text: str, title: str = ""):
    """A figure holding text (the model summary, Fig. 1)."""
    lines = text.splitlines() or [""]
    fig = plt.figure(figsize=(8, 0.6 + 0.16 * len(lines)))
    fig.text(0.01, 0.99, text, family="monospace", fontsize=7, va="top")
    if title:
        fig.suptitle(fitted(title, 8, 12))
    return fig


VERDICT_COLOURS = {
    "supported": "tab:green",
    "refuted": "tab:red",
    "negligible": "tab:blue",
    "supported-but-negligible": "tab:olive",
    "refuted-but-negligible": "tab:purple",
    "underpowered": "goldenrod",
    "inconclusive": "grey",
}


def forest_plot(rows, title: str = ""):
    """Effects with their 95% CIs against each claim's SESOI band, one row per claim.

    ``rows``: (label, effect, ci_low, ci_high, sesoi, direction, verdict) with effect,
    CI and SESOI in the statistic's units and direction +1 (claimed: greater) or -1.
    Everything is drawn in SESOI units, signed so that right is the claimed direction:
    the shaded band (-1, 1) is "negligible", and a CI inside it is what TOST needs.
    """
    rows = list(rows)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ax.axvspan(-1, 1, color="tab:blue", alpha=0.12, label="within +/- SESOI")
    ax.axvline(0, color="black", lw=1)
    for i, (_label, est, lo, hi, sesoi, direction, verdict) in enumerate(rows):
        y = len(rows) - 1 - i
        scale = direction / sesoi if np.isfinite(sesoi) and sesoi > 0 else np.nan
        e, a, b = (v * scale for v in (est, lo, hi))
        colour = VERDICT_COLOURS.get(verdict, "black")
        if np.isfinite([a, b]).all():
            ax.hlines(y, min(a, b), max(a, b), color=colour, lw=2)
        if np.isfinite(e):
            ax.plot([e], [y], "o", color=colour)
        ax.text(1.01, y, verdict, transform=ax.get_yaxis_transform(), va="center", fontsize=8, color=colour)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows][::-1], fontsize=8)
    ax.set_xlabel("effect / SESOI (right: the claimed direction)")
    ax.set_title(fitted(title, 5), fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def makespan_plot(plans: dict, title: str = ""):
    """Simulated makespan against workers, one colour per plan (``makespan.makespan_figure``).

    ``plans``: {label: (workers, makespan_s, lower_bound_s, longest_s, knee)} with
    workers and the seconds as equal-length sequences, longest_s the longest single
    model (drawn as a horizontal line: no worker count beats it) and knee the worker
    count from which it is the makespan (marked; None: not marked). Log-x (base 2) and
    log-y in minutes: the curve falls as 1/workers until it meets the longest model."""
    fig, ax = plt.subplots(figsize=(7, 5 + 0.17 * (len(plans) + 3)))  # the legend's lines below the axes
    for i, (label, (workers, makespan, lower, longest, knee)) in enumerate(plans.items()):
        colour = PALETTE[i % len(PALETTE)]
        w = np.asarray(workers, dtype=np.float64)
        # One legend entry per plan, saying its longest model and knee: text beside the
        # knees overlapped where two plans' knees lie close (issue 22).
        bound = f"; bounds it from {knee} workers" if knee is not None else ""
        ax.plot(
            w,
            np.asarray(makespan) / 60,
            "o-",
            color=colour,
            label=f"{label}: longest model {longest / 60:.1f} min{bound}",
        )
        ax.plot(w, np.asarray(lower) / 60, ":", color=colour)
        ax.axhline(longest / 60, color=colour, lw=0.8, ls="--")
        if knee is not None:
            ax.plot([knee], [longest / 60], "D", color=colour, ms=9, mfc="none")
    # What the line styles and the diamond mean, once for all plans (grey proxies).
    ax.plot([], [], ":", color="grey", label="lower bound max(total/W, longest)")
    ax.plot([], [], "--", color="grey", lw=0.8, label="longest single model")
    ax.plot([], [], "D", color="grey", ms=7, mfc="none", label="from here the longest model is the makespan")
    ax.set_xscale("log", base=2)
    # Log minutes, unless a time is 0 (models loaded, not trained, record 0 s): linear then.
    if all(np.all(np.asarray(ms) > 0) and longest > 0 for _, ms, _, longest, _ in plans.values()):
        ax.set_yscale("log")
    # Plain numbers on both axes: the worker counts themselves, and minutes (log
    # scales' default 2^k / 10^k labels read worse and need mathtext fonts).
    ticks = sorted({int(w) for workers, *_ in plans.values() for w in workers})
    if ticks:
        ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "25" else ""))
    ax.set_xlabel("workers (training processes)")
    ax.set_ylabel("makespan (minutes)")
    ax.set_title(fitted(title, 6), fontsize=10)
    # Below the axes, off the curves, which fill the top left and run along the bottom.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fig.tight_layout()
    return fig
