"""View 1, the landscape: contours of f1, f2 or their mean, an optional 3-D surface, the Pareto set
in x-space (the true curved set), the Pareto front in loss space and the global minimum."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ..problems import get_problem
from . import controls, downloads, figures


def view(values: dict[str, Any]) -> None:
    problem = get_problem("liu2021")
    params = problem.validate_params({p.name: values[f"problem.{p.name}"] for p in problem.params})
    st.markdown(
        f"**{problem.label}**: two tasks on x = (x1, x2). The yellow curve is the Pareto set (computed by "
        "Newton's method on the stationarity of l f1 + (1 - l) f2, l in [0, 1]; it is curved, not the line "
        "the published scripts draw). The star is the global minimum of the mean (f1 + f2)/2 of the losses "
        f"as defined here, i.e. with f1 scaled by {params['scale']:g}."
    )
    left, right = st.columns([2, 1])
    controls.bound(
        st.segmented_control,
        "surface",
        "Surface",
        values,
        left,
        options=list(figures.SURFACES),
        format_func=lambda k: figures.SURFACES[k],
        required=True,
    )
    controls.bound(st.toggle, "surface3d", "3-D surface", values, right)
    which = values["surface"] or "mean"
    a, b = st.columns(2)
    a.plotly_chart(figures.landscape_figure(params, which), key="landscape_map")
    b.plotly_chart(figures.front_figure(params), key="landscape_front")
    st.plotly_chart(figures.pareto_zoom_figure(params), key="landscape_pareto_zoom")
    if values["surface3d"]:
        st.plotly_chart(figures.surface3d_figure(params, which), key="landscape_3d")
    gmin = figures.global_min_of(params)
    st.caption(
        f"Global minimum of (f1 + f2)/2: x* = ({gmin[0]:.4f}, {gmin[1]:.4f}). Change the loss scale and "
        "the gradient noise under 'Problem variant' in the sidebar; the setup preset sets both."
    )
    downloads.offer(values, "landscape", trajectories=False, surface=which)
