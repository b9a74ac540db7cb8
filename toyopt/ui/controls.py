"""Widgets bound to the app's values, and the shared sidebar (setup, problem, methods, optimizer).

The values dict in ``st.session_state`` is the source of truth (it survives views whose widgets
are not drawn); each widget is keyed ``w:<name>``, initialised from it and copied back into it.
Method controls are generated from the registry's ParamSpecs, so a new method needs no app change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from ..methods import METHODS, ParamSpec
from ..problems import get_problem
from ..setups import SETUPS
from . import runs, state

VALUES = "values"
URL_ERRORS = "url_errors"


def session_values() -> dict[str, Any]:
    """The values of this session; parsed from the URL on its first run."""
    if VALUES not in st.session_state:
        values, errors = state.parse_query(st.query_params.to_dict())
        st.session_state[VALUES] = values
        st.session_state[URL_ERRORS] = errors
    return st.session_state[VALUES]


def write_url(values: dict[str, Any]) -> None:
    current = st.query_params.to_dict()
    target = state.encode(values)
    if current != target:
        st.query_params.from_dict(target)


def widget_key(name: str) -> str:
    return f"w:{name}"


def set_value(values: dict[str, Any], name: str, value: Any) -> None:
    """Change a value from code (the widget showing it follows)."""
    values[name] = value
    st.session_state.pop(widget_key(name), None)


def bound(widget: Callable, name: str, label: str, values: dict[str, Any], container=None, **kwargs) -> Any:
    """Draw ``widget`` for values[name] and store what it returns."""
    key = widget_key(name)
    if key not in st.session_state:
        st.session_state[key] = values[name]
    target = container if container is not None else st
    values[name] = getattr(target, widget.__name__)(label, key=key, **kwargs)
    return values[name]


def param_label(p: ParamSpec) -> str:
    return f"{p.name} [U]" if p.unverified else p.name


def param_help(p: ParamSpec) -> str:
    note = (
        " [U]: reconstructed by our specification, not verified in the paper or its code."
        if p.unverified
        else ""
    )
    return f"{p.help} Range {p.range_text()}.{note}"


def param_widget(values: dict[str, Any], method: str, p: ParamSpec, container) -> None:
    """A control for one method parameter, chosen by its ParamSpec."""
    name = f"{method}.{p.name}"
    label, help_ = param_label(p), param_help(p)
    if p.kind == "choice":
        bound(st.selectbox, name, label, values, container, options=list(p.choices), help=help_)
    elif p.kind == "int":
        bound(
            st.number_input,
            name,
            label,
            values,
            container,
            min_value=int(p.low) if p.low is not None else None,
            max_value=int(p.high) if p.high is not None else None,
            step=int(p.step or 1),
            help=help_,
        )
    elif runs.grid_spec(method) is p:
        grid = runs.slider_grid(values["setup"], method)
        values[name] = grid[runs.nearest_index(grid, values[name])]
        bound(
            st.select_slider,
            name,
            label,
            values,
            container,
            options=grid,
            format_func=lambda v: f"{v:g}",
            help=help_ + " All values run at once; moving the slider only picks lanes.",
        )
    elif p.low is not None and p.high is not None and p.high - p.low <= 100:
        step = float(p.step) if p.step else (p.high - p.low) / 100
        bound(
            st.slider,
            name,
            label,
            values,
            container,
            min_value=float(p.low),
            max_value=float(p.high),
            step=step,
            help=help_,
        )
    else:
        bound(
            st.number_input,
            name,
            label,
            values,
            container,
            min_value=p.low,
            max_value=p.high,
            step=float(p.step) if p.step else None,
            format="%g",
            help=help_,
        )


def _on_setup_change() -> None:
    values = st.session_state[VALUES]
    keep = {
        k: values[k]
        for k in (
            "view",
            "surface",
            "surface3d",
            "layout",
            "source",
            "point",
            "cone_c",
            "ball_c",
            "angle",
            "g1_norm",
            "g2_norm",
            "story",
            "basin_starts",
            "basin_grid",
            "basin_random",
            "basin_sweep",
        )
    }
    fresh = state.defaults(st.session_state[widget_key("setup")])
    fresh.update(keep)
    values.clear()
    values.update(fresh)
    for key in [k for k in st.session_state if str(k).startswith("w:") and k != widget_key("setup")]:
        del st.session_state[key]


def _published(values: dict[str, Any]) -> None:
    setup = SETUPS[values["setup"]]
    set_value(values, "steps", setup.steps)
    set_value(values, "lr", setup.lr)


def sidebar(values: dict[str, Any]) -> None:
    """Setup preset, problem variant, methods and their parameters, optimizer; on every view."""
    sb = st.sidebar
    bound(
        st.selectbox,
        "setup",
        "Setup preset",
        values,
        sb,
        options=list(SETUPS),
        format_func=lambda n: SETUPS[n].label,
        on_change=_on_setup_change,
        help="Reproduces a published toy run: problem variant, starts, optimizer, conventions.",
    )
    sb.caption(f"Source: {SETUPS[values['setup']].source}")
    problem = get_problem("liu2021")
    with sb.expander("Problem variant", expanded=False):
        for p in problem.params:
            bound(
                st.number_input,
                f"problem.{p.name}",
                param_label(p),
                values,
                st,
                min_value=p.low,
                max_value=p.high,
                step=p.step,
                format="%g",
                help=param_help(p),
            )
        bound(
            st.number_input,
            "noise",
            "gradient noise std",
            values,
            st,
            min_value=0.0,
            max_value=5.0,
            step=0.05,
            help="N(0, std^2) added to every gradient entry (SDMGrad's toy uses 0.2).",
        )
    methods = bound(
        st.multiselect,
        "methods",
        "Methods",
        values,
        sb,
        options=list(METHODS),
        format_func=lambda n: METHODS[n].label,
        max_selections=state.URL_MAX_METHODS,
        # Without this, the first row of a filtered list is "Select N matches", so typing "MGDA" and
        # Enter would add all three MGDA variants; now Enter adds the best match only.
        select_all=False,
        help="Every method in the registry; parameters below. [U] = reconstructed choice.",
    )
    if not methods:
        sb.warning("Select at least one method; showing the setup's.")
        values["methods"] = state.setup_methods(values["setup"])
    values["methods"] = tuple(values["methods"])
    for name in values["methods"]:
        spec = METHODS[name]
        if not spec.params:
            continue
        with sb.expander(f"{spec.label} parameters", expanded=runs.grid_spec(name) is not None):
            for p in spec.params:
                param_widget(values, name, p, st)
    with sb.expander("Optimizer and steps", expanded=True):
        bound(st.selectbox, "optimizer", "optimizer", values, st, options=["adam", "sgd"])
        bound(
            st.number_input,
            "lr",
            "learning rate",
            values,
            st,
            min_value=1e-6,
            max_value=1.0,
            format="%g",
            step=1e-3,
        )
        bound(
            st.number_input,
            "steps",
            "steps",
            values,
            st,
            min_value=1,
            max_value=state.URL_MAX_STEPS,
            step=500,
        )
        bound(st.number_input, "seed", "seed", values, st, min_value=0, max_value=2**31 - 1, step=1)
        setup = SETUPS[values["setup"]]
        st.caption(f"Published: lr {setup.lr:g}, {setup.steps} steps.")
        st.button("Published", on_click=_published, args=(values,), help="The setup's own lr and steps")
