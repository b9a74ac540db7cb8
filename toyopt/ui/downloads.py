"""Download buttons under a view: its figure for papers (PDF, SVG, PNG, drawn by ``toyopt.figures``
with matplotlib) and the data and config behind it.

What is downloaded is what the view shows: the Config is ``runs.build_config(values, grids=False)``,
i.e. the selected methods and starts with every parameter at its slider's current value (the view's
own run carries a whole grid of c values; the file holds only the one on screen). That Config is
embedded in every figure and written next to the data, so ``python -m toyopt figure --from FILE``
redraws it. Files are prepared on request (a click), cached by (config, figure options).

``offer_animation`` does the same for an animation of the view (GIF, or MP4 where ffmpeg is
installed; ``toyopt.figures.animation``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import streamlit as st

from ..config import Config
from ..engine import run
from ..figures import FigureSpec, animation, data_files, needs_run, render_spec
from . import cache, runs

FIGURE_FORMATS = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png"}
ANIMATION_FORMATS = {"gif": "image/gif", "mp4": "video/mp4"}
DATA_TYPES = {".csv": "text/csv", ".json": "application/json", ".config.json": "application/json"}


@cache.cached("files", spinner="Drawing the figure...")
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
        files = _prepared_on_click(
            "Prepare files",
            f"download_prepare_{layout}",
            key,
            prepared_files,
            "The files hold the methods, starts and parameter values shown here (one run at the "
            "sliders' values), with the config embedded.",
        )
        if files is None:
            return
        cols = st.columns(len(files))
        for col, (suffix, (data, mime)) in zip(cols, files.items()):
            col.download_button(
                suffix.lstrip(".").upper().replace(".JSON", " JSON"),
                data,
                file_name=f"toyopt-{layout}{suffix}",
                mime=mime,
                key=f"download_{layout}{suffix}",
            )


@cache.cached("animation", spinner="Drawing the animation...")
def prepared_animation(config_json: str, spec_json: str, fmt: str) -> bytes:
    """The animation file (``fmt``: gif or mp4) of the config's run with the FigureSpec."""
    config = Config.from_json(config_json)
    return render_spec(config, FigureSpec.from_json(spec_json), fmt)


def offer_animation(values: dict[str, Any], name: str, **options: Any) -> None:
    """An expander with the width and format, a Prepare button and, once prepared for exactly the
    current values, a download button: an animation of the run of ``values`` (one run at the
    sliders' values, as in ``offer``) with the FigureSpec ``options`` (overlay, regions_start,
    ball_c, cone_c)."""
    with st.expander("Download an animation of this view (GIF, MP4) for a talk"):
        formats = ["gif"] + (["mp4"] if animation.has_ffmpeg() else [])
        a, b = st.columns(2)
        width = a.segmented_control(
            "Width", ["single", "double", "slide"], default="slide", key=f"animation_width_{name}"
        )
        fmt = b.segmented_control("Format", formats, default="gif", key=f"animation_format_{name}")
        if len(formats) == 1:
            st.caption("MP4 needs the ffmpeg program, which is not installed here.")
        try:
            config = runs.build_config(values, grids=False)
            spec = FigureSpec(layout="animation", width=width or "slide", **options).validated()
            animation.grid(config, spec)
        except ValueError as exc:
            st.error(str(exc))
            return
        key = (config.to_json(), spec.to_json(), fmt or "gif")
        data = _prepared_on_click(
            "Prepare the animation",
            f"animation_prepare_{name}",
            key,
            prepared_animation,
            f"{spec.frames} frames at {spec.fps} frames per second of the methods, starts and "
            "parameter values shown here, with the config embedded.",
        )
        if data is None:
            return
        st.download_button(
            key[2].upper(),
            data,
            file_name=f"toyopt-{name}.{key[2]}",
            mime=ANIMATION_FORMATS[key[2]],
            key=f"animation_download_{name}",
        )


def _prepared_on_click(
    label: str, button_key: str, key: tuple, prepare: Callable[..., Any], caption: str
) -> Any:
    """What ``prepare(*key)`` made when the button ``label`` was clicked, kept in the session while
    ``key`` (the exact config and options on screen) stays the same; None (with ``caption`` saying
    what the files would hold, or the error) until then."""
    slot = f"{button_key}_result"
    if st.button(label, key=button_key):
        try:
            st.session_state[slot] = (key, prepare(*key))
        except ValueError as exc:
            st.error(str(exc))
            return None
    prepared = st.session_state.get(slot)
    if prepared is None or prepared[0] != key:
        st.caption(caption)
        return None
    return prepared[1]
