"""toyopt: multi-task gradient aggregation on the Liu et al. 2021 two-task toy (Streamlit app).

Thin by design: read the URL into the app's values, draw the shared sidebar and the chosen view
(each view builds one Config, calls the cached engine and draws plotly figures), and write the
values back to the URL so that a link reproduces the page.
"""

import streamlit as st

from toyopt.ui import controls, landscape, regions, state, teaching, trajectories

VIEWS = {
    "landscape": landscape.view,
    "trajectories": trajectories.view,
    "regions": regions.view,
    "teaching": teaching.view,
}

st.set_page_config(page_title="toyopt: gradient aggregation on a two-task toy", layout="wide")
values = controls.session_values()
errors = st.session_state.get(controls.URL_ERRORS)
if errors:
    st.error("Ignored invalid link parameters (their defaults are used instead): " + "; ".join(errors))
controls.sidebar(values)
controls.bound(
    st.segmented_control,
    "view",
    "View",
    values,
    options=list(state.VIEWS),
    format_func=state.VIEWS.get,
    required=True,
    label_visibility="collapsed",
)
VIEWS[values["view"] or "landscape"](values)
controls.write_url(values)
