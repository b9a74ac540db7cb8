"""View 3, feasible regions: at a point (typed, a step of a trajectory, or synthetic gradients), the
task gradients, the dual cone of non-conflicting directions, CAGrad's ball and ConicGrad's cone
(each with its own c), and the update d of every selected method with read-outs."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
import torch

from .. import geometry
from ..figures.draw import BALL_METHODS, CONE_METHODS
from ..methods import METHODS
from . import controls, downloads, figures, runs

SOURCES = {
    "point": "a point of the toy",
    "trajectory": "a step of a trajectory",
    "synthetic": "synthetic gradients",
}


REGIONS = {"ball_c": BALL_METHODS, "cone_c": CONE_METHODS}


def region_owner(values: dict[str, Any], region: str) -> str | None:
    """The selected method whose c the region ``region`` (ball_c | cone_c) is drawn with: the
    first selected one of that region's methods, or None (the view's own slider then)."""
    return next((m for m in values["methods"] if m in REGIONS[region]), None)


def region_c(values: dict[str, Any], region: str) -> float:
    """c of CAGrad's ball or ConicGrad's cone: its owner's c (sidebar), else the view's slider."""
    owner = region_owner(values, region)
    return float(values[f"{owner}.c"]) if owner is not None else float(values[region])


def region_slider(
    values: dict[str, Any], region: str, label: str, container, low: float, high: float
) -> None:
    """The view's own c slider of a region, or, when a selected method owns the region, its c
    (the sidebar's) in its place: a region is drawn with the c of the method judged against it."""
    owner = region_owner(values, region)
    if owner is None:
        controls.bound(st.slider, region, label, values, container, min_value=low, max_value=high, step=0.01)
    else:
        container.markdown(
            f"{label}: **{region_c(values, region):g}**, the c of {METHODS[owner].label} (sidebar)"
        )


def _point_from_source(
    values: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, tuple[float, float] | None]:
    """Gradients (K, D), losses (K,), lower bounds (K,), a description of where they come from and
    the toy point x (None for synthetic gradients)."""
    source = values["source"] or "point"
    if source == "synthetic":
        a, b, c = st.columns(3)
        controls.bound(
            st.slider,
            "angle",
            "angle between g1 and g2 (deg)",
            values,
            a,
            min_value=0.0,
            max_value=180.0,
            step=1.0,
        )
        controls.bound(
            st.number_input, "g1_norm", "||g1||", values, b, min_value=1e-3, max_value=1e3, format="%g"
        )
        controls.bound(
            st.number_input, "g2_norm", "||g2||", values, c, min_value=1e-3, max_value=1e3, format="%g"
        )
        grads = runs.synthetic_gradients(values["angle"], values["g1_norm"], values["g2_norm"])
        return (
            grads,
            np.ones(2),
            np.zeros(2),
            "synthetic gradients (losses 1, lower bounds 0 for methods that use them)",
            None,
        )
    if source == "trajectory":
        result = runs.get_result(values)
        if result is None:
            st.info("Showing the point (-2, 2) until the trajectories have run.")
            losses, grads, lower = runs.toy_point(values, (-2.0, 2.0))
            return grads, losses, lower, "x = (-2, 2)", (-2.0, 2.0)
        panels = {s.method: s for s in runs.shown_series(result, values)}
        if values["traj_method"] not in panels:
            values["traj_method"] = next(iter(panels))
            st.session_state.pop(controls.widget_key("traj_method"), None)
        a, b, c = st.columns(3)
        controls.bound(
            st.selectbox,
            "traj_method",
            "trajectory of",
            values,
            a,
            options=list(panels),
            format_func=lambda m: panels[m].title,
        )
        s = panels[values["traj_method"]]
        starts = [result.lanes[i].init for i in s.lanes]
        values["traj_start"] = min(values["traj_start"], len(starts) - 1)
        controls.bound(
            st.selectbox,
            "traj_start",
            "from start",
            values,
            b,
            options=list(range(len(starts))),
            format_func=lambda i: f"({starts[i][0]:g}, {starts[i][1]:g})",
        )
        last = len(result.recorded_steps) - 1
        values["at_step"] = min(values["at_step"], last)
        recorded = result.recorded_steps
        controls.bound(
            st.select_slider,
            "at_step",
            "optimizer step",
            values,
            c,
            options=list(range(last + 1)),
            format_func=lambda i: f"{int(recorded[i])}",
            help=f"The recorded states of the run: every {result.config.record_every} optimizer steps.",
        )
        lane = s.lanes[values["traj_start"]]
        x = tuple(float(v) for v in result.x[values["at_step"], lane])
        where = (
            f"step {int(result.recorded_steps[values['at_step']])} of {s.title}, x = ({x[0]:.3f}, {x[1]:.3f})"
        )
    else:
        a, b = st.columns(2)
        p = values["point"]
        x1 = a.number_input("x1", -10.0, 10.0, float(p[0]), 0.1, key="region_x1")
        x2 = b.number_input("x2", -10.0, 10.0, float(p[1]), 0.1, key="region_x2")
        values["point"] = (float(x1), float(x2))
        x = values["point"]
        where = f"x = ({x[0]:g}, {x[1]:g})"
    losses, grads, lower = runs.toy_point(values, x)
    return grads, losses, lower, where, x


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (what the read-out table shows)."""
    return float(f"{value:.{digits}g}")


def readouts(grads: np.ndarray, updates: dict, cone_c: float, ball_c: float) -> list[dict]:
    g = torch.as_tensor(grads)
    g0 = g.mean(0)
    rows = []
    for label, (d, weights, flags) in updates.items():
        dt = torch.as_tensor(d)
        n0, nd = float(g0.norm()), float(dt.norm())
        rows.append(
            {
                "method": label,
                "d": f"({d[0]:.4g}, {d[1]:.4g})",
                "||d||": significant(nd),
                "cos(d, g0)": significant(float(dt @ g0) / (nd * n0)) if nd > 0 and n0 > 0 else float("nan"),
                "<g1, d>": significant(float(g[0] @ dt)),
                "<g2, d>": significant(float(g[1] @ dt)),
                "non-conflicting": bool(geometry.in_dual_cone(dt, g)),
                f"in ball (c={ball_c:g})": bool(geometry.in_ball(dt, g0, ball_c)),
                f"in cone (c={cone_c:g})": bool(geometry.in_cone(dt, g0, cone_c)),
                "weights": ", ".join(f"{w:.3g}" for w in weights),
                "flags": ", ".join(flags),
            }
        )
    return rows


#: The read-out columns that say what d is; the others say where it lies.
WHAT_D_IS = ("d", "weights", "flags")


def readout_tables(columns: list[str]) -> list[list[str]]:
    """The read-out ``columns`` as two tables, each with the method's full name: where d lies (norm,
    angle, inner products, regions) and what d is (its entries, the method's weights, its flags).
    In one table they did not fit a 1280 px wide page next to the sidebar."""
    where = [name for name in columns if name != "method" and name not in WHAT_D_IS]
    return [["method", *where], ["method", *WHAT_D_IS]]


def readout_headers(cone_c: float, ball_c: float) -> dict:
    """Short headers of the region columns (their full names in the help)."""
    col = st.column_config
    return {
        "non-conflicting": col.CheckboxColumn(
            "dual cone", help="non-conflicting: <g_i, d> >= 0 for every task"
        ),
        f"in ball (c={ball_c:g})": col.CheckboxColumn(
            f"ball c={ball_c:g}", help=f"d lies in CAGrad's ball ||d - g0|| <= {ball_c:g} ||g0||"
        ),
        f"in cone (c={cone_c:g})": col.CheckboxColumn(
            f"cone c={cone_c:g}", help=f"d lies in ConicGrad's cone cos(d, g0) >= {cone_c:g}"
        ),
    }


def view(values: dict[str, Any]) -> None:
    st.markdown(
        "Gradient space at one point. Green: the **dual cone**, directions d with <g_i, d> >= 0 for both "
        "tasks "
        "(no task gets worse to first order). Orange: **CAGrad's ball** ||d - g0|| <= c||g0||. Purple: "
        "**ConicGrad's cone** cos(d, g0) >= c and its arc ||d|| = ||g0||. Dashed: each selected method's "
        "update d."
    )
    controls.bound(
        st.segmented_control,
        "source",
        "Point",
        values,
        options=list(SOURCES),
        format_func=SOURCES.get,
        required=True,
    )
    grads, losses, lower, where, x = _point_from_source(values)
    a, b = st.columns(2)
    region_slider(values, "cone_c", "ConicGrad cone c (cos of the half-angle)", a, -1.0, 1.0)
    region_slider(values, "ball_c", "CAGrad ball c (radius / ||g0||)", b, 0.0, 2.0)
    cone_c, ball_c = region_c(values, "cone_c"), region_c(values, "ball_c")
    notes = [f"Cone half-angle {np.degrees(geometry.cone_half_angle(cone_c)):.1f} deg"]
    if cone_c < 0:
        notes.append("**the cone is non-convex (c < 0)**: it is more than a half-plane")
    tangent = geometry.ball_tangent_half_angle(ball_c)
    notes.append(
        "the ball contains 0 (c >= 1): CAGrad may stop where MGDA stops"
        if tangent is None
        else f"the ball spans +-{np.degrees(tangent):.1f} deg from the origin, like a cone with "
        f"c = {geometry.matching_cone_c(ball_c):.3f}"
    )
    st.caption("; ".join(notes) + ".")
    updates = {}
    for name in values["methods"]:
        spec = METHODS[name]
        params = {p.name: values[f"{name}.{p.name}"] for p in spec.params}
        u = runs.method_update(name, params, grads, losses, lower, seed=values["seed"])
        label = spec.label + (f" (c={params['c']:g})" if runs.grid_spec(name) is not None else "")
        updates[label] = (u.direction, u.weights, u.flags)
    fig = figures.regions_figure(grads[0], grads[1], cone_c, ball_c, {k: v[0] for k, v in updates.items()})
    left, right = st.columns([3, 2])
    left.plotly_chart(fig, key="regions_figure")
    g1, g2 = grads
    cos12 = float(g1 @ g2) / max(float(np.linalg.norm(g1) * np.linalg.norm(g2)), 1e-300)
    right.markdown(
        f"At {where}: g1 = ({g1[0]:.4g}, {g1[1]:.4g}), g2 = ({g2[0]:.4g}, {g2[1]:.4g}), "
        f"cos(g1, g2) = {cos12:.3f} ({'conflicting' if cos12 < 0 else 'not conflicting'})."
    )
    rows = readouts(grads, updates, cone_c, ball_c)
    for columns in readout_tables(list(rows[0])):
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            column_order=columns,
            column_config=readout_headers(cone_c, ball_c),
        )
    stateful = [METHODS[m].label for m in values["methods"] if METHODS[m].stateful]
    st.caption(
        "Each method's own step at this point, before a framework's output scale or clipping, with the "
        "sidebar's parameters"
        + (
            f"; stateful methods ({', '.join(stateful)}) start from a fresh state, so "
            "their d is their first step, not the one they take mid-run"
            if stateful
            else ""
        )
        + ". A method's own rescale (e.g. CAGrad's rescale = 1+c) shrinks d after it was chosen in its "
        "region, so a rescaled d may lie outside the ball. The engine moves x along -d."
    )
    if x is None:
        st.caption("The figure for papers is drawn at a point of the toy: pick a point or a trajectory step.")
    else:
        downloads.offer(values, "regions", point=x, ball_c=ball_c, cone_c=cone_c)
