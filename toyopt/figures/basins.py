"""Basin-of-attraction figures (matplotlib): one map per series, coloured by outcome, over faint
contours of the mean loss; and success rates against a swept parameter (c).

Every figure carries its run's Config (and the basin settings) in the file's metadata when saved
with :func:`save_basin_figure`, where ``toyopt.figures.read_embedded`` finds it.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import geometry
from ..outcomes import CATEGORIES, Outcomes, success_table
from ..problems import get_problem
from .draw import mean_loss_grid
from .embed import CONFIG_KEY
from .style import RC, method_style

#: Outcome colours (Okabe-Ito, distinguishable with the common colour-vision deficiencies).
OUTCOME_COLORS = {
    "global_min": "#009E73",
    "pareto": "#0072B2",
    "stalled": "#D55E00",
    "moving": "#E69F00",
    "diverged": "#000000",
}
OUTCOME_LABELS = {
    "global_min": "global minimum",
    "pareto": "Pareto set",
    "stalled": "stalled elsewhere",
    "moving": "still moving",
    "diverged": "diverged",
}
FORMATS = (".pdf", ".svg", ".png")
TITLE = "toyopt basins"


def draw_map(ax, outcomes: Outcomes, series: int, contours=None, title: str | None = None) -> None:
    """One series' map on ``ax``: cells coloured by outcome, faint mean-loss contours, the Pareto
    set (grey line) and the minimum of the mean loss (star)."""
    problem = get_problem(outcomes.config.problem)
    (a, b), (c, d) = problem.box
    cmap = ListedColormap([OUTCOME_COLORS[k] for k in CATEGORIES])
    ax.imshow(
        outcomes.codes(series),
        origin="lower",
        extent=(a, b, c, d),
        cmap=cmap,
        vmin=-0.5,
        vmax=len(CATEGORIES) - 0.5,
        interpolation="nearest",
        aspect="equal",
    )
    if contours is not None:
        x1, x2, mean = contours
        ax.contour(
            x1, x2, mean, levels=18, colors="white", linewidths=0.4, alpha=0.45, negative_linestyles="solid"
        )
    pareto = geometry.pareto_set(problem, dict(outcomes.config.problem_params)).points.numpy()
    ax.plot(pareto[:, 0], pareto[:, 1], color="0.85", lw=1.2)
    ax.plot(*outcomes.global_min[:2], marker="*", color="white", mec="black", mew=0.5, ms=9)
    ax.set_xlim(a, b)
    ax.set_ylim(c, d)
    ax.set_title(title or outcomes.series[series].title, fontsize=9)
    ax.tick_params(labelsize=7)


def basin_maps_figure(
    outcomes: Outcomes,
    series: list[int] | None = None,
    ncols: int | None = None,
    panel: float = 2.6,
    contours: bool = True,
) -> Figure:
    """Small multiples: one map per series (default: all), with a shared outcome legend."""
    with matplotlib.rc_context(RC):
        return _maps(outcomes, series, ncols, panel, contours)


def _maps(outcomes: Outcomes, series, ncols, panel: float, contours: bool) -> Figure:
    chosen = list(range(len(outcomes.series))) if series is None else list(series)
    if not chosen:
        raise ValueError("no series to draw")
    ncols = ncols or min(len(chosen), 4)
    nrows = math.ceil(len(chosen) / ncols)
    fig = Figure(figsize=(panel * ncols, panel * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    problem = get_problem(outcomes.config.problem)
    grid = (
        mean_loss_grid(problem, problem.validate_params(outcomes.config.problem_params)) if contours else None
    )
    table = success_table(outcomes)
    for ax, k in zip(axes.ravel(), chosen):
        row = table[k]
        draw_map(
            ax,
            outcomes,
            k,
            grid,
            f"{outcomes.series[k].title}\nmin {row['global_min']:.0%}, Pareto set {row['pareto_set']:.0%}",
        )
    for ax in axes.ravel()[len(chosen) :]:
        ax.set_visible(False)
    handles = [Patch(color=OUTCOME_COLORS[k], label=OUTCOME_LABELS[k]) for k in CATEGORIES]
    legend_cols = len(CATEGORIES) if ncols >= 3 else 3
    fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1 if legend_cols < len(CATEGORIES) else 0.06, 1, 1))
    return fig


def sweep_figure(outcomes: Outcomes, param: str = "c") -> Figure:
    """Fractions reaching the minimum and the Pareto set against a swept parameter, one line pair
    per method entry that swept it."""
    with matplotlib.rc_context(RC):
        return _sweep(outcomes, param)


def _sweep(outcomes: Outcomes, param: str) -> Figure:
    table = success_table(outcomes)
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    entries = sorted(
        {
            s.entry
            for s in outcomes.series
            if isinstance(outcomes.config.methods[s.entry].params.get(param), list)
        }
    )
    if not entries:
        raise ValueError(f"no method entry of this run sweeps {param!r}")
    for e in entries:
        ks = [k for k, s in enumerate(outcomes.series) if s.entry == e]
        xs = [outcomes.series[k].params[param] for k in ks]
        style = method_style(outcomes.config.methods[e].name)
        ax.plot(
            xs,
            [table[k]["global_min"] for k in ks],
            marker=style.marker,
            ms=3,
            color=style.color,
            label=f"{outcomes.config.methods[e].name}: global minimum",
        )
        ax.plot(
            xs,
            [table[k]["pareto_set"] for k in ks],
            ls=style.linestyle if style.linestyle != "-" else "--",
            color=style.color,
            label=f"{outcomes.config.methods[e].name}: Pareto set",
        )
    ax.set_xlabel(param)
    ax.set_ylabel("fraction of starts")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_metadata(outcomes: Outcomes, fmt: str) -> dict:
    """``savefig`` metadata: the Config where ``toyopt.figures.read_embedded`` looks for it (PDF
    Keywords, SVG Description, PNG "toyopt-config"), and the starts and classification settings
    (PDF Title, SVG Keywords, PNG "toyopt-basins"); the FigureSpec slots stay empty. No dates, so
    equal inputs give equal bytes."""
    config_json = outcomes.config.to_json()
    basins_json = json.dumps(
        {"starts": None if outcomes.starts is None else outcomes.starts.to_dict(), **outcomes.params},
        sort_keys=True,
    )
    if fmt == "pdf":
        return {"Title": f"{TITLE} {basins_json}", "Keywords": config_json, "CreationDate": None}
    if fmt == "svg":
        return {
            "Title": TITLE,
            "Description": config_json,
            "Keywords": [f"toyopt-basins:{basins_json}"],
            "Date": None,
        }
    return {"Title": TITLE, CONFIG_KEY: config_json, "toyopt-basins": basins_json}


def save_basin_figure(fig: Figure, path: str | Path, outcomes: Outcomes, dpi: int = 200) -> bytes:
    """The figure as PDF/SVG/PNG bytes (chosen by ``path``'s suffix) with the config embedded;
    nothing is written here (the caller writes atomically)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"figure format must be one of {list(FORMATS)}, got {suffix!r}")
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format=suffix[1:], dpi=dpi, metadata=figure_metadata(outcomes, suffix[1:]))
    return buf.getvalue()
