"""The four layouts, drawn with matplotlib's object API on a ``Figure`` (no pyplot, no global
state). Every function here reads a Config and, where trajectories are drawn, a Result; nothing
here steps the optimizer except ``directions_at``, which evaluates each method once at a point.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Polygon
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .. import geometry
from ..config import Config
from ..engine import Result, Series, series
from ..methods import METHODS, get_method, step_once
from ..problems import get_problem
from .spec import MAX_PANELS, FigureSpec
from .style import GLOBAL_MIN_STYLE, LANDSCAPE_GRAYS, PARETO_COLOR, RC, START_STYLE, method_style

#: Landscape grid points per axis and number of filled contour levels.
GRID = 241
LEVELS = 16
#: Trajectories are thinned to points at least this fraction of the panel span apart (far below
#: a printed line width), so vector files stay small whatever the step count.
THIN = 1.0 / 2000
#: Height of one legend row at the legend font size, inches.
LEGEND_ROW = 0.135
#: The gap axis of the convergence panel starts here (log scale; exact zeros cannot be drawn).
GAP_FLOOR = 1e-8


# -- shared pieces --------------------------------------------------------------------------------


def _problem(config: Config):
    problem = get_problem(config.problem)
    return problem, problem.validate_params(config.problem_params)


def _check_plane(problem) -> None:
    if problem.dim != 2 or problem.n_tasks != 2:
        raise ValueError(
            f"figures need a problem with 2 parameters and 2 tasks; {problem.name} has "
            f"{problem.dim} and {problem.n_tasks}"
        )


def mean_loss_grid(problem, params: dict, n: int = GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x1, x2 (n,) over the problem's box and the mean loss (n, n) on that grid (rows: x2)."""
    return loss_grid(problem, params, "mean", n)


