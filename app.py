"""toyopt: multi-task gradient aggregation on the Liu et al. 2021 two-task toy (Streamlit app).

Thin by design: read the URL into the app's values, draw the shared sidebar and the chosen view
(each view builds one Config, calls the cached engine and draws plotly figures), and write the
values back to the URL so that a link reproduces the page.
"""

# Imported before any session draws (a fix for concurrent sessions): plotly and narwhals look pandas
# and pyarrow up in sys.modules without taking the import lock, so while another session's script
# thread imports them for the first time (st.dataframe does, lazily), a figure being drawn sees a
# half-initialised module: "AttributeError: partially initialized module 'pandas' has no attribute
# 'Series'". tests/e2e/test_concurrency.py opens eight sessions at once and caught it.
import pandas  # noqa: F401
import pyarrow  # noqa: F401
import streamlit as st
import torch

from toyopt.ui import basins, controls, landscape, regions, state, teaching, trajectories, warmup

VIEWS = {
    "landscape": landscape.view,
    "trajectories": trajectories.view,
    "regions": regions.view,
    "teaching": teaching.view,
    "basins": basins.view,
}

# Sessions run concurrently in the server's threads; torch's intra-op pool spin-waits when the
# cores are already busy (measured here: a 10^4-lane step went from 1.6 ms to 30 ms with two
# threads while another process held one core). One thread per session avoids that.
torch.set_num_threads(1)
st.set_page_config(page_title="toyopt: gradient aggregation on a two-task toy", layout="wide")
warmup.background()  # once per server process: compile the default preset's methods meanwhile
values = controls.session_values()
errors = st.session_state.get(controls.URL_ERRORS)
if errors:
    st.error(state.link_banner(errors))
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
# A newly chosen view goes into the link at once (a view can take seconds under load); the rest
# of the link follows once the view has drawn its own widgets.
if st.query_params.get("view") != values["view"]:
    controls.write_url(values)
# A visible "working" notice on every rerun (a slider move reruns the script; without it the page
# only fades while the view is recomputed).
with st.spinner("Updating the view...", show_time=True):
    VIEWS[values["view"] or "landscape"](values)
controls.write_url(values)
