"""``FigureSpec``: what to draw from a run (layout, size, options), as plain validated data.

It is embedded in every figure next to the run's Config, so ``python -m toyopt figure --from
FILE`` can redraw the same figure. The output format is not part of it (it follows the file name).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from ..config import loads_json, short_names, short_repr
from .style import MAX_WIDTH, MIN_WIDTH, WIDTHS

LAYOUTS = ("paper", "landscape", "front", "regions", "animation")
FORMATS = ("pdf", "svg", "png")
#: The formats of the "animation" layout (MP4 needs a system ffmpeg).
ANIMATION_FORMATS = ("gif", "mp4")
GAPS = ("loss", "distance")
#: The loss a landscape panel shows: the mean of the task losses, or one task's.
SURFACES = ("mean", "f1", "f2")
MIN_DPI, MAX_DPI = 50, 1200
#: Resolution when none is given: print quality for figures, slide quality for animations.
DEFAULT_DPI, ANIMATION_DPI = 300, 128
MIN_FRAMES, MAX_FRAMES = 2, 600
#: GIF delays are whole hundredths of a second, so 50 frames per second is the fastest exact rate.
MIN_FPS, MAX_FPS = 1, 50
#: A PNG may not be wider than this many pixels (width x dpi).
MAX_PIXELS = 20_000
#: The paper layout draws one panel per method and parameter value, at most this many.
MAX_PANELS = 12


@dataclass(frozen=True)
class FigureSpec:
    """One figure of a run.

    ``layout``: "paper" (one panel per method with the landscape, Pareto set, global minimum,
    starts and trajectories, plus a convergence panel), "landscape" (one panel, every method's
    trajectories overlaid), "front" (loss space: the Pareto front and the loss trajectories) or
    "regions" (gradient space at ``point``: g1, g2, g0, the dual cone, CAGrad's ball, ConicGrad's
    cone and each method's direction). ``width``: "single" (3.25 in), "double" (6.75 in) or inches.
    ``dpi``: PNG resolution. ``point``: x for "regions" (None: the first start whose task
    gradients conflict, else the first start). ``convergence``: draw the convergence panel in the
    paper layout; ``gap``: its y axis, "loss" (mean loss minus its value at the global minimum)
    or "distance" (||x - x*||). ``trajectories``: overlay the runs in "landscape" (False: the
    landscape alone, no run needed). ``ball_c`` / ``cone_c``: c of the regions drawn in
    "regions" (None: the run's cagrad / conicgrad parameter, else that method's default).
    ``surface``: the loss the "landscape" layout's map shows, "mean", "f1" or "f2" (written into
    the file only for that layout).

    "animation" (a GIF or MP4, ``toyopt.figures.animation``): the paper layout's panels (or, with
    ``overlay``, one landscape panel with every method) with the trajectories drawn up to the
    current step and a step counter; ``frames`` frames at ``fps`` frames per second; with
    ``regions_start`` (an index into the config's starts) a second row of gradient-space panels,
    one per method, following that start's run. ``dpi`` None: 300, or 128 for an animation.
    ``width`` may also be "slide" (10 in; an animation is then 16:9). The animation fields are
    written into the file only for the "animation" layout.
    """

    layout: str = "paper"
    width: str | float = "double"
    dpi: int | None = None
    point: tuple[float, float] | None = None
    convergence: bool = True
    gap: str = "loss"
    trajectories: bool = True
    ball_c: float | None = None
    cone_c: float | None = None
    surface: str = "mean"
    frames: int = 60
    fps: int = 12
    overlay: bool = False
    regions_start: int | None = None

    @property
    def inches(self) -> float:
        return WIDTHS[self.width] if isinstance(self.width, str) else float(self.width)

    def validated(self) -> FigureSpec:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {short_repr(self.layout)}")
        width = parse_width(self.width)
        dpi = self.dpi
        if dpi is None:
            dpi = ANIMATION_DPI if self.layout == "animation" else DEFAULT_DPI
        if isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
            raise ValueError(f"dpi must be an integer in [{MIN_DPI}, {MAX_DPI}], got {short_repr(dpi)}")
        inches = WIDTHS[width] if isinstance(width, str) else width
        if inches * dpi > MAX_PIXELS:
            raise ValueError(f"width x dpi = {inches * dpi:g} pixels; the cap is {MAX_PIXELS}")
        point = None
        if self.point is not None:
            if not isinstance(self.point, (list, tuple)) or len(self.point) != 2:
                raise ValueError(f"point must be two numbers x1, x2, got {short_repr(self.point)}")
            point = tuple(_finite(v, "point") for v in self.point)
        for name in ("convergence", "trajectories", "overlay"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {short_repr(getattr(self, name))}")
        if self.gap not in GAPS:
            raise ValueError(f"gap must be one of {list(GAPS)}, got {short_repr(self.gap)}")
        if self.surface not in SURFACES:
            raise ValueError(f"surface must be one of {list(SURFACES)}, got {short_repr(self.surface)}")
        ball_c = None if self.ball_c is None else _finite(self.ball_c, "ball_c", 0.0, 10.0)
        cone_c = None if self.cone_c is None else _finite(self.cone_c, "cone_c", -1.0, 1.0)
        _integer(self.frames, "frames", MIN_FRAMES, MAX_FRAMES)
        _integer(self.fps, "fps", MIN_FPS, MAX_FPS)
        if self.regions_start is not None:
            _integer(self.regions_start, "regions_start", 0, 10**6)
        return replace(self, width=width, dpi=dpi, point=point, ball_c=ball_c, cone_c=cone_c)

    def to_dict(self) -> dict:
        landscape = {"surface": self.surface} if self.layout == "landscape" else {}
        animation = {}
        if self.layout == "animation":
            animation = {
                "frames": self.frames,
                "fps": self.fps,
                "overlay": self.overlay,
                "regions_start": self.regions_start,
            }
        return {
            "layout": self.layout,
            "width": self.width,
            "dpi": self.dpi,
            "point": None if self.point is None else list(self.point),
            "convergence": self.convergence,
            "gap": self.gap,
            "trajectories": self.trajectories,
            "ball_c": self.ball_c,
            "cone_c": self.cone_c,
            **landscape,
            **animation,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> FigureSpec:
        if not isinstance(data, dict):
            raise ValueError("figure options must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown figure option(s) {short_names(unknown)}; "
                f"allowed: {sorted(cls.__dataclass_fields__)}"
            )
        kwargs = dict(data)
        if isinstance(kwargs.get("point"), list):
            kwargs["point"] = tuple(kwargs["point"])
        return cls(**kwargs).validated()

    @classmethod
    def from_json(cls, text: str) -> FigureSpec:
        return cls.from_dict(loads_json(text, "figure options"))


def parse_width(value: Any) -> str | float:
    """'single', 'double', 'slide' or a number of inches in [MIN_WIDTH, MAX_WIDTH] (also as text)."""
    if isinstance(value, str):
        if value in WIDTHS:
            return value
        try:
            value = float(value)
        except ValueError:
            raise ValueError(
                f"width must be 'single', 'double', 'slide' or inches in [{MIN_WIDTH:g}, {MAX_WIDTH:g}], "
                f"got {short_repr(value)}"
            ) from None
    return _finite(value, "width (inches)", MIN_WIDTH, MAX_WIDTH)


def parse_point(text: str) -> tuple[float, float]:
    """'x1,x2' to a point."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return (float(parts[0]), float(parts[1]))
    except ValueError:
        raise ValueError(f"point must be 'x1,x2', got {short_repr(text)}") from None


def _integer(value: Any, where: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where} must be an integer in [{low}, {high}], got {short_repr(value)}")


def _finite(value: Any, where: str, low: float = -1e6, high: float = 1e6) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} must be a number in [{low:g}, {high:g}], got {short_repr(value)}")
    if not low <= value <= high:
        raise ValueError(f"{where} must be a number in [{low:g}, {high:g}], got {short_repr(value)}")
    return float(value)
