"""Plotly figure builders: pure functions of numbers and Results (no Streamlit here)."""

from __future__ import annotations

import math
import textwrap
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import geometry
from ..engine import Result
from ..problems import get_problem

PROBLEM = "liu2021"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
PROGRESS_SCALE = "Viridis"
CLICK_GRID = 21  # points per axis of the invisible grid that makes the map clickable
PROGRESS_MARKERS = 60  # colour markers per trajectory (its line has every recorded state)
SURFACES = {"mean": "mean (f1 + f2)/2", "f1": "f1 (task 1, scaled)", "f2": "f2 (task 2)"}


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


@lru_cache(maxsize=16)
def loss_grid(params_key: tuple, n: int = 121) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axes x1 (n,), x2 (n,) and losses (n, n, K) over the problem's box (row = x2)."""
    import torch

    problem = get_problem(PROBLEM)
    (lo1, hi1), (lo2, hi2) = problem.box
    x1 = np.linspace(lo1, hi1, n)
    x2 = np.linspace(lo2, hi2, n)
    mesh = np.stack(np.meshgrid(x1, x2), axis=-1).reshape(-1, 2)
    losses = problem.losses(torch.tensor(mesh, dtype=torch.float64), dict(params_key)).numpy()
    return x1, x2, losses.reshape(n, n, -1)


def surface_values(losses: np.ndarray, which: str) -> np.ndarray:
    if which == "f1":
        return losses[..., 0]
    if which == "f2":
        return losses[..., 1]
    return losses.mean(-1)


def _pareto(params: dict):
    problem = get_problem(PROBLEM)
    return geometry.pareto_set(problem, problem.validate_params(params))


def global_min_of(params: dict) -> np.ndarray:
    problem = get_problem(PROBLEM)
    return geometry.global_minimum(problem, problem.validate_params(params)).numpy()


def _background(params: dict, which: str) -> go.Heatmap:
    """A light heatmap of the surface (cheap to redraw, unlike contour lines), its colour range
    clipped to the 2nd-98th percentiles so the valleys show."""
    x1, x2, losses = loss_grid(tuple(sorted(params.items())), 81)
    z = surface_values(losses, which)
    low, high = np.percentile(z, [2, 98])
    return go.Heatmap(
        x=x1,
        y=x2,
        z=z,
        zmin=low,
        zmax=high,
        colorscale="Greys",
        reversescale=True,
        opacity=0.45,
        showscale=False,
        hoverinfo="skip",
        zsmooth="best",
        name=SURFACES[which],
        showlegend=False,
    )


def _map_traces(params: dict, which: str, show_scale: bool, with_clicks: bool, light: bool = False) -> list:
    x1, x2, losses = loss_grid(tuple(sorted(params.items())))
    z = surface_values(losses, which)
    pareto = _pareto(params).points.numpy()
    gmin = global_min_of(params)
    traces = [
        _background(params, which)
        if light
        else go.Contour(
            x=x1,
            y=x2,
            z=z,
            ncontours=30,
            colorscale="Greys",
            reversescale=True,
            opacity=0.55,
            showscale=show_scale,
            contours={"coloring": "heatmap", "showlines": True},
            line={"width": 0.5},
            hovertemplate="x1=%{x:.2f}<br>x2=%{y:.2f}<br>" + which + "=%{z:.3f}<extra></extra>",
            colorbar={"title": {"text": which}, "len": 0.8} if show_scale else None,
            name=SURFACES[which],
            showlegend=False,
        ),
        go.Scatter(
            x=pareto[:, 0],
            y=pareto[:, 1],
            mode="lines",
            line={"color": "#e6a100", "width": 3},
            name="Pareto set",
            legendgroup="pareto",
            showlegend=show_scale,
            hoverinfo="skip",
        ),
        go.Scatter(
            x=[gmin[0]],
            y=[gmin[1]],
            mode="markers",
            name="global minimum of the mean loss",
            marker=_star(16),
            legendgroup="gmin",
            showlegend=show_scale,
            hovertemplate="global minimum of (f1 + f2)/2<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
        ),
    ]
    if with_clicks:
        g = np.linspace(-10, 10, CLICK_GRID)
        gx, gy = np.meshgrid(g, g)
        traces.append(
            go.Scatter(
                x=gx.ravel(),
                y=gy.ravel(),
                mode="markers",
                name="click to add a start",
                marker={"size": 9, "color": "rgba(0,0,0,0.004)"},
                showlegend=False,
                hovertemplate="add a start at (%{x:.1f}, %{y:.1f})<extra></extra>",
                meta="click-grid",
            )
        )
    return traces


