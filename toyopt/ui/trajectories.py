"""View 2, trajectories: small multiples (one panel per method) or an overlay from the starting
points, colour showing progress; click the map or type a point to add a start; loss curves,
convergence, the outcome table and flag badges."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from ..engine import Result, Series
from ..methods import METHODS
from . import controls, downloads, figures, runs, state

OUTCOME_TEXT = {
    "global_min": "global minimum",
    "pareto": "Pareto set (not the minimum)",
    "other": "elsewhere",
    "diverged": "diverged",
}


def add_start(values: dict[str, Any], point: tuple[float, float]) -> str | None:
    """Append a starting point; returns an error message instead when it cannot be added."""
    point = (round(float(point[0]), 4), round(float(point[1]), 4))
    inits = tuple(values["inits"])
    if point in inits:
        return f"({point[0]:g}, {point[1]:g}) is already a start"
    if len(inits) >= state.URL_MAX_POINTS:
        return f"at most {state.URL_MAX_POINTS} starts"
    values["inits"] = inits + (point,)
    return None


def _on_add_typed() -> None:
    values = st.session_state[controls.VALUES]
    x = st.session_state.get("new_x1", 0.0)
    y = st.session_state.get("new_x2", 0.0)
    st.session_state["start_message"] = add_start(values, (x, y))


def _on_reset_starts() -> None:
    values = st.session_state[controls.VALUES]
    values["inits"] = state.defaults(values["setup"])["inits"]


def _on_remove_last() -> None:
    values = st.session_state[controls.VALUES]
    if len(values["inits"]) > 1:
        values["inits"] = tuple(values["inits"])[:-1]


def _clicked_point(event: Any) -> tuple[float, float] | None:
    """The point a selection event asks to add: a clicked grid point or a box's centre."""
    selection = (
        (event or {}).get("selection", {}) if isinstance(event, dict) else getattr(event, "selection", {})
    )
    points = selection.get("points", []) if selection else []
    boxes = selection.get("box", []) if selection else []
    if boxes:
        box = boxes[-1]
        xs, ys = box.get("x", []), box.get("y", [])
        if len(xs) == 2 and len(ys) == 2:
            return (float(np.mean(xs)), float(np.mean(ys)))
    if points:
        p = points[-1]
        if "x" in p and "y" in p:
            return (float(p["x"]), float(p["y"]))
    return None


def start_controls(values: dict[str, Any]) -> None:
    with st.expander(f"Starting points ({len(values['inits'])}); click the map to add one", expanded=False):
        st.write(", ".join(f"({x:g}, {y:g})" for x, y in values["inits"]))
        a, b, c, d, e = st.columns([1, 1, 1, 1, 1], vertical_alignment="bottom")
        a.number_input("x1", -10.0, 10.0, 0.0, 0.5, key="new_x1")
        b.number_input("x2", -10.0, 10.0, 0.0, 0.5, key="new_x2")
        c.button("Add start", on_click=_on_add_typed)
        d.button("Remove last", on_click=_on_remove_last)
        e.button("Reset starts", on_click=_on_reset_starts)
        message = st.session_state.pop("start_message", None)
        if message:
            st.warning(message)


def flag_badges(result: Result, panels: list[Series]) -> None:
    fired = []
    for s in panels:
        for name, counts in result.flag_counts.items():
            total = int(sum(counts[i] for i in s.lanes))
            if total:
                first = min(
                    int(result.flag_first[name][i]) for i in s.lanes if result.flag_first[name][i] >= 0
                )
                fired.append((s.title, name, total, first))
    if not fired:
        st.caption("No guard or solver flag fired in these runs.")
        return
    st.markdown(" ".join(f":orange-badge[{title}: {name} x{total}]" for title, name, total, _ in fired))
    with st.expander("What the flags mean"):
        for title, name, total, first in fired:
            st.markdown(
                f"- **{title}**, `{name}`: fired at {total} steps, first at step {first}. "
                f"{result.flag_help.get(name, '')}"
            )


def outcome_rows(result: Result, panels: list[Series]) -> list[dict]:
    rows = []
    for s in panels:
        for i in s.lanes:
            lane = result.lanes[i]
            fired = [f"{n} x{int(c[i])}" for n, c in result.flag_counts.items() if c[i] > 0]
            rows.append(
                {
                    "method": s.title,
                    "start": f"({lane.init[0]:g}, {lane.init[1]:g})",
                    "reached": OUTCOME_TEXT[result.outcome(i)],
                    "global min at step": int(result.first_global_min[i])
                    if result.first_global_min[i] >= 0
                    else None,
                    "Pareto set at step": int(result.first_pareto[i])
                    if result.first_pareto[i] >= 0
                    else None,
                    "final x1": float(result.final_x[i, 0]),
                    "final x2": float(result.final_x[i, 1]),
                    "final mean loss": float(result.final_losses[i].mean()),
                    "flags": ", ".join(fired),
                    "stop": result.stop_reason[i],
                }
            )
    return rows


def view(values: dict[str, Any]) -> None:
    start_controls(values)
    controls.bound(
        st.segmented_control,
        "layout",
        "Layout",
        values,
        options=["panels", "overlay"],
        format_func={"panels": "one panel per method", "overlay": "overlay"}.get,
        required=True,
    )
    result = runs.get_result(values)
    if result is None:
        return
    panels = runs.shown_series(result, values)
    fig = figures.trajectories_figure(result, panels, values["layout"] or "panels")
    event = st.plotly_chart(
        fig, key=f"traj_map_{len(values['inits'])}", on_select="rerun", selection_mode=("points", "box")
    )
    point = _clicked_point(event)
    if point is not None:
        message = add_start(values, point)
        if message is None:
            st.rerun()
    st.caption(
        f"{result.steps_run} steps of {result.config.optimizer} (lr {result.config.lr:g}) "
        f"in {result.seconds:.1f} s; "
        "colour = step. Circles mark starts, crosses the ends. Click the map (or draw a box) to add a start."
    )
    flag_badges(result, panels)
    st.subheader("Outcomes")
    st.dataframe(outcome_rows(result, panels), hide_index=True)
    st.caption(
        f"Reached = where the final point lies, within {result.config.tolerance:g} of the global minimum "
        "of the mean loss or of the Pareto set; steps = first time within that distance."
    )
    starts = [f"({x:g}, {y:g})" for x, y in result.config.inits]
    pick = st.selectbox("Start for the loss curves", range(len(starts)), format_func=lambda i: starts[i])
    st.plotly_chart(figures.loss_curves_figure(result, panels, pick), key="traj_losses")
    st.plotly_chart(figures.convergence_figure(result, panels), key="traj_convergence")
    methods = ", ".join(
        f"{METHODS[m].label}: {METHODS[m].summary}" for m in values["methods"] if METHODS[m].summary
    )
    if methods:
        st.caption(methods)
    downloads.offer(values, "paper")
    downloads.offer_animation(values, "trajectories", overlay=values["layout"] == "overlay")
