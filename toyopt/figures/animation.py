"""Animations for talks: the paper layout's panels with every trajectory drawn up to the current
step, a step counter, and optionally a row of gradient-space panels that follow one start; written
as GIF (Pillow) or MP4 (a system ffmpeg), with the run's config embedded like a static figure's.

Frames. Frame k shows the recorded state ``steps[k]``; the frame steps are evenly spaced over the
recorded steps (at most one frame per recorded state, so a short run gives fewer frames than asked).
The paths are drawn as in the static figure (``draw.thin_path`` of the path so far), so the last
frame draws exactly the static figure's trajectories.

Speed. The landscapes, Pareto sets, axes and legend are rendered once as a background; each frame
restores it and draws only the moving artists (matplotlib's blitting on the Agg canvas), whose
data are updated in place. Frames are streamed: to ffmpeg's stdin for MP4, or mapped to the GIF
palette one at a time.

Gradient-space panels (``spec.regions_start``): for each method, at x_t of its run from that start,
g1, g2, g0 = (g1 + g2)/2, the dual cone {d : <g_i, d> >= 0}, the method's own region (CAGrad's
ball ||d - g0|| <= c ||g0||; ConicGrad's cone cos(d, g0) >= c with its arc ||d|| = ||g0||; c is
the lane's parameter unless ``spec.ball_c`` / ``spec.cone_c`` is given) and d, the engine's
recorded update at x_t (after the setup's output scale and clipping; none at the final state).
Each frame divides all of them by max_i ||g_i||, so the view stays fixed while the gradients shrink;
the dual cone, ball and cone are unchanged by that scaling.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Polygon
from PIL import Image

from .. import geometry
from ..config import Config
from ..engine import Result, series
from . import draw
from .embed import animation_comment
from .spec import ANIMATION_FORMATS, MAX_PANELS, FigureSpec
from .style import RC, SLIDE_ASPECT, method_style

#: frames x width x height in pixels, at most (about 325 frames of a 1280 x 720 slide): a GIF keeps
#: one byte per pixel of every frame while it is written, so this bounds its memory (300 MB).
MAX_ANIMATION_PIXELS = 300_000_000
#: A panel is at least this wide (inches), as in the paper layout.
PANEL_INCHES = 1.3
#: Room for the step counter above the legend, inches.
COUNTER_INCHES = 0.2
#: The gradient-space view is at most this many times max_i ||g_i|| wide on each side of 0.
MAX_VIEW = 3.0
#: The ball and cone are drawn with this see-through fill.
REGION_ALPHA = 0.12
#: ffmpeg: H.264 in yuv420p (plays in browsers and slide software), one thread and bit-exact
#: muxing so that the same frames give the same bytes.
FFMPEG_OUTPUT = (
    "-vf",
    "pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white",
    "-c:v",
    "libx264",
    "-preset",
    "medium",
    "-crf",
    "18",
    "-pix_fmt",
    "yuv420p",
    "-threads",
    "1",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-map_metadata",
    "-1",
    "-movflags",
    "+faststart",
)
#: Linux refuses a single command-line argument longer than 128 KiB.
MAX_FFMPEG_COMMENT = 100_000


@dataclass(frozen=True)
class Grid:
    """How an animation is laid out: ``top`` panels (landscapes, then convergence) in
    ``top_cols`` columns, ``bottom`` gradient-space panels in ``bottom_cols`` columns, the legend
    in ``legend_cols`` columns, and the figure size in inches and pixels."""

    top: int
    top_cols: int
    bottom: int
    bottom_cols: int
    legend_cols: int
    inches: tuple[float, float]
    pixels: tuple[int, int]


def grid(config: Config, spec: FigureSpec) -> Grid:
    """The layout of ``spec``'s animation of ``config``, known before anything is run or drawn;
    ValueError when it exceeds a cap (panels, start index, frames x pixels)."""
    spec = spec.validated()
    n = len(series(config))
    if n > MAX_PANELS:
        raise ValueError(
            f"an animation draws at most {MAX_PANELS} panels (methods x grid values); this run has {n}"
        )
    if spec.regions_start is not None and spec.regions_start >= len(config.inits):
        raise ValueError(
            f"regions_start must be a start index in [0, {len(config.inits) - 1}], got {spec.regions_start}"
        )
    top = (1 if spec.overlay else n) + (1 if spec.convergence else 0)
    bottom = n if spec.regions_start is not None else 0
    width = spec.inches
    per_row = max(1, int(width // PANEL_INCHES))
    top_cols, bottom_cols = min(top, per_row), min(bottom, per_row)
    legend_cols = min(3 + n, max(3, int(width / 0.85)))
    if spec.width == "slide":
        height = width * SLIDE_ASPECT
    else:
        height = math.ceil(top / top_cols) * (width / top_cols + 0.02)
        if bottom:
            height += math.ceil(bottom / bottom_cols) * (width / bottom_cols + 0.02)
        height += 0.07 + math.ceil((3 + n) / legend_cols) * draw.LEGEND_ROW + COUNTER_INCHES
    pixels = (int(width * spec.dpi), int(height * spec.dpi))
    total = spec.frames * pixels[0] * pixels[1]
    if total > MAX_ANIMATION_PIXELS:
        raise ValueError(
            f"frames x pixels = {spec.frames} x {pixels[0]} x {pixels[1]} = {total:.3g}; the cap is "
            f"{MAX_ANIMATION_PIXELS:.3g}: use fewer frames, a smaller width or a lower dpi"
        )
    return Grid(top, top_cols, bottom, bottom_cols, legend_cols, (width, height), pixels)


def frame_indices(result: Result, frames: int) -> np.ndarray:
    """Indices into ``result.recorded_steps``, evenly spaced from the first to the last, distinct."""
    last = len(result.recorded_steps) - 1
    return np.unique(np.round(np.linspace(0, last, frames)).astype(int))


# -- moving artists -------------------------------------------------------------------------------


@dataclass
class _Path:
    """A trajectory line and its end marker, redrawn up to the current recorded state."""

    line: Line2D
    end: Line2D
    xy: np.ndarray  # (T, 2)
    span: np.ndarray

    def show(self, t: int) -> None:
        path = draw.thin_path(self.xy[: t + 1], self.span)
        self.line.set_data(path[:, 0], path[:, 1])
        self.end.set_visible(len(path) > 0)
        if len(path):
            self.end.set_data(path[-1:, 0], path[-1:, 1])

    def artists(self) -> list:
        return [self.line, self.end]


@dataclass
class _Curve:
    """A convergence line, drawn up to the current recorded state."""

    line: Line2D
    x: np.ndarray = field(init=False)
    y: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.x, self.y = (np.asarray(a) for a in self.line.get_data())

    def show(self, t: int) -> None:
        self.line.set_data(self.x[: t + 1], self.y[: t + 1])

    def artists(self) -> list:
        return [self.line]


@dataclass
class _GradientPanel:
    """One method's gradient space along its run from the chosen start (see the module docstring).

    ``grads`` (F, K, 2) and ``d`` (F, 2) are per frame, already divided by max_i ||g_i||."""

    grads: np.ndarray
    d: np.ndarray
    region: str | None  # "ball", "cone" or None
    c: float
    radius: float  # rays and wedges reach past the view
    dual: Polygon
    shape: Polygon | Circle | None
    arc: Line2D | None
    arrows: list[FancyArrowPatch]
    labels: list
    d_line: Line2D
    d_tip: Line2D

    def show(self, k: int) -> None:
        grads, d = self.grads[k], self.d[k]
        finite = bool(np.all(np.isfinite(grads)))
        g0 = grads.mean(0) if finite else np.zeros(2)
        arc = geometry.dual_cone_arc(grads) if finite else None
        self.dual.set_visible(arc is not None)
        if arc is not None:
            self.dual.set_xy(draw.wedge_points(arc[0], arc[1], self.radius))
        n0 = float(np.linalg.norm(g0))
        if self.region == "ball":
            self.shape.set_visible(n0 > 0)
            self.shape.set_center(tuple(g0))
            self.shape.set_radius(self.c * n0)
        elif self.region == "cone":
            psi0, half = math.atan2(g0[1], g0[0]), geometry.cone_half_angle(self.c)
            self.shape.set_visible(n0 > 0)
            self.shape.set_xy(draw.wedge_points(psi0 - half, psi0 + half, self.radius))
            ang = np.linspace(psi0 - half, psi0 + half, 181)
            self.arc.set_visible(n0 > 0)
            self.arc.set_data(n0 * np.cos(ang), n0 * np.sin(ang))
        for arrow, label, vec in zip(self.arrows, self.labels, [*grads, g0]):
            arrow.set_visible(finite)
            label.set_visible(finite)
            arrow.set_positions((0.0, 0.0), tuple(vec))
            label.xy = tuple(vec)
        has_d = bool(np.all(np.isfinite(d)))
        for artist in (self.d_line, self.d_tip):
            artist.set_visible(has_d)
        if has_d:
            self.d_line.set_data([0.0, d[0]], [0.0, d[1]])
            self.d_tip.set_data([d[0]], [d[1]])

    def artists(self) -> list:
        extra = [a for a in (self.shape, self.arc) if a is not None]
        return [self.dual, *extra, *self.arrows, self.d_line, self.d_tip, *self.labels]


@dataclass
class Animation:
    """The animation's figure, its frame steps and its moving parts; ``show(k)`` sets frame k."""

    fig: Figure
    frame_steps: np.ndarray  # (F,) indices into result.recorded_steps
    recorded_steps: np.ndarray
    counter: object
    parts: list

    def show(self, k: int) -> None:
        t = int(self.frame_steps[k])
        for part in self.parts:
            part.show(k if isinstance(part, _GradientPanel) else t)
        self.counter.set_text(_counter_text(int(self.recorded_steps[t]), int(self.recorded_steps[-1])))

    def moving(self) -> list:
        return [a for part in self.parts for a in part.artists()] + [self.counter]


