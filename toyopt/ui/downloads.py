"""Download buttons under a view: its figure for papers (PDF, SVG, PNG, drawn by ``toyopt.figures``
with matplotlib) and the data and config behind it.

What is downloaded is what the view shows: the Config is ``runs.build_config(values, grids=False)``,
i.e. the selected methods and starts with every parameter at its slider's current value (the view's
own run carries a whole grid of c values; the file holds only the one on screen). That Config is
embedded in every figure and written next to the data, so ``python -m toyopt figure --from FILE``
redraws it. Files are prepared on request (a click), cached by (config, figure options).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import streamlit as st

from ..config import Config
from ..engine import run
from ..figures import FigureSpec, data_files, needs_run, render_spec
from . import runs

FIGURE_FORMATS = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png"}
DATA_TYPES = {".csv": "text/csv", ".json": "application/json", ".config.json": "application/json"}


@st.cache_data(max_entries=8, show_spinner="Drawing the figure...")
def prepared_files(config_json: str, spec_json: str) -> dict[str, tuple[bytes, str]]:
    """File name suffix -> (bytes, MIME type): the figure in every format, and, when the layout
    draws a run, its trajectories (CSV, JSON); always the config."""
    config = Config.from_json(config_json)
    spec = FigureSpec.from_json(spec_json)
    result = run(config) if needs_run(spec) else None
    source = result if result is not None else config
    files = {f".{fmt}": (render_spec(source, spec, fmt), mime) for fmt, mime in FIGURE_FORMATS.items()}
    if result is not None:
        for suffix, text in data_files(result).items():
            files[suffix] = (text.encode(), DATA_TYPES[suffix])
    else:
        files[".config.json"] = ((config.to_json(indent=1) + "\n").encode(), DATA_TYPES[".config.json"])
    return files


def offer(values: dict[str, Any], layout: str, **options: Any) -> None:
    """An expander with the figure width, a Prepare button and, once prepared for exactly the
    current values, one download button per file."""
    with st.expander("Download this figure (PDF, SVG, PNG) and its data"):
        width = st.segmented_control(
            "Width", ["single", "double"], default="double", key=f"download_width_{layout}"
        )
        try:
            config = runs.build_config(values, grids=False)
            spec = replace(FigureSpec(layout=layout, **options), width=width or "double").validated()
        except ValueError as exc:
            st.error(str(exc))
            return
        key = (config.to_json(), spec.to_json())
        slot = f"download_files_{layout}"
        if st.button("Prepare files", key=f"download_prepare_{layout}"):
            try:
                st.session_state[slot] = (key, prepared_files(*key))
            except ValueError as exc:
                st.error(str(exc))
                return
        prepared = st.session_state.get(slot)
        if prepared is None or prepared[0] != key:
            st.caption(
                "The files hold the methods, starts and parameter values shown here (one run at the "
                "sliders' values), with the config embedded."
            )
            return
        files = prepared[1]
        cols = st.columns(len(files))
        for col, (suffix, (data, mime)) in zip(cols, files.items()):
            col.download_button(
                suffix.lstrip(".").upper().replace(".JSON", " JSON"),
                data,
                file_name=f"toyopt-{layout}{suffix}",
                mime=mime,
                key=f"download_{layout}{suffix}",
            )
