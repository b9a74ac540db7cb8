"""``python -m toyopt figure``: a figure for a paper (PDF, SVG or PNG), or an animation for a talk
(GIF or MP4), with its config embedded.

python -m toyopt figure --setup conicgrad2025 --out fig1.pdf
python -m toyopt figure --setup nashmtl2022 --layout regions --point=9,-1 --width single --out r.svg
python -m toyopt figure --from fig1.pdf --width single --out fig1_small.png   # redraw a figure
python -m toyopt figure --setup conicgrad2025 --layout animation --regions-start 0 --out talk.gif
"""

from __future__ import annotations

import sys
from dataclasses import replace

from ..engine import run, series
from ..figures import (
    LAYOUTS,
    FigureSpec,
    animation,
    check_format,
    data_files,
    needs_run,
    read_embedded,
    render_spec,
)
from ..figures.embed import MAX_FIGURE_BYTES
from ..figures.spec import GAPS, MAX_PANELS, SURFACES, parse_point
from ._common import (
    UsageError,
    add_config_arguments,
    config_from_args,
    output_path,
    read_bytes,
    write_outputs,
)

SUFFIXES = (".pdf", ".svg", ".png", ".gif", ".mp4")
#: Config flags that --from cannot combine with (the embedded config is redrawn as it is).
CONFIG_FLAGS = ("setup", "config", "method", "set", "inits", "steps", "seed", "lr", "record_every")


def register(sub) -> None:
    p = sub.add_parser(
        "figure",
        help="draw a paper figure (PDF, SVG, PNG) or an animation (GIF, MP4) with its config embedded",
    )
    add_config_arguments(p)
    p.add_argument(
        "--from",
        dest="from_figure",
        default=None,
        metavar="FIGURE",
        help="redraw the run embedded in a figure written by toyopt (figure flags still apply)",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        help="paper (default), landscape, front, regions, or animation (--out FILE.gif or FILE.mp4)",
    )
    p.add_argument(
        "--width",
        default=None,
        help="single (3.25 in), double (6.75 in, default), slide (10 in, 16:9) or inches",
    )
    p.add_argument("--dpi", type=int, default=None, help="PNG resolution (default 300; animations 128)")
    p.add_argument(
        "--point",
        default=None,
        metavar="X1,X2",
        help="the point of --layout regions (write --point=-7.5,-0.5 for a negative x1)",
    )
    p.add_argument(
        "--gap",
        choices=GAPS,
        default=None,
        help="convergence panel: mean loss minus its minimum (loss, default) or ||x - x*|| (distance)",
    )
    p.add_argument("--no-convergence", action="store_true", help="paper layout without the convergence panel")
    p.add_argument("--no-trajectories", action="store_true", help="landscape layout without any run")
    p.add_argument(
        "--surface",
        choices=SURFACES,
        default=None,
        help="landscape layout: the map of the mean loss (default) or of task 1's (f1) or task 2's (f2)",
    )
    p.add_argument("--ball-c", type=float, default=None, help="c of CAGrad's ball in --layout regions")
    p.add_argument("--cone-c", type=float, default=None, help="c of ConicGrad's cone in --layout regions")
    p.add_argument("--frames", type=int, default=None, help="animation: number of frames (default 60)")
    p.add_argument("--fps", type=int, default=None, help="animation: frames per second (default 12)")
    p.add_argument("--overlay", action="store_true", help="animation: every method on one landscape panel")
    p.add_argument(
        "--regions-start",
        type=int,
        default=None,
        metavar="I",
        help="animation: add gradient-space panels following start I (0 = the first start)",
    )
    p.add_argument(
        "--data",
        action="store_true",
        help="also write the data beside the figure: STEM.csv, STEM.json, STEM.config.json",
    )
    p.add_argument(
        "--out", required=True, help="FILE.pdf, FILE.svg or FILE.png; FILE.gif or FILE.mp4 for an animation"
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=handle)


def _figure_overrides(args) -> dict:
    overrides = {}
    for flag in (
        "layout",
        "width",
        "dpi",
        "gap",
        "surface",
        "ball_c",
        "cone_c",
        "frames",
        "fps",
        "regions_start",
    ):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    if args.point is not None:
        overrides["point"] = parse_point(args.point)
    if args.no_convergence:
        overrides["convergence"] = False
    if args.no_trajectories:
        overrides["trajectories"] = False
    if args.overlay:
        overrides["overlay"] = True
    return overrides


def _from_figure(args):
    given = [f"--{name.replace('_', '-')}" for name in CONFIG_FLAGS if getattr(args, name)]
    if given:
        raise UsageError(f"--from redraws the embedded config as it is; drop {', '.join(given)}")
    data = read_bytes(args.from_figure, "--from", MAX_FIGURE_BYTES)
    try:
        return read_embedded(data)
    except ValueError as exc:
        raise UsageError(f"--from {args.from_figure!r}: {exc}") from None


def handle(args) -> int:
    out = output_path(args.out, args.force, SUFFIXES)
    if args.from_figure is not None:
        config, embedded = _from_figure(args)
        spec = embedded or FigureSpec()
    else:
        config, spec = config_from_args(args), FigureSpec()
    overrides = _figure_overrides(args)
    if overrides.get("layout", spec.layout) != spec.layout and "dpi" not in overrides:
        overrides["dpi"] = None  # the new layout's default resolution, not the embedded one's
    spec = replace(spec, **overrides).validated()
    fmt = out.suffix.lower()[1:]
    check_format(spec, fmt)
    if spec.layout == "animation":  # caps and ffmpeg checked before the run
        animation.grid(config, spec)
        if fmt == "mp4":
            animation.ffmpeg_path()
    if spec.layout == "paper" and len(series(config)) > MAX_PANELS:  # refused before the run
        raise UsageError(
            f"the paper layout draws at most {MAX_PANELS} panels (methods x grid values); "
            f"this run has {len(series(config))}: use fewer methods or values, or another --layout"
        )
    data_paths = {}
    if args.data:
        for suffix in (".csv", ".json", ".config.json"):
            target = out.with_name(out.stem + suffix)
            data_paths[suffix] = output_path(str(target), args.force, (".csv", ".json"))
    result = run(config) if needs_run(spec) or args.data else None
    for notice in result.notices if result is not None else ():
        print(f"toyopt: note: {notice}", file=sys.stderr)
    figure = render_spec(result if result is not None else config, spec, fmt)
    files: list = [(out, figure)]
    if result is not None:
        files += [(data_paths[s], text) for s, text in data_files(result).items() if s in data_paths]
    write_outputs(files, args.force)
    if not args.quiet:
        written = ", ".join(str(p) for p in [out, *data_paths.values()])
        what = f"{spec.layout}, {spec.inches:g} in wide"
        if spec.layout == "animation":
            frames = len(animation.frame_indices(result, spec.frames))
            short = (
                f"; the run has {len(result.recorded_steps)} recorded states" if frames < spec.frames else ""
            )
            what += f", {frames} frames at {spec.fps} fps{short}"
        print(f"wrote {written} ({what})", file=sys.stderr)
    return 0