def landscape_figure(params: dict, which: str = "mean") -> go.Figure:
    fig = go.Figure(_map_traces(params, which, show_scale=True, with_clicks=False))
    _square(fig)
    fig.update_layout(
        title=f"Landscape of {SURFACES[which]}", height=560, legend={"orientation": "h", "y": -0.12}
    )
    return fig


def _star(size: int) -> dict:
    """The marker of the global minimum of the mean loss, the same in every view."""
    return {"symbol": "star", "size": size, "color": "gold", "line": {"color": "black", "width": 1}}


def pareto_zoom_figure(params: dict) -> go.Figure:
    """The Pareto set in x-space on its own x2 scale (it spans a few hundredths in x2, so on the
    map it looks straight), with the chord between its ends for comparison."""
    pts = _pareto(params).points.numpy()
    gmin = global_min_of(params)
    fig = go.Figure(
        [
            go.Scatter(
                x=pts[[0, -1], 0],
                y=pts[[0, -1], 1],
                mode="lines",
                name="straight line between its ends",
                line={"color": "gray", "dash": "dot", "width": 1},
            ),
            go.Scatter(
                x=pts[:, 0],
                y=pts[:, 1],
                mode="lines",
                name="Pareto set",
                line={"color": "#e6a100", "width": 3},
            ),
            go.Scatter(
                x=[gmin[0]],
                y=[gmin[1]],
                mode="markers",
                name="global minimum of the mean loss",
                marker=_star(14),
            ),
        ]
    )
    pad = 0.15 * max(float(np.ptp(pts[:, 1])), 1e-9)
    fig.update_yaxes(
        range=[float(pts[:, 1].min()) - pad, float(pts[:, 1].max()) + pad], title_text="x2 (zoomed)"
    )
    fig.update_xaxes(title_text="x1")
    fig.update_layout(
        title=f"The Pareto set on its own x2 scale (it spans {np.ptp(pts[:, 1]):.3g} in x2)",
        height=300,
        legend={"orientation": "h", "y": -0.3},
        margin={"t": 50},
    )
    return fig


def surface3d_figure(params: dict, which: str = "mean") -> go.Figure:
    x1, x2, losses = loss_grid(tuple(sorted(params.items())), 81)
    z = surface_values(losses, which)
    pareto = _pareto(params)
    pz = surface_values(pareto.front.numpy()[None], which)[0]
    gmin = global_min_of(params)
    gz = surface_values(_losses_at(params, gmin[None])[None], which)[0]
    fig = go.Figure(
        [
            go.Surface(x=x1, y=x2, z=z, colorscale="Viridis", opacity=0.9, showscale=False, name=which),
            go.Scatter3d(
                x=pareto.points[:, 0].numpy(),
                y=pareto.points[:, 1].numpy(),
                z=pz,
                mode="lines",
                line={"color": "#e6a100", "width": 6},
                name="Pareto set",
            ),
            go.Scatter3d(
                x=[gmin[0]],
                y=[gmin[1]],
                z=gz,
                mode="markers",
                name="global minimum",
                marker={"size": 6, "color": "gold", "symbol": "diamond"},
            ),
        ]
    )
    fig.update_layout(
        title=f"{SURFACES[which]} as a surface",
        height=560,
        scene={"xaxis_title": "x1", "yaxis_title": "x2", "zaxis_title": which},
    )
    return fig


def _losses_at(params: dict, x: np.ndarray) -> np.ndarray:
    import torch

    problem = get_problem(PROBLEM)
    return problem.losses(torch.tensor(x, dtype=torch.float64), problem.validate_params(params)).numpy()