def _counter_text(step: int, last: int) -> str:
    return f"step {step:,} of {last:,}"


# -- building -------------------------------------------------------------------------------------


def build(result: Result, spec: FigureSpec) -> Animation:
    """The animation's figure with its moving artists (call inside ``rc_context(RC)``)."""
    spec = spec.validated()
    config = result.config
    problem, _ = draw._problem(config)
    draw._check_plane(problem)
    layout = grid(config, spec)
    groups = result.series()
    fig = Figure(figsize=layout.inches, dpi=spec.dpi, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    top_fig, bottom_fig = fig, None
    if layout.bottom:
        top_rows = math.ceil(layout.top / layout.top_cols)
        bottom_rows = math.ceil(layout.bottom / layout.bottom_cols)
        ratios = [top_rows / layout.top_cols, bottom_rows / layout.bottom_cols]
        top_fig, bottom_fig = fig.subfigures(2, 1, height_ratios=ratios)
    axes = top_fig.subplots(math.ceil(layout.top / layout.top_cols), layout.top_cols, squeeze=False).reshape(
        -1
    )
    span = draw._box_span(problem)
    members = [groups] if spec.overlay else [[g] for g in groups]
    parts: list = []
    for ax, shown in zip(axes, members):
        draw.draw_landscape(ax, config)
        for group in shown:
            for i in group.lanes:
                drawn = draw.draw_path(ax, result.x[:, i, :2], group.method, span, lw=1.2)
                if drawn is not None:
                    parts.append(_Path(*drawn, result.x[:, i, :2], span))
        ax.set_title(r"mean loss $\bar{L} = (L_1 + L_2)/2$" if spec.overlay else shown[0].title, pad=2.5)
        ax.set_xlabel(r"$x_1$", labelpad=1)
        ax.set_ylabel(r"$x_2$", labelpad=0)
    if spec.convergence:
        ax = axes[len(members)]
        draw.convergence(ax, result, groups, spec.gap)
        parts += [_Curve(line) for line in ax.get_lines()]
    for ax in axes[layout.top :]:
        ax.set_axis_off()
    if bottom_fig is not None:
        parts += _gradient_panels(bottom_fig, result, spec, groups, layout)
    handles = [draw.method_handle(g.method, g.title) for g in groups]
    draw._marks_legend(top_fig, handles, ncols=layout.legend_cols)
    last = int(result.recorded_steps[-1])
    counter = fig.supxlabel(_counter_text(last, last), fontsize=8)
    return Animation(fig, frame_indices(result, spec.frames), result.recorded_steps, counter, parts)


def _gradient_panels(subfig, result: Result, spec: FigureSpec, groups, layout: Grid) -> list:
    config = result.config
    problem, params = draw._problem(config)
    rows = math.ceil(layout.bottom / layout.bottom_cols)
    axes = subfig.subplots(rows, layout.bottom_cols, squeeze=False).reshape(-1)
    frames = frame_indices(result, spec.frames)
    start = config.inits[spec.regions_start]
    panels = []
    for ax, group in zip(axes, groups):
        lane = group.lanes[spec.regions_start]
        x = torch.as_tensor(result.x[frames, lane, :2], dtype=torch.float64)
        _, grads = problem.losses_and_grads(x, params)
        grads = grads.numpy()
        scale = 1.0 / np.maximum(np.linalg.norm(grads, axis=-1).max(-1), 1e-300)
        d = result.directions[frames, lane, :2] * scale[:, None]
        panels.append(
            _gradient_panel(ax, grads * scale[:, None, None], d, result.lanes[lane].params, group, spec)
        )
        ax.set_title(group.title, pad=2.5)
    for ax in axes[layout.bottom :]:
        ax.set_axis_off()
    subfig.suptitle(
        rf"gradient space at $x_t$ of the runs from ({start[0]:g}, {start[1]:g}), "
        r"divided by the larger $\|g_i\|$",
        fontsize=7,
    )
    return panels


def _region(method: str, params: dict, spec: FigureSpec) -> tuple[str | None, float]:
    """The method's own region and its c (the figure option when given, else the lane's c)."""
    if method == "cagrad":
        return "ball", spec.ball_c if spec.ball_c is not None else float(params["c"])
    if method in ("conicgrad", "conicgrad_exact"):
        return "cone", spec.cone_c if spec.cone_c is not None else float(params["c"])
    return None, 0.0


def _gradient_panel(ax, grads: np.ndarray, d: np.ndarray, params: dict, group, spec) -> _GradientPanel:
    region, c = _region(group.method, params, spec)
    extent = [1.0] + [float(np.linalg.norm(v)) for v in d if np.all(np.isfinite(v))]
    if region == "ball":
        extent.append(1.0 + c)
    half = min(max(extent) * 1.15, MAX_VIEW)
    radius = 3 * half
    dual = ax.add_patch(
        Polygon(np.zeros((3, 2)), facecolor="#E8E8E8", edgecolor="#9A9A9A", lw=0.5, hatch="////", zorder=0.5)
    )
    style = method_style(group.method)
    shape = arc = None
    if region == "ball":
        shape = ax.add_patch(
            Circle(
                (0, 0),
                1.0,
                facecolor=to_rgba(style.color, REGION_ALPHA),
                edgecolor=style.color,
                linestyle=style.linestyle,
                lw=0.9,
                zorder=1,
            )
        )
    elif region == "cone":
        shape = ax.add_patch(
            Polygon(
                np.zeros((3, 2)),
                facecolor=to_rgba(style.color, REGION_ALPHA),
                edgecolor=style.color,
                linestyle=style.linestyle,
                lw=0.9,
                zorder=1,
            )
        )
        (arc,) = ax.plot([], [], color=style.color, linestyle=(0, (1.0, 1.2)), lw=0.9, zorder=1.5)
    arrows, labels = [], []
    for k, (color, lw, text) in enumerate(
        [("#555555", 1.0, "$g_1$"), ("#555555", 1.0, "$g_2$"), ("#000000", 1.4, "$g_0$")]
    ):
        arrows.append(
            ax.add_patch(
                FancyArrowPatch(
                    (0, 0),
                    (1, 0),
                    arrowstyle="-|>",
                    mutation_scale=7,
                    color=color,
                    lw=lw,
                    shrinkA=0,
                    shrinkB=0,
                    zorder=3,
                )
            )
        )
        offset = (3, -8) if k == 2 else (3, 2)
        labels.append(
            ax.annotate(text, (1, 0), xytext=offset, textcoords="offset points", fontsize=7, zorder=6)
        )
    (d_line,) = ax.plot([], [], color=style.color, linestyle=style.linestyle, lw=1.1, zorder=4)
    (d_tip,) = ax.plot(
        [],
        [],
        marker=style.marker,
        markersize=4.5,
        markerfacecolor=style.color,
        markeredgecolor="#000000",
        markeredgewidth=0.5,
        linestyle="none",
        zorder=4.5,
    )
    ax.plot([0], [0], marker="o", markersize=2.5, color="#000000", zorder=5)
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")
    ax.axhline(0, color="#BBBBBB", lw=0.4, zorder=0.2)
    ax.axvline(0, color="#BBBBBB", lw=0.4, zorder=0.2)
    ax.set_xlabel(r"$d_1$", labelpad=1)
    ax.set_ylabel(r"$d_2$", labelpad=0)
    return _GradientPanel(grads, d, region, c, radius, dual, shape, arc, arrows, labels, d_line, d_tip)


# -- frames and files -----------------------------------------------------------------------------


class FrameRenderer:
    """Frames of an animation as (H, W, 3) uint8 arrays: the background (everything but the moving
    artists) is rendered once here; ``frame(k)`` restores it and draws only the moving artists."""

    def __init__(self, anim: Animation) -> None:
        self.anim = anim
        self.canvas = FigureCanvasAgg(anim.fig)
        self.moving = anim.moving()
        for artist in self.moving:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(anim.fig.bbox)

    def __len__(self) -> int:
        return len(self.anim.frame_steps)

    def frame(self, k: int) -> np.ndarray:
        self.anim.show(k)
        self.canvas.restore_region(self.background)
        for artist in self.moving:
            if artist.get_visible():
                self.anim.fig.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def frames_rgb(anim: Animation):
    """Every frame in order (see ``FrameRenderer``)."""
    renderer = FrameRenderer(anim)
    return (renderer.frame(k) for k in range(len(renderer)))


def render_animation(result: Result, spec: FigureSpec, fmt: str) -> bytes:
    """The animation of ``result`` as the bytes of a ``fmt`` ("gif" or "mp4") file with the config
    and ``spec`` embedded. ValueError on a bad option, a cap, or (MP4) a missing ffmpeg."""
    if fmt not in ANIMATION_FORMATS:
        raise ValueError(f"animation format must be one of {list(ANIMATION_FORMATS)}, got {fmt!r}")
    spec = spec.validated()
    comment = animation_comment(result.config.to_json(), spec.to_json())
    if fmt == "mp4":
        ffmpeg = ffmpeg_path()
    with rc_context(RC):
        renderer = FrameRenderer(build(result, spec))
        frames = (renderer.frame(k) for k in range(len(renderer)))
        if fmt == "gif":
            palette = gif_palette([renderer.frame(0), renderer.frame(len(renderer) - 1)])
            return write_gif(frames, spec.fps, comment, palette)
        return write_mp4(frames, spec.fps, comment, ffmpeg)


def gif_palette(samples: list[np.ndarray]) -> Image.Image:
    """One 255-colour palette (median cut, no dithering) for every frame, taken from ``samples``
    (the first and last frames: the last holds every path and curve)."""
    return Image.fromarray(np.concatenate(samples, axis=0)).quantize(
        colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )


def write_gif(frames, fps: int, comment: str, palette: Image.Image) -> bytes:
    """A looping GIF of ``frames`` (iterable of (H, W, 3) uint8) at ``fps``, with one comment
    extension. Each frame is mapped to ``palette`` as it comes (one byte per pixel is kept, not
    three) without dithering, so unchanged pixels stay identical and Pillow stores only each
    frame's changes."""
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    out = io.BytesIO()
    images[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=gif_delays(len(images), fps),
        loop=0,
        comment=comment.encode("utf-8"),
    )
    return out.getvalue()


def gif_delays(count: int, fps: int) -> list[int]:
    """Per-frame delays in milliseconds for ``count`` frames at ``fps``: GIF stores whole
    hundredths of a second, so frame k lasts round(100 (k+1) / fps) - round(100 k / fps) of them,
    which keeps every frame on time to within 1/100 s (12 fps: 80, 90, 80, 80, 90, 80, ... ms)."""
    ends = np.round(np.arange(count + 1) * 100 / fps).astype(int)
    return (np.diff(ends) * 10).tolist()


def has_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def ffmpeg_path() -> str:
    """The system ffmpeg; ValueError naming what is missing when there is none."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise ValueError("MP4 needs the ffmpeg program, which is not on PATH; install ffmpeg or write a .gif")
    return found


def write_mp4(frames, fps: int, comment: str, ffmpeg: str) -> bytes:
    """An H.264 MP4 of ``frames`` at ``fps`` made by ``ffmpeg``, with ``comment`` as its comment tag."""
    if len(comment) > MAX_FFMPEG_COMMENT:
        raise ValueError(f"the config is too large to embed in an MP4 ({len(comment)} characters)")
    frames = iter(frames)
    first = next(frames)
    height, width, _ = first.shape
    with tempfile.TemporaryDirectory(prefix="toyopt-") as tmp:
        out = Path(tmp) / "animation.mp4"
        command = [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-framerate",
            str(fps),
            "-i",
            "pipe:0",
            *FFMPEG_OUTPUT,
            "-metadata",
            f"comment={comment}",
            str(out),
        ]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdin.write(first.tobytes())
            for frame in frames:
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        errors = proc.stderr.read().decode("utf-8", errors="replace").strip()
        if proc.wait() != 0:
            last = errors.splitlines()[-1] if errors else f"exit code {proc.returncode}"
            raise ValueError(f"ffmpeg could not write the MP4: {last}")
        return out.read_bytes()
