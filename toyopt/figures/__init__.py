"""Figures for papers, drawn with matplotlib (no Streamlit): PDF, SVG and PNG bytes.

Entry points (all pure: they return bytes or data, write no files and leave matplotlib's global
settings as they were):

* ``render(source, layout, width, fmt, dpi, **options) -> bytes``: one figure. ``source`` is a
  ``Result`` (drawn as is) or a ``Config`` (run first when the layout needs trajectories).
* ``render_spec(source, spec, fmt) -> bytes``: the same with a ``FigureSpec``; the "animation"
  layout writes "gif" or "mp4" (``toyopt.figures.animation``).
* ``read_embedded(data) -> (Config, FigureSpec | None)``: the config and options inside a figure.
* ``data_files(result) -> {suffix: text}``: the figure's data (CSV, JSON, config JSON).
* ``style.method_style(name)``: each method's fixed colour, dash and marker (matplotlib and plotly).

The same Config and FigureSpec give byte-identical files: dates are left out, SVG ids use a fixed
salt, and the run itself is deterministic.
"""

from __future__ import annotations

import io
import json

import matplotlib

from ..config import Config
from ..engine import Result, run
from ..export import result_dict, trajectories_csv
from . import animation, draw
from .embed import read_embedded, savefig_metadata
from .spec import ANIMATION_FORMATS, FORMATS, LAYOUTS, FigureSpec
from .style import RC, method_style

__all__ = [
    "ANIMATION_FORMATS",
    "FORMATS",
    "LAYOUTS",
    "FigureSpec",
    "check_format",
    "data_files",
    "figure_json",
    "method_style",
    "needs_run",
    "read_embedded",
    "render",
    "render_spec",
]


def needs_run(spec: FigureSpec) -> bool:
    """Whether ``spec`` draws trajectories (and so needs a Result, not only a Config)."""
    return spec.layout in ("paper", "front", "animation") or (
        spec.layout == "landscape" and spec.trajectories
    )


def render(
    source: Result | Config,
    layout: str = "paper",
    width: str | float = "double",
    fmt: str = "pdf",
    dpi: int | None = None,
    **options,
) -> bytes:
    """The figure as the bytes of a ``fmt`` file ("pdf", "svg" or "png"; "gif" or "mp4" for the
    "animation" layout).

    ``layout``: "paper" | "landscape" | "front" | "regions" | "animation"; ``width``: "single"
    (3.25 in), "double" (6.75 in), "slide" (10 in) or inches; ``dpi``: resolution (None: 300, or
    128 for an animation); ``options``: the other FigureSpec fields (point, convergence, gap,
    trajectories, ball_c, cone_c, frames, fps, overlay, regions_start). A Config is run first when
    the layout draws trajectories (so pass the Result you already have). Raises ValueError
    naming a bad option.
    """
    spec = FigureSpec(layout=layout, width=width, dpi=dpi, **options)
    return render_spec(source, spec, fmt)


def check_format(spec: FigureSpec, fmt: str) -> None:
    """ValueError unless ``fmt`` is one the layout writes: GIF or MP4 for animations, else PDF, SVG, PNG."""
    formats = ANIMATION_FORMATS if spec.layout == "animation" else FORMATS
    if fmt not in formats:
        raise ValueError(f"the {spec.layout} layout writes {' or '.join(formats)}, not {fmt!r}")


def render_spec(source: Result | Config, spec: FigureSpec, fmt: str) -> bytes:
    """``render`` with a FigureSpec."""
    spec = spec.validated()
    check_format(spec, fmt)
    if spec.layout == "animation":
        animation.grid(source.config if isinstance(source, Result) else source, spec)  # caps before the run
        if fmt == "mp4":
            animation.ffmpeg_path()
    if isinstance(source, Result):
        result, config = source, source.config
    elif isinstance(source, Config):
        config = source.validated()
        result = run(config) if needs_run(spec) else None
    else:
        raise TypeError(f"render takes a Result or a Config, got {type(source).__name__}")
    if spec.layout == "animation":
        return animation.render_animation(result, spec, fmt)
    with matplotlib.rc_context(RC):
        if spec.layout == "paper":
            fig = draw.paper(result, spec)
        elif spec.layout == "landscape":
            fig = draw.landscape(config, result if spec.trajectories else None, spec)
        elif spec.layout == "front":
            fig = draw.front(result, spec)
        else:
            fig = draw.regions(config, spec)
        buf = io.BytesIO()
        fig.savefig(
            buf, format=fmt, dpi=spec.dpi, metadata=savefig_metadata(fmt, config.to_json(), spec.to_json())
        )
    return buf.getvalue()


def figure_json(result: Result) -> str:
    """The run as JSON: ``toyopt.export.result_dict`` with, per record, ``losses`` (the per-step
    losses [[L1, L2], ...] at ``recorded_steps``, null where non-finite) next to ``trajectory``."""
    data = result_dict(result)
    for record in data["records"]:
        rows = result.losses[:, record["lane"], :]
        record["losses"] = [[_finite(v) for v in row] for row in rows]
    return json.dumps(data, indent=1, allow_nan=False)


def data_files(result: Result) -> dict[str, str]:
    """The data behind a figure, as file suffix -> text: ".csv" (``toyopt.export.trajectories_csv``),
    ".json" (``figure_json``) and ".config.json" (the Config, readable by ``--config``)."""
    return {
        ".csv": trajectories_csv(result),
        ".json": figure_json(result),
        ".config.json": result.config.to_json(indent=1) + "\n",
    }


def _finite(v) -> float | None:
    v = float(v)
    return v if v == v and abs(v) != float("inf") else None
