"""View 5, basins of attraction: the sidebar's run (setup, methods and their parameters, optimizer,
lr, steps, seed) from every start of a grid (or a random sample) over the box; each start coloured by
where it ends, one map per method (or per c of a sweep), the success table, the stalled regions and
the path of a clicked start.

The view adds only the layout of the starts and the c sweep, both app values (ui/state), so a link
brings the maps back. The run goes through the app's one slow-run gate and run cache
(``runs.gated_run``); the grid size, the number of random starts and the lanes are capped
(``toyopt.outcomes.APP_MAX_*``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .. import geometry
from ..config import Config
from ..engine import Result
from ..methods import METHODS
from ..outcomes import (
    APP_MAX_GRID,
    APP_MAX_LANES,
    APP_MAX_RANDOM,
    C_SWEEP,
    CATEGORIES,
    CATEGORY_HELP,
    Outcomes,
    Starts,
    basin_config,
    classify,
    outcomes_csv,
    outcomes_json,
    success_table,
    with_param_sweep,
)
from ..problems import get_problem
from . import cache, controls, runs

TRAJECTORY_POINTS = 1500
MAPS_PER_ROW = 4
MAP_SIZE = 300

COLORS = {
    "global_min": "#009E73",
    "pareto": "#0072B2",
    "stalled": "#D55E00",
    "moving": "#E69F00",
    "diverged": "#000000",
}


def sweepable(values: dict[str, Any]) -> list[str]:
    """The selected methods whose c the app runs as a grid (the ones a c sweep applies to)."""
    return [m for m in values["methods"] if runs.grid_spec(m) is not None]


def run_config(values: dict[str, Any]) -> tuple[Config, Starts]:
    """The basin run of ``values``: the sidebar's config (each parameter at its chosen value, or c
    over C_SWEEP), started from the view's starts. Raises ValueError above the page's lane cap."""
    config = runs.build_config(values, grids=False)
    if values["basin_sweep"] and sweepable(values):
        config = with_param_sweep(config, "c", C_SWEEP)
    kind = values["basin_starts"]
    n = values["basin_grid"] if kind == "grid" else values["basin_random"]
    box = tuple(tuple(r) for r in get_problem(config.problem).box)
    starts = Starts(kind, n, box, values["seed"]).validated(APP_MAX_GRID, APP_MAX_RANDOM)
    lanes = starts.count * sum(len(m.grid()) for m in config.methods)
    if lanes > APP_MAX_LANES:
        raise ValueError(
            f"{lanes} lanes (starts x methods x swept values); the page runs at most {APP_MAX_LANES}: "
            "use a smaller grid, fewer methods or the CLI"
        )
    return basin_config(config, starts), starts


@cache.cached("outcomes", spinner="Classifying the end points...")
def classified(config_json: str, _result: Result, _starts: Starts) -> Outcomes:
    """``classify`` of the run ``_result`` of ``config_json`` from ``_starts``, cached by the config
    (which lists every start)."""
    return classify(_result, _starts)


def trajectory(outcomes: Outcomes, lane: int) -> Result:
    """The full path of one lane of a basin run (same method values, the start alone), from the
    app's run cache."""
    series = next(s for s in outcomes.series if lane in set(s.lanes.tolist()))
    entry = outcomes.config.methods[series.entry]
    fixed = replace(entry, params={k: series.params[k] for k in entry.params})
    config = replace(
        outcomes.config,
        methods=(fixed,),
        inits=(tuple(outcomes.init[lane]),),
        record_every=max(1, outcomes.config.steps // TRAJECTORY_POINTS),
    ).validated()
    return runs.cached_run(config.to_json())


# -- plotly builders ----------------------------------------------------------------------------


def _contour_trace(config: Config, n: int = 120):
    import torch

    problem = get_problem(config.problem)
    (a, b), (c, d) = problem.box
    x1, x2 = np.linspace(a, b, n), np.linspace(c, d, n)
    g1, g2 = np.meshgrid(x1, x2)
    pts = torch.as_tensor(np.stack([g1.ravel(), g2.ravel()], -1), dtype=torch.float64)
    mean = problem.losses(pts, dict(config.problem_params)).numpy().mean(-1).reshape(n, n)
    return go.Contour(
        x=x1,
        y=x2,
        z=mean,
        ncontours=18,
        showscale=False,
        hoverinfo="skip",
        contours={"coloring": "none"},
        line={"color": "rgba(255,255,255,0.45)", "width": 0.7},
        name="mean loss",
        showlegend=False,
    )


def map_figure(outcomes: Outcomes, series: int, trajectory_xy: np.ndarray | None = None) -> go.Figure:
    """One series' map of a grid run: the cells as a heatmap coloured by outcome, over it the faint
    mean-loss contours, the Pareto set, the minimum and a clicked start's path, and on top an
    almost transparent layer of the starts that makes the cells clickable (customdata: the lane).
    No WebGL: it is drawn above every SVG trace and hid the marks; and a click must select a start
    (plotly's default drag mode; in "select" mode a click only clears the selection)."""
    problem = get_problem(outcomes.config.problem)
    (a, b), (c, d) = problem.box
    s = outcomes.series[series]
    n = outcomes.starts.n
    codes = np.array([CATEGORIES.index(k) for k in outcomes.category[s.lanes]]).reshape(n, n)
    cells = outcomes.init[s.lanes]
    k = len(CATEGORIES)
    scale = [[edge / k, COLORS[name]] for i, name in enumerate(CATEGORIES) for edge in (i, i + 1)]
    fig = go.Figure(
        go.Heatmap(
            x=cells[:n, 0],
            y=cells[::n, 1],
            z=codes,
            zmin=-0.5,
            zmax=k - 0.5,
            colorscale=scale,
            showscale=False,
            hoverinfo="skip",
            name="outcome",
        )
    )
    fig.add_trace(_contour_trace(outcomes.config))
    pareto = geometry.pareto_set(problem, dict(outcomes.config.problem_params)).points.numpy()
    fig.add_trace(
        go.Scatter(
            x=pareto[:, 0],
            y=pareto[:, 1],
            mode="lines",
            line={"color": "#cccccc"},
            hoverinfo="skip",
            name="Pareto set",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[outcomes.global_min[0]],
            y=[outcomes.global_min[1]],
            mode="markers",
            marker={"symbol": "star", "size": 12, "color": "white", "line": {"width": 1}},
            hoverinfo="skip",
            name="global minimum",
        )
    )
    if trajectory_xy is not None:
        fig.add_trace(
            go.Scatter(
                x=trajectory_xy[:, 0],
                y=trajectory_xy[:, 1],
                mode="lines",
                line={"color": "white", "width": 2},
                hoverinfo="skip",
                name="path of the clicked start",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=cells[:, 0],
            y=cells[:, 1],
            mode="markers",
            customdata=s.lanes,
            text=outcomes.category[s.lanes],
            marker={"symbol": "square", "size": max(2.0, (MAP_SIZE - 40) / n), "color": "rgba(0,0,0,0.01)"},
            hovertemplate="%{text}<br>start (%{x:.2f}, %{y:.2f})<extra></extra>",
            name="starts",
        )
    )
    fig.update_layout(
        width=MAP_SIZE,
        height=MAP_SIZE,
        margin={"l": 30, "r": 5, "t": 30, "b": 25},
        title={"text": s.title, "font": {"size": 12}},
        xaxis={"range": [a, b], "constrain": "domain"},
        yaxis={"range": [c, d], "scaleanchor": "x", "constrain": "domain"},
        showlegend=False,
    )
    return fig


def table_rows(outcomes: Outcomes) -> list[dict]:
    """The success table formatted for display (percentages, medians)."""
    rows = []
    for r in success_table(outcomes):
        row = {"series": r["series"], "starts": r["starts"]}
        for k in (*CATEGORIES, "pareto_set"):
            row[k] = f"{r[k]:.1%}"
        if "global_min_ci95" in r:
            lo, hi = r["global_min_ci95"]
            row["global_min 95% CI"] = f"{lo:.1%}-{hi:.1%}"
        for k in ("median_steps_global_min", "median_steps_pareto_set"):
            row[k] = None if r[k] is None else int(r[k])
        row["stalled regions"] = r["stalled_regions"]
        rows.append(row)
    return rows


# -- the page ------------------------------------------------------------------------------------


def _controls(values: dict[str, Any]) -> None:
    """How the starts are laid out and whether c is swept; the rest is the sidebar's."""
    cols = st.columns(3)
    controls.bound(
        st.segmented_control,
        "basin_starts",
        "Starts",
        values,
        cols[0],
        options=["grid", "random"],
        format_func={"grid": "grid over the box", "random": "random in the box"}.get,
        required=True,
    )
    if (values["basin_starts"] or "grid") == "grid":
        controls.bound(
            st.number_input,
            "basin_grid",
            f"Grid side (max {APP_MAX_GRID})",
            values,
            cols[1],
            min_value=2,
            max_value=APP_MAX_GRID,
        )
    else:
        controls.bound(
            st.number_input,
            "basin_random",
            f"Random starts (max {APP_MAX_RANDOM})",
            values,
            cols[1],
            min_value=1,
            max_value=APP_MAX_RANDOM,
        )
    labels = [METHODS[m].label for m in sweepable(values)]
    controls.bound(
        st.checkbox,
        "basin_sweep",
        f"Sweep c = {C_SWEEP[0]}..{C_SWEEP[-1]} for {', '.join(labels) or '(no selected method has c)'}",
        values,
        cols[2],
        disabled=not labels,
    )


def view(values: dict[str, Any]) -> None:
    """The basins page: its two controls, then (through the slow-run gate) maps, table, exports."""
    st.caption(
        "Every start of a grid over the box runs the sidebar's methods with their parameters, optimizer, "
        "lr, steps and seed; its cell is coloured by where it ends. "
        + "; ".join(f"**{k}**: {v}" for k, v in CATEGORY_HELP.items())
    )
    _controls(values)
    values["basin_starts"] = values["basin_starts"] or "grid"
    try:
        config, starts = run_config(values)
    except ValueError as exc:
        st.error(str(exc))
        return
    result = runs.gated_run(config)
    if result is None:
        return
    outcomes = classified(config.to_json(), result, starts)
    _show(outcomes)


def clicked_lane(outcomes: Outcomes, series: int, event: Any) -> int | None:
    """The lane of the start nearest to a clicked point of a map (the selection event's x, y)."""
    selection = (event or {}).get("selection", {}) if event else {}
    points = [p for p in selection.get("points", []) if "x" in p and "y" in p]
    if not points:
        return None
    lanes = outcomes.series[series].lanes
    gap = np.linalg.norm(outcomes.init[lanes] - [points[0]["x"], points[0]["y"]], axis=1)
    return int(lanes[int(np.argmin(gap))])


def _show(outcomes: Outcomes) -> None:
    st.subheader("Success rates")
    st.dataframe(table_rows(outcomes), width="stretch", hide_index=True)
    if outcomes.regions:
        st.caption(
            "Stalled regions (shared by all maps): " + "; ".join(r.describe() for r in outcomes.regions[:8])
        )
    st.caption(
        f"{len(outcomes.category)} lanes, {outcomes.config.steps} steps, {outcomes.seconds:.1f} s; "
        f"moving = moved at least {outcomes.stall_tol:.3g} over the last {outcomes.window} steps"
    )
    if outcomes.starts is None or outcomes.starts.kind != "grid":
        _downloads(outcomes)
        return
    labels = [s.title for s in outcomes.series]
    shown = st.multiselect("Maps", labels, default=labels[:8], key="basins_shown")
    st.markdown(
        "Colours: "
        + " ".join(f"<span style='color:{COLORS[k]}'>&#9632;</span> {k}" for k in CATEGORIES)
        + "; white star: the global minimum; grey line: the Pareto set; faint lines: contours of the mean "
        "loss. Click a cell for its path.",
        unsafe_allow_html=True,
    )
    clicked = st.session_state.get("basins_clicked")
    if clicked is not None and clicked[2] != outcomes.config.to_json():
        clicked = None  # a click on the maps of another run
    chosen = [labels.index(x) for x in shown]
    for start in range(0, len(chosen), MAPS_PER_ROW):
        cols = st.columns(MAPS_PER_ROW)
        for col, k in zip(cols, chosen[start : start + MAPS_PER_ROW]):
            path = None
            if clicked is not None and clicked[0] == k:
                path = trajectory(outcomes, clicked[1]).x[:, 0, :2]
            event = col.plotly_chart(
                map_figure(outcomes, k, trajectory_xy=path),
                on_select="rerun",
                selection_mode=("points",),
                key=f"basins_map_{k}",
            )
            lane = clicked_lane(outcomes, k, event)
            if lane is not None:
                if clicked is None or clicked[:2] != (k, lane):
                    st.session_state["basins_clicked"] = (k, lane, outcomes.config.to_json())
                    st.rerun()
    if clicked is not None:
        k, lane, _ = clicked
        st.markdown(
            f"**Start ({outcomes.init[lane][0]:.2f}, {outcomes.init[lane][1]:.2f})**, "
            f"{outcomes.series[k].title}: {outcomes.category[lane]}"
            + (f" (l = {outcomes.pareto_l[lane]:.3f})" if not math.isnan(outcomes.pareto_l[lane]) else "")
            + (f", {outcomes.kind[lane]}" if outcomes.kind[lane] else "")
            + f"; ends at ({outcomes.final[lane][0]:.3f}, {outcomes.final[lane][1]:.3f})"
        )
    _downloads(outcomes)


def _downloads(outcomes: Outcomes) -> None:
    from ..figures.basins import basin_maps_figure, save_basin_figure

    cols = st.columns(5)
    cols[0].download_button("CSV", outcomes_csv(outcomes), "basins.csv", "text/csv", key="basins_csv")
    cols[1].download_button(
        "JSON", outcomes_json(outcomes), "basins.json", "application/json", key="basins_json"
    )
    key = outcomes.config.to_json()
    if cols[2].button("Prepare figure", key="basins_fig"):
        fig = basin_maps_figure(outcomes)
        st.session_state["basins_figs"] = (
            key,
            {s: save_basin_figure(fig, f"basins{s}", outcomes) for s in (".pdf", ".svg", ".png")},
        )
    prepared = st.session_state.get("basins_figs")
    if prepared is not None and prepared[0] == key:  # prepared for the run on screen
        figs = prepared[1]
        cols[3].download_button("PDF", figs[".pdf"], "basins.pdf", "application/pdf", key="basins_pdf")
        cols[4].download_button("PNG", figs[".png"], "basins.png", "image/png", key="basins_png")
        st.download_button("SVG", figs[".svg"], "basins.svg", "image/svg+xml", key="basins_svg")