def loss_grid(
    problem, params: dict, surface: str = "mean", n: int = GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x1, x2 (n,) over the problem's box and, on that grid (rows: x2), the mean of the task losses
    (``surface`` "mean") or task k's loss ("f1", "f2"); cached (read-only arrays), since every
    panel of a figure draws the same landscape."""
    return _loss_grid(problem.name, tuple(sorted(params.items())), surface, n)


@lru_cache(maxsize=16)
def _loss_grid(
    problem_name: str, params_key: tuple, surface: str, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    problem, params = get_problem(problem_name), dict(params_key)
    (lo1, hi1), (lo2, hi2) = problem.box
    x1 = torch.linspace(lo1, hi1, n, dtype=torch.float64)
    x2 = torch.linspace(lo2, hi2, n, dtype=torch.float64)
    xx2, xx1 = torch.meshgrid(x2, x1, indexing="ij")
    points = torch.stack([xx1.reshape(-1), xx2.reshape(-1)], dim=-1)
    losses = problem.losses(points, params)
    z = losses.mean(-1) if surface == "mean" else losses[:, int(surface[1:]) - 1]
    arrays = (x1.numpy(), x2.numpy(), z.reshape(n, n).numpy())
    for a in arrays:
        a.flags.writeable = False
    return arrays


#: Title of a landscape panel per surface.
SURFACE_TITLES = {
    "mean": r"mean loss $\bar{L} = (L_1 + L_2)/2$",
    "f1": r"task 1 loss $L_1$",
    "f2": r"task 2 loss $L_2$",
}


def draw_landscape(ax, config: Config, surface: str = "mean") -> None:
    """Filled contours of the mean loss (or of one task's, ``surface`` "f1" / "f2"), the Pareto set
    and the global minimum of the mean, on the box."""
    problem, params = _problem(config)
    x1, x2, z = loss_grid(problem, params, surface)
    levels = np.unique(np.quantile(z, np.linspace(0.0, 1.0, LEVELS + 1)))
    cmap = LinearSegmentedColormap.from_list("toyopt_grays", LANDSCAPE_GRAYS)
    ax.contourf(x1, x2, z, levels=levels, cmap=cmap)
    ax.contour(x1, x2, z, levels=levels[1:-1], colors="#8C8C8C", linewidths=0.25)
    pareto = geometry.pareto_set(problem, params)
    pts = pareto.points.numpy()
    ax.plot(pts[:, 0], pts[:, 1], color="#FFFFFF", lw=3.2, solid_capstyle="round", zorder=2)
    ax.plot(pts[:, 0], pts[:, 1], color=PARETO_COLOR, lw=1.6, solid_capstyle="round", zorder=2.1)
    gmin = geometry.global_minimum(problem, params).numpy()
    _marker(ax, gmin, GLOBAL_MIN_STYLE, size=9, zorder=6)
    (lo1, hi1), (lo2, hi2) = problem.box
    ax.set_xlim(lo1, hi1)
    ax.set_ylim(lo2, hi2)
    ax.set_aspect("equal")
    ax.set_xticks(np.linspace(lo1, hi1, 5))
    ax.set_yticks(np.linspace(lo2, hi2, 5))


def _box_span(problem) -> np.ndarray:
    return np.array([hi - lo for lo, hi in problem.box], dtype=np.float64)


def _marker(ax, xy, style: dict, size: float, zorder: float, lw: float = 0.6) -> None:
    ax.plot(
        [xy[0]],
        [xy[1]],
        linestyle="none",
        marker=style["marker"],
        markersize=size,
        markerfacecolor=style["facecolor"],
        markeredgecolor=style["edgecolor"],
        markeredgewidth=lw,
        zorder=zorder,
    )


def thin(xy: np.ndarray, step: float) -> np.ndarray:
    """The points of a polyline (T, 2) at which its arc length enters a new multiple of
    ``step``, plus the first and last point (finite points only)."""
    xy = xy[np.isfinite(xy).all(-1)]
    if len(xy) <= 2:
        return xy
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=-1))])
    bucket = np.floor(arc / step)
    keep = np.concatenate([[True], bucket[1:] != bucket[:-1]])
    keep[-1] = True
    return xy[keep]


def thin_path(xy: np.ndarray, span: np.ndarray) -> np.ndarray:
    """The points of a trajectory (T, 2) that are drawn: thinned relative to the panel's extent
    ``span`` (2,) along each axis."""
    scale = np.asarray(span, dtype=np.float64)
    return thin(xy / scale, THIN) * scale


def draw_path(
    ax, xy: np.ndarray, name: str, span: np.ndarray, lw: float = 1.0
) -> tuple[Line2D, Line2D] | None:
    """A trajectory (T, 2) in the method's style, from an open start marker to a filled end marker
    (``thin_path``); returns its line and end marker (None when no point is finite)."""
    style = method_style(name)
    path = thin_path(xy, span)
    if len(path) == 0:
        return None
    (line,) = ax.plot(path[:, 0], path[:, 1], color=style.color, linestyle=style.linestyle, lw=lw, zorder=3)
    _marker(ax, path[0], START_STYLE, size=3.5, zorder=5)
    (end,) = ax.plot(
        [path[-1, 0]],
        [path[-1, 1]],
        linestyle="none",
        marker=style.marker,
        markersize=4.2,
        markerfacecolor=style.color,
        markeredgecolor="#000000",
        markeredgewidth=0.5,
        zorder=5.5,
    )
    return line, end


#: Average width of a character of the style's sans-serif font, in em (for sizing legends and titles).
CHAR_EM = 0.58
#: What a legend entry needs besides its text (handle, padding, column spacing), in em.
LEGEND_ENTRY_EM = 2.6 + 0.8 + 1.2


def legend_columns(labels: list[str], width: float, most: int) -> int:
    """The most columns (at most ``most``) in which a legend of ``labels``, split into columns as
    matplotlib does (``np.array_split``), fits ``width`` inches at the style's legend font size."""
    em = RC["legend.fontsize"] / 72
    sizes = np.array([(len(label) * CHAR_EM + LEGEND_ENTRY_EM) * em for label in labels])
    for ncols in range(max(1, min(most, len(labels))), 1, -1):
        if sum(column.max() for column in np.array_split(sizes, ncols)) <= width:
            return ncols
    return 1


def wrapped_title(text: str, inches: float) -> str:
    """``text`` broken into lines that fit ``inches`` at the style's title font size."""
    chars = max(8, int(inches * 72 / (RC["axes.titlesize"] * CHAR_EM)))
    unbroken = text.replace(" = ", "\N{NO-BREAK SPACE}=\N{NO-BREAK SPACE}")  # "c = 0.5" stays on one line
    return "\n".join(textwrap.wrap(unbroken, chars)) or text


def _marks_legend(
    fig: Figure,
    extra: list | None = None,
    loc: str = "outside upper center",
    ncols: int = 4,
    pareto_label: str = "Pareto set",
):
    handles = [
        Line2D([], [], color=PARETO_COLOR, lw=1.6, label=pareto_label),
        Line2D(
            [],
            [],
            linestyle="none",
            marker=GLOBAL_MIN_STYLE["marker"],
            markersize=8,
            markerfacecolor=GLOBAL_MIN_STYLE["facecolor"],
            markeredgecolor=GLOBAL_MIN_STYLE["edgecolor"],
            markeredgewidth=0.6,
            label="global minimum",
        ),
        Line2D(
            [],
            [],
            linestyle="none",
            marker=START_STYLE["marker"],
            markersize=3.5,
            markerfacecolor=START_STYLE["facecolor"],
            markeredgecolor=START_STYLE["edgecolor"],
            markeredgewidth=0.6,
            label="start",
        ),
    ]
    handles += extra or []
    inches = fig.bbox.width / fig.dpi  # a subfigure (the animation's panels) has no figure width
    ncols = legend_columns([h.get_label() for h in handles], inches, ncols)
    fig.legend(handles=handles, loc=loc, ncols=ncols, borderaxespad=0.2, columnspacing=1.2)


def method_handle(name: str, label: str) -> Line2D:
    style = method_style(name)
    return Line2D(
        [],
        [],
        color=style.color,
        linestyle=style.linestyle,
        marker=style.marker,
        markersize=4.2,
        markerfacecolor=style.color,
        markeredgecolor="#000000",
        markeredgewidth=0.5,
        label=label,
    )


# -- layouts --------------------------------------------------------------------------------------


def paper(result: Result, spec: FigureSpec) -> Figure:
    """One landscape panel per method (and grid value) with its trajectories, then the
    convergence panel; as many columns as fit the width (1.3 in or more per panel)."""
    config = result.config
    problem, _ = _problem(config)
    _check_plane(problem)
    groups = result.series()
    if len(groups) > MAX_PANELS:
        raise ValueError(
            f"the paper layout draws at most {MAX_PANELS} panels (methods x grid values); "
            f"this run has {len(groups)}"
        )
    n = len(groups) + (1 if spec.convergence else 0)
    width = spec.inches
    cols = max(1, min(n, int(width // 1.3)))
    rows = math.ceil(n / cols)
    side = width / cols
    # The legend above the panels: the marks, then every method (its line also in the convergence panel).
    handles = [method_handle(g.method, g.title) for g in groups]
    # Titles are centred over the axes, right of the x2 label: they get 80 % of a column.
    marks = ["Pareto set", "global minimum", "start"]
    legend_cols = legend_columns(marks + [g.title for g in groups], width, 3 + len(handles))
    legend_rows = math.ceil((3 + len(handles)) / legend_cols)
    title_lines = max(wrapped_title(g.title, 0.8 * side).count("\n") + 1 for g in groups)
    fig = Figure(
        figsize=(width, rows * (side + 0.02 + 0.1 * (title_lines - 1)) + 0.07 + legend_rows * LEGEND_ROW),
        layout="constrained",
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    span = _box_span(problem)
    for ax, group in zip(axes, groups):
        draw_landscape(ax, config)
        for i in group.lanes:
            draw_path(ax, result.x[:, i, :2], group.method, span, lw=1.2)
        ax.set_title(wrapped_title(group.title, 0.8 * side), pad=2.5)
        ax.set_xlabel(r"$x_1$", labelpad=1)
        ax.set_ylabel(r"$x_2$", labelpad=0)
    if spec.convergence:
        convergence(axes[len(groups)], result, groups, spec.gap)
    for ax in axes[n:]:
        ax.set_axis_off()
    _marks_legend(fig, handles, ncols=legend_cols)
    return fig


def gap_series(result: Result, lanes: tuple[int, ...], gap: str) -> np.ndarray:
    """(T,) mean over ``lanes`` of the gap to the global minimum at each recorded step: the mean
    loss minus its value at x* ("loss") or ||x - x*|| ("distance")."""
    if gap == "distance":
        values = np.linalg.norm(result.x[:, list(lanes), :] - result.global_min, axis=-1)
    else:
        problem, params = _problem(result.config)
        xstar = torch.as_tensor(result.global_min, dtype=torch.float64)[None]
        best = float(problem.losses(xstar, params).mean())
        values = result.losses[:, list(lanes), :].mean(-1) - best
    return values.mean(-1)


def convergence(ax, result: Result, groups: list[Series], gap: str) -> None:
    steps = result.recorded_steps
    every = max(len(steps) // 4, 1)
    lowest, highest = np.inf, 0.0
    for k, group in enumerate(groups):
        style = method_style(group.method)
        series = np.clip(gap_series(result, group.lanes, gap), GAP_FLOOR, None)
        lowest, highest = min(lowest, np.nanmin(series)), max(highest, np.nanmax(series))
        ax.plot(
            steps,
            series,
            color=style.color,
            linestyle=style.linestyle,
            lw=1.0,
            marker=style.marker,
            # Four markers per line, staggered between methods so that they do not sit on each other.
            markevery=(every // 2 + k * every // max(len(groups), 1) // 2, every),
            markersize=3.2,
            markerfacecolor=style.color,
            markeredgecolor="#000000",
            markeredgewidth=0.4,
        )
    ax.set_yscale("log")
    ax.set_box_aspect(1)
    ax.set_xlim(0, max(int(steps[-1]), 1))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3), useMathText=True)
    ax.set_xlabel("step", labelpad=1)
    ax.set_ylabel(
        r"$\bar{L}(x_t) - \bar{L}(x^\star)$" if gap == "loss" else r"$\|x_t - x^\star\|$", labelpad=1
    )
    if highest < 100 * lowest:  # under two decades: label 1, 2, 5 x 10^k as plain numbers
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("convergence", pad=2.5)


def _single_panel(spec: FigureSpec, entries: int, cols_below: int) -> tuple[Figure, object, str, int]:
    """A figure with one square panel and room for a legend of ``entries`` items beside it (wide
    figures, one column) or below it (narrow ones, ``cols_below`` columns); returns the figure,
    the axes, the legend location and its column count."""
    width = spec.inches
    if width >= 4.5:
        height = max(min(width * 0.5, 3.6), entries * LEGEND_ROW + 0.3)
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.add_subplot(), "outside right upper", 1
    rows = math.ceil(entries / cols_below)
    fig = Figure(figsize=(width, width + 0.25 + rows * LEGEND_ROW), layout="constrained")
    return fig, fig.add_subplot(), "outside lower center", cols_below


#: Below this width (inches) two panels are stacked instead of set side by side.
SIDE_BY_SIDE = 4.5


#: Height of the Pareto-set close-up relative to the landscape panel above it.
ZOOM_HEIGHT = 0.42


def landscape(config: Config, result: Result | None, spec: FigureSpec) -> Figure:
    """What the Landscape view shows: the mean-loss landscape with the Pareto set, global minimum
    and starts (with a result, every method's trajectories) and, beside it (below it on a narrow
    width), the Pareto front in loss space; under both the Pareto set on its own x2 scale; the
    legend at the bottom, so the panels fill the width."""
    problem, params = _problem(config)
    _check_plane(problem)
    groups = result.series() if result is not None else []
    width = spec.inches
    side = width >= SIDE_BY_SIDE
    labels = ["Pareto set / front", "global minimum", "start", *(g.title for g in groups), CHORD_LABEL]
    legend_cols = legend_columns(labels, width, max(2, int(width / 1.4)))
    legend_rows = math.ceil(len(labels) / legend_cols)
    panel = width / 2 if side else width
    rows = [1.0, ZOOM_HEIGHT] if side else [1.0, 1.0, ZOOM_HEIGHT]
    layout = [["map", "front"], ["zoom", "zoom"]] if side else [["map"], ["front"], ["zoom"]]
    fig = Figure(
        figsize=(width, sum(rows) * panel + 0.1 * len(rows) + 0.1 + legend_rows * LEGEND_ROW),
        layout="constrained",
    )
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.06, hspace=0.04)
    axes = fig.subplot_mosaic(layout, height_ratios=rows)
    ax = axes["map"]
    draw_landscape(ax, config, spec.surface)
    span = _box_span(problem)
    extra = []
    if result is not None:
        for group in groups:
            for i in group.lanes:
                draw_path(ax, result.x[:, i, :2], group.method, span)
            extra.append(method_handle(group.method, group.title))
    else:
        for init in config.inits:
            _marker(ax, init, START_STYLE, size=3.5, zorder=5)
    ax.set_xlabel(r"$x_1$")
    ax.set_ylabel(r"$x_2$")
    ax.set_title(SURFACE_TITLES[spec.surface], pad=3)
    draw_front(axes["front"], config, result, groups)
    draw_pareto_zoom(axes["zoom"], config)
    extra.append(Line2D([], [], color="#8C8C8C", linestyle=(0, (1.0, 1.2)), lw=0.8, label=CHORD_LABEL))
    label = "Pareto set / front"
    _marks_legend(fig, extra, loc="outside lower center", ncols=legend_cols, pareto_label=label)
    return fig


CHORD_LABEL = "chord of the Pareto set"


def draw_pareto_zoom(ax, config: Config) -> None:
    """The Pareto set in x-space on its own x2 scale (on the map it spans a few hundredths in x2
    and looks straight), the chord between its ends and the global minimum."""
    problem, params = _problem(config)
    pts = geometry.pareto_set(problem, params).points.numpy()
    ax.plot(pts[[0, -1], 0], pts[[0, -1], 1], color="#8C8C8C", linestyle=(0, (1.0, 1.2)), lw=0.8, zorder=1)
    ax.plot(pts[:, 0], pts[:, 1], color=PARETO_COLOR, lw=1.6, solid_capstyle="round", zorder=2)
    _marker(ax, geometry.global_minimum(problem, params).numpy(), GLOBAL_MIN_STYLE, size=9, zorder=6)
    spread = float(np.ptp(pts[:, 1]))
    pad = 0.15 * max(spread, 1e-9)
    ax.set_ylim(float(pts[:, 1].min()) - pad, float(pts[:, 1].max()) + pad)
    ax.set_xlabel(r"$x_1$")
    ax.set_ylabel(r"$x_2$ (zoomed)")
    ax.set_title(rf"Pareto set on its own $x_2$ scale (spans {spread:.3g})", pad=3)


def draw_front(ax, config: Config, result: Result | None, groups: list[Series]) -> None:
    """Loss space: the Pareto front, the image of the global minimum and (with a result) each
    lane's losses."""
    problem, params = _problem(config)
    pareto = geometry.pareto_set(problem, params).front.numpy()
    ax.plot(pareto[:, 0], pareto[:, 1], color=PARETO_COLOR, lw=1.6, zorder=2, solid_capstyle="round")
    xstar = geometry.global_minimum(problem, params)[None]
    lstar = problem.losses(xstar, params)[0].numpy()
    shown = [pareto]
    if result is not None:
        shown.append(result.losses[np.isfinite(result.losses).all(-1)])
    span = np.maximum(np.ptp(np.vstack(shown), axis=0), 1e-12)
    for group in groups:
        for i in group.lanes:
            draw_path(ax, result.losses[:, i, :], group.method, span)
    _marker(ax, lstar, GLOBAL_MIN_STYLE, size=9, zorder=6)
    ax.set_box_aspect(1)
    ax.set_xlabel(r"$L_1$")
    ax.set_ylabel(r"$L_2$")
    ax.set_title("loss space: Pareto front" + (" and trajectories" if groups else ""), pad=3)


def front(result: Result, spec: FigureSpec) -> Figure:
    """Loss space: the Pareto front, the image of the global minimum and each lane's losses."""
    config = result.config
    problem, _ = _problem(config)
    _check_plane(problem)
    groups = result.series()
    fig, ax, where, ncols = _single_panel(spec, 3 + len(groups), 2)
    draw_front(ax, config, result, groups)
    extra = [method_handle(group.method, group.title) for group in groups]
    _marks_legend(fig, extra, loc=where, ncols=ncols, pareto_label="Pareto front")
    return fig


# -- feasible regions -----------------------------------------------------------------------------


def default_point(config: Config) -> tuple[float, float]:
    """The regions figure's point when none is given: ``geometry.conflict_point`` of the starts."""
    problem, params = _problem(config)
    return tuple(float(v) for v in geometry.conflict_point(problem, params, config.inits))


@dataclass(frozen=True)
class Direction:
    method: str
    label: str
    d: np.ndarray  # (2,)
    flags: tuple[str, ...]  # the guards that fired at this point


def directions_at(config: Config, point: tuple[float, float]) -> tuple[np.ndarray, list[Direction]]:
    """The task gradients (K, 2) at ``point`` and each method entry's direction there (its first
    grid value; a stateful method from its initial state, random draws from a generator seeded
    with the config's seed). The direction is the method's own output, before the framework's
    ``output_scale`` and ``clip_norm``: the ball and cone are defined on it."""
    problem, params = _problem(config)
    x = torch.tensor([point], dtype=torch.float64)
    losses, grads = problem.losses_and_grads(x, params)
    lower = torch.tensor([config.resolved_lower_bounds()], dtype=torch.float64)
    out = []
    firsts = [p for p in series(config) if p.grid_index == 0]
    for e, (entry, group) in enumerate(zip(config.methods, firsts)):
        gen = torch.Generator().manual_seed(config.seed * 7919 + e)
        step = step_once(get_method(entry.name), entry.grid()[0], grads, losses, lower, gen)
        fired = tuple(sorted(name for name, value in step.flags.items() if bool(value[0])))
        out.append(Direction(entry.name, group.title, step.direction[0].numpy(), fired))
    return grads[0].numpy(), out


#: The methods whose c defines CAGrad's ball and ConicGrad's cone (a region is drawn with their c).
BALL_METHODS = ("cagrad",)
CONE_METHODS = ("conicgrad", "conicgrad_exact")


def region_c(config: Config, methods: tuple[str, ...], given: float | None, fallback: float) -> float:
    """c of a region (the swept parameter of ``methods``: CAGrad's radius, ConicGrad's cosine): the
    figure option, else the run's first entry of one of ``methods`` (its first grid value), else
    the first registered method's default, else ``fallback``."""
    if given is not None:
        return given
    for entry in config.methods:
        if entry.name in methods and METHODS[entry.name].swept() is not None:
            return float(entry.grid()[0][METHODS[entry.name].swept().name])
    for method in methods:
        if method in METHODS and METHODS[method].swept() is not None:
            return float(METHODS[method].swept().default)
    return fallback


def wedge_points(lo: float, hi: float, radius: float) -> np.ndarray:
    """The corners (N, 2) of the circular sector from angle ``lo`` to ``hi`` (about one per degree)."""
    angles = np.linspace(lo, hi, max(2, int(abs(hi - lo) / (math.pi / 180)) + 2))
    return np.vstack([[0.0, 0.0], np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])])


def _wedge(ax, lo: float, hi: float, radius: float, **kwargs) -> None:
    ax.add_patch(Polygon(wedge_points(lo, hi, radius), closed=True, **kwargs))


def _arrow(ax, vec, color: str, lw: float, label: str | None, zorder: float, linestyle="-") -> None:
    ax.add_patch(
        FancyArrowPatch(
            (0, 0),
            tuple(vec),
            arrowstyle="-|>",
            mutation_scale=7,
            color=color,
            lw=lw,
            linestyle=linestyle,
            shrinkA=0,
            shrinkB=0,
            zorder=zorder,
            label=label,
        )
    )


def regions(config: Config, spec: FigureSpec) -> Figure:
    """Gradient space at one point: g1, g2, g0, the dual cone, CAGrad's ball ||d - g0|| <= c||g0||,
    ConicGrad's cone cos(d, g0) >= c (with the arc ||d|| = ||g0|| of its realisable updates) and
    each method's direction d. On a wide figure a close-up of the updates d sits beside it (they
    often lie close together near g0); the legend is under the panels, so they fill the width."""
    problem, _ = _problem(config)
    _check_plane(problem)
    point = spec.point if spec.point is not None else default_point(config)
    grads, dirs = directions_at(config, point)
    g0 = grads.mean(0)
    n0 = float(np.linalg.norm(g0))
    ball_c = region_c(config, BALL_METHODS, spec.ball_c, 0.5)
    cone_c = region_c(config, CONE_METHODS, spec.cone_c, 0.5)
    # The close-up holds the origin, the ball and every d; the whole view also g1, g2 and the arc.
    near = [
        np.zeros(2),
        g0 - ball_c * n0,
        g0 + ball_c * n0,
        *(d.d for d in dirs if np.all(np.isfinite(d.d))),
    ]
    whole = near + list(grads)
    if n0 > 0:
        whole += [
            n0 * np.array([math.cos(a), math.sin(a)])
            for a in np.linspace(-math.pi, math.pi, 73)
            if abs((a - math.atan2(g0[1], g0[0]) + math.pi) % (2 * math.pi) - math.pi)
            <= geometry.cone_half_angle(cone_c)
        ]
    width = spec.inches
    side = width >= SIDE_BY_SIDE
    entries = 4 + len(dirs)
    ncols = 2 if side else 1
    panel = width / 2 if side else width
    legend_rows = math.ceil(entries / ncols) + (0 if side else sum(1 for d in dirs if d.flags))
    fig = Figure(figsize=(width, panel + 0.25 + legend_rows * LEGEND_ROW), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.06)
    axes = fig.subplots(1, 2) if side else [fig.add_subplot()]
    # On a narrow figure the fired flags go on a line of their own, so the legend fits the width.
    flag_gap = " " if side else "\n"
    handles = draw_gradient_space(axes[0], grads, dirs, ball_c, cone_c, _square_around(whole), flag_gap)
    axes[0].set_title(rf"gradient space at $x = ({point[0]:g}, {point[1]:g})$", pad=3)
    if side:
        draw_gradient_space(axes[1], grads, dirs, ball_c, cone_c, _square_around(near))
        axes[1].set_title(r"close-up of the updates $d$", pad=3)
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, borderaxespad=0.2)
    return fig


def _square_around(points: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The centre and half side of a square view around ``points`` (2,), with a margin."""
    shown = np.array(points)
    lo, hi = shown.min(0), shown.max(0)
    return (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.15, 1e-300)


def draw_gradient_space(
    ax,
    grads: np.ndarray,
    dirs: list[Direction],
    ball_c: float,
    cone_c: float,
    view: tuple[np.ndarray, float],
    flag_gap: str = " ",
) -> list:
    """The regions, the gradients and every d on ``ax``, limited to the square ``view`` (centre,
    half side); returns the legend handles (a d's fired flags follow its label after ``flag_gap``)."""
    g0 = grads.mean(0)
    n0 = float(np.linalg.norm(g0))
    centre, half_side = view
    radius = 3 * (float(np.linalg.norm(centre)) + half_side)  # rays and wedges reach past the view
    handles = []
    arc = geometry.dual_cone_arc(grads)
    if arc is not None:
        _wedge(
            ax,
            arc[0],
            arc[1],
            radius,
            facecolor="#E8E8E8",
            edgecolor="#9A9A9A",
            lw=0.5,
            hatch="////",
            zorder=0.5,
        )
        handles.append(
            Polygon(
                [[0, 0]],
                facecolor="#E8E8E8",
                edgecolor="#9A9A9A",
                hatch="////",
                lw=0.5,
                label=r"dual cone $\langle g_i, d\rangle \geq 0$",
            )
        )
    if n0 > 0:
        psi0 = math.atan2(g0[1], g0[0])
        cone = method_style("conicgrad")
        half = geometry.cone_half_angle(cone_c)
        _wedge(ax, psi0 - half, psi0 + half, radius, facecolor=cone.color, alpha=0.12, lw=0, zorder=1)
        for side in (-half, half):
            ax.plot(
                [0, radius * math.cos(psi0 + side)],
                [0, radius * math.sin(psi0 + side)],
                color=cone.color,
                linestyle=cone.linestyle,
                lw=0.9,
                zorder=1.5,
            )
        ang = np.linspace(psi0 - half, psi0 + half, 181)
        ax.plot(
            n0 * np.cos(ang),
            n0 * np.sin(ang),
            color=cone.color,
            linestyle=(0, (1.0, 1.2)),
            lw=0.9,
            zorder=1.5,
        )
        handles.append(
            Line2D(
                [],
                [],
                color=cone.color,
                linestyle=cone.linestyle,
                lw=0.9,
                label=rf"ConicGrad cone $\cos(d, g_0) \geq {cone_c:g}$",
            )
        )
        handles.append(
            Line2D(
                [],
                [],
                color=cone.color,
                linestyle=(0, (1.0, 1.2)),
                lw=0.9,
                label=r"cone $\cap$ $\|d\| = \|g_0\|$",
            )
        )
        ball = method_style("cagrad")
        ax.add_patch(Circle(tuple(g0), ball_c * n0, facecolor=ball.color, alpha=0.12, lw=0, zorder=1))
        ax.add_patch(
            Circle(
                tuple(g0),
                ball_c * n0,
                facecolor="none",
                edgecolor=ball.color,
                linestyle=ball.linestyle,
                lw=0.9,
                zorder=1.5,
            )
        )
        handles.append(
            Line2D(
                [],
                [],
                color=ball.color,
                linestyle=ball.linestyle,
                lw=0.9,
                label=rf"CAGrad ball $\|d - g_0\| \leq {ball_c:g}\,\|g_0\|$",
            )
        )
    else:
        ax.text(0.02, 0.02, r"$g_0 = 0$: no ball or cone", transform=ax.transAxes, fontsize=6)
    for k, g in enumerate(grads):
        _arrow(ax, g, "#555555", 1.0, None, 3)
        ax.annotate(
            rf"$g_{k + 1}$", tuple(g), xytext=(3, 2), textcoords="offset points", fontsize=7, zorder=6
        )
    _arrow(ax, g0, "#000000", 1.4, None, 3.2)
    ax.annotate(r"$g_0$", tuple(g0), xytext=(3, -8), textcoords="offset points", fontsize=7, zorder=6)
    for d in dirs:
        style = method_style(d.method)
        label = d.label + (f"{flag_gap}[{', '.join(d.flags)}]" if d.flags else "")
        if not np.all(np.isfinite(d.d)):
            handles.append(
                Line2D([], [], color=style.color, linestyle="none", label=label + " (non-finite d)")
            )
            continue
        ax.plot([0, d.d[0]], [0, d.d[1]], color=style.color, linestyle=style.linestyle, lw=1.1, zorder=4)
        ax.plot(
            [d.d[0]],
            [d.d[1]],
            marker=style.marker,
            markersize=4.5,
            markerfacecolor=style.color,
            markeredgecolor="#000000",
            markeredgewidth=0.5,
            linestyle="none",
            zorder=4.5,
        )
        handles.append(method_handle(d.method, f"$d$ {label}"))
    ax.plot([0], [0], marker="o", markersize=2.5, color="#000000", zorder=5)
    ax.set_xlim(centre[0] - half_side, centre[0] + half_side)
    ax.set_ylim(centre[1] - half_side, centre[1] + half_side)
    ax.set_aspect("equal")
    ax.axhline(0, color="#BBBBBB", lw=0.4, zorder=0.2)
    ax.axvline(0, color="#BBBBBB", lw=0.4, zorder=0.2)
    ax.set_xlabel(r"$d_1$")
    ax.set_ylabel(r"$d_2$")
    return handles