def front_figure(params: dict) -> go.Figure:
    """The Pareto front in loss space over the losses of a grid of points in the box."""
    _, _, losses = loss_grid(tuple(sorted(params.items())), 61)
    cloud = losses.reshape(-1, losses.shape[-1])
    front = _pareto(params).front.numpy()
    gl = _losses_at(params, global_min_of(params)[None])[0]
    fig = go.Figure(
        [
            go.Scattergl(
                x=cloud[:, 0],
                y=cloud[:, 1],
                mode="markers",
                name="losses of points in the box",
                marker={"size": 3, "color": "lightgray"},
                hoverinfo="skip",
            ),
            go.Scatter(
                x=front[:, 0],
                y=front[:, 1],
                mode="lines",
                name="Pareto front",
                line={"color": "#e6a100", "width": 3},
            ),
            go.Scatter(
                x=[gl[0]], y=[gl[1]], mode="markers", name="global minimum of the mean", marker=_star(16)
            ),
        ]
    )
    fig.update_layout(
        title="Pareto front in loss space",
        xaxis_title="f1 (scaled)",
        yaxis_title="f2",
        height=560,
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _square(fig: go.Figure, rows: int = 1, cols: int = 1) -> None:
    fig.update_xaxes(range=[-10.5, 10.5], title_text="x1", constrain="domain")
    fig.update_yaxes(range=[-10.5, 10.5], title_text="x2", constrain="domain")
    n = rows * cols
    for i in range(1, n + 1):
        suffix = "" if i == 1 else str(i)
        fig.update_layout({f"yaxis{suffix}": {"scaleanchor": f"x{suffix}", "scaleratio": 1}})


def _trajectory_traces(
    result: Result, lane: int, name: str, col: str, show_scale: bool, legend: bool
) -> list:
    steps = result.recorded_steps
    xy = result.x[:, lane]
    start = result.lanes[lane].init
    every = max(1, len(steps) // PROGRESS_MARKERS)
    marks = np.unique(np.r_[np.arange(0, len(steps), every), len(steps) - 1])
    return [
        go.Scatter(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="lines",
            name=name,
            legendgroup=name,
            showlegend=legend,
            line={"color": col, "width": 1.5},
            meta=f"lane-{lane}",
            hoverinfo="skip",
        ),
        go.Scatter(
            x=xy[marks, 0],
            y=xy[marks, 1],
            mode="markers",
            name=name,
            legendgroup=name,
            showlegend=False,
            marker={
                "size": 5,
                "color": steps[marks],
                "colorscale": PROGRESS_SCALE,
                "cmin": 0,
                "cmax": int(steps[-1]),
                "showscale": show_scale,
                "colorbar": {"title": {"text": "step"}, "len": 0.8} if show_scale else None,
            },
            customdata=steps[marks],
            hovertemplate=name + "<br>step %{customdata}<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
        ),
        go.Scatter(
            x=[start[0]],
            y=[start[1]],
            mode="markers",
            showlegend=False,
            legendgroup=name,
            hoverinfo="skip",
            marker={"symbol": "circle-open", "size": 11, "color": col, "line": {"width": 2}},
        ),
        go.Scatter(
            x=[xy[-1, 0]],
            y=[xy[-1, 1]],
            mode="markers",
            showlegend=False,
            legendgroup=name,
            marker={"symbol": "x", "size": 10, "color": col},
            hovertemplate=name + f"<br>end ({result.outcome(lane)})<extra></extra>",
        ),
    ]


#: Characters per line of a panel title, by the number of columns (fits a 1280 px wide page).
TITLE_CHARS = {1: 80, 2: 40, 3: 26}


def trajectories_figure(result: Result, panels: list, layout: str = "panels") -> go.Figure:
    """``panels``: engine.Series (runs.shown_series). Small multiples (one panel per method) or
    one overlay."""
    params = dict(result.config.problem_params)
    if layout == "overlay" or len(panels) == 1:
        fig = go.Figure(_map_traces(params, "mean", show_scale=False, with_clicks=True, light=True))
        for k, s in enumerate(panels):
            for j, lane in enumerate(s.lanes):
                fig.add_traces(_trajectory_traces(result, lane, s.title, color(k), k == 0 and j == 0, j == 0))
        _square(fig)
        fig.update_layout(height=620, title=panels[0].title if len(panels) == 1 else "All methods")
        fig.update_layout(legend={"orientation": "h", "y": -0.12})
        return fig
    cols = min(len(panels), 3 if len(panels) in (3, 5, 6) or len(panels) > 6 else 2)
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        # Wrapped to their column: on one line, neighbouring long titles ran into each other.
        subplot_titles=["<br>".join(textwrap.wrap(s.title, TITLE_CHARS[cols])) for s in panels],
        horizontal_spacing=0.06,
        vertical_spacing=0.22 / rows,
    )
    for k, s in enumerate(panels):
        r, c = k // cols + 1, k % cols + 1
        for t in _map_traces(params, "mean", show_scale=False, with_clicks=True, light=True):
            t.showlegend = k == 0 and t.legendgroup in ("pareto", "gmin")
            fig.add_trace(t, row=r, col=c)
        for j, lane in enumerate(s.lanes):
            init = result.lanes[lane].init
            name = f"start ({init[0]:g}, {init[1]:g})"
            for t in _trajectory_traces(result, lane, name, color(j), k == 0 and j == 0, k == 0):
                fig.add_trace(t, row=r, col=c)
    _square(fig, rows, cols)
    # A square panel is drawn at the top of its cell, under its title (centred, a wide cell left a
    # gap between them).
    fig.update_yaxes(constraintoward="top")
    for k in range(len(panels)):  # x titles only under the bottom row, x2 titles only in column 1
        suffix = "" if k == 0 else str(k + 1)
        if k < len(panels) - cols:
            fig.layout[f"xaxis{suffix}"].title.text = None
        if k % cols:
            fig.layout[f"yaxis{suffix}"].title.text = None
    # The legend above the panels: below them it covered the bottom row's x1 titles.
    fig.update_layout(
        height=max(460, 400 * rows + 40),
        legend={"orientation": "h", "y": 1.0 + 0.1 / rows, "yanchor": "bottom", "x": 0.0},
        margin={"l": 40, "r": 20, "t": 110, "b": 40},
    )
    return fig


def loss_curves_figure(result: Result, panels: list, start: int) -> go.Figure:
    """Per method: f1, f2 and their mean against steps from one starting point."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[s.title for s in panels], shared_yaxes=True)
    steps = result.recorded_steps
    for k, s in enumerate(panels):
        lane = s.lanes[min(start, len(s.lanes) - 1)]
        losses = result.losses[:, lane]
        for name, y, dash in (
            ("f1", losses[:, 0], "dash"),
            ("f2", losses[:, 1], "dot"),
            ("mean", losses.mean(-1), "solid"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=y,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=k == 0,
                    line={"dash": dash, "color": {"f1": COLORS[0], "f2": COLORS[1]}.get(name, "black")},
                ),
                row=1,
                col=k + 1,
            )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", col=1)
    fig.update_layout(height=320, title="Losses per task and their mean", margin={"t": 70})
    return fig


def convergence_figure(result: Result, panels: list) -> go.Figure:
    """Gap of the mean loss to its global minimum against steps (log scale), per method and start."""
    steps = result.recorded_steps
    best = _losses_at(dict(result.config.problem_params), result.global_min[None]).mean()
    fig = go.Figure()
    for k, s in enumerate(panels):
        for j, lane in enumerate(s.lanes):
            gap = np.maximum(result.losses[:, lane].mean(-1) - best, 1e-12)
            init = result.lanes[lane].init
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=gap,
                    mode="lines",
                    name=s.title,
                    legendgroup=s.title,
                    showlegend=j == 0,
                    line={"color": color(k), "width": 1.5},
                    hovertemplate=f"{s.title}<br>start ({init[0]:g}, {init[1]:g})<br>"
                    + "step %{x}<br>gap %{y:.3g}<extra></extra>",
                )
            )
    fig.update_yaxes(type="log", title_text="mean loss - global minimum")
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=360, title="Convergence: gap to the global minimum of the mean loss")
    return fig


# -- gradient space: the feasible regions ------------------------------------------------------


def _angle(v: np.ndarray) -> float:
    return math.atan2(v[1], v[0])


def _wedge(center: float, half: float, radius: float, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(center - half, center + half, n)
    return np.concatenate([[0], radius * np.cos(t), [0]]), np.concatenate([[0], radius * np.sin(t), [0]])


def region_traces(
    g1: np.ndarray, g2: np.ndarray, cone_c: float, ball_c: float, updates: dict, radius: float
) -> list[dict]:
    """The traces of gradient space, always the same number in the same order (so that animation
    frames can replace them one by one): the dual cone, ConicGrad's cone and its arc, CAGrad's
    ball, g1, g2, g0 and one dashed arrow per entry of ``updates`` {label: d}. A region that does
    not exist at this point (g0 = 0, no non-conflicting direction) or a non-finite d is an empty
    trace."""
    g0 = (g1 + g2) / 2
    n0 = float(np.linalg.norm(g0))
    dual = geometry.dual_cone_arc(np.stack([g1, g2]))
    empty = (np.zeros(0), np.zeros(0))
    x, y = _wedge((dual[0] + dual[1]) / 2, (dual[1] - dual[0]) / 2, radius) if dual is not None else empty
    traces = [
        dict(
            type="scatter",
            x=x,
            y=y,
            fill="toself",
            mode="lines",
            line={"width": 0},
            fillcolor="rgba(44,160,44,0.18)",
            name="dual cone: <g_i, d> >= 0 for all i",
        )
    ]
    half = geometry.cone_half_angle(cone_c)
    x, y = _wedge(_angle(g0), half, radius) if n0 > 0 else empty
    convex = "" if cone_c >= 0 else " (non-convex, c < 0)"
    traces.append(
        dict(
            type="scatter",
            x=x,
            y=y,
            fill="toself",
            mode="lines",
            line={"color": "#9467bd", "width": 1, "dash": "dot"},
            fillcolor="rgba(148,103,189,0.15)",
            name=f"ConicGrad cone cos(d, g0) >= {cone_c:g}{convex}",
        )
    )
    t = np.linspace(_angle(g0) - half, _angle(g0) + half, 48)
    traces.append(
        dict(
            type="scatter",
            x=n0 * np.cos(t) if n0 > 0 else empty[0],
            y=n0 * np.sin(t) if n0 > 0 else empty[1],
            mode="lines",
            line={"color": "#9467bd", "width": 3},
            name="cone arc ||d|| = ||g0|| (ConicGrad's updates)",
        )
    )
    t = np.linspace(0, 2 * math.pi, 73)
    traces.append(
        dict(
            type="scatter",
            x=g0[0] + ball_c * n0 * np.cos(t) if n0 > 0 else empty[0],
            y=g0[1] + ball_c * n0 * np.sin(t) if n0 > 0 else empty[1],
            fill="toself",
            mode="lines",
            line={"color": "#ff7f0e", "width": 2},
            fillcolor="rgba(255,127,14,0.12)",
            name=f"CAGrad ball ||d - g0|| <= {ball_c:g} ||g0||",
        )
    )
    for label, v, col in (("g1", g1, COLORS[0]), ("g2", g2, COLORS[1]), ("g0 = (g1 + g2)/2", g0, "black")):
        traces.append(_arrow(v, label, col, width=3))
    for k, (label, d) in enumerate(updates.items()):
        traces.append(_arrow(d, f"d {label}", COLORS[(k + 3) % len(COLORS)], width=2, dash="dash"))
    return traces


def regions_radius(vectors: list[np.ndarray], g0: np.ndarray, ball_c: float) -> float:
    """Half the side of a square view of gradient space that holds the vectors and the ball."""
    n0 = float(np.linalg.norm(g0))
    return 1.25 * max(
        [float(np.linalg.norm(v)) for v in vectors if np.all(np.isfinite(v))] + [(1 + ball_c) * n0, 1e-12]
    )


def regions_figure(g1: np.ndarray, g2: np.ndarray, cone_c: float, ball_c: float, updates: dict) -> go.Figure:
    """g1, g2, g0, the dual cone, CAGrad's ball, ConicGrad's cone and the updates ``updates``
    {label: d}, in gradient space (x moves along -d)."""
    g0 = (g1 + g2) / 2
    radius = regions_radius([g1, g2, g0, *updates.values()], g0, ball_c)
    fig = go.Figure(region_traces(g1, g2, cone_c, ball_c, updates, radius))
    fig.update_xaxes(range=[-radius, radius], zeroline=True, title_text="d1")
    fig.update_yaxes(range=[-radius, radius], zeroline=True, scaleanchor="x", scaleratio=1, title_text="d2")
    fig.update_layout(
        height=600,
        title="Gradient space at the chosen point (x moves along -d)",
        legend={"orientation": "h", "y": -0.12},
    )
    return fig


def _arrow(v: np.ndarray, label: str, col: str, width: int, dash: str = "solid") -> dict:
    """An arrow from 0 to v (empty when v is not finite)."""
    finite = bool(np.all(np.isfinite(v)))
    return dict(
        type="scatter",
        x=[0, v[0]] if finite else [],
        y=[0, v[1]] if finite else [],
        mode="lines+markers",
        name=label,
        line={"color": col, "width": width, "dash": dash},
        marker={"symbol": "arrow", "angleref": "previous", "size": [0, 14], "color": col},
        hovertemplate=label + " = (%{x:.4g}, %{y:.4g})<extra></extra>",
    )


#: Frame duration (ms) of each play button of the teaching animation.
PLAY_SPEEDS = {"0.5x": 240, "1x": 120, "2x": 60, "4x": 30}


def _teaching_frame(
    result: Result,
    lane: int,
    frames: np.ndarray,
    f: int,
    grads: np.ndarray,
    cone_c: float,
    ball_c: float,
    label: str,
    arrow_len: float,
) -> list[dict]:
    """The moving traces of frame f: the path so far, -g1, -g2, -d at x (left; unit directions
    times ``arrow_len``) and gradient space scaled by 1 / the largest of ||g1||, ||g2||, ||d|| (right)."""
    t = int(frames[f])
    so_far = result.x[frames[: f + 1], lane]
    traces = [
        dict(
            type="scatter",
            x=so_far[:, 0],
            y=so_far[:, 1],
            marker={"color": result.recorded_steps[frames[: f + 1]]},
        )
    ]
    x = result.x[t, lane]
    d = result.directions[t, lane]
    for label_, v, col in (
        ("-g1", -grads[0], COLORS[0]),
        ("-g2", -grads[1], COLORS[1]),
        ("-d (the step)", -d, "black"),
    ):
        n = float(np.linalg.norm(v))
        tip = x + arrow_len * v / n if np.isfinite(n) and n > 0 else None
        traces.append(
            dict(
                type="scatter",
                x=[x[0], tip[0]] if tip is not None else [],
                y=[x[1], tip[1]] if tip is not None else [],
                mode="lines+markers",
                name=label_,
                line={"color": col, "width": 3},
                marker={"symbol": "arrow", "angleref": "previous", "size": [0, 14], "color": col},
            )
        )
    norms = [float(np.linalg.norm(v)) for v in (*grads, d) if np.all(np.isfinite(v))]
    scale = max(max(norms), 1e-300)
    g1, g2 = grads / scale
    traces += region_traces(g1, g2, cone_c, ball_c, {label: d / scale}, 4 * (1 + ball_c))
    return traces


def _teaching_annotations(step: int, text: str) -> list[dict]:
    """The two panel titles and the read-out of the step (one list, replaced by every frame)."""

    def title(x: float, words: str) -> dict:
        return {
            "text": words,
            "x": x,
            "y": 1.0,
            "xref": "paper",
            "yref": "paper",
            "xanchor": "center",
            "yanchor": "bottom",
            "showarrow": False,
            "font": {"size": 14},
        }

    return [
        title(0.225, f"step {step}: path, and directions at x (unit length)"),
        title(0.775, f"gradient space at step {step} (scaled to the longest vector)"),
        {
            "text": text,
            "x": 0.0,
            "y": 1.08,
            "xref": "paper",
            "yref": "paper",
            "xanchor": "left",
            "yanchor": "bottom",
            "align": "left",
            "showarrow": False,
            "font": {"size": 13},
        },
    ]


def _moved(traces: list[dict]) -> list[dict]:
    """What a frame changes in each moving trace: its points (and the path's step colours); the
    rest stays as drawn first, and each attribute less is one less for plotly to validate."""
    return [
        {k: t[k] for k in ("x", "y", "marker") if k in t and (k != "marker" or i == 0)}
        for i, t in enumerate(traces)
    ]


def teaching_figure(
    result: Result,
    lane: int,
    label: str,
    frames: np.ndarray,
    grads: np.ndarray,
    texts: list[str],
    cone_c: float,
    ball_c: float,
    active: int,
    arrow_len: float = 2.5,
) -> go.Figure:
    """One lane's run as a plotly animation that plays in the browser: the map with the path so far
    and the directions at x (left), gradient space at x (right), the read-out ``texts`` above.
    ``frames`` (F,) are recorded-state indices, ``grads`` (F, K, D) the task gradients there; the
    slider counts optimizer steps and opens at frame ``active``; play buttons at PLAY_SPEEDS."""
    params = dict(result.config.problem_params)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08)
    for t in _map_traces(params, "mean", show_scale=False, with_clicks=False, light=True):
        fig.add_trace(t, row=1, col=1)
    fig.add_trace(
        go.Scatter(
            x=result.x[:, lane, 0],
            y=result.x[:, lane, 1],
            mode="lines",
            name="whole run",
            line={"color": "rgba(0,0,0,0.2)", "width": 1},
            hoverinfo="skip",
        ),
        row=1,
        col=1,
    )
    first_moving = len(fig.data)
    moving = _teaching_frame(result, lane, frames, active, grads[active], cone_c, ball_c, label, arrow_len)
    moving[0].update(
        mode="lines+markers",
        name="so far",
        line={"color": "black", "width": 1},
    )
    moving[0]["marker"].update(size=5, colorscale=PROGRESS_SCALE, cmin=0, cmax=int(result.recorded_steps[-1]))
    for k, trace in enumerate(moving):
        fig.add_trace(trace, row=1, col=1 if k < 4 else 2)
    indices = list(range(first_moving, len(fig.data)))
    steps = [int(result.recorded_steps[t]) for t in frames]
    # Frames as plain dicts, validated once by the Figure (go.Frame objects would double the cost).
    frame_dicts = [
        {
            "name": str(steps[f]),
            "data": _moved(
                _teaching_frame(result, lane, frames, f, grads[f], cone_c, ball_c, label, arrow_len)
            ),
            "traces": indices,
            "layout": {"annotations": _teaching_annotations(steps[f], texts[f])},
        }
        for f in range(len(frames))
    ]

    def animate(duration: int) -> dict:
        return {
            "frame": {"duration": duration, "redraw": False},
            "transition": {"duration": 0},
            "mode": "immediate",
            "fromcurrent": True,
        }

    buttons = [
        {"label": f"▶ {speed}", "method": "animate", "args": [None, animate(ms)]}
        for speed, ms in PLAY_SPEEDS.items()
    ]
    buttons.append({"label": "❚❚ Pause", "method": "animate", "args": [[None], animate(0)]})
    span = 1.25 * (1 + ball_c)
    fig.update_xaxes(range=[-10.5, 10.5], title_text="x1", constrain="domain", row=1, col=1)
    fig.update_yaxes(range=[-10.5, 10.5], title_text="x2", constrain="domain", scaleanchor="x", row=1, col=1)
    fig.update_xaxes(range=[-span, span], title_text="d1", zeroline=True, constrain="domain", row=1, col=2)
    fig.update_yaxes(
        range=[-span, span],
        title_text="d2",
        zeroline=True,
        constrain="domain",
        scaleanchor="x2",
        row=1,
        col=2,
    )
    fig.update_layout(
        height=820,
        margin={"t": 150, "b": 20},
        annotations=_teaching_annotations(steps[active], texts[active]),
        legend={"orientation": "h", "y": -0.32, "yanchor": "top"},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "buttons": buttons,
                "showactive": False,
                "x": 0.0,
                "y": -0.14,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 0, "r": 10},
            }
        ],
        sliders=[
            {
                "active": active,
                "x": 0.3,
                "len": 0.7,
                "y": -0.1,
                "yanchor": "top",
                "currentvalue": {"prefix": "optimizer step "},
                "pad": {"t": 0},
                "steps": [
                    {"label": str(s), "method": "animate", "args": [[str(s)], animate(0)]} for s in steps
                ],
            }
        ],
    )
    return go.Figure(data=fig.data, layout=fig.layout, frames=frame_dicts)
